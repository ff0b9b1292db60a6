package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/seqbook/seqbook/client/seqapi"
	"github.com/seqbook/seqbook/internal/localnet"
	"github.com/seqbook/seqbook/internal/localnet/load"
)

func init() {
	registerBench(benchmark{
		name:    "sequencer",
		summary: "4 sequencer nodes on loopback: finalized batches/s and batch-to-finality latency at a fixed rate",
		run:     runBenchSequencer,
	})
}

// seqBenchResult is what --json writes.
type seqBenchResult struct {
	Nodes            int     `json:"nodes"`
	BatchBytes       int     `json:"batch_bytes"`
	OfferedPerSec    float64 `json:"offered_batches_per_sec"`
	FinalizedPerSec  float64 `json:"finalized_batches_per_sec"`
	Sent             int     `json:"sent"`
	Refused          int64   `json:"refused"`
	Finalized        int     `json:"finalized"`
	P50Ms            float64 `json:"p50_ms"`
	P99Ms            float64 `json:"p99_ms"`
	MaxMs            float64 `json:"max_ms"`
	FinalizedIndexes uint64  `json:"finalized_indexes"`
	// CPUMsPerBatch is the nodes' CPU time (all four processes) per
	// finalized batch during the run.
	CPUMsPerBatch float64 `json:"cpu_ms_per_batch"`
}

func runBenchSequencer(args []string) int {
	fs := flag.NewFlagSet("bench sequencer", flag.ContinueOnError)
	nf := addNetFlags(fs, "", false)
	rate := fs.Float64("rate", 1000, "batches per second offered (spread over all nodes)")
	size := fs.Int("size", 1024, "bytes per batch")
	duration := fs.Duration("duration", 10*time.Second, "how long to offer load")
	warmup := fs.Duration("warmup", 2*time.Second, "leading part of the run left out of the latency figures")
	drain := fs.Duration("drain", 30*time.Second, "how long to wait after the load for the last batches to finalize")
	jsonOut := fs.String("json", "", "also write the results as JSON to this file")
	keep := fs.Bool("keep", false, "keep the temporary data folder (keys, logs)")
	setUsage(fs, "Usage: seqbook bench sequencer [flags]",
		"Starts the sequencer nodes alone on loopback (no replicas), PUTs batches of --size bytes",
		"at --rate per second round-robin to all nodes, follows the finalized sequence, and prints",
		"finalized batches/s and the latency from each batch's scheduled send time to the moment",
		"it was seen finalized (open loop: a slow cluster is not given a slower schedule).",
	)
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	if *rate <= 0 || *rate > 1e6 || *size < 64 || *size > seqapi.BatchBytesMax || *duration <= 0 || *warmup < 0 || *warmup >= *duration {
		return fail("bench sequencer", errors.New("need 0 < --rate <= 1e6, 64 <= --size <= 1 MiB, --duration > --warmup >= 0"))
	}
	ctx, cancel := interruptContext()
	defer cancel()
	printBLSCosts("bench sequencer")
	fmt.Printf("bench sequencer: starting %d nodes\n", *nf.nodes)
	n, done, err := throwawayNetKeep(ctx, nf, "seqbook-bench-sequencer-", keep, os.Stdout,
		func(c *localnet.Config) { c.Kinds = []string{localnet.KindSequencer} })
	if err != nil {
		return fail("bench sequencer", err)
	}
	defer done()
	var pids []int
	for _, comp := range n.Components {
		if pid := n.PID(comp.ID); pid != 0 {
			pids = append(pids, pid)
		}
	}
	cpu0 := processesCPU(pids)
	res, err := benchSequencer(ctx, n, *rate, *size, *duration, *warmup, *drain)
	if err != nil {
		*keep = true // the logs say why
		return fail("bench sequencer", err)
	}
	res.CPUMsPerBatch = float64((processesCPU(pids) - cpu0).Microseconds()) / 1000 / float64(res.Finalized)
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Println()
	fmt.Fprintln(tw, "nodes\tbatch bytes\toffered/s\tfinalized/s\tsent\trefused\tp50 ms\tp99 ms\tmax ms\tfinalized indexes\t")
	fmt.Fprintf(tw, "%d\t%d\t%.0f\t%.0f\t%d\t%d\t%.1f\t%.1f\t%.1f\t%d\t\n", res.Nodes, res.BatchBytes, res.OfferedPerSec,
		res.FinalizedPerSec, res.Sent, res.Refused, res.P50Ms, res.P99Ms, res.MaxMs, res.FinalizedIndexes)
	tw.Flush()
	fmt.Printf("cpu: the %d nodes used %.3f ms of CPU per finalized batch (%.0f batches/s on %d otherwise idle cores; load average now %s)\n",
		len(pids), res.CPUMsPerBatch, float64(runtime.NumCPU())*1000/res.CPUMsPerBatch, runtime.NumCPU(), loadAverage())
	printNodeMetrics(ctx, n)
	if *jsonOut != "" {
		if err := writeJSONFile(*jsonOut, res); err != nil {
			return fail("bench sequencer", err)
		}
	}
	return 0
}

