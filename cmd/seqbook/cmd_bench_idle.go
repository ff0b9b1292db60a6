package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/seqbook/seqbook/client/seqapi"
	"github.com/seqbook/seqbook/internal/localnet"
	"github.com/seqbook/seqbook/internal/localnet/load"
)

func init() {
	registerBench(benchmark{
		name:    "idle",
		summary: "CPU an idle local network uses (all its processes, from /proc CPU times)",
		run:     runBenchIdle,
	})
}

// idleResult is the --json shape of `seqbook bench idle`.
type idleResult struct {
	Processes int                `json:"processes"`
	Seconds   float64            `json:"seconds"`
	Cores     float64            `json:"cores"`
	ByKind    map[string]float64 `json:"cores_by_kind"`
	// ByProcess is keyed by component id (node1, replica1, aggregator).
	ByProcess map[string]float64 `json:"cores_by_process"`
}

// idleCoresMax is the target of an idle network: 5 % of one core across
// all its processes.
const idleCoresMax = 0.05

func runBenchIdle(args []string) int {
	fs := flag.NewFlagSet("bench idle", flag.ContinueOnError)
	nf := addNetFlags(fs, "", false)
	duration := fs.Duration("duration", 30*time.Second, "how long the idle network's CPU time is measured")
	settle := fs.Duration("settle", 5*time.Second, "wait after the network is ready and its replicas agree, before measuring (start-up work is left out)")
	jsonOut := fs.String("json", "", "also write the results to this file as JSON")
	keep := fs.Bool("keep", false, "keep the temporary data folder (keys, logs)")
	profileDir := fs.String("cpuprofile", "", "write a CPU profile of each process over exactly the measured phase to this folder (<command>-<pid>.pprof)")
	setUsage(fs, "Usage: seqbook bench idle [flags]",
		"Starts a local network (sequencer nodes, replicas, aggregator), lets it settle, then",
		"measures the CPU time all its processes use over --duration while nobody sends",
		"anything (utime+stime from /proc/<pid>/stat), and prints it as cores (CPU-seconds per",
		"second), in total and per kind of process. The target is at most 0.05 cores.",
		"With --cpuprofile, every process also profiles its CPU over the measured phase",
		"(`go tool pprof` reads the files).",
	)
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	if *duration < time.Second || *settle < 0 {
		return fail("bench", fmt.Errorf("need --duration >= 1s and --settle >= 0"))
	}
	var prof *phaseProfile
	if *profileDir != "" {
		abs, err := filepath.Abs(*profileDir)
		if err == nil {
			err = os.MkdirAll(abs, 0o755)
		}
		if err != nil {
			return fail("bench", fmt.Errorf("--cpuprofile: %w", err))
		}
		prof = &phaseProfile{dir: abs}
	}
	ctx, cancel := interruptContext()
	defer cancel()
	fmt.Printf("bench: starting a local network (%d nodes, %d replicas, aggregator)\n", *nf.nodes, *nf.replicas)
	var deaths atomic.Int64
	n, done, err := throwawayNetKeep(ctx, nf, "seqbook-bench-idle-", keep, os.Stdout, func(cfg *localnet.Config) {
		cfg.OnExit = func(localnet.Exit) { deaths.Add(1) }
		if prof != nil {
			cfg.Env = append(cfg.Env, prof.env()...)
		}
	})
	if err != nil {
		return fail("bench", err)
	}
	defer done()
	pids := networkPIDs(n)
	if prof != nil {
		prof.pids = pids
	}
	res, err := benchIdle(ctx, n, pids, *settle, *duration, prof)
	return finishBench(res, err, deaths.Load(), keep, *jsonOut)
}

// benchIdle measures the network's CPU over duration after settle. With
// prof, its processes (started with prof.env()) profile exactly the
// measured phase.
func benchIdle(ctx context.Context, n *localnet.Network, pids map[string][]int, settle, duration time.Duration, prof *phaseProfile) (idleResult, error) {
	res := idleResult{ByKind: map[string]float64{}, ByProcess: map[string]float64{}}
	urls := make([]string, len(n.Cluster.Replicas))
	for i, r := range n.Cluster.Replicas {
		urls[i] = "http://" + r.HTTP
	}
	if _, err := load.WaitConverged(ctx, load.NewHTTP(30*time.Second), urls, 0); err != nil {
		return res, fmt.Errorf("before measuring: %w", err)
	}
	fmt.Printf("bench: ready; settling for %s, then measuring for %s\n", settle, duration)
	if sleepCtx(ctx, settle); ctx.Err() != nil {
		return res, ctx.Err()
	}
	kinds := []string{localnet.KindSequencer, localnet.KindReplica, localnet.KindAggregator}
	cpu0 := map[string]time.Duration{}
	for _, k := range kinds {
		cpu0[k] = processesCPU(pids[k])
		res.Processes += len(pids[k])
	}
	procs := map[string]int{} // component id → pid
	procCPU0 := map[string]time.Duration{}
	for _, c := range n.Components {
		if pid := n.PID(c.ID); pid != 0 {
			procs[c.ID] = pid
			procCPU0[c.ID] = processesCPU([]int{pid})
		}
	}
	if prof != nil {
		if err := prof.start(); err != nil {
			return res, fmt.Errorf("--cpuprofile: %w", err)
		}
	}
	start := time.Now()
	if sleepCtx(ctx, duration); ctx.Err() != nil {
		return res, ctx.Err()
	}
	res.Seconds = time.Since(start).Seconds()
	if prof != nil {
		files, err := prof.stop(10 * time.Second)
		if err != nil {
			return res, fmt.Errorf("--cpuprofile: %w", err)
		}
		fmt.Printf("bench: CPU profiles of the measured phase: %d files in %s\n", len(files), prof.dir)
	}
	var split []string
	for _, k := range kinds {
		cores := (processesCPU(pids[k]) - cpu0[k]).Seconds() / res.Seconds
		res.ByKind[k] = cores
		res.Cores += cores
		split = append(split, fmt.Sprintf("%d %s %.3f", len(pids[k]), k, cores))
	}
	var each []string
	for _, c := range n.Components {
		if pid, ok := procs[c.ID]; ok {
			cores := (processesCPU([]int{pid}) - procCPU0[c.ID]).Seconds() / res.Seconds
			res.ByProcess[c.ID] = cores
			each = append(each, fmt.Sprintf("%s %.3f", c.ID, cores))
		}
	}
	leader := "unknown"
	if urls := n.NodeURLs(); len(urls) > 0 {
		var st seqapi.NodeState
		if err := load.NewHTTP(2*time.Second).GetJSON(ctx, urls[0]+"/node/state", &st); err == nil {
			leader = st.Leader
		}
	}
	fmt.Printf("bench: cores per process (leader %s): %s\n", leader, strings.Join(each, ", "))
	verdict := "within"
	if res.Cores > idleCoresMax {
		verdict = "above"
	}
	fmt.Printf("idle: the network's %d processes used %.3f cores over %.0f s idle (%s), %s the target of %.2f (CPU times at 10 ms resolution; load average now %s)\n",
		res.Processes, res.Cores, res.Seconds, strings.Join(split, ", "), verdict, idleCoresMax, loadAverage())
	return res, nil
}
