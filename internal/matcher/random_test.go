package matcher_test

import (
	"cmp"
	"flag"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"

	"github.com/seqbook/seqbook/internal/matcher"
)

// Flags to dig deeper than the default run (kept under ~2 s):
//
//	go test ./internal/matcher -run TestAgainstReference -matcher.seeds=2000
//	go test ./internal/matcher -run TestAgainstReference -matcher.seed=12345   # replay one failure
var (
	flagSeeds = flag.Int("matcher.seeds", 40, "number of random streams checked against the reference")
	flagOps   = flag.Int("matcher.ops", 1500, "operations per random stream")
	flagSeed  = flag.Uint64("matcher.seed", 0, "run only this seed (as printed by a failure)")
)

// TestAgainstReference runs seeded random operation streams through the fast
// engine and the naive reference and requires identical results, errors,
// balances and books after every operation, conservation after every
// operation, unchanged digests on rejections, and identical behaviour after a
// snapshot round trip in the middle of a stream.
func TestAgainstReference(t *testing.T) {
	seen := map[string]int{}
	if *flagSeed != 0 {
		runStream(t, *flagSeed, *flagOps, seen)
		return
	}
	for s := range *flagSeeds {
		seed := uint64(s + 1)
		if !runStream(t, seed, *flagOps, seen) {
			return
		}
	}
	// The streams must actually exercise every rule, or agreeing with the
	// reference proves little.
	for _, what := range []string{
		"trade", "self-trade cancel", "rested", "partially filled and rested", "market remainder cancelled",
		"price improvement", "cancel", "withdraw",
		matcher.ErrInsufficientBalance.Error(), matcher.ErrDuplicateOrderID.Error(),
		matcher.ErrTooManyOpenOrders.Error(), matcher.ErrZeroQuoteAmount.Error(),
		matcher.ErrUnknownOrder.Error(), matcher.ErrNotOwner.Error(), matcher.ErrInvalidMarket.Error(),
		matcher.ErrInvalidOrderType.Error(), matcher.ErrWouldTakeLiquidity.Error(), matcher.ErrCannotFillInFull.Error(),
		"dust maker cancelled", "dust remainder cancelled", "dust remainder not rested",
		"cancel all", "ioc remainder cancelled", "fok filled", "fok filled past own orders", "post_only rested",
	} {
		if seen[what] == 0 {
			t.Errorf("the random streams never produced %q", what)
		}
	}
	t.Logf("outcomes: %v", seen)
}

// genStream makes one random stream's operations. Prices sit on a few ticks
// around 100 so orders cross often, with some odd prices and tiny quantities
// to exercise the rounding rules, a regime of a few base units below one
// quote token for the dust rule, and a few bad operations of every kind.
type gen struct {
	rng      *rand.Rand
	accounts []string
	tokens   []string
	markets  []string
	nextID   int
	ids      []string // every id ever used, for cancels and duplicates
	// open is the reference's open orders, refreshed by the test before
	// each operation, so cancels can aim at real orders.
	open []matcher.OrderInfo
}

type op struct {
	kind    string // deposit withdraw order cancel
	account string
	token   string
	amount  uint64
	order   matcher.Order
	id      string
}

func (o op) String() string {
	switch o.kind {
	case "order":
		return fmt.Sprintf("order %+v", o.order)
	case "cancel":
		return fmt.Sprintf("cancel %s by %s", o.id, o.account)
	case "cancel_all":
		return fmt.Sprintf("cancel all of %s in %q", o.account, o.token)
	}
	return fmt.Sprintf("%s %s %s %d", o.kind, o.account, o.token, o.amount)
}

func (g *gen) pick(xs []string) string { return xs[g.rng.IntN(len(xs))] }

