package main

import (
	"context"
	"crypto/ecdsa"
	"errors"
	"flag"
	"fmt"
	"os"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/seqbook/seqbook/client/cluster"
	"github.com/seqbook/seqbook/client/eip712"
	"github.com/seqbook/seqbook/client/ethsig"
	"github.com/seqbook/seqbook/client/obapi"
	"github.com/seqbook/seqbook/internal/localnet"
	"github.com/seqbook/seqbook/internal/localnet/load"
)

func init() {
	registerBench(benchmark{
		name:    "e2e",
		summary: "signed orders through replicas, sequencer and back: saturation orders/s and latency to applied-on-all-replicas",
		run:     runBenchE2E,
	})
}

// e2eResult is exactly the --json shape the benchmark docs promise.
type e2eResult struct {
	Replicas   int `json:"replicas"`
	Saturation struct {
		OrdersPerSec float64 `json:"orders_per_sec"`
	} `json:"saturation"`
	LatencyAtRate struct {
		Rate  float64 `json:"rate"`
		P50Ms float64 `json:"p50_ms"`
		P90Ms float64 `json:"p90_ms"`
		P99Ms float64 `json:"p99_ms"`
	} `json:"latency_at_rate"`
	// Sequencer is the sequencer's work in the saturation phase (absent
	// when its nodes publish no work counters).
	Sequencer *seqRoundWork `json:"sequencer_saturation,omitempty"`
	// SequencerLatency is the same over the latency phase.
	SequencerLatency *seqRoundWork `json:"sequencer_latency,omitempty"`
}

type e2eOpts struct {
	duration, latencyDuration, drain, warmup, poll time.Duration
	orders, traders, concurrency                   int
	rate                                           float64
	subscribers                                    int
	// profile, when not nil, profiles every process of the network over
	// the saturation phase (--cpuprofile).
	profile *phaseProfile
}

func runBenchE2E(args []string) int {
	fs := flag.NewFlagSet("bench e2e", flag.ContinueOnError)
	nf := addNetFlags(fs, "", false)
	clusterPath := fs.String("cluster", "", "run against this running network's cluster file instead of starting one (its genesis must fund the bench traders: seqbook localnet does)")
	var o e2eOpts
	fs.DurationVar(&o.duration, "duration", 10*time.Second, "length of the saturation phase")
	fs.DurationVar(&o.latencyDuration, "latency-duration", 10*time.Second, "length of the fixed-rate latency phase")
	fs.DurationVar(&o.drain, "drain", 60*time.Second, "how long to wait for accepted orders to be applied everywhere after each phase")
	fs.DurationVar(&o.warmup, "warmup", time.Second, "leading part of the latency phase left out of the percentiles")
	fs.DurationVar(&o.poll, "poll", 0, "0: the latency phase follows each replica's applied index on its live feed (GET /ws, finality channel: a message per applied batch, sent once its page is committed); > 0: read it every this often instead (the latency resolution then; faster polling costs the replicas CPU)")
	fs.IntVar(&o.orders, "orders", 30000, "orders signed for the saturation phase (it ends early if they run out)")
	fs.IntVar(&o.traders, "signers", 64, "bench trader keys signing the orders (traders 0..n-1 of the genesis; at most --traders)")
	fs.IntVar(&o.concurrency, "concurrency", 256, "requests in flight in the saturation phase (enough to keep the network busy: with too few, the phase measures the time an order takes to be answered, not what the network can do)")
	fs.Float64Var(&o.rate, "rate", 0, "orders/s of the latency phase (0: half the measured saturation)")
	fs.IntVar(&o.subscribers, "subscribers", 0, "live feed clients (GET /ws, book and trades of the bench market) kept open on the replicas during the run")
	jsonOut := fs.String("json", "", "also write the results to this file as JSON")
	profileDir := fs.String("cpuprofile", "", "write a CPU profile of each process of the network over exactly the saturation phase to this folder (<kind>-<pid>.pprof, kind sequencer, replica or aggregator; read with go tool pprof); not with --cluster")
	keep := fs.Bool("keep", false, "keep the temporary data folder (keys, logs)")
	setUsage(fs, "Usage: seqbook bench [e2e] [flags]",
		"Starts a local network (or uses --cluster), signs EIP-712 orders from many funded traders",
		"before the clock starts, then measures (1) saturation: accepted orders per second, counted",
		"until every replica has applied all of them and agrees on the state digest; (2) latency at a",
		"fixed rate: from each order's scheduled send time until every replica has applied its batch.",
		"Also prints the signature ceiling: all-core ecrecover/s divided by the replicas.",
	)
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	funded := *nf.traders
	if *clusterPath != "" {
		funded = localnet.DefaultTraders // what seqbook localnet funds unless told otherwise
	}
	if o.duration <= 0 || o.latencyDuration <= o.warmup || o.orders < 2 || o.traders < 2 || o.traders > funded ||
		o.concurrency < 1 || o.concurrency > 4096 || o.rate < 0 || (o.poll != 0 && o.poll < time.Millisecond) || o.subscribers < 0 || o.subscribers > 1000 {
		return fail("bench", fmt.Errorf("need --duration > 0, --latency-duration > --warmup, --orders >= 2, 2 <= --signers <= %d, 1 <= --concurrency <= 4096, --rate >= 0, --poll 0 or >= 1ms, 0 <= --subscribers <= 1000", funded))
	}
	if *profileDir != "" {
		if *clusterPath != "" {
			return fail("bench", errors.New("--cpuprofile profiles the network the bench starts, not one given with --cluster"))
		}
		if err := os.MkdirAll(*profileDir, 0o755); err != nil {
			return fail("bench", fmt.Errorf("--cpuprofile: %w", err))
		}
		o.profile = &phaseProfile{dir: *profileDir}
	}
	ctx, cancel := interruptContext()
	defer cancel()

	var c *cluster.Cluster
	pids := map[string][]int{} // the network's processes by kind, whose CPU time is counted
	var deaths atomic.Int64
	if *clusterPath != "" {
		var err error
		if c, err = cluster.Load(*clusterPath); err != nil {
			return fail("bench", err)
		}
	} else {
		fmt.Printf("bench: starting a local network (%d nodes, %d replicas, aggregator)\n", *nf.nodes, *nf.replicas)
		n, done, err := throwawayNetKeep(ctx, nf, "seqbook-bench-", keep, os.Stdout, func(cfg *localnet.Config) {
			cfg.OnExit = func(localnet.Exit) { deaths.Add(1) }
			if o.profile != nil {
				cfg.Env = append(cfg.Env, o.profile.env()...)
			}
		})
		if err != nil {
			return fail("bench", err)
		}
		defer done()
		c = n.Cluster
		pids = networkPIDs(n)
		if o.profile != nil {
			o.profile.pids = pids
		}
	}
	res, err := benchE2E(ctx, c, o, pids)
	return finishBench(res, err, deaths.Load(), keep, *jsonOut)
}

