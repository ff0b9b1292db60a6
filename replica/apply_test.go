package replica

import (
	"reflect"
	"strings"
	"testing"

	"github.com/ethereum/go-ethereum/common"

	"github.com/seqbook/seqbook/client/bls"
	"github.com/seqbook/seqbook/client/eip712"
	"github.com/seqbook/seqbook/client/obapi"
)

// Two replicas following the same sequencer, taking orders through
// different HTTP front doors, end in the same state.
func TestTwoReplicasComputeTheSameState(t *testing.T) {
	clock := newClock()
	seq := NewMemSequencer(clock.Ms)
	r1 := startReplica(t, testConfig("replica1", clock), seq, NewMemStore())
	r2 := startReplica(t, testConfig("replica2", clock), seq, NewMemStore())

	buy := signOrder(t, alice, orderSpec{side: "buy", qty: 2_000_000, price: 2000_000_000, nonce: 1})
	sell := signOrder(t, bob, orderSpec{side: "sell", qty: 1_500_000, price: 1900_000_000, nonce: 1})
	rest := signOrder(t, carol, orderSpec{side: "sell", qty: 1_000_000, price: 2500_000_000, nonce: 1})
	steps := []struct {
		r    *testReplica
		path string
		body any
	}{
		{r1, "/order", buy},
		{r2, "/order", sell},
		{r1, "/order", rest},
		{r2, "/cancel", signCancel(t, carol, orderID(t, rest), 2, 0)},
		{r1, "/withdraw", signWithdraw(t, bob, "USDT", 1000_000_000, addr(carol), 2, 0)},
		{r2, "/deposit", signDeposit(t, bridge, addr(alice), "ETH", 3_000_000, 1, 0)},
		{r1, "/order", signLegacy(t, alice, "sell", "1.5", "2100")},
	}
	for i, s := range steps {
		var acc map[string]any
		if code := s.r.do(t, "POST", s.path+"?wait=finalized", s.body, &acc); code != 200 {
			t.Fatalf("step %d %s: %d %v", i, s.path, code, acc)
		}
		clock.Advance(1e9)
	}
	n := uint64(seq.Len())
	r1.waitApplied(t, n)
	r2.waitApplied(t, n)

	s1, s2 := r1.state(t), r2.state(t)
	if s1.StateDigest != s2.StateDigest || s1.ChainingHash != s2.ChainingHash || s1.AppliedIndex != n {
		t.Fatalf("replicas differ:\n%+v\n%+v", s1, s2)
	}
	var t1, t2 obapi.Trades
	r1.do(t, "GET", "/trades", nil, &t1)
	r2.do(t, "GET", "/trades", nil, &t2)
	if len(t1.Trades) != 1 || !reflect.DeepEqual(t1.Trades, t2.Trades) {
		t.Fatalf("trades differ or missing: %+v vs %+v", t1.Trades, t2.Trades)
	}
	tr := t1.Trades[0]
	if tr.Price != "2000" || tr.Quantity != "1.5" || tr.Quote != "3000" || tr.TakerOrder != orderID(t, sell) {
		t.Fatalf("trade: %+v", tr)
	}
	// alice: 100000 - 3000 USDT, +1.5 ETH from the trade, +3 ETH deposit,
	// and her legacy sell of 1.5 ETH rests (reserved, still counted).
	for _, c := range []struct {
		a        common.Address
		tok, bal string
	}{
		{addr(alice), "USDT", "97000"}, {addr(alice), "ETH", "4.5"},
		{addr(bob), "USDT", "2000"}, {addr(bob), "ETH", "48.5"},
		{addr(carol), "USDT", "100000"} /* the withdrawal to carol pays out off the book */, {addr(carol), "ETH", "50"},
	} {
		if b1, b2 := r1.balance(t, c.a, c.tok), r2.balance(t, c.a, c.tok); b1 != c.bal || b2 != c.bal {
			t.Errorf("%s %s: %s / %s, want %s", c.a.Hex()[:8], c.tok, b1, b2, c.bal)
		}
	}
	// alice's buy is partially filled and rests.
	var o obapi.Order
	r2.do(t, "GET", "/orders/"+orderID(t, buy), nil, &o)
	if o.Status != "partially_filled" || o.Filled != "1.5" || len(o.Fills) != 1 || o.Fills[0].Role != "maker" {
		t.Fatalf("maker order: %+v", o)
	}
	var open obapi.Orders
	r1.do(t, "GET", "/orders?trader="+addr(alice).Hex(), nil, &open)
	if len(open.Orders) != 2 {
		t.Fatalf("alice's open orders: %+v", open.Orders)
	}
	var depth obapi.Depth
	r1.do(t, "GET", "/depth?market=ETH/USDT", nil, &depth)
	if len(depth.Bids) != 1 || depth.Bids[0].Quantity != "0.5" || len(depth.Asks) != 1 || depth.Asks[0].Price != "2100" {
		t.Fatalf("depth: %+v", depth)
	}
}

