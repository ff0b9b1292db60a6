package client

import (
	"context"
	"errors"
	"net/http"
	"sync/atomic"
	"testing"
	"time"
)

// failoverSequencer has short attempts and hedges, and a caller deadline
// far beyond them: every test below would hang until that deadline (and
// fail) if a silent node held a call.
func failoverSequencer(tn *testNet, opts ...Option) *Sequencer {
	base := []Option{WithAttemptTimeout(200 * time.Millisecond), WithHedgeAfter(100 * time.Millisecond),
		WithBenchTime(time.Hour, time.Hour)}
	return testSequencer(tn, append(base, opts...)...)
}

func TestSendFailsOverFromASilentNodeWithinOneCall(t *testing.T) {
	tn := newTestNet(t, 4, 1)
	accepted := tn.blackhole(t, 0)
	seq := failoverSequencer(tn)
	// The caller's budget is the replica's: one silent node must not use
	// it up. The send must reach node2 within the same call.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := seq.Send(ctx, testApp, []byte("one")); err != nil {
		t.Fatalf("send with node1 silent: %v", err)
	}
	if p, _ := tn.nodes[1].counts(); p != 1 {
		t.Fatalf("node2 got %d PUTs, want 1", p)
	}
	if accepted.Load() == 0 {
		t.Fatal("node1 was never tried: the test did not exercise the silent node")
	}
	// Node1 is benched: the next sends do not wait on it again.
	before := accepted.Load()
	for k := 0; k < 3; k++ {
		if err := seq.Send(ctx, testApp, []byte("more")); err != nil {
			t.Fatal(err)
		}
	}
	if accepted.Load() != before {
		t.Fatalf("the benched silent node got %d new connections", accepted.Load()-before)
	}
}

func TestMaybeTakenTellsUnknownFromRefused(t *testing.T) {
	tn := newTestNet(t, 4, 1)
	seq := failoverSequencer(tn)
	ctx := context.Background()

	// Every node answers 503: none took the batch, for sure.
	for _, n := range tn.nodes {
		n.setStatus(http.StatusServiceUnavailable)
	}
	err := seq.Send(ctx, testApp, []byte("x"))
	if err == nil || MaybeTaken(err) {
		t.Fatalf("all nodes refused: err %v, MaybeTaken %v; want a definite refusal", err, MaybeTaken(err))
	}
	// A 4xx refusal of the batch itself is definite too.
	tn.nodes[0].setStatus(http.StatusRequestEntityTooLarge)
	seq = failoverSequencer(tn)
	if err := seq.Send(ctx, testApp, []byte("x")); err == nil || MaybeTaken(err) {
		t.Fatalf("413: err %v, MaybeTaken %v", err, MaybeTaken(err))
	}
	// Refused before asking anyone.
	if err := seq.Send(ctx, testApp, nil); err == nil || MaybeTaken(err) || !errors.Is(err, ErrInvalidBatch) {
		t.Fatalf("empty batch: err %v", err)
	}

	// One silent node, the others refusing: the silent one may have
	// stored the batch and lost only the answer.
	tn.nodes[0].setStatus(http.StatusServiceUnavailable)
	tn.blackhole(t, 3)
	seq = failoverSequencer(tn)
	err = seq.Send(ctx, testApp, []byte("x"))
	if err == nil || !MaybeTaken(err) {
		t.Fatalf("a node timed out: err %v, MaybeTaken %v; want unknown", err, MaybeTaken(err))
	}

	// The caller's own deadline while a node is silent: unknown, and the
	// error still says it was the deadline.
	for _, n := range tn.nodes {
		n.setStatus(0)
	}
	seq = failoverSequencer(tn, WithAttemptTimeout(time.Hour), WithSpread(3))
	dctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	err = seq.Send(dctx, testApp, []byte("x"))
	if !MaybeTaken(err) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("deadline on a silent node: err %v, MaybeTaken %v", err, MaybeTaken(err))
	}
}