func benchE2E(ctx context.Context, c *cluster.Cluster, o e2eOpts, pids map[string][]int) (e2eResult, error) {
	var res e2eResult
	urls := make([]string, len(c.Replicas))
	for i, r := range c.Replicas {
		urls[i] = "http://" + r.HTTP
	}
	res.Replicas = len(urls)
	nodeURLs := make([]string, len(c.Nodes))
	for i, m := range c.Nodes {
		nodeURLs[i] = "http://" + m.HTTP
	}
	h := load.NewHTTP(60 * time.Second)
	if _, err := load.WaitConverged(ctx, h, urls, 0); err != nil {
		return res, fmt.Errorf("before the benchmark: %w", err)
	}

	traders := make([]*ecdsa.PrivateKey, o.traders)
	for i := range traders {
		traders[i] = localnet.TraderKey(i)
	}
	latencyOrders := int(float64(o.orders) * o.latencyDuration.Seconds() / o.duration.Seconds())
	if o.rate > 0 {
		latencyOrders = int(o.rate*o.latencyDuration.Seconds()) + 1
	}
	nonceBase := uint64(time.Now().UnixNano())
	expiry := uint64(time.Now().Add(50 * time.Minute).Unix())
	t0 := time.Now()
	fmt.Printf("bench: signing %d orders with %d trader keys on %d cores\n", o.orders+latencyOrders, o.traders, runtime.GOMAXPROCS(0))
	all, err := load.Sign(load.Plan{ChainID: c.ChainID, Traders: traders, Count: o.orders + latencyOrders, NonceBase: nonceBase, Expiry: expiry})
	if err != nil {
		return res, err
	}
	satOrders, latOrders := all[:o.orders], all[o.orders:]
	fmt.Printf("bench: signed in %.1fs\n", time.Since(t0).Seconds())

	ceiling := signatureCeiling(time.Second)
	fmt.Printf("bench: signature ceiling: %.0f ecrecover/s on %d cores = %.0f orders/s per replica set of %d\n",
		ceiling, runtime.GOMAXPROCS(0), ceiling/float64(len(urls)), len(urls))
	printBLSCosts("bench")

	var feed *feedSubscribers
	if o.subscribers > 0 {
		if feed, err = startFeedSubscribers(ctx, urls, o.subscribers); err != nil {
			return res, err
		}
		defer feed.stop()
		fmt.Printf("bench: %d live feed subscribers connected\n", o.subscribers)
	}

	// (1) Saturation.
	fmt.Printf("\nbench: saturation: %d requests in flight for %s\n", o.concurrency, o.duration)
	sat := &load.Sender{H: h, Replicas: urls, InFlightMax: o.concurrency}
	stopProgress := progressLine(ctx, "saturation", &sat.Counters, h, urls)
	kinds := []string{localnet.KindSequencer, localnet.KindReplica, localnet.KindAggregator}
	cpu0 := map[string]time.Duration{}
	for _, k := range kinds {
		cpu0[k] = processesCPU(pids[k])
	}
	if o.profile != nil {
		if err := o.profile.start(); err != nil {
			return res, err
		}
	}
	work0 := nodeWork(ctx, h, nodeURLs)
	start := time.Now()
	if feed != nil {
		feed.reset()
	}
	sent, outcomes := sat.ClosedLoop(ctx, satOrders, start.Add(o.duration))
	sendEnd := time.Now()
	stopProgress()
	if ctx.Err() != nil {
		return res, ctx.Err()
	}
	accepted, refusals := summarize(outcomes)
	fmt.Printf("bench: sent %d in %.1fs, accepted %d, refused %d%s; waiting until every replica has applied them\n",
		sent, sendEnd.Sub(start).Seconds(), accepted, sent-accepted, refusals)
	if accepted == 0 {
		return res, errors.New("no order was accepted")
	}
	dctx, dcancel := context.WithTimeout(ctx, o.drain)
	conv, err := load.WaitConverged(dctx, h, urls, 0)
	dcancel()
	if err != nil {
		return res, fmt.Errorf("after the saturation phase: %w", err)
	}
	end := time.Now()
	workLine, work, workOK := phaseWork(work0, nodeWork(ctx, h, nodeURLs), accepted)
	var cpuPerOrder time.Duration
	var cpuSplit []string
	for _, k := range kinds {
		used := (processesCPU(pids[k]) - cpu0[k]) / time.Duration(accepted)
		cpuPerOrder += used
		cpuSplit = append(cpuSplit, fmt.Sprintf("%d %s %.3f ms", len(pids[k]), k, float64(used.Microseconds())/1000))
	}
	if o.profile != nil {
		files, err := o.profile.stop(30 * time.Second)
		if err != nil {
			return res, err
		}
		fmt.Printf("bench: %d CPU profiles of the saturation phase (%d accepted orders) in %s\n", len(files), accepted, o.profile.dir)
	}
	if feed != nil {
		fmt.Println("bench: " + feed.report())
	}
	res.Saturation.OrdersPerSec = float64(accepted) / end.Sub(start).Seconds()
	fmt.Printf("bench: all replicas at index %d, digest %s, %.1fs after the first order\n", conv.Index, load.ShortHash(conv.Digest), end.Sub(start).Seconds())
	if workOK {
		fmt.Println("bench: " + workLine)
		res.Sequencer = &work
	}
	if err := checkApplied(ctx, h, urls, satOrders[:sent], outcomes, 200); err != nil {
		return res, err
	}

	// (2) Latency at a fixed rate.
	rate := o.rate
	if rate == 0 {
		rate = res.Saturation.OrdersPerSec / 2
	}
	if n := int(rate*o.latencyDuration.Seconds()) + 1; n < len(latOrders) {
		latOrders = latOrders[:n]
	}
	res.LatencyAtRate.Rate = rate
	fmt.Printf("\nbench: latency: %.0f orders/s for %s (%d orders), each to applied-on-all-replicas\n", rate, o.latencyDuration, len(latOrders))
	tr := load.NewTracker(h, urls)
	tctx, tcancel := context.WithCancel(ctx)
	defer tcancel()
	trackDone := make(chan struct{})
	go func() {
		defer close(trackDone)
		if o.poll > 0 {
			tr.Run(tctx, o.poll)
			return
		}
		if err := tr.Follow(tctx); err != nil {
			fmt.Fprintln(os.Stderr, "bench: following the replicas' applied index:", err)
		}
	}()
	// Every replica's index known before the first order leaves.
	for wait := time.Now(); !tr.Answered(); {
		select {
		case <-trackDone:
			return res, errors.New("could not follow the replicas' applied index (see above)")
		case <-ctx.Done():
			return res, ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
		if time.Since(wait) > 10*time.Second {
			return res, errors.New("the replicas' live feeds did not answer within 10s")
		}
	}
	lat := &load.Sender{H: h, Replicas: urls, Wait: true, InFlightMax: 4096}
	stopProgress = progressLine(ctx, "latency", &lat.Counters, h, urls)
	for _, k := range kinds {
		cpu0[k] = processesCPU(pids[k])
	}
	lwork0 := nodeWork(ctx, h, nodeURLs)
	if feed != nil {
		feed.reset()
	}
	lstart := time.Now()
	louts := lat.OpenLoop(ctx, latOrders, rate)
	stopProgress()
	var maxIndex uint64
	for _, x := range louts {
		if x.Accepted && x.Index > maxIndex {
			maxIndex = x.Index
		}
	}
	// Keep tracking until every replica has applied the last order.
	for tr.MinApplied() < maxIndex && ctx.Err() == nil && time.Since(lstart) < o.latencyDuration+o.drain {
		sleepCtx(ctx, 10*time.Millisecond)
	}
	tcancel()
	<-trackDone
	if feed != nil {
		fmt.Println("bench: latency phase: " + feed.report())
	}
	latAccepted, _ := summarize(louts)
	if line, work, ok := phaseWork(lwork0, nodeWork(ctx, h, nodeURLs), latAccepted); ok {
		fmt.Println("bench: latency phase " + line)
		res.SequencerLatency = &work
	}
	if latAccepted > 0 && len(pids) > 0 {
		// At a fixed rate batches are alike from run to run, so this is
		// the figure to compare runs with (e.g. with and without
		// --subscribers).
		var split []string
		var perRound string
		for _, k := range kinds {
			total := processesCPU(pids[k]) - cpu0[k]
			used := total / time.Duration(latAccepted)
			split = append(split, fmt.Sprintf("%d %s %.3f ms", len(pids[k]), k, float64(used.Microseconds())/1000))
			if w := res.SequencerLatency; w != nil && w.Rounds > 0 && k == localnet.KindSequencer {
				// A round's cost is mostly fixed (signatures, checks, a
				// save per node), so this says what the load's rounds cost.
				perRound = fmt.Sprintf("; the sequencer's CPU per round: %.2f ms", float64((total/time.Duration(w.Rounds)).Microseconds())/1000)
			}
		}
		fmt.Printf("bench: latency phase CPU per order at %.0f orders/s: %s%s\n", rate, strings.Join(split, ", "), perRound)
	}
	var ds, answered []time.Duration
	lost := 0
	for _, x := range louts {
		if !x.Accepted || x.Scheduled.Sub(lstart) < o.warmup {
			if !x.Accepted {
				lost++
			}
			continue
		}
		everywhere, ok := tr.AppliedEverywhere(x.Index)
		if !ok {
			lost++
			continue
		}
		answered = append(answered, x.Answered.Sub(x.Scheduled))
		if x.Answered.After(everywhere) {
			everywhere = x.Answered
		}
		ds = append(ds, everywhere.Sub(x.Scheduled))
	}
	if len(ds) == 0 {
		return res, fmt.Errorf("no latency sample: %d orders sent, %d not accepted or not applied everywhere", len(louts), lost)
	}
	slices.Sort(ds)
	res.LatencyAtRate.P50Ms = ms(load.Percentile(ds, 50))
	res.LatencyAtRate.P90Ms = ms(load.Percentile(ds, 90))
	res.LatencyAtRate.P99Ms = ms(load.Percentile(ds, 99))
	slices.Sort(answered)
	fmt.Printf("bench: the ?wait=finalized answer (applied on the replica that took the order) came after p50 %.1f ms, p99 %.1f ms\n",
		ms(load.Percentile(answered, 50)), ms(load.Percentile(answered, 99)))
	if lost > 0 {
		fmt.Printf("bench: %d of %d latency orders were refused or never seen applied everywhere\n", lost, len(louts))
	}

	fmt.Println()
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "replicas\tsaturation orders/s\tlatency rate/s\tp50 ms\tp90 ms\tp99 ms\tsig ceiling orders/s\t")
	fmt.Fprintf(tw, "%d\t%.0f\t%.0f\t%.1f\t%.1f\t%.1f\t%.0f\t\n", res.Replicas, res.Saturation.OrdersPerSec, rate,
		res.LatencyAtRate.P50Ms, res.LatencyAtRate.P90Ms, res.LatencyAtRate.P99Ms, ceiling/float64(len(urls)))
	tw.Flush()
	resolution := "each replica's applied index from its live feed"
	if o.poll > 0 {
		resolution = fmt.Sprintf("resolution %s, the applied-index poll interval", o.poll)
	}
	fmt.Printf("(latency samples: %d after a %s warm-up; %s; sig ceiling: %.0f ecrecover/s on %d cores / %d replicas)\n",
		len(ds), o.warmup, resolution, ceiling, runtime.GOMAXPROCS(0), len(urls))
	if cpuPerOrder > 0 {
		// On a machine other work is loading, this says what the network
		// would do with the cores to itself.
		fmt.Printf("cpu: the network used %.3f ms of CPU per order in the saturation phase (%s), so at most %.0f orders/s on %d otherwise idle cores (load average now %s)\n",
			float64(cpuPerOrder.Microseconds())/1000, strings.Join(cpuSplit, ", "), float64(runtime.NumCPU())*float64(time.Second)/float64(cpuPerOrder), runtime.NumCPU(), loadAverage())
	}
	return res, nil
}

