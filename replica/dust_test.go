package replica

import (
	"strings"
	"testing"

	"github.com/seqbook/seqbook/client/obapi"
)

// The dust rule at the replica: an order that cannot pay one quote unit at
// its own price is refused at the door with 400 naming the problem; fills
// that would pay nothing never happen, and two replicas agree on what was
// cancelled instead.
func TestDustOrdersAndFills(t *testing.T) {
	clock := newClock()
	seq := NewMemSequencer(clock.Ms)
	r1 := startReplica(t, testConfig("replica1", clock), seq, NewMemStore())
	r2 := startReplica(t, testConfig("replica2", clock), seq, NewMemStore())

	// 1 base unit at price 1 (0.000001 USDT per ETH): pays 0.
	var e obapi.Error
	dust := signOrder(t, alice, orderSpec{side: "buy", qty: 1, price: 1, nonce: 1})
	if code := r1.do(t, "POST", "/order", dust, &e); code != 400 || !strings.Contains(e.Error, "quantity") || !strings.Contains(e.Error, "one base unit of the quote token") {
		t.Fatalf("dust order: %d %+v", code, e)
	}

	// bob sells 3.000001 ETH at 0.5 USDT; carol buys 3 ETH: bob's last
	// base unit would pay floor(1 × 500000 / 10^6) = 0 quote units, so it
	// is cancelled after the fill.
	sell := signOrder(t, bob, orderSpec{side: "sell", qty: 3_000_001, price: 500_000, nonce: 1})
	buy := signOrder(t, carol, orderSpec{side: "buy", qty: 3_000_000, price: 500_000, nonce: 1})
	// Then alice buys 1 base unit at limit 1 USDT (pays 1 unit at her
	// price) against a 0.5 ask: the fill would pay 0, so nothing trades.
	ask := signOrder(t, carol, orderSpec{side: "sell", qty: 2_000_000, price: 500_000, nonce: 2})
	tiny := signOrder(t, alice, orderSpec{side: "buy", qty: 1, price: 1_000_000, nonce: 2})
	for i, req := range []obapi.OrderRequest{sell, buy, ask, tiny} {
		var acc map[string]any
		if code := r1.do(t, "POST", "/order?wait=finalized", req, &acc); code != 200 {
			t.Fatalf("order %d: %d %v", i, code, acc)
		}
		clock.Advance(1e9)
	}
	n := uint64(seq.Len())
	r1.waitApplied(t, n)
	r2.waitApplied(t, n)
	if s1, s2 := r1.state(t), r2.state(t); s1.StateDigest != s2.StateDigest {
		t.Fatalf("replicas differ:\n%+v\n%+v", s1, s2)
	}
	for _, r := range []*testReplica{r1, r2} {
		var maker, taker obapi.Order
		r.do(t, "GET", "/orders/"+orderID(t, sell), nil, &maker)
		if maker.Status != "cancelled" || maker.Filled != "3" || !strings.Contains(maker.Reason, "too small to pay one quote unit") {
			t.Fatalf("dust maker: %+v", maker)
		}
		r.do(t, "GET", "/orders/"+orderID(t, tiny), nil, &taker)
		if taker.Status != "cancelled" || taker.Filled != "0" || len(taker.Fills) != 0 || !strings.Contains(taker.Reason, "too small to pay one quote unit") {
			t.Fatalf("dust taker: %+v", taker)
		}
		// bob got his unsold base unit back; alice paid nothing.
		if b := r.balance(t, addr(bob), "ETH"); b != "47" {
			t.Fatalf("bob ETH %s", b)
		}
		if b := r.balance(t, addr(alice), "USDT"); b != "100000" {
			t.Fatalf("alice USDT %s", b)
		}
		var depth obapi.Depth
		r.do(t, "GET", "/depth?market=ETH/USDT", nil, &depth)
		if len(depth.Bids) != 0 || len(depth.Asks) != 1 || depth.Asks[0].Quantity != "2" {
			t.Fatalf("depth: %+v", depth)
		}
	}
}
