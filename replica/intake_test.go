package replica

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/seqbook/seqbook/client/obapi"
)

// mutate returns the JSON of req with one field replaced (or removed when
// value is nil).
func mutate(t *testing.T, req any, field string, value any) string {
	t.Helper()
	b, err := json.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	if value == nil {
		delete(m, field)
	} else {
		m[field] = value
	}
	out, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

func TestIntakeRejectsWithTheRightStatusAndChangesNothing(t *testing.T) {
	clock := newClock()
	seq := NewMemSequencer(clock.Ms)
	r := startReplica(t, testConfig("replica1", clock), seq, NewMemStore())

	good := signOrder(t, alice, orderSpec{side: "buy", qty: 1_000_000, price: 2000_000_000, nonce: 1})
	otherSigned := signOrder(t, bob, orderSpec{side: "buy", qty: 1_000_000, price: 2000_000_000, nonce: 1})
	forged := good
	forged.Signature = otherSigned.Signature // bob's signature on alice's order
	tooMuch := signOrder(t, alice, orderSpec{side: "buy", qty: 1000_000_000, price: 2000_000_000, nonce: 2})
	sellNothing := signOrder(t, alice, orderSpec{side: "sell", qty: 1_000_000, price: 2000_000_000, nonce: 3})
	expired := signOrder(t, alice, orderSpec{side: "buy", qty: 1_000_000, price: 2000_000_000, nonce: 4, expiry: testNowSec - 1})
	farAhead := signOrder(t, alice, orderSpec{side: "buy", qty: 1_000_000, price: 2000_000_000, nonce: 5, expiry: testNowSec + 3601})
	dust := signOrder(t, alice, orderSpec{side: "buy", qty: 1, price: 1, nonce: 6})
	legacyGood := signLegacy(t, bob, "sell", "1", "2000")
	legacyForged := legacyGood
	legacyForged.Price = "2001"
	unknownCancel := signCancel(t, alice, "0x"+strings.Repeat("ab", 32), 7, 0)
	bigWithdraw := signWithdraw(t, alice, "USDT", 1_000_000_000_000, addr(alice), 8, 0)
	fakeDeposit := signDeposit(t, alice, addr(alice), "USDT", 1_000_000, 9, 0)

	cases := []struct {
		name, path string
		body       string
		status     int
		errHas     string
	}{
		{"empty body", "/order", "", 400, "empty body"},
		{"not JSON", "/order", "{", 400, "invalid JSON"},
		{"array", "/order", "[]", 400, "object"},
		{"unknown field", "/order", mutate(t, good, "leverage", "10"), 400, "leverage"},
		{"missing trader", "/order", mutate(t, good, "trader", nil), 400, "trader"},
		{"bad trader", "/order", mutate(t, good, "trader", "0x1234"), 400, "trader"},
		{"missing market", "/order", mutate(t, good, "market", nil), 400, "market"},
		{"bad market", "/order", mutate(t, good, "market", "ETHUSDT"), 400, "market"},
		{"same tokens", "/order", mutate(t, good, "market", "ETH/ETH"), 400, "market"},
		{"bad side", "/order", mutate(t, good, "side", "hold"), 400, "side"},
		{"missing side", "/order", mutate(t, good, "side", nil), 400, "side"},
		{"bad order type", "/order", mutate(t, good, "orderType", "stop"), 400, "orderType"},
		{"missing quantity", "/order", mutate(t, good, "quantity", nil), 400, "quantity"},
		{"fractional units", "/order", mutate(t, good, "quantity", "1.5"), 400, "quantity"},
		{"zero quantity", "/order", mutate(t, good, "quantity", 0), 400, "quantity"},
		{"negative quantity", "/order", mutate(t, good, "quantity", -5), 400, "quantity"},
		{"quantity as bool", "/order", mutate(t, good, "quantity", true), 400, "quantity"},
		{"price over 2^63-1", "/order", mutate(t, good, "price", "9223372036854775808"), 400, "price"},
		{"missing price", "/order", mutate(t, good, "price", nil), 400, "price"},
		{"bad nonce", "/order", mutate(t, good, "nonce", "abc"), 400, "nonce"},
		{"nonce over 2^64-1", "/order", mutate(t, good, "nonce", "18446744073709551616"), 400, "nonce"},
		{"missing expiry", "/order", mutate(t, good, "expiry", nil), 400, "expiry"},
		{"missing signature", "/order", mutate(t, good, "signature", nil), 400, "signature"},
		{"short signature", "/order", mutate(t, good, "signature", "0x1234"), 400, "signature"},
		{"dust order", "/order", mustJSON(t, dust), 400, "quantity"},
		{"expired", "/order", mustJSON(t, expired), 400, "expired"},
		{"expiry too far ahead", "/order", mustJSON(t, farAhead), 400, "after now"},
		{"wrong signer", "/order", mustJSON(t, forged), 401, "invalid signature"},
		{"wrong signer names the domain", "/order", mustJSON(t, forged), 401, "under the domain {name: \"seqbook\", version: \"1\", chainId: 31337}"},
		{"insufficient quote", "/order", mustJSON(t, tooMuch), 403, "insufficient balance"},
		{"insufficient base", "/order", mustJSON(t, sellNothing), 403, "insufficient balance"},
		{"legacy missing sender value", "/order", mutate(t, legacyGood, "sender", ""), 400, "sender"},
		{"legacy bad quantity", "/order", mutate(t, legacyGood, "quantity", "1.0000001"), 400, "quantity"},
		{"legacy unknown field", "/order", mutate(t, legacyGood, "nonce", 1), 400, "nonce"},
		{"legacy forged price", "/order", mustJSON(t, legacyForged), 401, "invalid signature"},
		{"cancel bad order id", "/cancel", mutate(t, unknownCancel, "orderId", "0x12"), 400, "orderId"},
		{"withdraw too much", "/withdraw", mustJSON(t, bigWithdraw), 403, "insufficient balance"},
		{"withdraw bad recipient", "/withdraw", mutate(t, bigWithdraw, "recipient", "alice"), 400, "recipient"},
		{"deposit not by the bridge", "/deposit", mustJSON(t, fakeDeposit), 401, "not the bridge"},
		{"bad wait", "/order?wait=soon", mustJSON(t, good), 400, "wait"},
		{"oversized body", "/order", `{"trader":"` + strings.Repeat("a", 70<<10) + `"}`, 413, "exceeds"},
	}
	before := r.state(t)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var e obapi.Error
			code := r.do(t, "POST", c.path, c.body, &e)
			if code != c.status {
				t.Fatalf("status %d (%q), want %d", code, e.Error, c.status)
			}
			if !strings.Contains(e.Error, c.errHas) {
				t.Fatalf("error %q does not mention %q", e.Error, c.errHas)
			}
		})
	}
	after := r.state(t)
	if before.StateDigest != after.StateDigest || before.AppliedIndex != after.AppliedIndex || after.Pending != 0 {
		t.Fatalf("rejected requests changed the state: %+v -> %+v", before, after)
	}
	if n := seq.Len(); n != 0 {
		t.Fatalf("rejected requests reached the sequencer: %d batches", n)
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestIntakeReplayAndPending(t *testing.T) {
	clock := newClock()
	seq := NewMemSequencer(clock.Ms)
	r := startReplica(t, testConfig("replica1", clock), seq, NewMemStore())

	o := signOrder(t, alice, orderSpec{side: "buy", qty: 1_000_000, price: 2000_000_000, nonce: 1})
	var acc obapi.OrderAccepted
	if code := r.do(t, "POST", "/order", o, &acc); code != 200 || acc.Status != "accepted" || acc.OrderID != orderID(t, o) {
		t.Fatalf("first submit: %d %+v", code, acc)
	}
	r.waitApplied(t, 1)
	var e obapi.Error
	if code := r.do(t, "POST", "/order", o, &e); code != 409 || !strings.Contains(e.Error, "already used") {
		t.Fatalf("replay after apply: %d %q", code, e.Error)
	}
	// Same nonce, different order.
	o2 := signOrder(t, alice, orderSpec{side: "buy", qty: 2_000_000, price: 2000_000_000, nonce: 1})
	if code := r.do(t, "POST", "/order", o2, &e); code != 409 {
		t.Fatalf("nonce reuse: %d %q", code, e.Error)
	}

	// While finality is held, an accepted operation is pending: a copy is
	// refused, and GET /orders/{id} says pending.
	seq.Hold()
	o3 := signOrder(t, alice, orderSpec{side: "buy", qty: 1_000_000, price: 1000_000_000, nonce: 2})
	if code := r.do(t, "POST", "/order", o3, &acc); code != 200 {
		t.Fatalf("submit o3: %d", code)
	}
	if code := r.do(t, "POST", "/order", o3, &e); code != 409 || !strings.Contains(e.Error, "pending") {
		t.Fatalf("pending duplicate: %d %q", code, e.Error)
	}
	var ord obapi.Order
	if code := r.do(t, "GET", "/orders/"+acc.OrderID, nil, &ord); code != 200 || ord.Status != "pending" {
		t.Fatalf("pending order read: %d %+v", code, ord)
	}
	// A cancel of a pending order is accepted at the edge.
	c := signCancel(t, alice, acc.OrderID, 3, 0)
	if code := r.do(t, "POST", "/cancel", c, nil); code != 200 {
		t.Fatalf("cancel of a pending order: %d", code)
	}
	seq.Release()
	r.waitApplied(t, 3)
	if code := r.do(t, "GET", "/orders/"+acc.OrderID, nil, &ord); code != 200 || ord.Status != "cancelled" {
		t.Fatalf("after cancel: %d %+v", code, ord)
	}
	if s := r.state(t); s.Pending != 0 {
		t.Fatalf("pending after apply: %d", s.Pending)
	}
	again := signCancel(t, alice, acc.OrderID, 4, 0)
	if code := r.do(t, "POST", "/cancel", again, &e); code != 409 || !strings.Contains(e.Error, "already cancelled") {
		t.Fatalf("cancel of a closed order: %d %q", code, e.Error)
	}
	// The first order still rests; bob may not cancel it.
	steal := signCancel(t, bob, orderID(t, o), 1, 0)
	if code := r.do(t, "POST", "/cancel", steal, &e); code != 403 || !strings.Contains(e.Error, "another trader") {
		t.Fatalf("cancel of another's order: %d %q", code, e.Error)
	}

	// Legacy replay.
	l := signLegacy(t, bob, "sell", "1", "3000")
	if code := r.do(t, "POST", "/order", l, &acc); code != 200 {
		t.Fatalf("legacy: %d", code)
	}
	r.waitApplied(t, 4)
	if code := r.do(t, "POST", "/order", l, &e); code != 409 || !strings.Contains(e.Error, "legacy") {
		t.Fatalf("legacy replay: %d %q", code, e.Error)
	}
}

func TestIntakeQueueBound(t *testing.T) {
	clock := newClock()
	seq := NewMemSequencer(clock.Ms)
	cfg := testConfig("replica1", clock)
	cfg.PendingMax = 2
	r := startReplica(t, cfg, seq, NewMemStore())
	seq.Hold() // nothing gets applied, so nothing leaves the pending set
	for n := uint64(1); n <= 2; n++ {
		o := signOrder(t, alice, orderSpec{side: "buy", qty: 1_000_000, price: 1000_000_000, nonce: n})
		if code := r.do(t, "POST", "/order", o, nil); code != 200 {
			t.Fatalf("order %d: %d", n, code)
		}
	}
	var e obapi.Error
	o := signOrder(t, alice, orderSpec{side: "buy", qty: 1_000_000, price: 1000_000_000, nonce: 3})
	if code := r.do(t, "POST", "/order", o, &e); code != 429 {
		t.Fatalf("over the bound: %d %q", code, e.Error)
	}
	seq.Release()
	r.waitApplied(t, 1)
	waitFor(t, "pending to drain", 5e9, func() bool { return r.in.count() == 0 })
	if code := r.do(t, "POST", "/order", o, nil); code != 200 {
		t.Fatalf("after drain: %d", code)
	}
}

func TestIntakeSequencerDown(t *testing.T) {
	clock := newClock()
	seq := NewMemSequencer(clock.Ms)
	r := startReplica(t, testConfig("replica1", clock), seq, NewMemStore())
	// Every node refused the batch: a definite "no", so 503.
	seq.FailSends(fmt.Errorf("%w: all nodes answered 503", ErrBatchRefused))
	o := signOrder(t, alice, orderSpec{side: "buy", qty: 1_000_000, price: 1000_000_000, nonce: 1})
	var e obapi.Error
	if code := r.do(t, "POST", "/order", o, &e); code != 503 || !strings.Contains(e.Error, "all nodes answered 503") {
		t.Fatalf("sequencer down: %d %q", code, e.Error)
	}
	// Not accepted, so not pending: the same signed order can be retried.
	seq.FailSends(nil)
	if code := r.do(t, "POST", "/order", o, nil); code != 200 {
		t.Fatalf("retry: %d", code)
	}
}

// A send whose outcome is unknown (a node timed out: it may hold the
// batch) is answered 202 pending, never 503: the order stays in the outbox
// and is applied exactly once, and resending the same signed body meanwhile
// is harmless.
func TestIntakeUnknownOutcomeIsPending(t *testing.T) {
	clock := newClock()
	seq := NewMemSequencer(clock.Ms)
	cfg := testConfig("replica1", clock)
	r := startReplica(t, cfg, seq, NewMemStore())
	seq.FailSends(errTest("node2: context deadline exceeded"))
	o := signOrder(t, alice, orderSpec{side: "buy", qty: 1_000_000, price: 1000_000_000, nonce: 1})
	id := orderID(t, o)
	var acc obapi.OrderAccepted
	if code := r.do(t, "POST", "/order", o, &acc); code != 202 || acc.Status != "pending" || acc.OrderID != id ||
		!strings.Contains(acc.Message, "GET /orders/"+id) {
		t.Fatalf("unknown outcome: %d %+v", code, acc)
	}
	var ord obapi.Order
	if code := r.do(t, "GET", "/orders/"+id, nil, &ord); code != 200 || ord.Status != "pending" {
		t.Fatalf("pending order: %d %+v", code, ord)
	}
	// The client's retry rule: the same signed body, which cannot be
	// taken twice.
	if code := r.do(t, "POST", "/order", o, nil); code != 409 {
		t.Fatalf("same body again while pending: %d", code)
	}
	seq.FailSends(nil)
	clock.Advance(cfg.ResendAfter + time.Second)
	r.waitApplied(t, 1)
	if code := r.do(t, "GET", "/orders/"+id, nil, &ord); code != 200 || ord.Status != "open" {
		t.Fatalf("after the sequencer healed: %d %+v", code, ord)
	}
	if code := r.do(t, "POST", "/order", o, nil); code != 409 {
		t.Fatalf("same body after it applied: %d", code)
	}
	clock.Advance(cfg.ResendAfter + time.Second)
	waitFor(t, "pending to drain", 5e9, func() bool { return r.in.count() == 0 })
	// Exactly once: the order rests once, however often it was sent.
	r.mu.RLock()
	open := r.ledger.eng.OpenOrderCount()
	r.mu.RUnlock()
	if open != 1 {
		t.Fatalf("%d open orders, want exactly the one", open)
	}
}

type errTest string

func (e errTest) Error() string { return string(e) }

// An accepted operation whose batch a node lost is sent again, also by a
// replica restarted in between (from its outbox): accepted is never lost.
func TestAcceptedOperationsAreResent(t *testing.T) {
	clock := newClock()
	seq := NewMemSequencer(clock.Ms)
	store := NewMemStore()
	cfg := testConfig("replica1", clock)
	r := startReplica(t, cfg, seq, store)

	seq.DropSends(true)
	o1 := signOrder(t, alice, orderSpec{side: "buy", qty: 1_000_000, price: 1000_000_000, nonce: 1})
	if code := r.do(t, "POST", "/order", o1, nil); code != 200 {
		t.Fatalf("o1: %d", code)
	}
	seq.DropSends(false)
	clock.Advance(cfg.ResendAfter + time.Second) // the resend timer reads the replica's clock
	r.waitApplied(t, 1)
	var ord obapi.Order
	if code := r.do(t, "GET", "/orders/"+orderID(t, o1), nil, &ord); code != 200 || ord.Status != "open" {
		t.Fatalf("resent o1: %d %+v", code, ord)
	}

	// Lost again, and this time the replica restarts before resending.
	seq.DropSends(true)
	o2 := signOrder(t, alice, orderSpec{side: "buy", qty: 1_000_000, price: 1000_000_000, nonce: 2})
	if code := r.do(t, "POST", "/order", o2, nil); code != 200 {
		t.Fatalf("o2: %d", code)
	}
	r.stop()
	seq.DropSends(false)
	store.Reopen()
	r2 := startReplica(t, cfg, seq, store)
	if s := r2.state(t); s.Pending != 1 {
		t.Fatalf("restarted replica holds %d pending operations, want 1 from its outbox", s.Pending)
	}
	clock.Advance(cfg.ResendAfter + time.Second)
	r2.waitApplied(t, 2)
	if code := r2.do(t, "GET", "/orders/"+orderID(t, o2), nil, &ord); code != 200 || ord.Status != "open" {
		t.Fatalf("o2 after restart: %d %+v", code, ord)
	}
	waitFor(t, "the outbox to empty", 5*time.Second, func() bool {
		ob, _ := store.Outbox()
		return len(ob) == 0 && r2.in.count() == 0
	})
	if m := r2.Metrics(); m.Resent == 0 {
		t.Fatalf("no resend counted: %+v", m)
	}
}

// An operation this replica verified at intake is not recovered again when
// its batch applies, and only an exact copy (same id, signer and signature
// bytes) is taken as verified: a forged copy under the same id, applied
// while the real one is pending here, is still rejected as unauthentic.
// Both replicas end with the same state.
func TestIntakeVerifiedSignatureIsReusedOnlyForTheExactOperation(t *testing.T) {
	clock := newClock()
	seq := NewMemSequencer(clock.Ms)
	r1 := startReplica(t, testConfig("replica1", clock), seq, NewMemStore())
	r2 := startReplica(t, testConfig("replica2", clock), seq, NewMemStore())

	good := signOrder(t, alice, orderSpec{side: "buy", qty: 1_000_000, price: 2000_000_000, nonce: 1})
	bobs := signOrder(t, bob, orderSpec{side: "buy", qty: 1_000_000, price: 2000_000_000, nonce: 1})
	forged := good
	forged.Signature = bobs.Signature

	// The sequencer loses r1's batch, so the order stays pending (and
	// verified) at r1 while the forged copy applies.
	seq.DropSends(true)
	if code := r1.do(t, "POST", "/order", mustJSON(t, good), nil); code != 200 {
		t.Fatalf("posting the order: %d", code)
	}
	seq.DropSends(false)
	seq.Append(clock.Ms(), batchOf(t, forged))
	r1.waitApplied(t, 1)
	var o obapi.Order
	if code := r1.do(t, "GET", "/orders/"+orderID(t, good), nil, &o); code != 200 || o.Status != "rejected" || !strings.Contains(o.Reason, "invalid signature") {
		t.Fatalf("forged copy: %d %+v", code, o)
	}
	if n := r1.Metrics().SigsReused; n != 0 {
		t.Fatalf("%d signatures reused for a forged copy", n)
	}
	if r1.state(t).Pending != 1 {
		t.Fatal("the real order should still be pending at r1")
	}

	// The real operation, in a batch: r1 does not recover it again.
	seq.Append(clock.Ms(), batchOf(t, good))
	r1.waitApplied(t, 2)
	r2.waitApplied(t, 2)
	if n := r1.Metrics().SigsReused; n != 1 {
		t.Fatalf("r1 reused %d signatures, want 1", n)
	}
	if n := r2.Metrics().SigsReused; n != 0 {
		t.Fatalf("r2 reused %d signatures, want 0 (it never saw the order at intake)", n)
	}
	for _, r := range []*testReplica{r1, r2} {
		var st obapi.Order
		if code := r.do(t, "GET", "/orders/"+orderID(t, good), nil, &st); code != 200 || st.Status != "open" {
			t.Fatalf("real order: %d %+v", code, st)
		}
	}
	if s1, s2 := r1.state(t), r2.state(t); s1.StateDigest != s2.StateDigest || s1.Pending != 0 {
		t.Fatalf("replicas differ: %+v vs %+v", s1, s2)
	}
}

// TestLegacySignatureWithoutPrefixIsAccepted: Python's eth_account writes
// signatures as bare hex; the tutorial services take them, so the replica
// does too (and still refuses garbage of the same length).
func TestLegacySignatureWithoutPrefixIsAccepted(t *testing.T) {
	clock := newClock()
	seq := NewMemSequencer(clock.Ms)
	r := startReplica(t, testConfig("replica1", clock), seq, NewMemStore())
	req := signLegacy(t, bob, "sell", "1", "2000")
	req.Signature = strings.TrimPrefix(req.Signature, "0x")
	var ok map[string]any
	if code := r.do(t, "POST", "/order", mustJSON(t, req), &ok); code != 200 {
		t.Fatalf("bare-hex legacy signature: status %d %v", code, ok)
	}
	req = signLegacy(t, bob, "sell", "2", "2000")
	req.Signature = "zz" + strings.TrimPrefix(req.Signature, "0x")[2:]
	var e obapi.Error
	if code := r.do(t, "POST", "/order", mustJSON(t, req), &e); code != 400 || !strings.Contains(e.Error, "with or without 0x") {
		t.Fatalf("garbage signature: status %d %q", code, e.Error)
	}
}