// benchSequencer offers batches open-loop and follows the finalized
// sequence on node1 (another node if node1 does not answer).
func benchSequencer(ctx context.Context, n *localnet.Network, rate float64, size int, duration, warmup, drain time.Duration) (seqBenchResult, error) {
	h := load.NewHTTP(10 * time.Second)
	nodes := n.NodeURLs()
	app := n.Cluster.App
	run := strconv.FormatInt(time.Now().UnixNano(), 36)
	total := int(rate * duration.Seconds())
	scheduled := make([]time.Time, total)
	finalizedAt := make([]time.Time, total)
	var refused atomic.Int64
	var firstRefusal atomic.Value

	// Follow the finalized sequence from where it stands now.
	start0, err := lastFinalized(ctx, h, nodes, app)
	if err != nil {
		return seqBenchResult{}, err
	}
	var seen atomic.Int64
	followCtx, stopFollow := context.WithCancel(ctx)
	defer stopFollow()
	var mu sync.Mutex
	var lastIndex uint64
	followed := make(chan struct{})
	go func() {
		defer close(followed)
		after, nodeIdx := start0, 0
		for followCtx.Err() == nil {
			page, err := h.Finalized(followCtx, nodes[nodeIdx], app, after)
			if err != nil {
				nodeIdx = (nodeIdx + 1) % len(nodes)
				sleepCtx(followCtx, 20*time.Millisecond)
				continue
			}
			now := time.Now()
			for _, b := range page.Batches {
				after = b.Index
				if seq, ok := benchSeq(b.Body, run); ok && seq < total && finalizedAt[seq].IsZero() {
					mu.Lock()
					finalizedAt[seq] = now
					mu.Unlock()
					seen.Add(1)
				}
			}
			mu.Lock()
			lastIndex = after
			mu.Unlock()
			if len(page.Batches) == 0 {
				sleepCtx(followCtx, 2*time.Millisecond)
			}
		}
	}()

	// Offer the load: a pacer hands due batches to workers; each batch's
	// latency counts from its scheduled time.
	pad := strings.Repeat("x", size)
	work := make(chan int, 4096)
	var wg sync.WaitGroup
	workers := 64
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for seq := range work {
				body := benchBody(run, seq, pad, size)
				if err := h.PutBatch(ctx, nodes[seq%len(nodes)], app, body); err != nil {
					if refused.Add(1) == 1 {
						firstRefusal.Store(err.Error())
					}
				}
			}
		}()
	}
	start := time.Now()
	fmt.Printf("bench sequencer: offering %.0f batches/s of %d bytes for %s\n", rate, size, duration)
	progress := time.NewTicker(time.Second)
	sent := 0
