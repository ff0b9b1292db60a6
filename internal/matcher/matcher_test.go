package matcher_test

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/seqbook/seqbook/client/amount"
	"github.com/seqbook/seqbook/internal/matcher"
)

// u parses a decimal amount ("1.5") into base units.
func u(s string) uint64 {
	v, err := amount.Parse(s)
	if err != nil {
		panic(err)
	}
	return v
}

// book is a small test harness: an engine with funded accounts and helpers
// that fail the test on unexpected errors.
type book struct {
	t *testing.T
	e *matcher.Engine
}

func newBook(t *testing.T) *book {
	t.Helper()
	b := &book{t: t, e: matcher.New(matcher.DefaultConfig())}
	for _, a := range []string{"alice", "bob", "carol"} {
		b.deposit(a, "ETH", "100")
		b.deposit(a, "USDT", "100000")
	}
	return b
}

func (b *book) deposit(acct, tok, amt string) {
	b.t.Helper()
	if err := b.e.Deposit(acct, tok, u(amt)); err != nil {
		b.t.Fatalf("deposit %s %s %s: %v", acct, tok, amt, err)
	}
}

func (b *book) place(id, acct, side, typ, qty, price string) matcher.PlaceResult {
	b.t.Helper()
	r, err := b.e.Place(order(id, acct, side, typ, qty, price))
	if err != nil {
		b.t.Fatalf("place %s: %v", id, err)
	}
	if err := b.e.CheckInvariants(); err != nil {
		b.t.Fatalf("after %s: %v", id, err)
	}
	return r
}

func order(id, acct, side, typ, qty, price string) matcher.Order {
	s, err := matcher.ParseSide(side)
	if err != nil {
		panic(err)
	}
	ty, err := matcher.ParseOrderType(typ)
	if err != nil {
		panic(err)
	}
	return matcher.Order{ID: id, Account: acct, Market: "ETH/USDT", Side: s, Type: ty, Quantity: u(qty), Price: u(price)}
}

// bal returns "available/reserved" in decimal, for compact assertions.
func (b *book) bal(acct, tok string) string {
	x := b.e.Balance(acct, tok)
	return amount.Format(x.Available) + "/" + amount.Format(x.Reserved)
}

func (b *book) wantBal(acct, tok, want string) {
	b.t.Helper()
	if got := b.bal(acct, tok); got != want {
		b.t.Errorf("%s %s = %s, want %s", acct, tok, got, want)
	}
}

// fills renders trades as "maker>taker qty@price".
func fills(r matcher.PlaceResult) string {
	var s []string
	for _, t := range r.Trades {
		s = append(s, fmt.Sprintf("%s>%s %s@%s", t.MakerOrder, t.TakerOrder, amount.Format(t.Quantity), amount.Format(t.Price)))
	}
	return strings.Join(s, " ")
}

func TestPriceTimePriority(t *testing.T) {
	b := newBook(t)
	b.place("a1", "alice", "sell", "limit", "1", "100")
	b.place("b1", "bob", "sell", "limit", "1", "100")
	b.place("a2", "alice", "sell", "limit", "1", "99")
	b.place("b2", "bob", "sell", "limit", "1", "101")
	r := b.place("c1", "carol", "buy", "limit", "3.5", "100")
	// Best price first (99), then time order at 100; 101 does not cross.
	if got, want := fills(r), "a2>c1 1@99 a1>c1 1@100 b1>c1 1@100"; got != want {
		t.Fatalf("fills %q, want %q", got, want)
	}
	if r.Status != matcher.StatusPartiallyFilled || r.Filled != u("3") || r.Remaining != u("0.5") || !r.Rested() {
		t.Fatalf("result %+v", r)
	}
	bids, asks := b.e.Depth("ETH/USDT", 0)
	if !slices.Equal(bids, []matcher.Level{{Price: u("100"), Quantity: u("0.5"), Orders: 1}}) ||
		!slices.Equal(asks, []matcher.Level{{Price: u("101"), Quantity: u("1"), Orders: 1}}) {
		t.Fatalf("depth %v %v", bids, asks)
	}
}

