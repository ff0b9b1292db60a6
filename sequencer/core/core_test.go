package core_test

import (
	"cmp"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"testing"

	"github.com/seqbook/seqbook/client/eip712"
	"github.com/seqbook/seqbook/sequencer/core"
	"github.com/seqbook/seqbook/sequencer/wire"
)

const chain = eip712.DefaultChainID

// testCrypto is a keyed-hash signature scheme (see sim's keyring): a real
// check inside a test, cheap enough to run everywhere.
type testCrypto struct{ self int }

func (c testCrypto) sig(node int, d [32]byte) wire.Signature {
	var s wire.Signature
	h := eip712.Keccak256([]byte{byte(node)}, d[:])
	copy(s[:], h[:])
	return s
}
func (c testCrypto) Sign(d [32]byte) wire.Signature { return c.sig(c.self, d) }
func (c testCrypto) Verify(n int, d [32]byte, s wire.Signature) bool {
	return n >= 0 && n < 16 && c.sig(n, d) == s
}

// notASignature is bytes testCrypto cannot decode, as herumi refuses
// bytes that are no point: Aggregate fails on it.
var notASignature = func() (s wire.Signature) {
	for i := range s {
		s[i] = 0xff
	}
	return s
}()

func (c testCrypto) Aggregate(sigs []wire.Signature) (wire.Signature, error) {
	var out wire.Signature
	for _, s := range sigs {
		if s == notASignature {
			return wire.Signature{}, errors.New("test crypto: invalid signature encoding")
		}
		for i := range out {
			out[i] ^= s[i]
		}
	}
	return out, nil
}
func (c testCrypto) VerifyAggregate(signers wire.Bitmap, d [32]byte, s wire.Signature) bool {
	var want wire.Signature
	for _, n := range signers.Nodes() {
		p := c.sig(n, d)
		for i := range want {
			want[i] ^= p[i]
		}
	}
	return len(signers.Nodes()) > 0 && want == s
}

func (c testCrypto) VerifyAggregates(checks []core.AggregateCheck) bool {
	for _, ch := range checks {
		if !c.VerifyAggregate(ch.Signers, ch.Digest, ch.Signature) {
			return false
		}
	}
	return len(checks) > 0
}

// proofBy makes a proof signed by the given nodes.
func proofBy(kind wire.ProofKind, app string, view, index uint64, h wire.Hash, nodes ...int) *wire.Proof {
	p := &wire.Proof{Kind: kind, View: view, Index: index, ChainingHash: h, Signers: wire.NewBitmap(nodes...)}
	d := core.ProofDigest(eip712.NewDomain(chain), app, p)
	var sigs []wire.Signature
	for _, n := range nodes {
		sigs = append(sigs, testCrypto{}.sig(n, d))
	}
	p.Signature, _ = testCrypto{}.Aggregate(sigs)
	return p
}

func quiet(c core.Config) core.Config {
	c.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	return c
}

// startFollower makes node 1 of 4 (a follower of view 0) on a memory
// store, with the test configuration (changed by tweaks), and gives it its
// first tick.
func startFollower(t *testing.T, tweaks ...func(*core.Config)) (*core.Node, core.Store, core.Config, uint64) {
	t.Helper()
	store := core.NewMemoryStore()
	cfg := quiet(core.TestConfig(chain, 4, 1))
	for _, tw := range tweaks {
		tw(&cfg)
	}
	now := uint64(1_700_000_000_000)
	n, err := core.NewNode(cfg, testCrypto{1}, store)
	if err != nil {
		t.Fatal(err)
	}
	n.Tick(now)
	handle(t, n, store)
	return n, store, cfg, now
}

// startNode0 makes node 0 (the leader of view 0) with cfg on a memory
// store and gives it its first tick.
func startNode0(t *testing.T, cfg core.Config) (*core.Node, core.Store, uint64) {
	t.Helper()
	store := core.NewMemoryStore()
	n, err := core.NewNode(cfg, testCrypto{0}, store)
	if err != nil {
		t.Fatal(err)
	}
	now := uint64(1_700_000_000_000)
	n.Tick(now)
	return n, store, now
}

// leadFirstBatch has node 0 (from startNode0) establish view 0 with the
// view states of nodes 1–3, take batch body at the next tick and hear
// every follower post: the Readys after the batch and after the posts
// (the first lock round), and the clock.
func leadFirstBatch(t *testing.T, n *core.Node, store core.Store, cfg core.Config, now uint64, body string) (afterBatch, afterPosts core.Ready, _ uint64) {
	t.Helper()
	for _, f := range []int{1, 2, 3} {
		if err := n.Step(f, &wire.ViewState{View: 0}); err != nil {
			t.Fatal(err)
		}
	}
	now += cfg.TickMs
	n.Tick(now) // establishes the view
	if err := n.Submit("ob", []byte(body)); err != nil {
		t.Fatal(err)
	}
	afterBatch = handle(t, n, store)
	for _, f := range []int{1, 2, 3} {
		if err := n.Step(f, &wire.Post{App: "ob", View: 0}); err != nil {
			t.Fatal(err)
		}
	}
	return afterBatch, handle(t, n, store), now
}