func (g *gen) next() op {
	r := g.rng
	switch n := r.IntN(100); {
	case n < 15:
		o := op{kind: "deposit", account: g.pick(g.accounts), token: g.pick(g.tokens), amount: uint64(1+r.IntN(2000)) * 1_000_000 / uint64(1+r.IntN(7))}
		if r.IntN(50) == 0 {
			o.amount = 0
		}
		if r.IntN(80) == 0 {
			o.account = ""
		}
		return o
	case n < 20:
		return op{kind: "withdraw", account: g.pick(g.accounts), token: g.pick(g.tokens), amount: uint64(r.IntN(300_000_000))}
	case n < 22:
		o := op{kind: "cancel_all", account: g.pick(g.accounts)}
		if r.IntN(3) > 0 {
			o.token = g.pick(g.markets) // the market, in the token field
		}
		return o
	case n < 37:
		o := op{kind: "cancel", account: g.pick(g.accounts), id: "nope"}
		switch k := r.IntN(10); {
		case k < 6 && len(g.open) > 0:
			// An open order, mostly by its owner.
			x := g.open[r.IntN(len(g.open))]
			o.id = x.ID
			if r.IntN(5) > 0 {
				o.account = x.Account
			}
		case k < 9 && len(g.ids) > 0:
			o.id = g.ids[len(g.ids)-1-r.IntN(min(len(g.ids), 30))]
		}
		return o
	}
	o := matcher.Order{
		Account: g.pick(g.accounts), Market: g.pick(g.markets),
		Side: matcher.Buy, Type: matcher.Limit,
	}
	if r.IntN(2) == 0 {
		o.Side = matcher.Sell
	}
	switch r.IntN(10) {
	case 0, 1:
		o.Type = matcher.Market
	case 2:
		o.Type = matcher.IOC
	case 3:
		o.Type = matcher.FOK
	case 4:
		o.Type = matcher.PostOnly
	}
	switch k := r.IntN(20); {
	case k == 0:
		o.Quantity = uint64(1 + r.IntN(100)) // dust-sized
	case k == 1:
		o.Quantity = 0
	default:
		o.Quantity = uint64(1+r.IntN(5))*1_000_000 + uint64(r.IntN(4))*250_000 + uint64(r.IntN(3))*7
	}
	switch k := r.IntN(20); {
	case k == 0:
		o.Price = uint64(1 + r.IntN(3_000_000)) // odd prices: rounding and dust
	case k == 1:
		o.Price = 0
	default:
		o.Price = 99_500_000 + uint64(r.IntN(5))*250_000 // 99.50 .. 100.50
	}
	if r.IntN(8) == 0 {
		// The dust regime: a few base units at prices below one quote
		// token, where fills and remainders often pay zero quote units.
		o.Quantity, o.Price = uint64(2+r.IntN(20)), 300_000+uint64(r.IntN(5))*100_000
	}
	g.nextID++
	o.ID = fmt.Sprintf("o%d", g.nextID)
	switch k := r.IntN(40); {
	case k == 0 && len(g.ids) > 0:
		o.ID = g.ids[len(g.ids)-1-r.IntN(min(len(g.ids), 10))] // duplicate or reuse
	case k == 1:
		o.Market = "ETH/ETH"
	case k == 2:
		o.Side = 0
	case k == 3:
		o.Quantity, o.Price = uint64(1+r.IntN(1000)), uint64(1+r.IntN(1000)) // dust: zero quote amount
	case k == 4:
		o.Type = matcher.OrderType(6 + r.IntN(3)) // not an order type
	}
	g.ids = append(g.ids, o.ID)
	return op{kind: "order", order: o}
}

func newGen(seed uint64) *gen {
	return &gen{
		rng:      rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		accounts: []string{"alice", "bob", "carol", "dave"},
		tokens:   []string{"ETH", "USDT", "BTC"},
		markets:  []string{"ETH/USDT", "BTC/USDT", "ETH/BTC"},
	}
}

// testOpenMax is small so the random streams hit the open-order bound.
const testOpenMax = 8