func TestPartialFillKeepsQueuePosition(t *testing.T) {
	b := newBook(t)
	b.place("a1", "alice", "sell", "limit", "2", "100")
	b.place("b1", "bob", "sell", "limit", "1", "100")
	r := b.place("c1", "carol", "buy", "limit", "0.5", "100")
	if fills(r) != "a1>c1 0.5@100" || r.Trades[0].MakerRemaining != u("1.5") || r.Status != matcher.StatusFilled {
		t.Fatalf("first buy: %s %+v", fills(r), r)
	}
	o, ok := b.e.Order("a1")
	if !ok || o.Status != matcher.StatusPartiallyFilled || o.Filled != u("0.5") || o.Remaining != u("1.5") {
		t.Fatalf("a1 after partial fill: %+v %v", o, ok)
	}
	// a1 is still first at 100 even though b1 is smaller.
	r = b.place("c2", "carol", "buy", "limit", "2", "100")
	if got, want := fills(r), "a1>c2 1.5@100 b1>c2 0.5@100"; got != want {
		t.Fatalf("fills %q, want %q", got, want)
	}
	if _, ok := b.e.Order("a1"); ok {
		t.Fatal("filled order still open")
	}
}

func TestMakerPriceAndImprovementRefund(t *testing.T) {
	b := newBook(t)
	b.place("a1", "alice", "sell", "limit", "1", "100")
	// carol bids up to 110: she trades at the maker's 100, and the 10 she
	// reserved beyond that comes back.
	r := b.place("c1", "carol", "buy", "limit", "1", "110")
	if fills(r) != "a1>c1 1@100" || r.Trades[0].Quote != u("100") {
		t.Fatalf("fills %s", fills(r))
	}
	b.wantBal("carol", "USDT", "99900/0")
	b.wantBal("carol", "ETH", "101/0")
	b.wantBal("alice", "USDT", "100100/0")
	b.wantBal("alice", "ETH", "99/0")
}

func TestImprovementRefundWhileResting(t *testing.T) {
	b := newBook(t)
	b.place("a1", "alice", "sell", "limit", "1", "100")
	// 3 at limit 110: reserves 330, fills 1 at 100, rests 2 holding 220.
	r := b.place("c1", "carol", "buy", "limit", "3", "110")
	if r.Status != matcher.StatusPartiallyFilled {
		t.Fatalf("status %v", r.Status)
	}
	b.wantBal("carol", "USDT", "99680/220") // 100000 - 330 reserved + 10 improvement
	// Then a seller hits the resting bid: the trade is at carol's 110.
	r = b.place("b1", "bob", "sell", "limit", "0.5", "90")
	if fills(r) != "c1>b1 0.5@110" {
		t.Fatalf("fills %s", fills(r))
	}
	b.wantBal("carol", "USDT", "99680/165")
	b.wantBal("bob", "USDT", "100055/0")
}