// handle runs the runtime's loop body once: save, then return messages.
func handle(t *testing.T, n *core.Node, s core.Store) core.Ready {
	t.Helper()
	var all core.Ready
	for n.HasReady() {
		rd := n.Ready()
		if err := s.Save(&rd.Persist); err != nil {
			t.Fatalf("save: %v", err)
		}
		all.Messages = append(all.Messages, rd.Messages...)
		all.Finalized = append(all.Finalized, rd.Finalized...)
		all.Persist.Apps = append(all.Persist.Apps, rd.Persist.Apps...)
		n.Advance()
	}
	return all
}

func TestConfigValidate(t *testing.T) {
	for _, c := range []core.Config{core.DefaultConfig(chain, 4, 0), core.TestConfig(chain, 7, 6), core.DefaultConfig(chain, 1, 0)} {
		if err := c.ValidateBasic(); err != nil {
			t.Fatalf("%+v: %v", c, err)
		}
	}
	bad := map[string]func(*core.Config){
		"chain":           func(c *core.Config) { c.ChainID = 0 },
		"nodes":           func(c *core.Config) { c.Nodes = 0 },
		"self":            func(c *core.Config) { c.Self = 4 },
		"post":            func(c *core.Config) { c.PostIntervalTicks = 0 },
		"idle":            func(c *core.Config) { c.IdlePostIntervalTicks = c.LeaderTimeoutTicks },
		"retry":           func(c *core.Config) { c.RetryTicks = c.LeaderTimeoutTicks },
		"retry max below": func(c *core.Config) { c.RetryTicksMax = c.RetryTicks - 1 },
		"retry max above": func(c *core.Config) { c.RetryTicksMax = c.LeaderTimeoutTicks/2 + 1 },
		"round":           func(c *core.Config) { c.RoundBatchesMax = c.UnfinalizedBatchesMax + 1 },
		"page":            func(c *core.Config) { c.PageBytesMax = wire.MaxMessageBytes },
		"apps":            func(c *core.Config) { c.AppsMax = wire.MaxAppsPerMessage + 1 },
		"pending":         func(c *core.Config) { c.PendingBytesMax = -1 },
	}
	for name, mutate := range bad {
		c := core.DefaultConfig(chain, 4, 0)
		mutate(&c)
		if err := c.ValidateBasic(); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	c := core.DefaultConfig(chain, 4, 0)
	if c.Quorum() != 3 || c.DisputeQuorum() != 2 || c.Leader(5) != 1 {
		t.Fatalf("quorum %d dispute %d leader %d", c.Quorum(), c.DisputeQuorum(), c.Leader(5))
	}
	c = core.DefaultConfig(chain, 7, 0)
	if c.Quorum() != 5 || c.DisputeQuorum() != 3 {
		t.Fatalf("N=7: quorum %d dispute %d", c.Quorum(), c.DisputeQuorum())
	}
}

func TestSubmitErrors(t *testing.T) {
	cfg := quiet(core.TestConfig(chain, 4, 1))
	n, err := core.NewNode(cfg, testCrypto{1}, core.NewMemoryStore())
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		app  string
		body []byte
		want error
	}{
		{"", []byte("x"), core.ErrInvalidApp},
		{"a b", []byte("x"), core.ErrInvalidApp},
		{strings.Repeat("a", 65), []byte("x"), core.ErrInvalidApp},
		{"ok", make([]byte, wire.MaxBatchBytes+1), core.ErrBodyTooLarge},
		{"ok", []byte{0xff, 0xfe}, core.ErrInvalidBody},
	}
	for _, c := range cases {
		if err := n.Submit(c.app, c.body); !errors.Is(err, c.want) {
			t.Errorf("Submit(%q, %d bytes) = %v, want %v", c.app, len(c.body), err, c.want)
		}
	}
	for i := 0; i < cfg.PendingBatchesMax; i++ {
		if err := n.Submit("ok", []byte("b")); err != nil {
			t.Fatalf("submit %d: %v", i, err)
		}
	}
	if err := n.Submit("ok", []byte("b")); !errors.Is(err, core.ErrBacklogFull) {
		t.Fatalf("over the backlog: %v", err)
	}
	for i := 1; i < cfg.AppsMax; i++ {
		if err := n.Submit("app"+string(rune('a'+i)), []byte("b")); err != nil {
			t.Fatalf("app %d: %v", i, err)
		}
	}
	if err := n.Submit("onemore", []byte("b")); !errors.Is(err, core.ErrTooManyApps) {
		t.Fatalf("over AppsMax: %v", err)
	}
	if st := n.Status(); len(st.Apps) != cfg.AppsMax || st.Apps[0].Initialized != 1 {
		t.Fatalf("status %+v", st)
	}
}

