package core_test

import (
	"slices"
	"testing"

	"github.com/seqbook/seqbook/sequencer/core"
	"github.com/seqbook/seqbook/sequencer/wire"
)

// lockAsked lists the nodes a Ready asks to lock index idx.
func lockAsked(rd core.Ready, idx uint64) []int {
	var to []int
	for _, e := range rd.Messages {
		if r, ok := e.Msg.(*wire.Round); ok && r.Lock != nil && r.Lock.Index == idx && !slices.Contains(to, e.To) {
			to = append(to, e.To)
		}
	}
	slices.Sort(to)
	return to
}

// TestSpareVoters: on one host a round asks only the Q-1 followers that
// make a quorum with the leader's own vote. The spare (the slowest, here
// the last in cluster order, none having answered yet) is asked only once
// an asked follower's retry timeout has run out without its vote; that
// follower is then late and the spare of the next round, and it learns
// the finalization from the proof alone. With SpareNever every follower
// is asked.
func TestSpareVoters(t *testing.T) {
	t.Run("never", func(t *testing.T) {
		cfg := quiet(core.TestConfig(chain, 4, 0))
		cfg.SpareVoters = core.SpareNever
		n, store, now := startNode0(t, cfg)
		_, rd, _ := leadFirstBatch(t, n, store, cfg, now, "b1")
		if got := lockAsked(rd, 1); !slices.Equal(got, []int{1, 2, 3}) {
			t.Fatalf("lock asked of %v, want every follower", got)
		}
	})

	cfg := quiet(core.TestConfig(chain, 4, 0))
	cfg.ShareLockVotes = core.ShareNever
	n, store, now := startNode0(t, cfg)
	_, rd, now := leadFirstBatch(t, n, store, cfg, now, "b1")
	if got := lockAsked(rd, 1); !slices.Equal(got, []int{1, 2}) {
		t.Fatalf("lock asked of %v, want [1 2] (node 3 the spare)", got)
	}
	var h1 wire.Hash
	for _, e := range rd.Messages {
		if r, ok := e.Msg.(*wire.Round); ok && r.Lock != nil {
			h1 = r.Lock.ChainingHash
		}
	}
	// Node 2 votes, node 1 does not: no quorum until the spare is asked.
	if err := n.Step(2, lockVote(2, 1, h1)); err != nil {
		t.Fatal(err)
	}
	handle(t, n, store)
	var later core.Ready
	for k := 0; k < cfg.RetryTicks; k++ {
		if got := lockAsked(later, 1); len(got) > 0 {
			t.Fatalf("lock asked again of %v after %d ticks, before the retry timeout (%d)", got, k, cfg.RetryTicks)
		}
		now += cfg.TickMs
		n.Tick(now)
		later = handle(t, n, store)
	}
	if got := lockAsked(later, 1); !slices.Equal(got, []int{1, 3}) {
		t.Fatalf("after the retry timeout lock asked of %v, want [1 3] (node 1 again, the spare)", got)
	}
	if err := n.Step(3, lockVote(3, 1, h1)); err != nil {
		t.Fatal(err)
	}
	rd = handle(t, n, store)
	// The lock proof formed; its finalize round leaves late node 1 out.
	if got := finalizeRequests(rd); !slices.Equal(got, []int{2, 3}) {
		t.Fatalf("finalize asked of %v, want [2 3] (node 1, late, the spare)", got)
	}
	for _, f := range []int{2, 3} {
		if err := n.Step(f, finVote(f, 1, h1)); err != nil {
			t.Fatal(err)
		}
	}
	rd = handle(t, n, store)
	if st := n.Status(); st.Apps[0].Finalized != 1 {
		t.Fatalf("finalized %d, want 1", st.Apps[0].Finalized)
	}
	told := false
	for _, e := range rd.Messages {
		if r, ok := e.Msg.(*wire.Round); ok && e.To == 1 {
			if r.Lock != nil || r.Finalize != nil {
				t.Fatalf("the spare was asked to vote: %+v", r)
			}
			told = told || (r.Finalized != nil && r.Finalized.Index == 1)
		}
	}
	if !told {
		t.Fatal("the spare was not sent the finalize proof")
	}
}