func TestRoundingDustGoesBackToBuyer(t *testing.T) {
	b := newBook(t)
	// Flooring each fill can leave a buyer's reservation larger than what
	// it pays; the rest must come back, not vanish. carol sells 10 units
	// (0.00001 ETH) at 0.333333; dan buys 7 units with limit 0.5: he
	// reserves floor(7×0.5)=3 units of USDT and pays floor(7×0.333333)=2.
	b.deposit("dan", "USDT", "0.000003")
	b.place("s", "carol", "sell", "limit", "0.00001", "0.333333")
	res, err := b.e.Place(matcher.Order{ID: "x", Account: "dan", Market: "ETH/USDT", Side: matcher.Buy, Type: matcher.Limit, Quantity: 7, Price: u("0.5")})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Trades) != 1 || res.Trades[0].Quote != 2 || res.Trades[0].Quantity != 7 {
		t.Fatalf("trades %+v", res.Trades)
	}
	b.wantBal("dan", "USDT", "0.000001/0")
	b.wantBal("dan", "ETH", "0.000007/0")
	// carol's 3 units left pay floor(0.999999) = 0 at her price: dust,
	// cancelled after the fill.
	if len(res.DustCancelled) != 1 || res.DustCancelled[0].ID != "s" || res.DustCancelled[0].Remaining != 3 {
		t.Fatalf("dust cancels %+v", res.DustCancelled)
	}
	b.wantBal("carol", "ETH", "99.999993/0")
	if err := b.e.CheckInvariants(); err != nil {
		t.Fatal(err)
	}
	// The same when the buyer rests and is the maker: dan bids 5 units at
	// 0.9 holding floor(4.5)=4; a sell of 3 units fills at 0.9, paying
	// floor(2.7)=2 while the hold drops to floor(1.8)=1: 1 comes back.
	b2 := newBook(t)
	b2.deposit("dan", "USDT", "0.000004")
	if _, err := b2.e.Place(matcher.Order{ID: "bid", Account: "dan", Market: "ETH/USDT", Side: matcher.Buy, Type: matcher.Limit, Quantity: 5, Price: u("0.9")}); err != nil {
		t.Fatal(err)
	}
	b2.wantBal("dan", "USDT", "0/0.000004")
	if _, err := b2.e.Place(matcher.Order{ID: "s", Account: "bob", Market: "ETH/USDT", Side: matcher.Sell, Type: matcher.Limit, Quantity: 3, Price: u("0.5")}); err != nil {
		t.Fatal(err)
	}
	b2.wantBal("dan", "USDT", "0.000001/0.000001")
	b2.wantBal("dan", "ETH", "0.000003/0")
	if o, ok := b2.e.Order("bid"); !ok || o.Remaining != 2 {
		t.Fatalf("bid %+v %v", o, ok)
	}
	if err := b2.e.CheckInvariants(); err != nil {
		t.Fatal(err)
	}
}

func TestSelfTradePrevention(t *testing.T) {
	b := newBook(t)
	b.place("a1", "alice", "sell", "limit", "1", "99")
	b.place("b1", "bob", "sell", "limit", "1", "100")
	b.wantBal("alice", "ETH", "99/1")
	r := b.place("a2", "alice", "buy", "limit", "1", "100")
	// alice's own ask is cancelled (not filled), then she buys bob's.
	if fills(r) != "b1>a2 1@100" {
		t.Fatalf("fills %s", fills(r))
	}
	if len(r.SelfTradeCancelled) != 1 || r.SelfTradeCancelled[0].ID != "a1" || r.SelfTradeCancelled[0].Status != matcher.StatusCancelled {
		t.Fatalf("self-trade cancels %+v", r.SelfTradeCancelled)
	}
	if _, ok := b.e.Order("a1"); ok {
		t.Fatal("a1 still open")
	}
	b.wantBal("alice", "ETH", "101/0")
	b.wantBal("alice", "USDT", "99900/0")
}

func TestSelfTradeDoesNotTouchNonCrossingOrders(t *testing.T) {
	b := newBook(t)
	b.place("a1", "alice", "sell", "limit", "1", "101")
	r := b.place("a2", "alice", "buy", "limit", "1", "100")
	if len(r.SelfTradeCancelled) != 0 || r.Status != matcher.StatusOpen {
		t.Fatalf("%+v", r)
	}
	if _, ok := b.e.Order("a1"); !ok {
		t.Fatal("non-crossing own order cancelled")
	}
}

