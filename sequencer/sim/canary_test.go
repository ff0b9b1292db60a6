package sim

import (
	"strings"
	"testing"

	"github.com/seqbook/seqbook/sequencer/core"
)

// canarySeedsMax bounds how many seeds the mutation canary may take to be
// caught. The broken variant loses safety in most seeds that see a view
// change after the withholding leader, so a handful suffice; the bound
// leaves room for unlucky schedules.
const canarySeedsMax = 50

// TestCanaryForgetLocks proves the checker bites: honest nodes that forget
// their lock at a view change (breaking rule 2), with a leader that keeps
// its finalize proofs to itself, must be caught finalizing two different
// chains within canarySeedsMax seeds.
func TestCanaryForgetLocks(t *testing.T) {
	for s := uint64(1); s <= canarySeedsMax; s++ {
		r := Run(Options{Seed: s, Nodes: 4, Byzantine: []string{ByzWithholdFP}, Mutation: core.MutationForgetLocks, Ticks: 600, LivenessTicks: 1})
		for _, v := range r.Violations {
			if strings.HasPrefix(v, "SAFETY") {
				t.Logf("caught at seed %d: %s", s, v)
				return
			}
		}
	}
	t.Fatalf("the simulator did not catch MutationForgetLocks in %d seeds: the checker or the fault model is too weak", canarySeedsMax)
}

// TestCanaryControl runs the canary's schedule without the mutation: the
// same Byzantine leader must not break safety when honest nodes keep their
// locks, so what the canary catches is the mutation and nothing else.
func TestCanaryControl(t *testing.T) {
	seeds := uint64(20)
	if testing.Short() {
		seeds = 5
	}
	for s := uint64(1); s <= seeds; s++ {
		r := Run(Options{Seed: s, Nodes: 4, Byzantine: []string{ByzWithholdFP}, Ticks: 600})
		if r.Failed() {
			t.Errorf("SEED=%d without the mutation: %s", s, r.Violations[0])
		}
	}
}

// TestCanaryRate reports how many seeds catch the mutation (a measure of
// the simulator's strength, not a pass/fail bound).
func TestCanaryRate(t *testing.T) {
	if testing.Short() {
		t.Skip("measurement")
	}
	caught := 0
	const seeds = 40
	for s := uint64(1); s <= seeds; s++ {
		r := Run(Options{Seed: s, Nodes: 4, Byzantine: []string{ByzWithholdFP}, Mutation: core.MutationForgetLocks, Ticks: 600, LivenessTicks: 1})
		for _, v := range r.Violations {
			if strings.HasPrefix(v, "SAFETY") {
				caught++
				break
			}
		}
	}
	t.Logf("MutationForgetLocks caught in %d of %d seeds", caught, seeds)
	if caught == 0 {
		t.Fatal("never caught")
	}
}
