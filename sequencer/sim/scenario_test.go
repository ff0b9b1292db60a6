package sim

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/seqbook/seqbook/sequencer/core"
	"github.com/seqbook/seqbook/sequencer/wire"
)

// runUntilSettled runs until every accepted batch is final everywhere, or
// fails after limit ticks.
func runUntilSettled(t *testing.T, c *Cluster, limit int) int {
	t.Helper()
	for ticks := 0; ticks < limit; ticks += 10 {
		c.Run(10)
		if vs := c.Violations(); len(vs) > 0 {
			t.Fatalf("violation: %s", vs[0])
		}
		if ok, _ := c.Settled(); ok {
			return ticks + 10
		}
	}
	_, why := c.Settled()
	t.Fatalf("not settled after %d ticks: %s", limit, why)
	return 0
}

func submitN(t *testing.T, c *Cluster, node, n int, tag string) {
	t.Helper()
	for i := 0; i < n; i++ {
		if err := c.Submit(node, "orderbook", fmt.Sprintf(`{"%s":%d}`, tag, i)); err != nil {
			t.Fatal(err)
		}
	}
}

// TestScenarioHappyPath: batches submitted to every node are finalized in
// one view, identically everywhere, and pages end at finalize proofs.
func TestScenarioHappyPath(t *testing.T) {
	c := NewCluster(1, 4)
	for node := 0; node < 4; node++ {
		submitN(t, c, node, 5, fmt.Sprintf("n%d", node))
	}
	ticks := runUntilSettled(t, c, 500)
	if got := c.Finalized("orderbook"); got != 20 {
		t.Fatalf("finalized %d batches, want 20", got)
	}
	for node := 0; node < 4; node++ {
		st := c.Status(node)
		if st.View != 0 || !st.Ready {
			t.Fatalf("node %d: %+v, want view 0 and ready", node, st)
		}
	}
	page, err := core.ReadFinalized(c.Store(2), "orderbook", 0, 1000, 1<<20)
	if err != nil || len(page.Entries) != 20 || page.Proof == nil || page.Proof.Index != 20 {
		t.Fatalf("page: %d entries, proof %+v, err %v", len(page.Entries), page.Proof, err)
	}
	t.Logf("settled in %d ticks", ticks)
}

// TestScenarioLeaderCrash: the leader crashes with batches in flight; the
// others dispute it, move to view 1, and finalize everything, including
// the batches that were sequenced but not locked.
func TestScenarioLeaderCrash(t *testing.T) {
	c := NewCluster(2, 4)
	submitN(t, c, 1, 3, "before")
	c.Run(3) // posted and sequenced, not yet final
	c.Crash(0)
	submitN(t, c, 2, 3, "after")
	runUntilSettled(t, c, 2000)
	for _, node := range []int{1, 2, 3} {
		if st := c.Status(node); st.View == 0 {
			t.Fatalf("node %d still in view 0", node)
		}
	}
	c.Restart(0)
	runUntilSettled(t, c, 2000)
	if st := c.Status(0); st.Apps[0].Finalized != c.Finalized("orderbook") {
		t.Fatalf("restarted node 0 finalized %d of %d", st.Apps[0].Finalized, c.Finalized("orderbook"))
	}
}

// TestScenarioPartitionHeal: an isolated node keeps its own batches
// across the views it misses and gets them finalized after healing.
func TestScenarioPartitionHeal(t *testing.T) {
	c := NewCluster(3, 4)
	submitN(t, c, 0, 2, "a")
	runUntilSettled(t, c, 500)
	c.Isolate(0) // the leader of view 0
	submitN(t, c, 0, 3, "isolated")
	submitN(t, c, 2, 3, "majority")
	c.Run(400)
	if c.Status(1).View == 0 {
		t.Fatal("the majority never left the isolated leader's view")
	}
	c.Heal()
	runUntilSettled(t, c, 3000)
}