// TestSingleNode: a cluster of one finalizes on its own, reports the
// batches once, stores them with their proof, and a restart keeps them.
func TestSingleNode(t *testing.T) {
	cfg := quiet(core.TestConfig(chain, 1, 0))
	n, store, now := startNode0(t, cfg)
	handle(t, n, store)
	for _, b := range []string{"one", "two", "three"} {
		if err := n.Submit("ob", []byte(b)); err != nil {
			t.Fatal(err)
		}
	}
	var finals []core.Finalized
	for i := 0; i < 5; i++ {
		now += 10
		n.Tick(now)
		finals = append(finals, handle(t, n, store).Finalized...)
	}
	var got []string
	prev := wire.Hash{}
	for _, f := range finals {
		for _, e := range f.Entries {
			got = append(got, string(e.Body))
			if e.Hash != core.BatchHash(e.Timestamp, e.Body) || e.ChainingHash != core.ChainHash(prev, e.Hash) {
				t.Fatalf("entry %d hashes wrong", e.Index)
			}
			prev = e.ChainingHash
		}
		if last := f.Entries[len(f.Entries)-1]; f.Proof.Index != last.Index || f.Proof.ChainingHash != last.ChainingHash {
			t.Fatalf("proof %+v does not cover entry %d", f.Proof, last.Index)
		}
	}
	if strings.Join(got, ",") != "one,two,three" {
		t.Fatalf("finalized %v", got)
	}
	page, err := core.ReadFinalized(store, "ob", 0, 10, 1<<20)
	if err != nil || len(page.Entries) != 3 || page.Proof.Index != 3 {
		t.Fatalf("page %+v, %v", page, err)
	}
	n2, err := core.NewNode(cfg, testCrypto{0}, store)
	if err != nil {
		t.Fatal(err)
	}
	if st := n2.Status(); st.Apps[0].Finalized != 3 || st.Apps[0].Initialized != 0 {
		t.Fatalf("after restart: %+v", st)
	}
}

// TestFollowerSafetyRecordsSurviveRestart drives one follower by hand: it
// signs a lock only for its own chain, the record is in the same Ready as
// the vote, and after a restart it still refuses to go back to a lower
// index in the same view, while re-signing the identical lock is allowed.
// It signs Finalize only with a valid lock proof (rule 3).
func TestFollowerSafetyRecordsSurviveRestart(t *testing.T) {
	store := core.NewMemoryStore()
	cfg := quiet(core.TestConfig(chain, 4, 1))
	now := uint64(1_700_000_000_000)
	start := func() *core.Node {
		n, err := core.NewNode(cfg, testCrypto{1}, store)
		if err != nil {
			t.Fatal(err)
		}
		n.Tick(now)
		handle(t, n, store)
		if err := n.Step(0, &wire.NewView{App: "ob", View: 0}); err != nil {
			t.Fatal(err)
		}
		handle(t, n, store)
		return n
	}
	n := start()
	batches := []wire.Batch{{Index: 1, Timestamp: now, Origin: 0, Seq: 1, Body: []byte("a")}, {Index: 2, Timestamp: now, Origin: 2, Seq: 1, Body: []byte("b")}}
	if err := n.Step(0, &wire.PostReply{App: "ob", View: 0, After: 0, Batches: batches}); err != nil {
		t.Fatal(err)
	}
	handle(t, n, store)
	h1 := core.ChainHash(wire.Hash{}, core.BatchHash(now, []byte("a")))
	h2 := core.ChainHash(h1, core.BatchHash(now, []byte("b")))

	vote := func(r *wire.Round) (*wire.Vote, core.Ready) {
		t.Helper()
		if err := n.Step(0, r); err != nil {
			t.Fatalf("round: %v", err)
		}
		rd := handle(t, n, store)
		for _, e := range rd.Messages {
			if v, ok := e.Msg.(*wire.Vote); ok {
				return v, rd
			}
		}
		return nil, rd
	}
	if v, _ := vote(&wire.Round{App: "ob", View: 0, Lock: &wire.LockTarget{Index: 2, ChainingHash: wire.Hash{7}}}); v != nil {
		t.Fatal("signed a lock for a chain it does not hold")
	}
	v, rd := vote(&wire.Round{App: "ob", View: 0, Lock: &wire.LockTarget{Index: 2, ChainingHash: h2}})
	if v == nil || v.Lock == nil {
		t.Fatal("did not sign the lock of its own chain")
	}
	recorded := false
	for _, ap := range rd.Persist.Apps {
		if ap.Hard != nil && ap.Hard.SignedLock == (core.Signed{View: 0, Index: 2, ChainingHash: h2}) {
			recorded = true
		}
	}
	if !recorded {
		t.Fatal("the lock record is not in the Ready that carries the vote")
	}

	n = start() // restart from the store
	if v, _ := vote(&wire.Round{App: "ob", View: 0, Lock: &wire.LockTarget{Index: 1, ChainingHash: h1}}); v != nil {
		t.Fatal("after restart, signed a lower lock in the same view")
	}
	if v, _ := vote(&wire.Round{App: "ob", View: 0, Lock: &wire.LockTarget{Index: 2, ChainingHash: h2}}); v == nil || v.Lock == nil {
		t.Fatal("after restart, refused to repeat the identical lock")
	}
	forged := proofBy(wire.KindLock, "ob", 0, 2, h2, 0, 2, 3)
	forged.Signature[0] ^= 1
	if err := n.Step(0, &wire.Round{App: "ob", View: 0, Finalize: forged}); err == nil {
		t.Fatal("accepted a forged lock proof")
	}
	if err := n.Step(0, &wire.Round{App: "ob", View: 0, Finalize: proofBy(wire.KindLock, "ob", 0, 2, h2, 0, 2)}); err == nil {
		t.Fatal("accepted a lock proof of fewer than Q signers")
	}
	v, _ = vote(&wire.Round{App: "ob", View: 0, Finalize: proofBy(wire.KindLock, "ob", 0, 2, h2, 0, 2, 3)})
	if v == nil || v.Finalize == nil || v.Finalize.Index != 2 {
		t.Fatal("did not sign Finalize with a valid lock proof")
	}
	if st := n.Status(); st.Apps[0].Locked != 2 || st.Apps[0].Finalized != 0 {
		t.Fatalf("status %+v", st.Apps[0])
	}
	if err := n.Step(0, &wire.Round{App: "ob", View: 0, Finalized: proofBy(wire.KindFinalize, "ob", 0, 2, h2, 0, 1, 2)}); err != nil {
		t.Fatal(err)
	}
	rd = handle(t, n, store)
	if len(rd.Finalized) != 1 || rd.Finalized[0].Proof.Index != 2 {
		t.Fatalf("finalized %+v", rd.Finalized)
	}
}

