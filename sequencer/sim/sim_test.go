package sim

import (
	"flag"
	"os"
	"testing"
	"time"
)

var (
	flagSeed  = flag.Uint64("seed", 0, "replay one seed (with -v for a protocol trace)")
	flagSeeds = flag.Int("seeds", 0, "number of seeds TestSim runs (default 200, or SEQBOOK_SIM_SEEDS)")
	flagStart = flag.Uint64("start", 1, "first seed TestSim runs")
)

// TestSim is the main consensus test: many seeds, each a whole faulty
// cluster run, each checked for safety after every step and for liveness
// after healing.
func TestSim(t *testing.T) {
	if *flagSeed != 0 {
		o := Options{Seed: *flagSeed}
		if testing.Verbose() {
			o.Trace = os.Stderr
		}
		r := Run(o)
		t.Log(r)
		if r.Failed() {
			for _, v := range r.Violations {
				t.Error(v)
			}
		}
		return
	}
	seeds := 200
	if *flagSeeds > 0 {
		seeds = *flagSeeds
	}
	if testing.Short() {
		seeds = 15 // -short also runs under -race in CI; the simulator has no goroutines
	}
	start := time.Now()
	failed := 0
	for s := *flagStart; s < *flagStart+uint64(seeds); s++ {
		r := Run(Options{Seed: s})
		if r.Failed() {
			failed++
			t.Errorf("SEED=%d: %s\n  replay: go test ./sequencer/sim -run 'TestSim$' -seed=%d -v", s, r.Violations[0], s)
			if failed >= 5 {
				break
			}
		} else if testing.Verbose() {
			t.Log(r)
		}
	}
	t.Logf("%d seeds in %v", seeds, time.Since(start).Round(time.Millisecond))
}

// TestSimRealBLS runs a few seeds with herumi BLS signatures instead of
// the keyring, so the simulator also exercises the production Crypto
// (aggregation, subgroup checks, digests) under faults.
func TestSimRealBLS(t *testing.T) {
	seeds := []uint64{7, 8}
	if testing.Short() {
		seeds = seeds[:1]
	}
	for _, s := range seeds {
		r := Run(Options{Seed: s, RealBLS: true, Ticks: 300, Nodes: 4})
		if r.Failed() {
			t.Errorf("SEED=%d (real BLS): %s\n  replay: go test ./sequencer/sim -run TestSimRealBLS -v", s, r.Violations[0])
		}
		t.Log(r)
	}
}

// TestSimCalm runs healthy clusters under bursty load with idle gaps
// longer than the finalize timeout: no view may change (issue: the first
// batch after an idle period used to make every follower dispute).
func TestSimCalm(t *testing.T) {
	seeds := 40
	if testing.Short() {
		seeds = 5
	}
	for s := uint64(1); s <= uint64(seeds); s++ {
		r := Run(Options{Seed: s, Calm: true, Ticks: 1500})
		if r.Failed() {
			t.Errorf("SEED=%d (calm): %s", s, r.Violations[0])
		}
		if r.Stats.Accepted == 0 {
			t.Errorf("SEED=%d (calm): no batch submitted", s)
		}
	}
}