// Whatever lands in a batch, every replica skips the same things for the
// same reasons and keeps going.
func TestInvalidOperationsInsideBatchesAreRejectedIdentically(t *testing.T) {
	clock := newClock()
	seq := NewMemSequencer(clock.Ms)
	r1 := startReplica(t, testConfig("replica1", clock), seq, NewMemStore())
	r2 := startReplica(t, testConfig("replica2", clock), seq, NewMemStore())
	ts := clock.Ms()

	good := signOrder(t, alice, orderSpec{side: "buy", qty: 1_000_000, price: 2000_000_000, nonce: 1})
	forged := good
	forged.Signature = signOrder(t, bob, orderSpec{side: "buy", qty: 1_000_000, price: 2000_000_000, nonce: 1}).Signature
	expired := signOrder(t, alice, orderSpec{side: "buy", qty: 1_000_000, price: 2000_000_000, nonce: 2, expiry: testNowSec - 1})
	farAhead := signOrder(t, alice, orderSpec{side: "buy", qty: 1_000_000, price: 2000_000_000, nonce: 3, expiry: testNowSec + 3601})
	broke := signOrder(t, bob, orderSpec{side: "buy", qty: 1_000_000, price: 2000_000_000, nonce: 4}) // bob has no USDT
	notMine := signCancel(t, bob, orderID(t, good), 5, 0)
	overdraw := signWithdraw(t, carol, "ETH", 51_000_000, addr(carol), 6, 0)
	fakeDeposit := signDeposit(t, alice, addr(alice), "USDT", 1, 7, 0)
	leg := signLegacy(t, bob, "sell", "1", "3000") // does not cross good

	bodies := [][]byte{
		[]byte("this is not JSON"),
		[]byte(`{"op":"order"}`),
		[]byte(`[1, "x", {"op":"nope"}, {"op":"order"}, {"op":"order","trader":"0x0"}]`),
		// A forged copy first: the real one applies after it.
		batchOf(t, forged, good, good, expired, farAhead, broke, notMine, overdraw, fakeDeposit, leg, leg),
		// A forged copy after the real one does not hide it.
		batchOf(t, forged),
	}
	for _, b := range bodies {
		seq.Append(ts, b)
	}
	r1.waitApplied(t, uint64(len(bodies)))
	r2.waitApplied(t, uint64(len(bodies)))
	s1, s2 := r1.state(t), r2.state(t)
	if s1.StateDigest != s2.StateDigest {
		t.Fatalf("digests differ: %s vs %s", s1.StateDigest, s2.StateDigest)
	}

	checkOp := func(req any, status, reasonHas string) {
		t.Helper()
		op, err := DecodeOp(testDomain(), wireOf(t, req))
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range []*testReplica{r1, r2} {
			var res obapi.OpResult
			if code := r.do(t, "GET", "/ops/"+op.IDHex(), nil, &res); code != 200 {
				t.Fatalf("%s GET /ops/%s: %d", r.cfg.ID, op.IDHex(), code)
			}
			if res.Status != status || !strings.Contains(res.Reason, reasonHas) {
				t.Errorf("%s %s: %s %q, want %s %q", r.cfg.ID, op.Kind, res.Status, res.Reason, status, reasonHas)
			}
		}
	}
	checkOp(good, "open", "")
	checkOp(expired, "rejected", "expired")
	checkOp(farAhead, "rejected", "more than 3600 s")
	checkOp(broke, "rejected", "insufficient balance")
	checkOp(notMine, "rejected", "not the order's owner")
	checkOp(overdraw, "rejected", "insufficient balance")
	checkOp(fakeDeposit, "rejected", "not the bridge")
	checkOp(leg, "open", "") // the first copy applied; the second is a replay that changes nothing

	// The rejected order is visible through GET /orders/{id}.
	var o obapi.Order
	if code := r1.do(t, "GET", "/orders/"+orderID(t, expired), nil, &o); code != 200 || o.Status != "rejected" || !strings.Contains(o.Reason, "expired") {
		t.Fatalf("rejected order: %d %+v", code, o)
	}
	// The loop kept going: a valid order after all that still applies.
	next := signOrder(t, carol, orderSpec{side: "sell", qty: 1_000_000, price: 2000_000_000, nonce: 1})
	o = obapi.Order{}
	if code := r2.do(t, "POST", "/order?wait=finalized", next, &o); code != 200 || o.Status != "filled" {
		t.Fatalf("order after garbage: %d %+v", code, o)
	}
	r1.waitApplied(t, uint64(seq.Len()))
	if a, b := r1.state(t).StateDigest, r2.state(t).StateDigest; a != b {
		t.Fatalf("digests differ after recovery: %s vs %s", a, b)
	}
	if m := r1.Metrics(); m.OpsRejected < 10 {
		t.Fatalf("rejections not counted: %+v", m)
	}
}