// TestLeaderTimestampChecks: a follower refuses (and disputes) a batch
// stamped in its future beyond the skew bound.
func TestLeaderTimestampChecks(t *testing.T) {
	store := core.NewMemoryStore()
	cfg := quiet(core.TestConfig(chain, 4, 1))
	n, _ := core.NewNode(cfg, testCrypto{1}, store)
	now := uint64(1_700_000_000_000)
	n.Tick(now)
	_ = n.Step(0, &wire.NewView{App: "ob", View: 0})
	handle(t, n, store)
	future := now + cfg.ClockSkewMsMax + 1
	err := n.Step(0, &wire.PostReply{App: "ob", View: 0, Batches: []wire.Batch{{Index: 1, Timestamp: future, Seq: 1, Body: []byte("x")}}})
	if err == nil {
		t.Fatal("accepted a timestamp beyond the skew bound")
	}
	rd := handle(t, n, store)
	disputed := false
	for _, e := range rd.Messages {
		if d, ok := e.Msg.(*wire.Dispute); ok && d.Reason == wire.ReasonMisbehaved {
			disputed = true
		}
	}
	if !disputed || n.Status().Apps[0].Sequenced != 0 {
		t.Fatalf("disputed %v, sequenced %d", disputed, n.Status().Apps[0].Sequenced)
	}
}

func TestMetricsCount(t *testing.T) {
	store := core.NewMemoryStore()
	n, _ := core.NewNode(quiet(core.TestConfig(chain, 1, 0)), testCrypto{0}, store)
	now := uint64(1_700_000_000_000)
	_ = n.Submit("ob", []byte("x"))
	for i := 0; i < 3; i++ {
		now += 10
		n.Tick(now)
		handle(t, n, store)
	}
	m := n.Metrics()
	if m.BatchesSequenced != 1 || m.BatchesFinalized != 1 || m.LockProofs != 1 || m.FinalizeProofs != 1 {
		t.Fatalf("metrics %+v", m)
	}
	if err := n.Step(5, &wire.Post{App: "ob"}); err == nil || n.Metrics().StepErrors != 1 {
		t.Fatalf("a message from a non-node: %v, %+v", err, n.Metrics())
	}
}

// countingCrypto counts proof checks, to see which were batched.
type countingCrypto struct {
	testCrypto
	single, batched int
}

func (c *countingCrypto) VerifyAggregate(s wire.Bitmap, d [32]byte, sig wire.Signature) bool {
	c.single++
	return c.testCrypto.VerifyAggregate(s, d, sig)
}

func (c *countingCrypto) VerifyAggregates(checks []core.AggregateCheck) bool {
	c.batched++
	return c.testCrypto.VerifyAggregates(checks)
}