func TestMarketOrderIsImmediateOrCancel(t *testing.T) {
	b := newBook(t)
	b.place("a1", "alice", "sell", "limit", "1", "100")
	b.place("a2", "alice", "sell", "limit", "1", "105")
	// Worst acceptable price 102: takes the 100, stops before 105, the
	// rest is cancelled and its reservation released.
	r := b.place("m1", "carol", "buy", "market", "3", "102")
	if fills(r) != "a1>m1 1@100" || r.Status != matcher.StatusCancelled || r.Remaining != u("2") || r.Rested() {
		t.Fatalf("%s %+v", fills(r), r)
	}
	b.wantBal("carol", "USDT", "99900/0")
	if _, ok := b.e.Order("m1"); ok {
		t.Fatal("market order rests")
	}
	// A market sell into an empty bid side trades nothing and holds nothing.
	r = b.place("m2", "bob", "sell", "market", "1", "1")
	if len(r.Trades) != 0 || r.Status != matcher.StatusCancelled {
		t.Fatalf("%+v", r)
	}
	b.wantBal("bob", "ETH", "100/0")
}

func TestCancel(t *testing.T) {
	b := newBook(t)
	b.place("a1", "alice", "buy", "limit", "2", "50")
	b.wantBal("alice", "USDT", "99900/100")
	if _, err := b.e.Cancel("bob", "a1"); err != matcher.ErrNotOwner {
		t.Fatalf("cancel by bob: %v", err)
	}
	if _, err := b.e.Cancel("alice", "zz"); err != matcher.ErrUnknownOrder {
		t.Fatalf("cancel unknown: %v", err)
	}
	info, err := b.e.Cancel("alice", "a1")
	if err != nil || info.Status != matcher.StatusCancelled || info.Remaining != u("2") {
		t.Fatalf("cancel: %+v %v", info, err)
	}
	b.wantBal("alice", "USDT", "100000/0")
	if _, err := b.e.Cancel("alice", "a1"); err != matcher.ErrUnknownOrder {
		t.Fatalf("second cancel: %v", err)
	}
	if bids, _ := b.e.Depth("ETH/USDT", 0); len(bids) != 0 {
		t.Fatalf("level left behind: %v", bids)
	}
}

func TestWithdraw(t *testing.T) {
	b := newBook(t)
	b.place("a1", "alice", "sell", "limit", "60", "100")
	// 40 ETH available, 60 reserved: reserved funds cannot leave.
	if err := b.e.Withdraw("alice", "ETH", u("41")); err != matcher.ErrInsufficientBalance {
		t.Fatalf("withdraw reserved: %v", err)
	}
	if err := b.e.Withdraw("alice", "ETH", u("40")); err != nil {
		t.Fatal(err)
	}
	b.wantBal("alice", "ETH", "0/60")
	if got := b.e.Supply("ETH"); got != u("260") {
		t.Fatalf("supply %d", got)
	}
	if err := b.e.Withdraw("nobody", "ETH", 1); err != matcher.ErrInsufficientBalance {
		t.Fatalf("unknown account: %v", err)
	}
}

func TestOpenOrderBound(t *testing.T) {
	e := matcher.New(matcher.Config{OpenOrdersPerAccountMax: 2})
	if err := e.Deposit("alice", "USDT", u("1000")); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		if _, err := e.Place(matcher.Order{ID: fmt.Sprint(i), Account: "alice", Market: "ETH/USDT", Side: matcher.Buy, Type: matcher.Limit, Quantity: u("1"), Price: u("1")}); err != nil {
			t.Fatal(err)
		}
	}
	o := matcher.Order{ID: "x", Account: "alice", Market: "ETH/USDT", Side: matcher.Buy, Type: matcher.Limit, Quantity: u("1"), Price: u("1")}
	if _, err := e.Place(o); err != matcher.ErrTooManyOpenOrders {
		t.Fatalf("third order: %v", err)
	}
	// A market order never rests, so it is not bounded.
	o.Type = matcher.Market
	if _, err := e.Place(o); err != nil {
		t.Fatalf("market order at the bound: %v", err)
	}
	// Cancelling one makes room.
	if _, err := e.Cancel("alice", "0"); err != nil {
		t.Fatal(err)
	}
	o.Type, o.ID = matcher.Limit, "y"
	if _, err := e.Place(o); err != nil {
		t.Fatalf("after cancel: %v", err)
	}
}