// An operation that a node took but that is not applied within the wait
// has an outcome nobody knows yet (it may still be rejected when
// applied): the answer is 202 pending with its id, for orders, other
// operations and every order of a batch, and the operations apply once
// finality resumes.
func TestWaitFinalizedTimesOutPending(t *testing.T) {
	clock := newClock()
	seq := NewMemSequencer(clock.Ms)
	r := startReplica(t, testConfig("replica1", clock), seq, NewMemStore())
	seq.Hold()
	o := signOrder(t, alice, orderSpec{side: "buy", qty: 1_000_000, price: 2000_000_000, nonce: 1})
	id := orderID(t, o)
	var acc obapi.OrderAccepted
	if code := r.do(t, "POST", "/order?wait=finalized&timeout=50ms", o, &acc); code != 202 || acc.Status != obapi.StatusPending ||
		acc.OrderID != id || !strings.Contains(acc.Message, "GET /orders/"+id) {
		t.Fatalf("held finality: %d %+v; want 202 pending with the order id", code, acc)
	}
	w := signWithdraw(t, bob, "ETH", 1_000_000, addr(bob), 2, 0)
	var opAcc obapi.OpAccepted
	if code := r.do(t, "POST", "/withdraw?wait=finalized&timeout=50ms", w, &opAcc); code != 202 || opAcc.Status != obapi.StatusPending ||
		opAcc.ID == "" || !strings.Contains(opAcc.Message, "GET /ops/"+opAcc.ID) {
		t.Fatalf("held finality, withdraw: %d %+v; want 202 pending with the id", code, opAcc)
	}
	o2 := signOrder(t, alice, orderSpec{side: "buy", qty: 1_000_000, price: 1900_000_000, nonce: 3})
	var batch obapi.OrdersBatchResult
	if code := r.do(t, "POST", "/orders?wait=finalized&timeout=50ms", batchBody(t, o2), &batch); code != 200 || len(batch.Results) != 1 ||
		batch.Results[0].Status != obapi.StatusPending || batch.Results[0].OrderID != orderID(t, o2) || batch.Results[0].Code != 0 ||
		!strings.Contains(batch.Results[0].Message, "GET /orders/") {
		t.Fatalf("held finality, batch: %d %+v; want the order pending", code, batch)
	}
	// They were taken all the same and apply once finality resumes.
	seq.Release()
	r.waitApplied(t, 1)
	for _, id := range []string{id, orderID(t, o2)} {
		var ord obapi.Order
		if code := r.do(t, "GET", "/orders/"+id, nil, &ord); code != 200 || ord.Status != "open" {
			t.Fatalf("after release: %d %+v", code, ord)
		}
	}
	var res obapi.OpResult
	if code := r.do(t, "GET", "/ops/"+opAcc.ID, nil, &res); code != 200 || res.Status != "applied" {
		t.Fatalf("withdraw after release: %d %+v", code, res)
	}
}