// TestScenarioEquivocation: an equivocating leader cannot get two chains
// finalized, and the honest nodes finalize every batch eventually.
func TestScenarioEquivocation(t *testing.T) {
	c := NewCluster(4, 4, ByzEquivocate)
	for node := 1; node < 4; node++ {
		submitN(t, c, node, 4, fmt.Sprintf("e%d", node))
	}
	runUntilSettled(t, c, 4000)
}

// TestScenarioEquivocatorAndDoubleSignerN7: with N=7 an equivocating
// leader and a double-signing node (f=2) cannot break safety.
func TestScenarioEquivocatorAndDoubleSignerN7(t *testing.T) {
	c := NewCluster(5, 7, ByzEquivocate, ByzDoubleSign)
	for node := 2; node < 7; node++ {
		submitN(t, c, node, 3, fmt.Sprintf("d%d", node))
	}
	runUntilSettled(t, c, 6000)
}

// TestScenarioTwoDoubleSignersN7: with N=7 two double-signing nodes
// (f=2) at indexes drawn from the seed, one of them the first leader,
// sign everything anyone asks; safety holds and every batch is finalized
// once honest leaders take over.
func TestScenarioTwoDoubleSignersN7(t *testing.T) {
	for seed := uint64(1); seed <= 5; seed++ {
		rng := rand.New(rand.NewPCG(seed, 11))
		other := 1 + rng.IntN(6)
		c := NewClusterAt(seed, 7, []string{ByzDoubleSign, ByzDoubleSign}, []int{0, other})
		for node := 0; node < 7; node++ {
			if node != 0 && node != other {
				submitN(t, c, node, 3, fmt.Sprintf("s%d-%d", seed, node))
			}
		}
		runUntilSettled(t, c, 6000)
		if got := c.Finalized("orderbook"); got != 15 {
			t.Fatalf("seed %d: finalized %d batches, want 15", seed, got)
		}
	}
}

// TestHonestRejectionIsAViolation: the check that an honest node never
// refuses an honest node's message can fail (a Round from a node that
// does not lead the view).
func TestHonestRejectionIsAViolation(t *testing.T) {
	c := NewCluster(9, 4)
	submitN(t, c, 1, 2, "x")
	runUntilSettled(t, c, 500)
	w := c.w
	w.send(2, 1, wire.Encode(&wire.Round{App: "orderbook", View: 0, Lock: &wire.LockTarget{Index: 1}}))
	c.Run(5)
	if vs := c.Violations(); len(vs) == 0 || !strings.Contains(vs[0], "honest node 1 rejected a message from honest node 2") {
		t.Fatalf("violations %q", vs)
	}
}

// TestScenarioBadVotes: a follower whose votes never verify is left out of
// every proof, and the other three still finalize everything. Node 0 is
// the bad voter; it is isolated first so that node 1 leads view 1 and
// node 0 has votes to send once it is back.
func TestScenarioBadVotes(t *testing.T) {
	c := NewCluster(6, 4, ByzBadVotes)
	submitN(t, c, 1, 2, "first")
	runUntilSettled(t, c, 500)
	c.Isolate(0)
	submitN(t, c, 2, 2, "before")
	c.Run(400)
	if st := c.Status(1); st.View == 0 {
		t.Fatalf("no view change away from the isolated leader: %+v", st)
	}
	c.Heal()
	submitN(t, c, 0, 3, "from-bad")
	submitN(t, c, 3, 3, "after")
	runUntilSettled(t, c, 4000)
	// Settled covers the honest nodes' batches; the bad voter's come
	// back with it from isolation and may be final a few ticks later.
	var page core.Page
	var err error
	for ticks := 0; ticks < 2000; ticks += 10 {
		if page, err = core.ReadFinalized(c.Store(2), "orderbook", 0, 1000, 1<<20); err != nil || len(page.Entries) >= 10 {
			break
		}
		c.Run(10)
	}
	if err != nil || page.Proof == nil || len(page.Entries) != 10 {
		t.Fatalf("page: %d entries, proof %+v, err %v", len(page.Entries), page.Proof, err)
	}
	if page.Proof.Signers.Has(0) {
		t.Fatalf("the last finalize proof names the bad voter: %v", page.Proof.Signers.Nodes())
	}
}