// TestRejectionsChangeNothing checks each rejection reason and that the
// state digest is the same before and after.
func TestRejectionsChangeNothing(t *testing.T) {
	b := newBook(t)
	b.place("open", "alice", "sell", "limit", "1", "100")
	good := order("new", "bob", "buy", "limit", "1", "100")
	with := func(f func(o *matcher.Order)) matcher.Order { o := good; f(&o); return o }
	long := strings.Repeat("x", matcher.NameBytesMax+1)
	cases := []struct {
		name string
		op   func() error
		want error
	}{
		{"empty id", placeErr(b.e, with(func(o *matcher.Order) { o.ID = "" })), matcher.ErrInvalidOrderID},
		{"long id", placeErr(b.e, with(func(o *matcher.Order) { o.ID = long })), matcher.ErrInvalidOrderID},
		{"empty account", placeErr(b.e, with(func(o *matcher.Order) { o.Account = "" })), matcher.ErrInvalidAccount},
		{"market one token", placeErr(b.e, with(func(o *matcher.Order) { o.Market = "ETH" })), matcher.ErrInvalidMarket},
		{"market same tokens", placeErr(b.e, with(func(o *matcher.Order) { o.Market = "ETH/ETH" })), matcher.ErrInvalidMarket},
		{"market empty half", placeErr(b.e, with(func(o *matcher.Order) { o.Market = "/USDT" })), matcher.ErrInvalidMarket},
		{"market three parts", placeErr(b.e, with(func(o *matcher.Order) { o.Market = "A/B/C" })), matcher.ErrInvalidMarket},
		{"no side", placeErr(b.e, with(func(o *matcher.Order) { o.Side = 0 })), matcher.ErrInvalidSide},
		{"no type", placeErr(b.e, with(func(o *matcher.Order) { o.Type = 9 })), matcher.ErrInvalidOrderType},
		{"zero quantity", placeErr(b.e, with(func(o *matcher.Order) { o.Quantity = 0 })), matcher.ErrZeroQuantity},
		{"zero price", placeErr(b.e, with(func(o *matcher.Order) { o.Price = 0 })), matcher.ErrZeroPrice},
		{"huge quantity", placeErr(b.e, with(func(o *matcher.Order) { o.Quantity = amount.Max + 1 })), matcher.ErrAmountTooLarge},
		{"quote overflow", placeErr(b.e, with(func(o *matcher.Order) { o.Quantity, o.Price = amount.Max, amount.Max })), matcher.ErrQuoteOverflow},
		{"dust", placeErr(b.e, with(func(o *matcher.Order) { o.Quantity, o.Price = 999, 1000 })), matcher.ErrZeroQuoteAmount},
		{"duplicate id", placeErr(b.e, with(func(o *matcher.Order) { o.ID = "open" })), matcher.ErrDuplicateOrderID},
		{"unknown account", placeErr(b.e, with(func(o *matcher.Order) { o.Account = "zed" })), matcher.ErrInsufficientBalance},
		{"unknown token", placeErr(b.e, with(func(o *matcher.Order) { o.Market = "ETH/DAI" })), matcher.ErrInsufficientBalance},
		{"too expensive", placeErr(b.e, with(func(o *matcher.Order) { o.Quantity = u("1001") })), matcher.ErrInsufficientBalance},
		{"sell too much", placeErr(b.e, with(func(o *matcher.Order) { o.Side, o.Quantity = matcher.Sell, u("101") })), matcher.ErrInsufficientBalance},
		{"cancel unknown", cancelErr(b.e, "bob", "nope"), matcher.ErrUnknownOrder},
		{"cancel others'", cancelErr(b.e, "bob", "open"), matcher.ErrNotOwner},
		{"withdraw too much", func() error { return b.e.Withdraw("bob", "ETH", u("100.000001")) }, matcher.ErrInsufficientBalance},
		{"withdraw zero", func() error { return b.e.Withdraw("bob", "ETH", 0) }, matcher.ErrZeroAmount},
		{"deposit zero", func() error { return b.e.Deposit("bob", "ETH", 0) }, matcher.ErrZeroAmount},
		{"deposit bad token", func() error { return b.e.Deposit("bob", "A/B", 1) }, matcher.ErrInvalidToken},
		{"deposit empty account", func() error { return b.e.Deposit("", "ETH", 1) }, matcher.ErrInvalidAccount},
		{"deposit too large", func() error { return b.e.Deposit("bob", "ETH", amount.Max+1) }, matcher.ErrAmountTooLarge},
		{"supply overflow", func() error { return b.e.Deposit("bob", "ETH", amount.Max-u("299")) }, matcher.ErrSupplyOverflow},
	}
	for _, c := range cases {
		before := b.e.Digest()
		snapBefore, _ := b.e.MarshalBinary()
		err := c.op()
		if err != c.want {
			t.Errorf("%s: got %v, want %v", c.name, err, c.want)
		}
		if b.e.Digest() != before {
			t.Errorf("%s: state changed", c.name)
			if err := b.e.UnmarshalBinary(snapBefore); err != nil {
				t.Fatal(err)
			}
		}
	}
	// The exact reason strings are a contract (replay output).
	if matcher.ErrInsufficientBalance.Error() != "insufficient balance" || matcher.ErrNotOwner.Error() != "not the order's owner" {
		t.Fatal("reason strings changed")
	}
}