func TestSignedBalanceAndWithdrawal(t *testing.T) {
	clock := newClock()
	seq := NewMemSequencer(clock.Ms)
	cfg := testConfig("replica1", clock)
	r := startReplica(t, cfg, seq, NewMemStore())
	pk := cfg.Key.PublicKey()

	w := signWithdraw(t, carol, "ETH", 2_500_000, addr(bob), 1, 0)
	var res obapi.OpResult
	if code := r.do(t, "POST", "/withdraw?wait=finalized", w, &res); code != 200 || res.Status != "applied" {
		t.Fatalf("withdraw: %d %+v", code, res)
	}
	var wd obapi.Withdrawal
	if code := r.do(t, "GET", "/withdrawals/"+res.ID, nil, &wd); code != 200 {
		t.Fatalf("GET /withdrawals: %d", code)
	}
	if wd.AmountUnits != "2500000" || wd.Amount != "2.5" || wd.Recipient != addr(bob).Hex() || wd.Index != 1 || wd.Replica != "replica1" {
		t.Fatalf("withdrawal: %+v", wd)
	}
	id := common.HexToHash(wd.ID)
	msg := &eip712.Withdrawal{App: "orderbook", ID: id, Trader: addr(carol), Token: "ETH", Amount: 2_500_000, Recipient: addr(bob), Index: 1}
	sig, err := bls.SignatureFromHex(wd.Signature)
	if err != nil || !sig.Verify(pk, testDomain().EIP712.Digest(msg)) {
		t.Fatalf("withdrawal signature does not verify: %v", err)
	}

	var b obapi.Balance
	if code := r.do(t, "GET", "/balance?address="+strings.ToLower(addr(carol).Hex())+"&token=ETH", nil, &b); code != 200 {
		t.Fatalf("balance: %d", code)
	}
	if b.Balance != "47.5" || b.BalanceUnits != "47500000" || b.Index != 1 || b.Address != addr(carol).Hex() {
		t.Fatalf("balance: %+v", b)
	}
	bsig, err := bls.SignatureFromHex(b.Signature)
	bal := &eip712.Balance{App: "orderbook", Account: addr(carol), Token: "ETH", Balance: 47_500_000, Index: 1}
	if err != nil || !bsig.Verify(pk, testDomain().EIP712.Digest(bal)) {
		t.Fatalf("balance signature does not verify: %v", err)
	}
	// As of index 0 (genesis).
	if code := r.do(t, "GET", "/balance?address="+addr(carol).Hex()+"&token=ETH&index=0", nil, &b); code != 200 || b.Balance != "50" || b.Index != 0 {
		t.Fatalf("balance at 0: %d %+v", code, b)
	}
	// Ahead of the applied index: waits briefly, then 409.
	var e obapi.Error
	if code := r.do(t, "GET", "/balance?address="+addr(carol).Hex()+"&token=ETH&index=5", nil, &e); code != 409 || !strings.Contains(e.Error, "not applied yet") {
		t.Fatalf("ahead: %d %q", code, e.Error)
	}
	if code := r.do(t, "GET", "/balance?address=0x12&token=ETH", nil, &e); code != 400 || !strings.Contains(e.Error, "address") {
		t.Fatalf("bad address: %d %q", code, e.Error)
	}
	if code := r.do(t, "GET", "/withdrawals/0x"+strings.Repeat("00", 32), nil, &e); code != 404 {
		t.Fatalf("unknown withdrawal: %d", code)
	}
	var desc eip712.Description
	if code := r.do(t, "GET", "/eip712", nil, &desc); code != 200 || desc.Domain.ChainID != 31337 || len(desc.Types["Order"]) != 8 {
		t.Fatalf("eip712: %d %+v", code, desc)
	}
}

// The replica command asks for the handler on every request, so Handler
// must hand back the router it built, not build one per call.
func TestHandlerIsBuiltOnce(t *testing.T) {
	clock := newClock()
	r, err := New(testConfig("replica1", clock), NewMemSequencer(clock.Ms), NewMemStore())
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if a, b := r.Handler(), r.Handler(); a != b {
		t.Fatalf("Handler built a new router on the second call (%p, %p)", a, b)
	}
}
