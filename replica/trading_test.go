package replica

import (
	"crypto/ecdsa"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/seqbook/seqbook/client/eip712"
	"github.com/seqbook/seqbook/client/ethsig"
	"github.com/seqbook/seqbook/client/obapi"
)

func signCancelAll(t testing.TB, k *ecdsa.PrivateKey, market string, nonce uint64) obapi.CancelAllRequest {
	t.Helper()
	expiry := uint64(testNowSec + 600)
	sig, err := ethsig.Sign(k, testDomain().EIP712.Digest(&eip712.CancelAll{Trader: addr(k), Market: market, Nonce: nonce, Expiry: expiry}))
	if err != nil {
		t.Fatal(err)
	}
	return obapi.CancelAllRequest{Trader: addr(k).Hex(), Market: market, Nonce: obapi.Uint(nonce), Expiry: obapi.Uint(expiry), Signature: hexSig(sig)}
}

func batchBody(t testing.TB, orders ...any) string {
	t.Helper()
	raws := make([]json.RawMessage, len(orders))
	for i, o := range orders {
		switch v := o.(type) {
		case string:
			raws[i] = json.RawMessage(v)
		default:
			b, err := json.Marshal(v)
			if err != nil {
				t.Fatal(err)
			}
			raws[i] = b
		}
	}
	b, err := json.Marshal(obapi.OrdersBatchRequest{Orders: raws})
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// One batch request: good orders are accepted in request order and applied
// together; each bad one is refused alone with the status and the field a
// single POST /order would name.
func TestBatchPlacementRefusesOnlyTheBadOrders(t *testing.T) {
	clock := newClock()
	seq := NewMemSequencer(clock.Ms)
	r := startReplica(t, testConfig("replica1", clock), seq, NewMemStore())

	ask := signOrder(t, bob, orderSpec{side: "sell", qty: 2_000_000, price: 2000_000_000, nonce: 1})
	bid := signOrder(t, alice, orderSpec{side: "buy", qty: 1_000_000, price: 2000_000_000, nonce: 1})
	unfunded := signOrder(t, alice, orderSpec{side: "sell", qty: 1_000_000, price: 2000_000_000, nonce: 2})
	sameNonce := signOrder(t, alice, orderSpec{side: "buy", qty: 1_000_000, price: 1900_000_000, nonce: 1})
	forged := signOrder(t, alice, orderSpec{side: "buy", qty: 1_000_000, price: 1800_000_000, nonce: 3})
	forged.Signature = ask.Signature
	body := batchBody(t, ask, bid, unfunded, mutate(t, bid, "market", "ETHUSDT"), sameNonce, forged, `{"x":1}`)

	var res obapi.OrdersBatchResult
	if code := r.do(t, "POST", "/orders?wait=finalized", body, &res); code != 200 {
		t.Fatalf("POST /orders: %d %+v", code, res)
	}
	want := []struct {
		status string
		code   int
		errHas string
	}{
		{"partially_filled", 0, ""}, {"filled", 0, ""},
		{"", 403, "orders[2]: insufficient balance"},
		{"", 400, "orders[3]: market"},
		{"", 409, "orders[4]: nonce 1"},
		{"", 401, "orders[5]: invalid signature"},
		{"", 400, "orders[6]: x: unknown field"},
	}
	if len(res.Results) != len(want) {
		t.Fatalf("%d results for %d orders", len(res.Results), len(want))
	}
	for i, w := range want {
		got := res.Results[i]
		if w.errHas != "" {
			if got.Code != w.code || !strings.Contains(got.Error, w.errHas) || got.OrderID != "" {
				t.Errorf("result %d = %+v, want code %d and an error with %q", i, got, w.code, w.errHas)
			}
			continue
		}
		if got.Error != "" || got.Status != w.status || got.Order == nil || got.Order.Status != w.status {
			t.Errorf("result %d = %+v, want status %s", i, got, w.status)
		}
	}
	if res.Results[0].OrderID != orderID(t, ask) || res.Results[1].OrderID != orderID(t, bid) {
		t.Error("order ids out of request order")
	}
	if n := seq.Len(); n != 1 {
		t.Errorf("the accepted orders went in %d sequencer batches, want 1", n)
	}
}

// Body-level problems refuse the whole request, name the field and change
// nothing.
func TestTradingBadInputIs400AndChangesNothing(t *testing.T) {
	clock := newClock()
	seq := NewMemSequencer(clock.Ms)
	r := startReplica(t, testConfig("replica1", clock), seq, NewMemStore())
	ca := signCancelAll(t, alice, "ETH/USDT", 1)
	tooMany := make([]any, obapi.OrdersBatchMax+1)
	for i := range tooMany {
		tooMany[i] = `{}`
	}
	cases := []struct {
		method, path, body string
		status             int
		errHas             string
	}{
		{"POST", "/orders", "", 400, "empty body"},
		{"POST", "/orders", `{"orders":{}}`, 400, "orders"},
		{"POST", "/orders", `{}`, 400, "orders: missing"},
		{"POST", "/orders", `{"orders":[]}`, 400, "orders: empty"},
		{"POST", "/orders", `{"orders":[],"x":1}`, 400, "x: unknown field"},
		{"POST", "/orders", batchBody(t, tooMany...), 400, "at most 100"},
		{"POST", "/orders?wait=later", `{"orders":[{}]}`, 400, "wait"},
		{"POST", "/cancel_all", mutate(t, ca, "market", "ETHUSDT"), 400, "market"},
		{"POST", "/cancel_all", mutate(t, ca, "trader", "0x12"), 400, "trader"},
		{"POST", "/cancel_all", mutate(t, ca, "nonce", nil), 400, "nonce"},
		{"POST", "/cancel_all", mutate(t, ca, "orderId", "0x12"), 400, "orderId"},
		{"POST", "/cancel_all", mutate(t, ca, "market", "BTC/USDT"), 401, "invalid signature"},
		{"GET", "/orders/by-nonce?trader=0x12&nonce=1", "", 400, "trader"},
		{"GET", "/orders/by-nonce?trader=" + addr(alice).Hex(), "", 400, "nonce: missing"},
		{"GET", "/orders/by-nonce?trader=" + addr(alice).Hex() + "&nonce=-1", "", 400, "nonce"},
		{"GET", "/orders/by-nonce?trader=" + addr(alice).Hex() + "&nonce=1", "", 404, "no order"},
		{"GET", "/orders?status=open", "", 400, "trader: missing"},
		{"GET", "/orders?trader=" + addr(alice).Hex() + "&status=done", "", 400, "status"},
		{"GET", "/orders?trader=" + addr(alice).Hex() + "&status=all&limit=0", "", 400, "limit"},
		{"GET", "/orders?trader=" + addr(alice).Hex() + "&before=0x12", "", 400, "before"},
		{"GET", "/orders?trader=" + addr(alice).Hex() + "&before=0x" + strings.Repeat("ab", 32), "", 400, "before"},
		{"GET", "/trades?trader=bob", "", 400, "trader"},
		{"GET", "/balances", "", 400, "address: missing"},
		{"GET", "/balances?address=0xzz", "", 400, "address"},
	}
	before := r.state(t)
	for _, c := range cases {
		t.Run(c.method+" "+c.path, func(t *testing.T) {
			var e obapi.Error
			code := r.do(t, c.method, c.path, c.body, &e)
			if code != c.status || !strings.Contains(e.Error, c.errHas) {
				t.Fatalf("%d %q, want %d and an error with %q", code, e.Error, c.status, c.errHas)
			}
		})
	}
	if after := r.state(t); after.StateDigest != before.StateDigest || after.Pending != 0 || seq.Len() != 0 {
		t.Fatalf("bad requests changed something: %+v -> %+v, %d batches", before, after, seq.Len())
	}
}

// The new order types through the replica: a FOK that cannot fill and a
// post-only that would take are rejected with the matcher's reason and
// change no balance; an IOC's remainder is cancelled.
func TestOrderTypesThroughTheReplica(t *testing.T) {
	clock := newClock()
	seq := NewMemSequencer(clock.Ms)
	r := startReplica(t, testConfig("replica1", clock), seq, NewMemStore())
	place := func(o obapi.OrderRequest) obapi.Order {
		t.Helper()
		var got obapi.Order
		if code := r.do(t, "POST", "/order?wait=finalized", o, &got); code != 200 {
			t.Fatalf("POST /order: %d", code)
		}
		return got
	}
	place(signOrder(t, bob, orderSpec{side: "sell", qty: 1_000_000, price: 2000_000_000, nonce: 1}))
	usdt := r.balance(t, addr(alice), "USDT")
	for _, c := range []struct {
		spec           orderSpec
		status, reason string
	}{
		{orderSpec{typ: "fok", side: "buy", qty: 2_000_000, price: 2000_000_000, nonce: 1}, "rejected", "fill-or-kill order cannot be filled in full"},
		{orderSpec{typ: "post_only", side: "buy", qty: 1_000_000, price: 2000_000_000, nonce: 2}, "rejected", "post-only order would take liquidity"},
		{orderSpec{typ: "post_only", side: "buy", qty: 1_000_000, price: 1900_000_000, nonce: 3}, "open", ""},
		{orderSpec{typ: "ioc", side: "buy", qty: 3_000_000, price: 2000_000_000, nonce: 4}, "cancelled", "ioc order: unfilled remainder cancelled"},
	} {
		got := place(signOrder(t, alice, c.spec))
		if got.Status != c.status || got.Reason != c.reason || got.OrderType != c.spec.typ {
			t.Errorf("%s: %s %q (type %s), want %s %q", c.spec.typ, got.Status, got.Reason, got.OrderType, c.status, c.reason)
		}
		if c.status == "rejected" && r.balance(t, addr(alice), "USDT") != usdt {
			t.Errorf("%s: a rejected order moved funds", c.spec.typ)
		}
	}
	if got := r.balance(t, addr(alice), "ETH"); got != "1" {
		t.Errorf("alice's ETH after the IOC: %s, want 1", got)
	}
}

// Cancel-all answers the number cancelled once applied, only in its market
// when it names one, and the cancelled orders say why.
func TestCancelAll(t *testing.T) {
	clock := newClock()
	seq := NewMemSequencer(clock.Ms)
	r := startReplica(t, testConfig("replica1", clock), seq, NewMemStore())
	var orders []any
	for i := range 3 {
		orders = append(orders, signOrder(t, carol, orderSpec{side: "buy", qty: 1_000_000, price: uint64(1000+i) * 1_000_000, nonce: uint64(1 + i)}))
	}
	other := signOrder(t, carol, orderSpec{market: "ETH/BTC", side: "sell", qty: 1_000_000, price: 1_000_000, nonce: 4})
	orders = append(orders, other)
	var res obapi.OrdersBatchResult
	if code := r.do(t, "POST", "/orders?wait=finalized", batchBody(t, orders...), &res); code != 200 {
		t.Fatalf("POST /orders: %d", code)
	}
	var out obapi.OpResult
	if code := r.do(t, "POST", "/cancel_all?wait=finalized", signCancelAll(t, carol, "ETH/USDT", 10), &out); code != 200 {
		t.Fatalf("POST /cancel_all: %d %+v", code, out)
	}
	if out.Op != "cancel_all" || out.Status != "applied" || out.Cancelled == nil || *out.Cancelled != 3 {
		t.Fatalf("cancel_all answered %+v, want 3 cancelled", out)
	}
	var o obapi.Order
	r.do(t, "GET", "/orders/"+res.Results[0].OrderID, nil, &o)
	if o.Status != "cancelled" || !strings.Contains(o.Reason, "cancel-all") {
		t.Errorf("cancelled order reads %s %q", o.Status, o.Reason)
	}
	r.do(t, "GET", "/orders/"+orderID(t, other), nil, &o)
	if o.Status != "open" {
		t.Errorf("the ETH/BTC order is %s; a cancel-all of ETH/USDT must leave it", o.Status)
	}
	// Every market, then nothing left: 1, then 0.
	for i, want := range []uint64{1, 0} {
		out = obapi.OpResult{}
		r.do(t, "POST", "/cancel_all?wait=finalized", signCancelAll(t, carol, "", uint64(11+i)), &out)
		if out.Cancelled == nil || *out.Cancelled != want {
			t.Fatalf("cancel_all of every market #%d: %+v, want %d", i, out, want)
		}
	}
	var bs obapi.Balances
	r.do(t, "GET", "/balances?address="+addr(carol).Hex(), nil, &bs)
	for _, b := range bs.Balances {
		if b.Reserved != "0" {
			t.Errorf("%s still reserved after cancel-all: %+v", b.Token, b)
		}
	}
}

// Orders are named by (trader, nonce) while pending and once applied; a
// trader's history is newest first, filtered and paged; GET /trades
// filters by trader.
func TestByNonceHistoryAndTrades(t *testing.T) {
	clock := newClock()
	seq := NewMemSequencer(clock.Ms)
	r := startReplica(t, testConfig("replica1", clock), seq, NewMemStore())
	seq.Hold()
	first := signOrder(t, alice, orderSpec{side: "buy", qty: 1_000_000, price: 1000_000_000, nonce: 7})
	var acc obapi.OrderAccepted
	if code := r.do(t, "POST", "/order", first, &acc); code != 200 {
		t.Fatalf("POST /order: %d", code)
	}
	path := fmt.Sprintf("/orders/by-nonce?trader=%s&nonce=7", addr(alice).Hex())
	var o obapi.Order
	if code := r.do(t, "GET", path, nil, &o); code != 200 || o.Status != "pending" || o.OrderID != acc.OrderID {
		t.Fatalf("pending by nonce: %d %+v", code, o)
	}
	seq.Release()
	waitFor(t, "the order to apply", 10*time.Second, func() bool {
		r.do(t, "GET", path, nil, &o)
		return o.Status == "open"
	})
	// More orders: one filled (alice buys from bob), one rejected (FOK).
	r.do(t, "POST", "/order?wait=finalized", signOrder(t, bob, orderSpec{side: "sell", qty: 1_000_000, price: 1500_000_000, nonce: 1}), nil)
	r.do(t, "POST", "/order?wait=finalized", signOrder(t, alice, orderSpec{side: "buy", qty: 1_000_000, price: 1500_000_000, nonce: 8}), nil)
	r.do(t, "POST", "/order?wait=finalized", signOrder(t, alice, orderSpec{typ: "fok", side: "buy", qty: 1_000_000, price: 1500_000_000, nonce: 9}), nil)

	history := func(q string) obapi.OrderHistory {
		t.Helper()
		var h obapi.OrderHistory
		if code := r.do(t, "GET", "/orders?trader="+addr(alice).Hex()+q, nil, &h); code != 200 {
			t.Fatalf("GET /orders%s: %d", q, code)
		}
		return h
	}
	statuses := func(h obapi.OrderHistory) string {
		var s []string
		for _, o := range h.Orders {
			s = append(s, o.Status)
		}
		return strings.Join(s, ",")
	}
	if got := statuses(history("&status=all")); got != "rejected,filled,open" {
		t.Errorf("all, newest first: %s", got)
	}
	for q, want := range map[string]string{"open": "open", "filled": "filled", "rejected": "rejected", "cancelled": ""} {
		if got := statuses(history("&status=" + q)); got != want {
			t.Errorf("status=%s: %s, want %s", q, got, want)
		}
	}
	p1 := history("&status=all&limit=2")
	if statuses(p1) != "rejected,filled" || p1.Next == "" {
		t.Fatalf("first page %s next %q", statuses(p1), p1.Next)
	}
	p2 := history("&status=all&limit=2&before=" + p1.Next)
	if statuses(p2) != "open" || p2.Next != "" || p2.Orders[0].OrderID != acc.OrderID {
		t.Fatalf("second page %s next %q", statuses(p2), p2.Next)
	}
	var ts obapi.Trades
	r.do(t, "GET", "/trades?trader="+addr(alice).Hex(), nil, &ts)
	if len(ts.Trades) != 1 || ts.Trades[0].Taker != addr(alice).Hex() {
		t.Errorf("alice's trades: %+v", ts.Trades)
	}
	r.do(t, "GET", "/trades?trader="+addr(carol).Hex(), nil, &ts)
	if len(ts.Trades) != 0 {
		t.Errorf("carol has no trade, got %+v", ts.Trades)
	}
	// A restart from the snapshot keeps names and history.
	snap, err := r.ledger.MarshalSnapshot()
	if err != nil {
		t.Fatal(err)
	}
	l2, err := RestoreLedger(r.ledger.cfg, testDomain(), snap)
	if err != nil {
		t.Fatal(err)
	}
	recs, _ := l2.orders.history(l2.records, addr(alice), historyFilters["all"], 0, 10)
	if len(recs) != 3 || hexID(recs[2].ID) != acc.OrderID || l2.orders.byNonce[nonceKey{addr(alice), 7}] != recs[2].ID {
		t.Errorf("restored history has %d orders", len(recs))
	}
}

// GET /markets: best bid and ask, last price, and the volume of trades
// within 24 h of batch time.
func TestMarkets(t *testing.T) {
	clock := newClock()
	seq := NewMemSequencer(clock.Ms)
	r := startReplica(t, testConfig("replica1", clock), seq, NewMemStore())
	var ms obapi.Markets
	if code := r.do(t, "GET", "/markets", nil, &ms); code != 200 || len(ms.Markets) != 0 {
		t.Fatalf("no market yet: %d %+v", code, ms)
	}
	post := func(k *ecdsa.PrivateKey, s orderSpec) {
		t.Helper()
		if code := r.do(t, "POST", "/order?wait=finalized", signOrder(t, k, s), nil); code != 200 {
			t.Fatalf("POST /order: %d", code)
		}
	}
	post(bob, orderSpec{side: "sell", qty: 2_000_000, price: 2000_000_000, nonce: 1})
	post(alice, orderSpec{side: "buy", qty: 1_500_000, price: 2000_000_000, nonce: 1})
	post(alice, orderSpec{side: "buy", qty: 1_000_000, price: 1900_000_000, nonce: 2})
	r.do(t, "GET", "/markets", nil, &ms)
	want := obapi.MarketInfo{Market: "ETH/USDT", BestBid: "1900", BestAsk: "2000", LastPrice: "2000",
		Volume24h: "1.5", QuoteVolume24h: "3000", Trades24h: 1, VolumeComplete: true}
	if len(ms.Markets) != 1 || ms.Markets[0] != want {
		t.Fatalf("markets %+v, want %+v", ms.Markets, want)
	}
	// A day later (by batch time) the volume is out of the window; the
	// last price stays.
	clock.Advance(25 * time.Hour)
	post(carol, orderSpec{side: "buy", qty: 1_000_000, price: 1000_000_000, nonce: 1, expiry: uint64(clock.Now().Unix()) + 600})
	r.do(t, "GET", "/markets", nil, &ms)
	want.Volume24h, want.QuoteVolume24h, want.Trades24h = "0", "0", 0
	if len(ms.Markets) != 1 || ms.Markets[0] != want {
		t.Fatalf("a day later: %+v, want %+v", ms.Markets, want)
	}
}

// Orders forged under a trader's address (their signature does not verify)
// are recorded as rejected but stay out of that trader's history and
// by-nonce names, before and after a snapshot, and evicting their records
// keeps the real history intact.
func TestForgedOrdersStayOutOfHistory(t *testing.T) {
	real := signOrder(t, alice, orderSpec{side: "buy", qty: 1_000_000, price: 1000_000_000, nonce: 1})
	var bodies [][]byte
	bodies = append(bodies, batchOf(t, real))
	for i := range 3 {
		forged := signOrder(t, bob, orderSpec{side: "buy", qty: 1_000_000, price: 1000_000_000, nonce: uint64(2 + i)})
		forged.Trader = addr(alice).Hex() // bob's signature on alice's order
		bodies = append(bodies, batchOf(t, forged))
	}
	l := applyAllWith(t, bodies, uint64(testNowSec*1000), func(c *LedgerConfig) { c.RecordsMax = 1 })
	check := func(what string, l *Ledger) {
		t.Helper()
		recs, _ := l.orders.history(l.records, addr(alice), historyFilters["all"], 0, 10)
		if len(recs) != 1 || hexID(recs[0].ID) != orderID(t, real) {
			t.Fatalf("%s: alice's history has %d orders, want only her real one", what, len(recs))
		}
		if _, ok := l.orders.byNonce[nonceKey{addr(alice), 2}]; ok {
			t.Fatalf("%s: a forged order took alice's nonce 2", what)
		}
	}
	check("live", l)
	snap, err := l.MarshalSnapshot()
	if err != nil {
		t.Fatal(err)
	}
	cfg := DefaultLedgerConfig()
	cfg.RecordsMax = 1
	back, err := RestoreLedger(cfg, testDomain(), snap)
	if err != nil {
		t.Fatal(err)
	}
	check("restored", back)
}