func placeErr(e *matcher.Engine, o matcher.Order) func() error {
	return func() error { _, err := e.Place(o); return err }
}

func cancelErr(e *matcher.Engine, acct, id string) func() error {
	return func() error { _, err := e.Cancel(acct, id); return err }
}

// TestIDReuseAfterClose documents the uniqueness choice: ids are unique
// among open orders; a closed order's id may come back.
func TestIDReuseAfterClose(t *testing.T) {
	b := newBook(t)
	b.place("x", "alice", "sell", "limit", "1", "100")
	if _, err := b.e.Place(order("x", "bob", "sell", "limit", "1", "100")); err != matcher.ErrDuplicateOrderID {
		t.Fatalf("open duplicate: %v", err)
	}
	b.place("y", "bob", "buy", "limit", "1", "100") // fills x
	b.place("x", "bob", "sell", "limit", "1", "100")
}

func TestEveryAcceptedOperationChangesDigest(t *testing.T) {
	b := newBook(t)
	steps := []func() error{
		func() error { return b.e.Deposit("dan", "ETH", 1) },
		func() error { return b.e.Withdraw("dan", "ETH", 1) },
		placeErr(b.e, order("1", "alice", "sell", "limit", "1", "100")),
		placeErr(b.e, order("2", "bob", "buy", "market", "1", "90")), // no fill, cancelled: still an accepted order
		placeErr(b.e, order("3", "bob", "buy", "limit", "0.5", "100")),
		cancelErr(b.e, "alice", "1"),
	}
	prev := b.e.Digest()
	for i, s := range steps {
		if err := s(); err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		d := b.e.Digest()
		if d == prev {
			t.Fatalf("step %d: digest unchanged", i)
		}
		prev = d
	}
}

