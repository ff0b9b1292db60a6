package core_test

import (
	"testing"

	"github.com/seqbook/seqbook/sequencer/wire"
)

// TestFollowerRefusedOnEveryPostDisputes: a leader that answers every post
// with Mismatch, and brings the follower back into the view after each
// sync (as an equivocating leader that keeps a quorum going can), is
// disputed once that has lasted the leader timeout: the sync phase's own
// timer restarts with every round of the loop and never runs out.
func TestFollowerRefusedOnEveryPostDisputes(t *testing.T) {
	n, store, cfg, now := startFollower(t)
	disputed := false
	for k := 0; k <= 2*cfg.LeaderTimeoutTicks && !disputed; k++ {
		if err := n.Step(0, &wire.NewView{App: "ob", View: 0}); err != nil {
			t.Fatal(err)
		}
		if err := n.Step(0, &wire.PostReply{App: "ob", View: 0, Mismatch: true}); err != nil {
			t.Fatal(err)
		}
		now += cfg.TickMs
		n.Tick(now)
		for _, e := range handle(t, n, store).Messages {
			if _, ok := e.Msg.(*wire.Dispute); ok {
				disputed = true
				if k < cfg.LeaderTimeoutTicks {
					t.Fatalf("disputed after %d ticks, before the leader timeout (%d)", k, cfg.LeaderTimeoutTicks)
				}
			}
		}
	}
	if !disputed {
		t.Fatalf("no dispute after %d ticks of Mismatch answers", 2*cfg.LeaderTimeoutTicks)
	}
}