// TestRoundProofsCheckedTogether: a follower checks a Round's finalize
// proof and lock proof with one batched check when both are valid, and
// when one is bad it gives the same answers as checking each alone: the
// good one is used, the bad one refused.
func TestRoundProofsCheckedTogether(t *testing.T) {
	store := core.NewMemoryStore()
	cc := &countingCrypto{testCrypto: testCrypto{1}}
	n, err := core.NewNode(quiet(core.TestConfig(chain, 4, 1)), cc, store)
	if err != nil {
		t.Fatal(err)
	}
	now := uint64(1_700_000_000_000)
	n.Tick(now)
	if err := n.Step(0, &wire.NewView{App: "ob", View: 0}); err != nil {
		t.Fatal(err)
	}
	var batches []wire.Batch
	var hs []wire.Hash
	prev := wire.Hash{}
	for i, body := range []string{"a", "b", "c", "d"} {
		batches = append(batches, wire.Batch{Index: uint64(i + 1), Timestamp: now, Origin: 0, Seq: uint64(i + 1), Body: []byte(body)})
		prev = core.ChainHash(prev, core.BatchHash(now, []byte(body)))
		hs = append(hs, prev)
	}
	if err := n.Step(0, &wire.PostReply{App: "ob", View: 0, Batches: batches}); err != nil {
		t.Fatal(err)
	}
	handle(t, n, store)
	finalizeVote := func(r *wire.Round) (*wire.SignedTarget, error) {
		t.Helper()
		err := n.Step(0, r)
		for _, e := range handle(t, n, store).Messages {
			if v, ok := e.Msg.(*wire.Vote); ok {
				return v.Finalize, err
			}
		}
		return nil, err
	}
	lp := func(i int) *wire.Proof { return proofBy(wire.KindLock, "ob", 0, uint64(i+1), hs[i], 0, 2, 3) }
	fp := func(i int) *wire.Proof { return proofBy(wire.KindFinalize, "ob", 0, uint64(i+1), hs[i], 0, 2, 3) }
	forge := func(p *wire.Proof) *wire.Proof { p.Signature[5] ^= 1; return p }
	if v, err := finalizeVote(&wire.Round{App: "ob", View: 0, Finalize: lp(0)}); err != nil || v == nil {
		t.Fatalf("finalize vote at 1: %v, %v", v, err)
	}

	// Both valid: one batched check, nothing alone.
	cc.single, cc.batched = 0, 0
	if v, err := finalizeVote(&wire.Round{App: "ob", View: 0, Finalized: fp(0), Finalize: lp(1)}); err != nil || v == nil || v.Index != 2 {
		t.Fatalf("finalize vote at 2: %v, %v", v, err)
	}
	if cc.batched != 1 || cc.single != 0 {
		t.Fatalf("valid pair: %d batched and %d single checks, want 1 and 0", cc.batched, cc.single)
	}
	if st := n.Status(); st.Apps[0].Finalized != 1 {
		t.Fatalf("finalized %d, want 1", st.Apps[0].Finalized)
	}

	// A valid finalize proof with a forged lock proof: the proof is used,
	// the lock proof refused, no Finalize signed.
	if v, err := finalizeVote(&wire.Round{App: "ob", View: 0, Finalized: fp(1), Finalize: forge(lp(2))}); err == nil || v != nil {
		t.Fatalf("forged lock proof: vote %v, err %v", v, err)
	}
	if st := n.Status(); st.Apps[0].Finalized != 2 {
		t.Fatalf("the valid finalize proof next to a forged lock proof was not used: finalized %d", st.Apps[0].Finalized)
	}

	// A forged finalize proof with a valid lock proof: refused, nothing
	// finalized, no vote.
	if v, err := finalizeVote(&wire.Round{App: "ob", View: 0, Finalized: forge(fp(2)), Finalize: lp(3)}); err == nil || v != nil {
		t.Fatalf("forged finalize proof: vote %v, err %v", v, err)
	}
	if st := n.Status(); st.Apps[0].Finalized != 2 {
		t.Fatalf("a forged finalize proof finalized: %d", st.Apps[0].Finalized)
	}
}

// An idle follower posts only at the heartbeat interval; one with a batch
// of its own waiting posts at once and then at the posting interval.
func TestFollowerPostsSlowlyOnlyWhenIdle(t *testing.T) {
	n, store, cfg, now := startFollower(t)
	if err := n.Step(0, &wire.NewView{App: "ob", View: 0}); err != nil {
		t.Fatal(err)
	}
	handle(t, n, store)
	posts := func(ticks int) int {
		count := 0
		for i := 0; i < ticks; i++ {
			now += cfg.TickMs
			n.Tick(now)
			for _, env := range handle(t, n, store).Messages {
				if _, ok := env.Msg.(*wire.Post); ok && env.To == 0 {
					count++
				}
			}
		}
		return count
	}
	idleTicks := 4 * cfg.IdlePostIntervalTicks
	if got := posts(idleTicks); got < 3 || got > 5 {
		t.Fatalf("idle follower posted %d times in %d ticks, want about %d (one per %d ticks)",
			got, idleTicks, idleTicks/cfg.IdlePostIntervalTicks, cfg.IdlePostIntervalTicks)
	}
	if err := n.Submit("ob", []byte("x")); err != nil {
		t.Fatal(err)
	}
	first := 0
	for _, env := range handle(t, n, store).Messages {
		if _, ok := env.Msg.(*wire.Post); ok {
			first++
		}
	}
	if first != 1 {
		t.Fatalf("a submitted batch was posted %d times at once, want 1", first)
	}
	busyTicks := 2 * cfg.IdlePostIntervalTicks
	if got := posts(busyTicks); got < busyTicks/cfg.PostIntervalTicks-1 {
		t.Fatalf("follower with a batch waiting posted %d times in %d ticks, want one per %d ticks",
			got, busyTicks, cfg.PostIntervalTicks)
	}
}

