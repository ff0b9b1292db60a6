package core_test

import (
	"testing"

	"github.com/seqbook/seqbook/sequencer/core"
	"github.com/seqbook/seqbook/sequencer/wire"
)

const holdTicks = 3

func withHold(c *core.Config) { c.HoldTicksMax = holdTicks }

// TestLeaderHoldsBatchesForTheRound: with a round under way, a batch
// submitted to the leader waits (HasReady is false) for the round's next
// output, and leaves with it in one Ready: saved together, pushed to every
// follower before the next round's lock request, which covers it. With
// no round output coming, it waits HoldTicksMax ticks at most.
func TestLeaderHoldsBatchesForTheRound(t *testing.T) {
	cfg := quiet(core.TestConfig(chain, 4, 0))
	withHold(&cfg)
	cfg.SpareVoters = core.SpareNever // every follower is asked, so each shows the order
	n, store, now := startNode0(t, cfg)
	_, rd, now := leadFirstBatch(t, n, store, cfg, now, "b1")
	var h1 wire.Hash
	for _, e := range rd.Messages {
		if r, ok := e.Msg.(*wire.Round); ok && r.Lock != nil {
			h1 = r.Lock.ChainingHash
		}
	}
	now += cfg.TickMs
	n.Tick(now) // the leader's own lock signature
	handle(t, n, store)

	if err := n.Submit("ob", []byte("b2")); err != nil {
		t.Fatal(err)
	}
	if n.HasReady() {
		t.Fatal("a batch submitted during a round is not held")
	}
	for _, f := range []int{1, 2} {
		if err := n.Step(f, lockVote(f, 1, h1)); err != nil {
			t.Fatal(err)
		}
	}
	if !n.HasReady() {
		t.Fatal("the lock proof's round does not release what was held")
	}
	rd = n.Ready()
	if err := store.Save(&rd.Persist); err != nil {
		t.Fatal(err)
	}
	n.Advance()
	puts, entries := 0, 0
	for _, ap := range rd.Persist.Apps {
		puts += len(ap.PendingPut)
		entries += len(ap.Entries)
	}
	if puts != 1 || entries != 1 {
		t.Fatalf("one Ready saves %d pending batches and %d entries, want the held batch as both", puts, entries)
	}
	for f := 1; f <= 3; f++ {
		pushAt, lockAt := -1, -1
		for k, e := range rd.Messages {
			if e.To != f {
				continue
			}
			switch m := e.Msg.(type) {
			case *wire.PostReply:
				if len(m.Batches) > 0 && m.Batches[len(m.Batches)-1].Index == 2 && pushAt < 0 {
					pushAt = k
				}
			case *wire.Round:
				if m.Lock != nil && m.Lock.Index == 2 {
					lockAt = k
				}
			}
		}
		if pushAt < 0 || lockAt < 0 || pushAt > lockAt {
			t.Fatalf("node %d: push of batch 2 at %d, lock request of index 2 at %d: want the push first, then the lock", f, pushAt, lockAt)
		}
	}

	// Nothing from the round: the next batch leaves after HoldTicksMax.
	if err := n.Submit("ob", []byte("b3")); err != nil {
		t.Fatal(err)
	}
	for k := 0; k < holdTicks; k++ {
		if n.HasReady() {
			t.Fatalf("released after %d ticks, want %d", k, holdTicks)
		}
		if n.IdleTicks() != 0 {
			t.Fatal("a node holding output says its ticks are idle")
		}
		now += cfg.TickMs
		n.Tick(now)
	}
	if !n.HasReady() {
		t.Fatalf("still held after %d ticks", holdTicks)
	}
}

// TestFollowerPostsBeforeItsVote: a follower in a round holds a batch
// submitted to it, then posts it before its vote in the Ready the next
// Round releases, so the leader holds the batch when the vote completes
// its round. Without a round under way nothing is held.
func TestFollowerPostsBeforeItsVote(t *testing.T) {
	n, store, h1 := followerWithBatch(t, withHold)
	if err := n.Submit("ob", []byte("x")); err != nil {
		t.Fatal(err)
	}
	if !n.HasReady() {
		t.Fatal("held a batch with no round under way")
	}
	handle(t, n, store)
	if err := n.Step(0, &wire.Round{App: "ob", View: 0, Lock: &wire.LockTarget{Index: 1, ChainingHash: h1}}); err != nil {
		t.Fatal(err)
	}
	handle(t, n, store)

	if err := n.Submit("ob", []byte("y")); err != nil {
		t.Fatal(err)
	}
	if n.HasReady() {
		t.Fatal("a batch submitted during a round is not held")
	}
	lp := proofBy(wire.KindLock, "ob", 0, 1, h1, 0, 1, 2)
	if err := n.Step(0, &wire.Round{App: "ob", View: 0, Finalize: lp}); err != nil {
		t.Fatal(err)
	}
	rd := handle(t, n, store)
	postAt, voteAt := -1, -1
	for k, e := range rd.Messages {
		switch m := e.Msg.(type) {
		case *wire.Post:
			for _, b := range m.Batches {
				if string(b.Body) == "y" {
					postAt = k
				}
			}
		case *wire.Vote:
			if m.Finalize != nil {
				voteAt = k
			}
		}
	}
	if postAt < 0 || voteAt < 0 || postAt > voteAt {
		t.Fatalf("post of the held batch at %d, finalize vote at %d: want the post first", postAt, voteAt)
	}
}

// TestSpareHoldsPushesForTheFinalization: a follower that signed no Lock
// (a spare voter) but holds batches that are not final yet keeps the
// batches pushed to it until the finalize proof comes, and saves both
// together; a batch submitted to it does not wait.
func TestSpareHoldsPushesForTheFinalization(t *testing.T) {
	n, store, h1 := followerWithBatch(t, withHold)
	b2 := []wire.Batch{{Index: 2, Timestamp: 1_700_000_000_000, Origin: 0, Seq: 2, Body: []byte("b")}}
	if err := n.Step(0, &wire.PostReply{App: "ob", View: 0, After: 1, Batches: b2}); err != nil {
		t.Fatal(err)
	}
	if n.HasReady() {
		t.Fatal("a push while batch 1 waits for its finalization is not held")
	}
	fp := proofBy(wire.KindFinalize, "ob", 0, 1, h1, 0, 1, 2)
	if err := n.Step(0, &wire.Round{App: "ob", View: 0, Finalized: fp}); err != nil {
		t.Fatal(err)
	}
	if !n.HasReady() {
		t.Fatal("the finalize proof does not release the held push")
	}
	rd := n.Ready()
	held, proofs := false, 0
	for _, ap := range rd.Persist.Apps {
		for _, e := range ap.Entries {
			held = held || e.Index == 2
		}
		proofs += len(ap.Proofs)
	}
	if !held || proofs != 1 {
		t.Fatalf("one Ready saves the held batch: %v, and %d proofs: want it and the proof", held, proofs)
	}
	if err := store.Save(&rd.Persist); err != nil {
		t.Fatal(err)
	}
	n.Advance()
	// Batch 2 is not final: a submitted batch still leaves at once.
	if err := n.Submit("ob", []byte("mine")); err != nil {
		t.Fatal(err)
	}
	if !n.HasReady() {
		t.Fatal("a batch submitted to a follower with no round under way is held")
	}
}