// summarize counts accepted outcomes and describes the refusals by cause.
func summarize(outs []load.Outcome) (int, string) {
	accepted := 0
	causes := map[string]int{}
	for _, x := range outs {
		if x.Accepted {
			accepted++
			continue
		}
		k := "network error"
		if x.Code != 0 {
			k = fmt.Sprintf("HTTP %d", x.Code)
		}
		causes[k]++
	}
	if len(causes) == 0 {
		return accepted, ""
	}
	keys := make([]string, 0, len(causes))
	for k := range causes {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s: %d", k, causes[k]))
	}
	for _, x := range outs {
		if !x.Accepted {
			parts = append(parts, "first: "+x.Err)
			break
		}
	}
	return accepted, " (" + strings.Join(parts, ", ") + ")"
}

// checkApplied reads up to sample accepted orders back from every replica:
// each must be known and applied (not pending, not rejected).
func checkApplied(ctx context.Context, h *load.HTTP, urls []string, orders []load.Signed, outs []load.Outcome, sample int) error {
	var ids []string
	for k, x := range outs {
		if x.Accepted {
			ids = append(ids, orders[k].ID)
		}
	}
	step := 1
	if len(ids) > sample {
		step = len(ids) / sample
	}
	checked := 0
	for i := 0; i < len(ids); i += step {
		for _, u := range urls {
			o, err := h.Order(ctx, u, ids[i])
			if err != nil {
				return fmt.Errorf("accepted order %s on %s: %w", ids[i], u, err)
			}
			if o.Status == obapi.StatusPending || o.Status == obapi.StatusRejected || o.Status == "" {
				return fmt.Errorf("accepted order %s is %q on %s (%s)", ids[i], o.Status, u, o.Reason)
			}
		}
		checked++
	}
	fmt.Printf("bench: %d accepted orders read back from all %d replicas: all applied\n", checked, len(urls))
	return nil
}

