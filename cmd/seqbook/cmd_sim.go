package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/seqbook/seqbook/sequencer/core"
	"github.com/seqbook/seqbook/sequencer/sim"
)

func init() {
	register(command{
		name:    "sim",
		summary: "run the sequencer's seeded cluster simulator over many seeds (make sim)",
		run:     runSim,
	})
}

func runSim(args []string) int {
	fs := flag.NewFlagSet("sim", flag.ContinueOnError)
	seeds := fs.Int("seeds", 1000, "number of seeds to run")
	start := fs.Uint64("start", 1, "first seed")
	nodes := fs.Int("nodes", 0, "cluster size; 0 lets each seed pick (4, or 7 for one seed in eight)")
	ticks := fs.Int("ticks", 0, "ticks of the faulty phase per seed (0: the simulator's default)")
	blsEvery := fs.Int("real-bls-every", 50, "use real BLS signatures for every n-th seed (0: never); slower")
	mutation := fs.String("mutation", "none", "deliberately broken variant to run (see --list-mutations): the simulator must catch it")
	listMutations := fs.Bool("list-mutations", false, "print the names of the mutations, one per line, and exit")
	control := fs.Bool("control", false, "with --mutation: run the mutation's Byzantine strategies against the real protocol instead (must find nothing)")
	untilCaught := fs.Bool("until-caught", false, "with --mutation: stop at the first seed that catches it")
	share := fs.String("share", "seed", "when lock votes go to every node (Config.ShareLockVotes): auto, always, never, or seed (by seed mod 3: auto, always, never)")
	spare := fs.String("spare", "seed", "whether a round leaves the votes a quorum does not need unasked (Config.SpareVoters): auto, always, never, or seed (by seed/6 mod 3: auto, always, never)")
	hold := fs.String("hold", "seed", "ticks a node may hold back output that only carries batches for the round under way (Config.HoldTicksMax), or seed (0 or 3 by seed/3 even or odd)")
	workers := fs.Int("workers", 1, "seeds run in parallel (each seed stays deterministic)")
	skipIdle := fs.Bool("skip-idle-ticks", false, "tick each node only when its core says a tick may act, as the node runtime does (a run must be the same either way)")
	verbose := fs.Bool("v", false, "print every seed's summary, not only failures and progress")
	setUsage(fs, "Usage: seqbook sim [flags]",
		"Runs the sequencer simulator (sequencer/sim) over seeds start..start+seeds-1: a",
		"cluster per seed with message loss, duplication, delays, partitions, crashes,",
		"clock skew and up to f Byzantine nodes, checked for safety after every step and",
		"for liveness after healing. A failing seed is printed with the command that",
		"replays it; the exit status is 1 if any seed failed.",
		"",
		"With --mutation NAME every honest node runs a deliberately broken rule (a",
		"mutation canary) against the Byzantine strategies that can expose it; the last",
		"line says `caught` (exit 0) when some seed found a safety violation, `NOT",
		"caught` (exit 1) otherwise. --list-mutations names them; --control runs the",
		"same strategies against the real protocol, which must find nothing; make",
		"canaries runs every mutation.",
	)
	if code, done := parseOrExit(fs, args); done {
		return code
	}
	if fs.NArg() > 0 {
		return fail("sim", fmt.Errorf("unexpected arguments %q", fs.Args()))
	}
	if *seeds < 1 || *workers < 1 || *nodes < 0 || *ticks < 0 || *blsEvery < 0 {
		return fail("sim", errors.New("--seeds and --workers must be positive; --nodes, --ticks, --real-bls-every not negative"))
	}
	if *nodes != 0 && (*nodes < 1 || *nodes > 64) {
		return fail("sim", fmt.Errorf("--nodes %d: want 1..64", *nodes))
	}
	shareMode, err := seedOrMode[core.ShareMode]("share", *share)
	if err != nil {
		return fail("sim", err)
	}
	spareMode, err := seedOrMode[core.SpareMode]("spare", *spare)
	if err != nil {
		return fail("sim", err)
	}
	var holdTicks *int
	if *hold != "seed" {
		h, err := strconv.Atoi(*hold)
		if err != nil || h < 0 {
			return fail("sim", fmt.Errorf("--hold %q: want a number of ticks (0 or more) or seed", *hold))
		}
		holdTicks = &h
	}
	if *listMutations {
		for _, m := range core.Mutations {
			fmt.Println(m.Name)
		}
		return 0
	}
	var mut core.Mutation
	if *mutation != "none" {
		m, ok := core.MutationNamed(*mutation)
		if !ok {
			var names []string
			for _, m := range core.Mutations {
				names = append(names, m.Name)
			}
			return fail("sim", fmt.Errorf("--mutation %q: want none or one of %s", *mutation, strings.Join(names, ", ")))
		}
		mut = m
	}
	if (*control || *untilCaught) && mut == core.MutationNone {
		return fail("sim", errors.New("--control and --until-caught need --mutation NAME"))
	}
	// canary is the mutation the seeds run with their Byzantine
	// strategies; run is what honest nodes actually run (none under
	// --control).
	canary, run := mut, mut
	if *control {
		run = core.MutationNone
	}
	stop := make(chan struct{})
	var stopOnce sync.Once

	began := time.Now()
	jobs := make(chan uint64)
	results := make(chan *sim.Result)
	var wg sync.WaitGroup
	for w := 0; w < *workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for s := range jobs {
				o := sim.Options{Seed: s}
				if canary != core.MutationNone {
					o = sim.CanaryOptions(canary, s)
					o.Mutation = run
				}
				if *nodes != 0 {
					o.Nodes = *nodes
				}
				if *ticks != 0 {
					o.Ticks = *ticks
				}
				o.SkipIdleTicks = *skipIdle
				o.Share = shareMode
				o.Spare = spareMode
				o.Hold = holdTicks
				o.RealBLS = *blsEvery > 0 && s%uint64(*blsEvery) == 0
				if o.RealBLS {
					o.Ticks = min(o.Ticks, 400)
					if o.Ticks == 0 {
						o.Ticks = 400
					}
				}
				results <- sim.Run(o)
			}
		}()
	}
	go func() {
	feed:
		for s := *start; s < *start+uint64(*seeds); s++ {
			select {
			case jobs <- s:
			case <-stop:
				break feed
			}
		}
		close(jobs)
		wg.Wait()
		close(results)
	}()

	var (
		done, failed, bls              int
		msgs, crashes, parts, accepted int
		crashSave, crashSend           int
		maxView                        uint64
		healMax, unsafe                int
		firstCaught                    uint64
		finals                         uint64
		failures                       []string
		shared                         = map[core.ShareMode]int{}
		saves, holdFinals              = map[bool]int{}, map[bool]uint64{}
		progressEvery                  = max(*seeds/20, 1)
	)
	for r := range results {
		done++
		msgs += r.Stats.Messages
		crashes += r.Stats.Crashes
		crashSave += r.Stats.CrashesAfterSave
		crashSend += r.Stats.CrashesAfterSend
		parts += r.Stats.Partitions
		accepted += r.Stats.Accepted
		shared[r.Share] += r.Stats.SharedLockProofs
		saves[r.Hold > 0] += r.Stats.Saves
		for _, f := range r.Finalized {
			holdFinals[r.Hold > 0] += f
		}
		maxView = max(maxView, r.MaxView)
		healMax = max(healMax, r.Stats.HealTicks)
		for _, f := range r.Finalized {
			finals += f
		}
		if _, caught := sim.CaughtSafety(r); caught {
			unsafe++
			if firstCaught == 0 || r.Seed < firstCaught {
				firstCaught = r.Seed
			}
			if *untilCaught && run != core.MutationNone {
				stopOnce.Do(func() { close(stop) })
			}
		}
		if r.Failed() {
			failed++
			line := fmt.Sprintf("SEED=%d FAILED: %s\n  replay: %s", r.Seed, r.Violations[0], simReplay(r.Seed, fs))
			failures = append(failures, line)
			fmt.Println(line)
		} else if *verbose {
			fmt.Println(r)
		}
		if done%progressEvery == 0 {
			fmt.Fprintf(os.Stderr, "sim: %d/%d seeds, %d failed, %v\n", done, *seeds, failed, time.Since(began).Round(time.Second))
		}
	}
	for s := *start; s < *start+uint64(done); s++ {
		if *blsEvery > 0 && s%uint64(*blsEvery) == 0 {
			bls++
		}
	}
	fmt.Printf("\nseeds %d..%d: %d run (%d with real BLS), %d failed, %v\n", *start, *start+uint64(done)-1, done, bls, failed, time.Since(began).Round(time.Millisecond))
	fmt.Printf("messages %d, crashes %d (%d right after a save, %d right after sending), partitions %d, batches accepted %d, batches finalized %d, highest view %d\n",
		msgs, crashes, crashSave, crashSend, parts, accepted, finals, maxView)
	fmt.Printf("lock proofs aggregated by followers from shared votes: %d with share=always, %d with share=auto\n", shared[core.ShareAlways], shared[core.ShareAuto])
	perFinal := func(held bool) string {
		if holdFinals[held] == 0 {
			return "-"
		}
		return strconv.FormatFloat(float64(saves[held])/float64(holdFinals[held]), 'f', 2, 64)
	}
	fmt.Printf("store saves per finalized batch: %s with output held for the round under way (hold > 0), %s without\n", perFinal(true), perFinal(false))
	fmt.Printf("slowest recovery after healing: %d ticks (bound %d)\n", healMax, sim.DefaultLivenessTicks)
	if run != core.MutationNone {
		if unsafe == 0 {
			fmt.Printf("mutation %s: no seed found a safety violation in the broken protocol\n", *mutation)
			fmt.Println("NOT caught")
			return 1
		}
		fmt.Printf("mutation %s: safety violated in %d of %d seeds, first at seed %d (expected: the variant is unsafe)\n", *mutation, unsafe, done, firstCaught)
		fmt.Println("caught")
		return 0
	}
	if *control {
		fmt.Printf("control for %s: the real protocol under the same strategies, %d seeds, %d failed\n", *mutation, done, failed)
	}
	if failed > 0 {
		fmt.Println("FAILED:\n" + strings.Join(failures, "\n"))
		return 1
	}
	return 0
}

// simReplay is the command that runs seed again exactly as this run did:
// the flags fs was given that shape a run (mutation, control, nodes,
// ticks, real-BLS choice, idle ticks), over that one seed.
func simReplay(seed uint64, fs *flag.FlagSet) string {
	cmd := fmt.Sprintf("seqbook sim --start %d --seeds 1", seed)
	fs.Visit(func(f *flag.Flag) {
		switch f.Name {
		case "nodes", "ticks", "real-bls-every", "mutation", "control", "skip-idle-ticks", "share":
			cmd += fmt.Sprintf(" --%s=%s", f.Name, f.Value)
		}
	})
	return cmd
}

// seedOrMode parses a --share or --spare value: a mode (auto, always,
// never: the modes' values 0, 1, 2) or "seed" (nil: the simulator picks
// by the seed).
func seedOrMode[M interface {
	~uint8
	String() string
}](flag, v string) (*M, error) {
	if v == "seed" {
		return nil, nil
	}
	for m := M(0); m < 3; m++ {
		if m.String() == v {
			return &m, nil
		}
	}
	return nil, fmt.Errorf("--%s %q: want auto, always, never or seed", flag, v)
}
