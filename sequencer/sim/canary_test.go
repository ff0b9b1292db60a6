package sim

import (
	"testing"

	"github.com/seqbook/seqbook/sequencer/core"
)

// canarySeedsMax bounds how many seeds each mutation canary may take to be
// caught. Every mutation is caught at the first seed today and in a third
// to all of the seeds (docs/protocol.md §10); the bound leaves room for a
// schedule that changes, not for a strategy that stopped working.
const canarySeedsMax = 20

// TestCanaries proves the checker bites: every mutation in core.Mutations,
// run against the Byzantine strategies that can reach the rule it breaks
// (CanaryOptions), must be caught breaking safety within canarySeedsMax
// seeds. A mutation added to the list without a strategy that catches it
// fails here.
func TestCanaries(t *testing.T) {
	for _, m := range core.Mutations {
		t.Run(m.Name, func(t *testing.T) {
			for s := uint64(1); s <= canarySeedsMax; s++ {
				r := Run(CanaryOptions(m.Mutation, s))
				if v, caught := CaughtSafety(r); caught {
					t.Logf("caught at seed %d: %s", s, v)
					return
				}
			}
			t.Fatalf("the simulator did not catch %s in %d seeds: the checker or the strategies are too weak", m.Name, canarySeedsMax)
		})
	}
}

// TestCanaryControl runs every canary's strategies against the real
// protocol: they must not break it, so what a canary catches is the
// mutation and nothing else.
func TestCanaryControl(t *testing.T) {
	seeds := uint64(10)
	if testing.Short() {
		seeds = 2
	}
	for _, m := range core.Mutations {
		t.Run(m.Name, func(t *testing.T) {
			for s := uint64(1); s <= seeds; s++ {
				o := CanaryOptions(m.Mutation, s)
				o.Mutation = core.MutationNone
				if r := Run(o); r.Failed() {
					t.Errorf("SEED=%d, %s's strategies without the mutation: %s", s, m.Name, r.Violations[0])
				}
			}
		})
	}
}

// TestCanaryCaughtNeedsSafety: only a safety violation counts as a caught
// canary (a broken variant that merely stalls is not caught).
func TestCanaryCaughtNeedsSafety(t *testing.T) {
	r := &Result{Violations: []string{"liveness: 10 ticks after healing"}}
	if _, caught := CaughtSafety(r); caught {
		t.Fatal("a liveness failure counted as a caught canary")
	}
	r.Violations = append(r.Violations, "SAFETY: two finalize proofs")
	if _, caught := CaughtSafety(r); !caught {
		t.Fatal("a safety violation did not count")
	}
}