func runStream(t *testing.T, seed uint64, ops int, seen map[string]int) bool {
	t.Helper()
	g := newGen(seed)
	eng := matcher.New(matcher.Config{OpenOrdersPerAccountMax: testOpenMax})
	ref := newRef(testOpenMax)
	supply := map[string]uint64{} // deposits minus withdrawals, kept by the test
	var res matcher.PlaceResult
	fail := func(i int, o op, format string, args ...any) bool {
		t.Helper()
		t.Errorf("SEED=%d op %d (%v): %s\n  rerun: go test ./internal/matcher -run TestAgainstReference -matcher.seed=%d -matcher.ops=%d",
			seed, i, o, fmt.Sprintf(format, args...), seed, ops)
		return false
	}
	for i := range ops {
		g.open = ref.OpenOrders()
		o := g.next()
		before := eng.Digest()
		var errE, errR error
		switch o.kind {
		case "deposit":
			errE, errR = eng.Deposit(o.account, o.token, o.amount), ref.Deposit(o.account, o.token, o.amount)
			if errE == nil {
				supply[o.token] += o.amount
			}
		case "withdraw":
			errE, errR = eng.Withdraw(o.account, o.token, o.amount), ref.Withdraw(o.account, o.token, o.amount)
			if errE == nil {
				supply[o.token] -= o.amount
			}
		case "cancel":
			var ie, ir matcher.OrderInfo
			ie, errE = eng.Cancel(o.account, o.id)
			ir, errR = ref.Cancel(o.account, o.id)
			if !reflect.DeepEqual(ie, ir) {
				return fail(i, o, "cancel result\n fast %+v\n ref  %+v", ie, ir)
			}
		case "cancel_all":
			ce, cr := eng.CancelAll(o.account, o.token), ref.CancelAll(o.account, o.token)
			if !slices.Equal(ce, cr) {
				return fail(i, o, "cancel all\n fast %+v\n ref  %+v", ce, cr)
			}
			seen["cancel all"] += len(ce)
			if len(ce) == 0 && eng.Digest() != before {
				return fail(i, o, "cancel all of nothing changed the state")
			}
		case "order":
			errE = eng.PlaceInto(o.order, &res)
			var rr matcher.PlaceResult
			rr, errR = ref.Place(o.order)
			if errE == nil && !samePlace(res, rr) {
				return fail(i, o, "place result\n fast %+v\n ref  %+v", res, rr)
			}
		}
		if errE != errR {
			return fail(i, o, "error: fast %v, reference %v", errE, errR)
		}
		if errE != nil {
			seen[errE.Error()]++
		} else {
			seen[o.kind]++
			if o.kind == "order" {
				countOutcomes(seen, o.order, &res)
			}
		}
		if errE != nil && eng.Digest() != before {
			return fail(i, o, "rejected operation (%v) changed the state", errE)
		}
		if errE == nil && eng.Digest() == before && o.kind != "cancel_all" {
			return fail(i, o, "accepted operation left the digest unchanged")
		}
		if err := eng.CheckInvariants(); err != nil {
			return fail(i, o, "invariant: %v", err)
		}
		for _, tok := range g.tokens {
			if eng.Supply(tok) != supply[tok] {
				return fail(i, o, "conservation: %s supply %d, deposits-withdrawals %d", tok, eng.Supply(tok), supply[tok])
			}
		}
		if be, br := eng.Balances(), ref.Balances(); !slices.Equal(be, br) {
			return fail(i, o, "balances\n fast %+v\n ref  %+v", be, br)
		}
		if oe, or := eng.OpenOrders(), ref.OpenOrders(); !slices.Equal(oe, or) {
			return fail(i, o, "open orders\n fast %+v\n ref  %+v", oe, or)
		}
		if msg := compareReads(eng, ref, g.accounts, g.markets); msg != "" {
			return fail(i, o, "%s", msg)
		}
		if i%250 == 249 {
			// Snapshot round trip mid-stream: the restored engine must
			// have the same digest and go on exactly like the reference.
			snap, _ := eng.MarshalBinary()
			restored := matcher.New(eng.Config())
			if err := restored.UnmarshalBinary(snap); err != nil {
				return fail(i, o, "restore: %v", err)
			}
			if restored.Digest() != eng.Digest() {
				return fail(i, o, "restored digest differs")
			}
			if err := restored.CheckInvariants(); err != nil {
				return fail(i, o, "restored invariant: %v", err)
			}
			eng = restored
		}
	}
	return true
}