pace:
	for sent < total {
		due := start.Add(time.Duration(float64(sent) / rate * float64(time.Second)))
		if d := time.Until(due); d > 0 {
			select {
			case <-ctx.Done():
				break pace
			case <-progress.C:
				fmt.Printf("  %4.0fs  sent %d  finalized %d  refused %d\n", time.Since(start).Seconds(), sent, seen.Load(), refused.Load())
				continue
			case <-time.After(d):
			}
		}
		scheduled[sent] = due
		work <- sent
		sent++
	}
	progress.Stop()
	close(work)
	wg.Wait()
	if ctx.Err() != nil {
		return seqBenchResult{}, ctx.Err()
	}
	// Wait for what was accepted to finalize.
	deadline := time.Now().Add(drain)
	for seen.Load() < int64(sent)-refused.Load() && time.Now().Before(deadline) {
		sleepCtx(ctx, 20*time.Millisecond)
	}
	stopFollow()
	<-followed
	if r := refused.Load(); r > 0 {
		fmt.Printf("bench sequencer: %d batches refused, first: %v\n", r, firstRefusal.Load())
	}

	mu.Lock()
	defer mu.Unlock()
	var lat []time.Duration
	var first, last time.Time
	finalized := 0
	for seq := 0; seq < sent; seq++ {
		if finalizedAt[seq].IsZero() {
			continue
		}
		finalized++
		if first.IsZero() || finalizedAt[seq].Before(first) {
			first = finalizedAt[seq]
		}
		if finalizedAt[seq].After(last) {
			last = finalizedAt[seq]
		}
		if scheduled[seq].Sub(start) >= warmup {
			lat = append(lat, finalizedAt[seq].Sub(scheduled[seq]))
		}
	}
	if finalized == 0 {
		return seqBenchResult{}, fmt.Errorf("no batch finalized (sent %d, refused %d)", sent, refused.Load())
	}
	slices.Sort(lat)
	// Throughput: finalized batches over the time from the first send to
	// the last finalization (the drain counts: a backlog is not free).
	span := last.Sub(start).Seconds()
	return seqBenchResult{
		Nodes: len(nodes), BatchBytes: size, OfferedPerSec: rate,
		FinalizedPerSec: float64(finalized) / span, Sent: sent, Refused: refused.Load(), Finalized: finalized,
		P50Ms: ms(load.Percentile(lat, 50)), P99Ms: ms(load.Percentile(lat, 99)), MaxMs: ms(load.Percentile(lat, 100)),
		FinalizedIndexes: lastIndex - start0,
	}, nil
}

// lastFinalized asks the nodes for the app's last finalized index.
func lastFinalized(ctx context.Context, h *load.HTTP, nodes []string, app string) (uint64, error) {
	var errs []error
	for _, u := range nodes {
		var page seqapi.FinalizedPage
		if err := h.GetJSON(ctx, u+"/node/"+app+"/batches/finalized/last", &page); err != nil {
			errs = append(errs, err)
			continue
		}
		if page.Finalized == nil {
			return 0, nil
		}
		return page.Finalized.Index, nil
	}
	return 0, fmt.Errorf("no node answered the last finalized index: %w", errors.Join(errs...))
}

// benchBody is a batch of exactly size bytes: valid UTF-8 JSON carrying the
// run id and sequence number the follower matches on.
func benchBody(run string, seq int, pad string, size int) []byte {
	head := fmt.Sprintf(`{"bench":%d,"run":"%s","pad":"`, seq, run)
	n := size - len(head) - 2
	if n < 0 {
		n = 0
	}
	return []byte(head + pad[:n] + `"}`)
}

// benchSeq extracts the sequence number of a batch of this run.
func benchSeq(body, run string) (int, bool) {
	const pre = `{"bench":`
	if !strings.HasPrefix(body, pre) {
		return 0, false
	}
	rest := body[len(pre):]
	comma := strings.IndexByte(rest, ',')
	if comma < 0 || !strings.HasPrefix(rest[comma:], `,"run":"`+run+`"`) {
		return 0, false
	}
	seq, err := strconv.Atoi(rest[:comma])
	return seq, err == nil && seq >= 0
}