// TestDigestIgnoresHistory: states that are equal have equal digests even
// when reached along different paths (internal numbering differs).
func TestDigestIgnoresHistory(t *testing.T) {
	a := matcher.New(matcher.DefaultConfig())
	must(t, a.Deposit("alice", "ETH", 5))
	must(t, a.Deposit("bob", "USDT", 7))
	b := matcher.New(matcher.DefaultConfig())
	must(t, b.Deposit("carol", "BTC", 9)) // touched and emptied: no trace
	must(t, b.Withdraw("carol", "BTC", 9))
	must(t, b.Deposit("bob", "USDT", 3))
	must(t, b.Deposit("alice", "ETH", 5))
	must(t, b.Deposit("bob", "USDT", 4))
	if a.Digest() != b.Digest() {
		t.Fatal("equal states, different digests")
	}
	must(t, b.Deposit("bob", "USDT", 1))
	if a.Digest() == b.Digest() {
		t.Fatal("different states, equal digests")
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestSnapshotRoundTrip(t *testing.T) {
	b := newBook(t)
	b.place("a1", "alice", "sell", "limit", "1", "100")
	b.place("a2", "alice", "sell", "limit", "2", "100")
	b.place("b1", "bob", "buy", "limit", "1.5", "99")
	b.place("c1", "carol", "buy", "limit", "0.25", "100") // partial fill of a1
	must(t, b.e.Deposit("dan", "BTC", 3))
	snap, err := b.e.MarshalBinary()
	must(t, err)
	r := matcher.New(matcher.DefaultConfig())
	must(t, r.UnmarshalBinary(snap))
	if r.Digest() != b.e.Digest() {
		t.Fatal("digest changed by the round trip")
	}
	must(t, r.CheckInvariants())
	if !slices.Equal(r.OpenOrders(), b.e.OpenOrders()) || !slices.Equal(r.AccountOrders("alice"), b.e.AccountOrders("alice")) {
		t.Fatal("open orders differ after restore")
	}
	again, _ := r.MarshalBinary()
	if string(again) != string(snap) {
		t.Fatal("re-encoding differs")
	}
	// Same behaviour afterwards.
	o := order("x", "carol", "buy", "limit", "3", "100")
	r1, err1 := b.e.Place(o)
	r2, err2 := r.Place(o)
	if err1 != nil || err2 != nil || fills(r1) != fills(r2) || b.e.Digest() != r.Digest() {
		t.Fatalf("diverged after restore: %v %v %q %q", err1, err2, fills(r1), fills(r2))
	}
	// A bad snapshot leaves the engine as it was.
	d := r.Digest()
	if err := r.UnmarshalBinary(snap[:len(snap)-1]); err == nil {
		t.Fatal("truncated snapshot accepted")
	}
	if r.Digest() != d {
		t.Fatal("failed restore changed the engine")
	}
}

func TestSnapshotRejectsInconsistentState(t *testing.T) {
	b := newBook(t)
	b.place("a1", "alice", "sell", "limit", "1", "100")
	snap, _ := b.e.MarshalBinary()
	// Flip one byte at a time: every mutation must be rejected or decode
	// to a state that re-encodes to exactly the mutated bytes.
	for i := range snap {
		m := slices.Clone(snap)
		m[i] ^= 0x01
		e := matcher.New(matcher.DefaultConfig())
		if err := e.UnmarshalBinary(m); err != nil {
			continue
		}
		if err := e.CheckInvariants(); err != nil {
			t.Fatalf("byte %d: accepted an inconsistent state: %v", i, err)
		}
		back, _ := e.MarshalBinary()
		if string(back) != string(m) {
			t.Fatalf("byte %d: accepted a non-canonical encoding", i)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	if err := matcher.DefaultConfig().ValidateBasic(); err != nil {
		t.Fatal(err)
	}
	if err := (matcher.Config{}).ValidateBasic(); err == nil {
		t.Fatal("zero bound accepted")
	}
	defer func() {
		if recover() == nil {
			t.Fatal("New accepted a bad config")
		}
	}()
	matcher.New(matcher.Config{})
}

func TestParseNames(t *testing.T) {
	if _, err := matcher.ParseSide("BUY"); !errors.Is(err, matcher.ErrInvalidSide) {
		t.Fatal("side parsing is case-sensitive on the wire")
	}
	if b, q, err := matcher.SplitMarket("ETH/USDT"); err != nil || b != "ETH" || q != "USDT" {
		t.Fatal("SplitMarket")
	}
	for _, s := range []matcher.Status{matcher.StatusOpen, matcher.StatusPartiallyFilled, matcher.StatusFilled, matcher.StatusCancelled} {
		if strings.HasPrefix(s.String(), "Status(") {
			t.Fatalf("status %d has no name", s)
		}
	}
}