// progressLine prints a line per second until stopped.
func progressLine(ctx context.Context, phase string, cs *load.Counters, h *load.HTTP, urls []string) (stop func()) {
	pctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		start := time.Now()
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-pctx.Done():
				return
			case <-t.C:
			}
			var idx []string
			for _, u := range urls {
				qctx, qcancel := context.WithTimeout(pctx, 500*time.Millisecond)
				i, err := h.AppliedIndex(qctx, u) // not GET /state: its digest would load the replicas being measured
				qcancel()
				if err != nil {
					idx = append(idx, "?")
				} else {
					idx = append(idx, fmt.Sprint(i))
				}
			}
			fmt.Printf("  %s %4.0fs  sent %d  accepted %d  refused %d  applied index %s\n", phase, time.Since(start).Seconds(),
				cs.Sent.Load(), cs.Accepted.Load(), cs.Refused.Load(), strings.Join(idx, "/"))
		}
	}()
	return func() { cancel(); wg.Wait() }
}

// signatureCeiling measures secp256k1 public-key recoveries per second on
// all cores: every replica recovers every order's signer, so on one machine
// replicas cannot apply more orders per second than this divided by their
// number.
func signatureCeiling(d time.Duration) float64 {
	key := localnet.TraderKey(0)
	digest := eip712.Keccak256([]byte("seqbook signature ceiling"))
	sig, err := ethsig.Sign(key, digest)
	if err != nil {
		return 0
	}
	var total atomic.Int64
	var wg sync.WaitGroup
	stop := time.Now().Add(d)
	start := time.Now()
	for w := 0; w < runtime.GOMAXPROCS(0); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n := int64(0)
			for time.Now().Before(stop) {
				for i := 0; i < 64; i++ {
					ethsig.Recover(digest, sig)
				}
				n += 64
			}
			total.Add(n)
		}()
	}
	wg.Wait()
	return float64(total.Load()) / time.Since(start).Seconds()
}