// printNodeMetrics prints the work counters every node publishes in GET
// /node/state (BLS operations, fsynced store transactions), per batch that
// became final on that node: what one finalized index costs.
func printNodeMetrics(ctx context.Context, n *localnet.Network) {
	h := load.NewHTTP(2 * time.Second)
	fmt.Println("\nwork per finalized batch, from each node's /node/state (since it started):")
	fmt.Printf("  %-6s %9s %11s %11s %11s %11s %11s %11s %13s %8s %14s %15s\n", "node", "finalized", "bls signs", "bls verify", "aggregate", "agg verify", "(batched)", "store saves", "save ms/batch",
		"rounds", "fsyncs/round", "bls signs/round")
	states, errs := readNodeStates(ctx, h, n.NodeURLs())
	for i, st := range states {
		if errs[i] != nil {
			fmt.Printf("  node%d: %v\n", i+1, errs[i])
			continue
		}
		w := st.Work
		if w == nil || w.BatchesFinalized == 0 {
			fmt.Printf("  %-6s publishes no work counters (or finalized nothing)\n", st.Node)
			continue
		}
		per := func(v float64) float64 { return v / float64(w.BatchesFinalized) }
		perRound := func(v uint64) string {
			if w.Rounds == 0 {
				return "-" // a node that does not publish rounds
			}
			return strconv.FormatFloat(float64(v)/float64(w.Rounds), 'f', 2, 64)
		}
		fmt.Printf("  %-6s %9d %11.3f %11.3f %11.3f %11.3f %11.3f %11.3f %13.3f %8d %14s %15s\n", st.Node, w.BatchesFinalized,
			per(float64(w.BLSSigns)), per(float64(w.BLSVerifies)), per(float64(w.BLSAggregates)),
			per(float64(w.BLSAggregateVerifies)), per(float64(w.BLSBatchVerifies)), per(float64(w.StoreSaves)), per(w.StoreSaveMs),
			w.Rounds, perRound(w.StoreSaves), perRound(w.BLSSigns))
	}
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

func writeJSONFile(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

// readNodeStates reads every node's GET /node/state, in the order of
// nodeURLs; errs[i] says why node i's could not be read.
func readNodeStates(ctx context.Context, h *load.HTTP, nodeURLs []string) (states []seqapi.NodeState, errs []error) {
	states, errs = make([]seqapi.NodeState, len(nodeURLs)), make([]error, len(nodeURLs))
	for i, url := range nodeURLs {
		errs[i] = h.GetJSON(ctx, url+"/node/state", &states[i])
	}
	return states, errs
}

// nodeWork reads every node's work counters (readNodeStates); a node
// that does not answer or count is nil.
func nodeWork(ctx context.Context, h *load.HTTP, nodeURLs []string) []*seqapi.NodeWork {
	states, errs := readNodeStates(ctx, h, nodeURLs)
	out := make([]*seqapi.NodeWork, len(nodeURLs))
	for i := range states {
		if errs[i] == nil {
			out[i] = states[i].Work
		}
	}
	return out
}

// phaseWork describes the sequencer's work between two nodeWork reads:
// batches finalized, rounds, and per node and round its fsyncs and BLS
// signatures. ok is false when no node counted a round in between.
func phaseWork(before, after []*seqapi.NodeWork, orders int) (line string, perRound seqRoundWork, ok bool) {
	var fsyncs, signs []string
	var batches, rounds uint64
	var saveSum, signSum float64
	counted := 0
	for i := range after {
		b, a := before[i], after[i]
		if b == nil || a == nil || a.Rounds <= b.Rounds {
			fsyncs, signs = append(fsyncs, "-"), append(signs, "-")
			continue
		}
		r := float64(a.Rounds - b.Rounds)
		s, g := float64(a.StoreSaves-b.StoreSaves)/r, float64(a.BLSSigns-b.BLSSigns)/r
		fsyncs = append(fsyncs, strconv.FormatFloat(s, 'f', 2, 64))
		signs = append(signs, strconv.FormatFloat(g, 'f', 2, 64))
		saveSum, signSum = saveSum+s, signSum+g
		batches, rounds = max(batches, a.BatchesFinalized-b.BatchesFinalized), max(rounds, a.Rounds-b.Rounds)
		counted++
	}
	if counted == 0 || batches == 0 {
		return "", perRound, false
	}
	perRound = seqRoundWork{
		Batches: batches, Rounds: rounds,
		BatchesPerRound: float64(batches) / float64(rounds),
		FsyncsPerNode:   saveSum / float64(counted),
		SignsPerNode:    signSum / float64(counted),
	}
	line = fmt.Sprintf("sequencer: %d batches (%.1f orders each) finalized in %d rounds (%.1f batches per round); per node and round: %s fsyncs, %s BLS signatures",
		batches, float64(orders)/float64(batches), rounds, perRound.BatchesPerRound, strings.Join(fsyncs, "/"), strings.Join(signs, "/"))
	return line, perRound, true
}

// seqRoundWork is phaseWork's figures (JSON results).
type seqRoundWork struct {
	Batches         uint64  `json:"batches"`
	Rounds          uint64  `json:"rounds"`
	BatchesPerRound float64 `json:"batches_per_round"`
	FsyncsPerNode   float64 `json:"fsyncs_per_node_per_round"`
	SignsPerNode    float64 `json:"bls_signs_per_node_per_round"`
}