// samePlace compares results treating nil and empty slices alike.
func samePlace(a, b matcher.PlaceResult) bool {
	norm := func(r matcher.PlaceResult) matcher.PlaceResult {
		if len(r.Trades) == 0 {
			r.Trades = nil
		}
		if len(r.SelfTradeCancelled) == 0 {
			r.SelfTradeCancelled = nil
		}
		if len(r.DustCancelled) == 0 {
			r.DustCancelled = nil
		}
		return r
	}
	return reflect.DeepEqual(norm(a), norm(b))
}

func countOutcomes(seen map[string]int, o matcher.Order, res *matcher.PlaceResult) {
	seen["trade"] += len(res.Trades)
	seen["self-trade cancel"] += len(res.SelfTradeCancelled)
	seen["dust maker cancelled"] += len(res.DustCancelled)
	if res.RemainderDust {
		seen["dust remainder cancelled"]++
		if o.Type.Rests() {
			seen["dust remainder not rested"]++
		}
	}
	switch {
	case res.Status == matcher.StatusOpen:
		seen["rested"]++
	case res.Status == matcher.StatusPartiallyFilled:
		seen["partially filled and rested"]++
	case res.Status == matcher.StatusCancelled && o.Type == matcher.IOC:
		seen["ioc remainder cancelled"]++
	case res.Status == matcher.StatusCancelled:
		seen["market remainder cancelled"]++
	}
	switch o.Type {
	case matcher.FOK:
		seen["fok filled"]++
		if len(res.SelfTradeCancelled) > 0 {
			seen["fok filled past own orders"]++
		}
	case matcher.PostOnly:
		seen["post_only rested"]++
	}
	for _, tr := range res.Trades {
		if o.Side == matcher.Buy && tr.Price < o.Price {
			seen["price improvement"]++
		}
	}
}

// compareReads checks the per-account lists, lookups by id and depth against
// what the reference's open orders imply.
func compareReads(eng *matcher.Engine, ref *refEngine, accounts, markets []string) string {
	open := ref.OpenOrders()
	for _, a := range accounts {
		var want []matcher.OrderInfo
		for _, x := range open {
			if x.Account == a {
				want = append(want, x)
			}
		}
		slices.SortFunc(want, func(x, y matcher.OrderInfo) int { return cmp.Compare(x.Seq, y.Seq) })
		if got := eng.AccountOrders(a); !slices.Equal(got, want) {
			return fmt.Sprintf("AccountOrders(%s)\n fast %+v\n ref  %+v", a, got, want)
		}
	}
	for _, x := range open {
		if got, ok := eng.Order(x.ID); !ok || got != x {
			return fmt.Sprintf("Order(%s) = %+v, %v; want %+v", x.ID, got, ok, x)
		}
	}
	for _, m := range markets {
		var bids, asks []matcher.Level
		for _, x := range open { // book order: best first
			if x.Market != m {
				continue
			}
			lv := &asks
			if x.Side == matcher.Buy {
				lv = &bids
			}
			if n := len(*lv); n > 0 && (*lv)[n-1].Price == x.Price {
				(*lv)[n-1].Quantity += x.Remaining
				(*lv)[n-1].Orders++
			} else {
				*lv = append(*lv, matcher.Level{Price: x.Price, Quantity: x.Remaining, Orders: 1})
			}
		}
		gb, ga := eng.Depth(m, 0)
		if !slices.Equal(gb, bids) || !slices.Equal(ga, asks) {
			return fmt.Sprintf("Depth(%s)\n fast %v %v\n ref  %v %v", m, gb, ga, bids, asks)
		}
	}
	return ""
}