func TestReadsRaceASilentNode(t *testing.T) {
	tn := honestNet(t)
	tn.blackhole(t, 0)
	// A whole attempt would outlast the caller: only the hedge can answer
	// in time.
	seq := failoverSequencer(tn, WithAttemptTimeout(time.Hour), WithTimeout(time.Hour))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	page, err := seq.Finalized(ctx, testApp, 0, [32]byte{})
	if err != nil {
		t.Fatalf("finalized with node1 silent: %v", err)
	}
	if page.Node != "node2" {
		t.Fatalf("page from %s, want node2 (the hedge)", page.Node)
	}
	checkPage(t, tn, page, 1, 12)
	// The silent node lost the race: it is benched, so the next read does
	// not wait on it again.
	seq.h.mu.Lock()
	benched := seq.h.nodes[0].benched
	seq.h.mu.Unlock()
	if !benched {
		t.Fatal("the silent node that lost the race is not benched")
	}
	proof, err := seq.LastFinalized(ctx, testApp)
	if err != nil || proof == nil || proof.Index != 12 {
		t.Fatalf("last finalized with node1 silent: %v, %v", proof, err)
	}
}

func TestSpreadAndLeaderFirst(t *testing.T) {
	tn := newTestNet(t, 4, 1)
	ctx := context.Background()
	// Replica 3 of a spread starts at node3 (index 2).
	if err := failoverSequencer(tn, WithSpread(2)).Send(ctx, testApp, []byte("x")); err != nil {
		t.Fatal(err)
	}
	if p, _ := tn.nodes[2].counts(); p != 1 {
		t.Fatalf("node3 got %d PUTs, want 1", p)
	}
	// With leader preference, once the leader is known, sends go there.
	tn.nodes[0].chain.mu.Lock()
	tn.nodes[0].chain.leader = "node4"
	tn.nodes[0].chain.mu.Unlock()
	seq := failoverSequencer(tn, WithLeaderFirst())
	deadline := time.Now().Add(5 * time.Second)
	for seq.Leader() != "node4" {
		seq.nodeOrder() // starts the question
		if time.Now().After(deadline) {
			t.Fatalf("leader not learned: %q", seq.Leader())
		}
		time.Sleep(5 * time.Millisecond)
	}
	before, _ := tn.nodes[3].counts()
	if err := seq.Send(ctx, testApp, []byte("y")); err != nil {
		t.Fatal(err)
	}
	if after, _ := tn.nodes[3].counts(); after != before+1 {
		t.Fatalf("the leader node4 got %d PUTs, want 1", after-before)
	}
}

func TestBenchedNodeReturnsAfterAProbe(t *testing.T) {
	tn := newTestNet(t, 4, 1)
	var nowNs atomic.Int64
	nowNs.Store(time.Unix(1_700_000_000, 0).UnixNano())
	clock := func() time.Time { return time.Unix(0, nowNs.Load()) }
	seq := testSequencer(tn, WithAttemptTimeout(time.Second), WithBenchTime(time.Second, 4*time.Second), withClock(clock))
	benched := func() bool {
		seq.h.mu.Lock()
		defer seq.h.mu.Unlock()
		return seq.h.nodes[0].benched
	}
	ctx := context.Background()
	tn.nodes[0].setStatus(http.StatusInternalServerError)
	if err := seq.Send(ctx, testApp, []byte("x")); err != nil {
		t.Fatal(err)
	}
	// Node1 is benched for a second; it has healed, but until its bench
	// ends and a probe answers, it is tried last.
	tn.nodes[0].setStatus(0)
	if o := seq.nodeOrder(); o[len(o)-1] != 0 || !benched() {
		t.Fatalf("order %v: benched node1 not last", o)
	}
	_, getsBefore := tn.nodes[0].counts()
	if _, gets := tn.nodes[0].counts(); gets != getsBefore {
		t.Fatal("probed before the bench ended")
	}
	nowNs.Add(int64(2 * time.Second))
	seq.nodeOrder() // the bench ended: this starts the probe
	deadline := time.Now().Add(5 * time.Second)
	for benched() {
		if time.Now().After(deadline) {
			t.Fatal("node1 answered its probe but stayed benched")
		}
		time.Sleep(5 * time.Millisecond)
	}
	// Failing again benches it twice as long (backoff); failures of
	// requests under way meanwhile do not lengthen it again.
	seq.nodeFailed(0, "test", errors.New("again"))
	seq.nodeFailed(0, "test", errors.New("concurrent"))
	seq.h.mu.Lock()
	until := seq.h.nodes[0].benchedUntil
	seq.h.mu.Unlock()
	if got := until.Sub(clock()); got != 2*time.Second {
		t.Fatalf("second bench %v, want 2s", got)
	}
}
