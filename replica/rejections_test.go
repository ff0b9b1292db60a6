package replica

import (
	"testing"

	"github.com/seqbook/seqbook/client/keys"
)

// ledgerApplier applies batches to one ledger with consecutive indexes.
type ledgerApplier struct {
	t    *testing.T
	l    *Ledger
	prev [32]byte
	ts   uint64
}

func newLedgerApplier(t *testing.T, cfg LedgerConfig) *ledgerApplier {
	l, err := NewLedger(cfg, testDomain(), testGenesis())
	if err != nil {
		t.Fatal(err)
	}
	return &ledgerApplier{t: t, l: l, ts: uint64(testNowSec * 1000)}
}

func (a *ledgerApplier) apply(reqs ...any) *Applied {
	a.t.Helper()
	body := batchOf(a.t, reqs...)
	b := Batch{Index: a.l.index + 1, Timestamp: a.ts, Body: body}
	b.ChainingHash = NextChainingHash(a.prev, BatchHash(a.ts, body))
	a.prev = b.ChainingHash
	p := prepareBatch(testDomain(), b, 0, nil)
	return a.l.ApplyBatch(p.batch, p.ops, p.batchErr, p.sigErrs)
}

func (a *ledgerApplier) status(req any) string {
	a.t.Helper()
	op, err := DecodeOp(testDomain(), wireOf(a.t, req))
	if err != nil {
		a.t.Fatal(err)
	}
	r, ok := a.l.record(op.ID)
	if !ok {
		return "gone"
	}
	return r.Status.String()
}

// TestRejectionsDoNotEvictAcceptedHistory: a flood of rejected operations
// (signatures that do not verify, and authentic ones refused for funds)
// leaves every accepted record readable; rejections keep only their own
// short window, and one trader's rejections do not push out another's.
func TestRejectionsDoNotEvictAcceptedHistory(t *testing.T) {
	cfg := DefaultLedgerConfig()
	cfg.RecordsMax, cfg.RejectedRecordsMax, cfg.RejectedPerTraderMax, cfg.ForgedRecordsMax = 20, 10, 3, 10
	a := newLedgerApplier(t, cfg)

	var accepted []any
	for n := uint64(1); n <= 5; n++ {
		o := signOrder(t, alice, orderSpec{side: "buy", qty: 1_000_000, price: 1_000_000, nonce: n})
		w := signWithdraw(t, carol, "ETH", 1, addr(carol), 100+n, 0)
		accepted = append(accepted, o, w)
	}
	a.apply(accepted...)
	// bob has no USDT: his authentic buy is refused for funds. It is the
	// only rejection of his, and must outlive mallory's flood below.
	bobs := signOrder(t, bob, orderSpec{side: "buy", qty: 1_000_000, price: 1_000_000, nonce: 1})
	a.apply(bobs)

	// The flood: 300 orders naming alice whose signatures do not verify,
	// and 50 authentic ones of an unfunded trader.
	mallory := keys.DeterministicTrader("replica-test-mallory")
	for round := 0; round < 10; round++ {
		var flood []any
		for k := 0; k < 30; k++ {
			f := signOrder(t, alice, orderSpec{side: "buy", qty: 1_000_000, price: 1_000_000, nonce: uint64(1000 + 30*round + k)})
			f.Signature = signOrder(t, mallory, orderSpec{side: "buy", qty: 1_000_000, price: 1_000_000, nonce: 1}).Signature
			flood = append(flood, f)
		}
		for k := 0; k < 5; k++ {
			flood = append(flood, signOrder(t, mallory, orderSpec{side: "buy", qty: 1_000_000, price: 1_000_000, nonce: uint64(5*round + k + 1)}))
		}
		a.apply(flood...)
	}

	for i, req := range accepted {
		if st := a.status(req); st == "gone" || st == "rejected" {
			t.Fatalf("accepted operation %d is %s after the flood", i, st)
		}
	}
	if st := a.status(bobs); st != "rejected" {
		t.Fatalf("bob's rejection is %s: mallory's rejections pushed it out", st)
	}
	rejected, mallorys := 0, 0
	for _, r := range a.l.records {
		if r.Status.rejected() {
			rejected++
			if r.Trader == addr(mallory) {
				mallorys++
			}
		}
	}
	if rejected > cfg.RejectedRecordsMax+cfg.ForgedRecordsMax || mallorys > cfg.RejectedPerTraderMax {
		t.Fatalf("%d rejected records kept (bound %d+%d), %d of mallory (bound %d)", rejected, cfg.RejectedRecordsMax, cfg.ForgedRecordsMax, mallorys, cfg.RejectedPerTraderMax)
	}
	for _, w := range []*rejectionWindow{&a.l.rejected, &a.l.forged} {
		if q := len(w.ids) - w.head; q > 2*10 {
			t.Fatalf("a rejection window holds %d ids, bound %d", q, 2*10)
		}
	}

	// The split survives a snapshot: restored, the same records are kept
	// and the same bounds apply.
	snap, err := a.l.MarshalSnapshot()
	if err != nil {
		t.Fatal(err)
	}
	r, err := RestoreLedger(cfg, testDomain(), snap)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.records) != len(a.l.records) || len(r.closedQueue) != len(a.l.closedQueue)-a.l.closedHead ||
		r.rejected.live != a.l.rejected.live || r.forged.live != a.l.forged.live {
		t.Fatalf("restored %d records, %d closed, %d+%d rejected; had %d, %d, %d+%d",
			len(r.records), len(r.closedQueue), r.rejected.live, r.forged.live,
			len(a.l.records), len(a.l.closedQueue)-a.l.closedHead, a.l.rejected.live, a.l.forged.live)
	}
}

// TestLegacyOrderRejectedAtApplyKeepsItsID: a legacy order refused at
// apply (no funds) does not burn its id: once funded, the same signed
// order is accepted, and only then is a replay refused.
func TestLegacyOrderRejectedAtApplyKeepsItsID(t *testing.T) {
	a := newLedgerApplier(t, DefaultLedgerConfig())
	unfunded := keys.DeterministicTrader("replica-test-unfunded")
	leg := signLegacy(t, unfunded, "sell", "1", "3000")
	op, err := DecodeOp(testDomain(), wireOf(t, leg))
	if err != nil {
		t.Fatal(err)
	}
	out := a.apply(leg)
	if out.Outcomes[0].Status != "rejected" || a.l.LegacyUsed(op.ID) {
		t.Fatalf("unfunded legacy order: %+v, used=%v", out.Outcomes[0], a.l.LegacyUsed(op.ID))
	}
	a.apply(signDeposit(t, bridge, addr(unfunded), "ETH", 1_000_000, 1, 0))
	if out := a.apply(leg); out.Outcomes[0].Status != "open" {
		t.Fatalf("funded legacy order: %+v", out.Outcomes[0])
	}
	if !a.l.LegacyUsed(op.ID) {
		t.Fatal("a placed legacy order's id is not marked used")
	}
	if out := a.apply(leg); out.Outcomes[0].Status != "rejected" {
		t.Fatalf("replayed legacy order: %+v", out.Outcomes[0])
	}
}