// TestFinalizeNeedsAFinalizeProof: the core itself refuses a lock proof
// where a finalize proof is due (NewView, Round, PostReply), even though
// its signatures verify: the wire decoder is not the only guard.
func TestFinalizeNeedsAFinalizeProof(t *testing.T) {
	n, store, _, now := startFollower(t)
	h1 := core.ChainHash(wire.Hash{}, core.BatchHash(now, []byte("a")))
	lockAsFinal := proofBy(wire.KindLock, "ob", 0, 1, h1, 0, 1, 2)
	if err := n.Step(0, &wire.NewView{App: "ob", View: 0, Finalized: lockAsFinal}); err == nil {
		t.Fatal("NewView: took a lock proof as the finalize proof")
	}
	if err := n.Step(0, &wire.NewView{App: "ob", View: 0}); err != nil {
		t.Fatal(err)
	}
	handle(t, n, store)
	batches := []wire.Batch{{Index: 1, Timestamp: now, Origin: 0, Seq: 1, Body: []byte("a")}}
	if err := n.Step(0, &wire.PostReply{App: "ob", View: 0, After: 0, Batches: batches, Proofs: []wire.Proof{*lockAsFinal}}); err == nil {
		t.Fatal("PostReply: took a lock proof as a finalize proof")
	}
	if err := n.Step(0, &wire.Round{App: "ob", View: 0, Finalized: lockAsFinal}); err == nil {
		t.Fatal("Round: took a lock proof as the finalize proof")
	}
	handle(t, n, store)
	if st := n.Status(); st.Apps[0].Finalized != 0 {
		t.Fatalf("finalized %d on a lock proof", st.Apps[0].Finalized)
	}
}

// A proof whose kind is neither Lock nor Finalize proves nothing, even with
// a quorum's valid signatures on the digest its fields would give: the
// core refuses it where the wire decoder would (Step takes messages that
// never went through a decoder).
func TestProofOfUnknownKindIsRefused(t *testing.T) {
	n, store, _, now := startFollower(t)
	h1 := core.ChainHash(wire.Hash{}, core.BatchHash(now, []byte("a")))
	odd := proofBy(wire.ProofKind(9), "ob", 0, 1, h1, 0, 1, 2)
	if err := n.Step(0, &wire.NewView{App: "ob", View: 0, Lock: odd}); err == nil {
		t.Fatal("NewView: took a proof of kind 9 as the lock certificate")
	}
	if err := n.Step(0, &wire.NewView{App: "ob", View: 0}); err != nil {
		t.Fatal(err)
	}
	handle(t, n, store)
	if err := n.Step(0, &wire.Round{App: "ob", View: 0, Finalize: odd}); err == nil {
		t.Fatal("Round: took a proof of kind 9 as the lock proof")
	}
	if st := n.Status(); st.Apps[0].Locked != 0 || st.Apps[0].Finalized != 0 {
		t.Fatalf("locked %d, finalized %d on a proof of kind 9", st.Apps[0].Locked, st.Apps[0].Finalized)
	}
}

// lockRequests lists the lock indexes of the Round messages to node 1.
func lockRequests(rd core.Ready) []uint64 {
	var out []uint64
	for _, e := range rd.Messages {
		if r, ok := e.Msg.(*wire.Round); ok && e.To == 1 && r.Lock != nil {
			out = append(out, r.Lock.Index)
		}
	}
	return out
}

// TestRoundsOverlapAtLightLoad: a batch that reaches the leader a quarter
// of a round or more after the newest round started is asked to be locked
// at once, in a round beside the one under way; one that arrives sooner
// waits until a quarter of a round has passed; one that arrives while the
// rounds under way lock more than RoundOverlapBatchesMax batches each
// waits for them; so does every batch while the peers answer within two
// ticks (the network does not hold a round). With overlap off, rounds go
// one at a time. A lock proof
// that forms while a young round is under way is asked to be finalized
// at once.
func TestRoundsOverlapAtLightLoad(t *testing.T) {
	for _, tc := range []struct {
		name    string
		overlap int
		// first is how many batches the round under way locks; wait the
		// ticks between its start and the next batch (a round takes 4).
		first, wait int
		overlaps    bool
		// later: the ticks after which the waiting batch goes out
		// beside the round under way (0: it does not).
		later int
		// round is how many ticks a round takes (4 when 0).
		round int
		// told: the runtime gives the network's round trip to every peer,
		// netMs (NetworkRTT).
		told  bool
		netMs uint64
	}{
		{"a quarter of a round in", 4, 1, 1, true, 0, 0, false, 0},
		{"late in a round", 4, 1, 3, true, 0, 0, false, 0},
		{"as the round starts", 4, 1, 0, false, 1, 0, false, 0},
		{"the round under way is large", 4, 5, 1, false, 0, 0, false, 0},
		{"overlap off", 0, 1, 1, false, 0, 0, false, 0},
		// A long round trip: two ticks, not a quarter of the round.
		{"two ticks into a long round", 4, 1, 2, true, 0, 12, false, 0},
		{"one tick into a long round", 4, 1, 1, false, 1, 12, false, 0},
		// Votes within a tick (one host): the CPU, not the network,
		// holds a round, and overlapping would only add rounds.
		{"a round trip under two ticks", 4, 1, 1, false, 0, 1, false, 0},
		// The transport's round trip, once told, decides instead: a
		// long round on one host is a busy CPU, a short one across
		// hosts a quiet network.
		{"a long round on a short link", 4, 1, 2, false, 0, 12, true, 0},
		{"a short round on a long link", 4, 1, 1, true, 0, 1, true, 50},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := quiet(core.TestConfig(chain, 4, 0))
			cfg.RoundOverlapBatchesMax = tc.overlap
			cfg.ShareLockVotes = core.ShareNever // finalize requests are asked (share_test.go)
			n, store, now := startNode0(t, cfg)
			if tc.told {
				for p := 1; p < 4; p++ {
					n.NetworkRTT(p, tc.netMs)
				}
			}
			ticks := func(k int) {
				for range k {
					now += cfg.TickMs
					n.Tick(now)
				}
			}
			var rd core.Ready
			_, rd, now = leadFirstBatch(t, n, store, cfg, now, "b1")
			if got := lockRequests(rd); !slices.Equal(got, []uint64{1}) {
				t.Fatalf("first round: lock requests %v, want [1]", got)
			}
			// vote has nodes 1 and 2 answer the requests of rd.
			domain := eip712.NewDomain(chain)
			vote := func(rd core.Ready) core.Ready {
				t.Helper()
				for _, e := range rd.Messages {
					r, ok := e.Msg.(*wire.Round)
					if !ok || (e.To != 1 && e.To != 2) {
						continue
					}
					v := &wire.Vote{App: "ob", View: 0}
					if l := r.Lock; l != nil {
						v.Lock = &wire.SignedTarget{Index: l.Index, ChainingHash: l.ChainingHash,
							Signature: testCrypto{}.sig(e.To, core.LockDigest(domain, "ob", 0, l.Index, l.ChainingHash))}
					}
					if p := r.Finalize; p != nil {
						v.Finalize = &wire.SignedTarget{Index: p.Index, ChainingHash: p.ChainingHash,
							Signature: testCrypto{}.sig(e.To, core.FinalizeDigest(domain, "ob", 0, p.Index, p.ChainingHash))}
					}
					if err := n.Step(e.To, v); err != nil {
						t.Fatal(err)
					}
				}
				return handle(t, n, store)
			}
			round := cmp.Or(tc.round, 4)
			ticks(round)
			rd = vote(rd) // lock proof 1; the next round finalizes it
			ticks(round)
			vote(rd) // finalized 1; a round took `round` ticks, none is under way
			if st := n.Status(); st.Apps[0].Finalized != 1 {
				t.Fatalf("finalized %d, want 1", st.Apps[0].Finalized)
			}
			for k := 0; k < tc.first; k++ {
				if err := n.Submit("ob", []byte(fmt.Sprintf("c%d", k))); err != nil {
					t.Fatal(err)
				}
			}
			under := handle(t, n, store)
			if got, want := lockRequests(under), []uint64{uint64(1 + tc.first)}; !slices.Equal(got, want) {
				t.Fatalf("the round under way: lock requests %v, want %v", got, want)
			}
			ticks(tc.wait)
			if err := n.Submit("ob", []byte("next")); err != nil {
				t.Fatal(err)
			}
			var want []uint64
			if tc.overlaps {
				want = []uint64{uint64(2 + tc.first)}
			}
			if got := lockRequests(handle(t, n, store)); !slices.Equal(got, want) {
				t.Fatalf("a batch during the round: lock requests %v, want %v", got, want)
			}
			if tc.later == 0 {
				return
			}
			ticks(tc.later - 1)
			if got := lockRequests(handle(t, n, store)); len(got) != 0 {
				t.Fatalf("%d ticks into the round: lock requests %v, want none yet", tc.later-1, got)
			}
			ticks(1)
			if got, want := lockRequests(handle(t, n, store)), []uint64{uint64(2 + tc.first)}; !slices.Equal(got, want) {
				t.Fatalf("%d ticks into the round: lock requests %v, want %v", tc.later, got, want)
			}
			// The round under way forms its lock proof while the new one
			// is young: its finalize is asked at once all the same.
			rd = vote(under)
			var fins []uint64
			for _, e := range rd.Messages {
				if r, ok := e.Msg.(*wire.Round); ok && e.To == 1 && r.Finalize != nil {
					fins = append(fins, r.Finalize.Index)
				}
			}
			if want := []uint64{uint64(1 + tc.first)}; !slices.Equal(fins, want) {
				t.Fatalf("a lock proof while a young round is under way: finalize requests %v, want %v", fins, want)
			}
		})
	}
}

// TestUndecodableVoteDoesNotStallTheRound: a vote whose signature bytes
// are no signature at all makes aggregating the votes fail before any
// check. The leader must then check the votes one by one and drop that
// one, not keep it and fail every later attempt: a Byzantine follower
// could otherwise stop every round it is asked to vote in.
func TestUndecodableVoteDoesNotStallTheRound(t *testing.T) {
	cfg := quiet(core.TestConfig(chain, 4, 0))
	n, store, now := startNode0(t, cfg)
	_, rd, _ := leadFirstBatch(t, n, store, cfg, now, "b1")
	var lock *wire.LockTarget
	for _, e := range rd.Messages {
		if r, ok := e.Msg.(*wire.Round); ok && r.Lock != nil {
			lock = r.Lock
		}
	}
	if lock == nil {
		t.Fatal("no lock round for batch 1")
	}
	digest := core.LockDigest(eip712.NewDomain(chain), "ob", 0, lock.Index, lock.ChainingHash)
	vote := func(from int, sig wire.Signature) {
		t.Helper()
		v := &wire.Vote{App: "ob", View: 0, Lock: &wire.SignedTarget{Index: lock.Index, ChainingHash: lock.ChainingHash, Signature: sig}}
		if err := n.Step(from, v); err != nil {
			t.Fatal(err)
		}
		handle(t, n, store)
	}
	vote(3, notASignature) // bytes that are no signature at all
	// With the leader's own, a quorum of votes, one undecodable: node 3's is
	// dropped, and two valid votes are not a quorum.
	vote(1, testCrypto{}.sig(1, digest))
	if st := n.Status(); st.Apps[0].Locked != 0 {
		t.Fatalf("locked %d with one valid vote besides the leader's", st.Apps[0].Locked)
	}
	vote(2, testCrypto{}.sig(2, digest))
	if st := n.Status(); st.Apps[0].Locked != 1 {
		t.Fatalf("locked %d after a quorum of valid votes, want 1: the undecodable vote stalls the round", st.Apps[0].Locked)
	}
}

// TestNewLeaderSkipsGraceForSilentNodes: with view states from a quorum,
// a new leader waits the grace for a missing node it heard from lately,
// and not for one silent for the leader timeout (down or cut off).
func TestNewLeaderSkipsGraceForSilentNodes(t *testing.T) {
	for _, tc := range []struct {
		name       string
		heardLate  bool
		readyTicks int // ticks after the states until the view is established
	}{
		{"the missing node is silent", false, 0},
		{"the missing node was heard lately", true, 2}, // TestConfig's grace: 2 ticks
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := quiet(core.TestConfig(chain, 4, 0))
			n, _, now := startNode0(t, cfg)
			for range cfg.LeaderTimeoutTicks + 5 {
				now += cfg.TickMs
				n.Tick(now)
			}
			if tc.heardLate {
				if err := n.Step(3, &wire.Post{App: "ob", View: 0}); err != nil {
					t.Fatal(err)
				}
			}
			for _, f := range []int{1, 2} {
				if err := n.Step(f, &wire.ViewState{View: 0}); err != nil {
					t.Fatal(err)
				}
			}
			ticks := 0
			for !n.Status().Ready && ticks < 20 {
				now += cfg.TickMs
				n.Tick(now)
				ticks++
			}
			if ticks != tc.readyTicks {
				t.Fatalf("established after %d ticks, want %d", ticks, tc.readyTicks)
			}
		})
	}
}

// TestFirstRoundFollowsNewView: followers whose view states showed a tip
// on the new leader's chain are counted at once, so a batch is asked to
// be locked right behind NewView, without waiting for their first posts.
func TestFirstRoundFollowsNewView(t *testing.T) {
	cfg := quiet(core.TestConfig(chain, 4, 0))
	n, store, now := startNode0(t, cfg)
	for _, f := range []int{1, 2, 3} {
		if err := n.Step(f, &wire.ViewState{View: 0, Apps: []wire.AppState{{App: "ob"}}}); err != nil {
			t.Fatal(err)
		}
	}
	now += cfg.TickMs
	n.Tick(now)
	if err := n.Submit("ob", []byte("b1")); err != nil {
		t.Fatal(err)
	}
	rd := handle(t, n, store)
	var sawNewView bool
	for _, e := range rd.Messages {
		switch e.Msg.(type) {
		case *wire.NewView:
			sawNewView = sawNewView || e.To == 1
		case *wire.Round:
			if e.To == 1 && !sawNewView {
				t.Fatal("a Round to node 1 before its NewView")
			}
		}
	}
	if got := lockRequests(rd); !slices.Equal(got, []uint64{1}) {
		t.Fatalf("lock requests %v before any post, want [1]", got)
	}
}
