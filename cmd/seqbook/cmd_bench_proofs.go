package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/ethereum/go-ethereum/common"

	"github.com/seqbook/seqbook/aggregator"
	"github.com/seqbook/seqbook/client"
	"github.com/seqbook/seqbook/client/cluster"
	"github.com/seqbook/seqbook/client/keys"
	"github.com/seqbook/seqbook/internal/localnet"
	"github.com/seqbook/seqbook/internal/localnet/load"
)

func init() {
	registerBench(benchmark{
		name:    "proofs",
		summary: "aggregated balance proofs from the replicas: latency p50/p90/p99 and proofs/s",
		run:     runBenchProofs,
	})
}

// Targets the benchmark reports against (three replicas on one machine).
const (
	proofsTargetP50Ms  = 10
	proofsTargetPerSec = 300
)

// proofsPhase is one measured phase, also the --json shape.
type proofsPhase struct {
	Name      string  `json:"name"`
	InFlight  int     `json:"in_flight"`
	Proofs    int     `json:"proofs"`
	Failed    int     `json:"failed"`
	PerSec    float64 `json:"proofs_per_sec"`
	P50Ms     float64 `json:"p50_ms"`
	P90Ms     float64 `json:"p90_ms"`
	P99Ms     float64 `json:"p99_ms"`
	AllSigned int     `json:"all_replicas_signed"` // proofs signed by every replica
	// CPU per proof during the phase, in ms: this process (aggregator and
	// load generator) and the network's processes (replicas and nodes,
	// when the benchmark started them). Unlike proofs/s, it does not depend
	// on what else the machine runs.
	CPUSelfMs  float64 `json:"cpu_self_ms_per_proof"`
	CPUOtherMs float64 `json:"cpu_network_ms_per_proof,omitempty"`
}

type proofsResult struct {
	Replicas   int           `json:"replicas"`
	Threshold  int           `json:"threshold"`
	Aggregator string        `json:"aggregator"`
	Phases     []proofsPhase `json:"phases"`
	Verified   int           `json:"verified"`
}

type proofsOpts struct {
	latencyDuration, duration, warmup time.Duration
	concurrency                       int
	// pids are the network's processes whose CPU time is counted (none
	// when running against --cluster).
	pids []int
}

// proofTarget is one (account, token) whose balance is proven.
type proofTarget struct {
	address common.Address
	token   string
}

func runBenchProofs(args []string) int {
	fs := flag.NewFlagSet("bench proofs", flag.ContinueOnError)
	nf := addNetFlags(fs, "", false)
	clusterPath := fs.String("cluster", "", "use the replicas of this running network instead of starting one")
	aggURL := fs.String("aggregator", "", "measure this running aggregator (http://host:port) instead of one started in this process")
	var o proofsOpts
	fs.DurationVar(&o.latencyDuration, "latency-duration", 5*time.Second, "length of the latency phase (one proof at a time)")
	fs.DurationVar(&o.duration, "duration", 10*time.Second, "length of the throughput phase")
	fs.DurationVar(&o.warmup, "warmup", 500*time.Millisecond, "leading part of each phase left out of the figures")
	fs.IntVar(&o.concurrency, "concurrency", 16, "proofs in flight in the throughput phase")
	accounts := fs.Int("accounts", 32, "bench traders whose USDT and ETH balances are proven in turn (plus the tutorial accounts)")
	jsonOut := fs.String("json", "", "also write the results to this file as JSON")
	keep := fs.Bool("keep", false, "keep the temporary data folder (keys, logs)")
	setUsage(fs, "Usage: seqbook bench proofs [flags]",
		"Starts a local network (or uses --cluster's replicas) and an aggregator (or uses",
		"--aggregator), then asks for balance quorum proofs: (1) one at a time, for latency;",
		"(2) --concurrency at a time, for proofs/s. Every proof is verified with the client SDK",
		"after the clock stops. Targets with three replicas: p50 <= 10 ms, >= 300 proofs/s.",
	)
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	if o.latencyDuration <= o.warmup || o.duration <= o.warmup || o.warmup < 0 || o.concurrency < 1 || o.concurrency > 1024 ||
		*accounts < 0 || *accounts > localnet.DefaultTraders {
		return fail("bench", fmt.Errorf("need --latency-duration and --duration > --warmup >= 0, 1 <= --concurrency <= 1024, 0 <= --accounts <= %d", localnet.DefaultTraders))
	}
	ctx, cancel := interruptContext()
	defer cancel()

	var c *cluster.Cluster
	var deaths atomic.Int64
	if *clusterPath != "" {
		var err error
		if c, err = cluster.Load(*clusterPath); err != nil {
			return fail("bench", err)
		}
	} else {
		fmt.Printf("bench: starting a local network (%d nodes, %d replicas)\n", *nf.nodes, *nf.replicas)
		n, done, err := throwawayNet(ctx, nf, "seqbook-bench-proofs-", *keep, os.Stdout, func(cfg *localnet.Config) {
			cfg.OnExit = func(localnet.Exit) { deaths.Add(1) }
			if *aggURL == "" {
				// The aggregator under test runs in this process.
				cfg.Kinds = []string{localnet.KindSequencer, localnet.KindReplica}
			}
		})
		if err != nil {
			return fail("bench", err)
		}
		defer done()
		c = n.Cluster
		for _, comp := range n.Components {
			if pid := n.PID(comp.ID); pid != 0 && comp.Kind != localnet.KindAggregator {
				o.pids = append(o.pids, pid)
			}
		}
	}

	base := *aggURL
	if base == "" {
		var stop func()
		var err error
		if base, stop, err = startAggregator(c); err != nil {
			return fail("bench", err)
		}
		defer stop()
		fmt.Printf("bench: aggregator in this process at %s (threshold %d of %d replicas)\n", base, c.ReplicaThreshold(), len(c.Replicas))
	}
	targets := proofTargets(*accounts)
	res, err := benchProofs(ctx, c, base, targets, o, os.Stdout)
	return finishBench(res, err, deaths.Load(), nil, *jsonOut)
}

// startAggregator serves an aggregator over c's replicas on a free
// loopback port. Its logs (replicas left out) go to stderr at warn level.
func startAggregator(c *cluster.Cluster) (string, func(), error) {
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	cfg := aggregator.DefaultConfig()
	agg, err := aggregator.New(c, aggregator.NewHTTPReplicas(c, nil, cfg.AnswerBytesMax), cfg, log)
	if err != nil {
		return "", nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	srv := &http.Server{Handler: agg.Handler(), ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	return "http://" + ln.Addr().String(), func() { srv.Close() }, nil
}

// proofTargets lists the balances to prove: the tutorial accounts' and the
// first n bench traders' USDT and ETH (all funded by a localnet genesis;
// an unfunded one proves a zero balance just the same).
func proofTargets(n int) []proofTarget {
	addrs := []common.Address{keys.TutorialUser1Address, keys.TutorialUser2Address}
	for i := 0; i < n; i++ {
		addrs = append(addrs, keys.Address(localnet.TraderKey(i)))
	}
	var out []proofTarget
	for _, a := range addrs {
		out = append(out, proofTarget{a, "USDT"}, proofTarget{a, "ETH"})
	}
	return out
}

// proofSample is one request's outcome.
type proofSample struct {
	start   time.Time
	latency time.Duration
	proof   *client.BalanceProof
	err     error
}

func benchProofs(ctx context.Context, c *cluster.Cluster, base string, targets []proofTarget, o proofsOpts, out io.Writer) (proofsResult, error) {
	res := proofsResult{Replicas: len(c.Replicas), Threshold: c.ReplicaThreshold(), Aggregator: base}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = o.concurrency + 4
	hc := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	defer tr.CloseIdleConnections()

	// One proof first: the network must be able to make one at all.
	if _, err := fetchProof(ctx, hc, base, targets[0]); err != nil {
		return res, fmt.Errorf("first proof: %w", err)
	}

	var all []proofSample
	for _, ph := range []struct {
		name     string
		inFlight int
		d        time.Duration
	}{{"latency", 1, o.latencyDuration}, {"throughput", o.concurrency, o.duration}} {
		fmt.Fprintf(out, "\nbench: %s: %d in flight for %s\n", ph.name, ph.inFlight, ph.d)
		self0, other0 := selfCPU(), processesCPU(o.pids)
		samples := runProofPhase(ctx, hc, base, targets, ph.inFlight, ph.d, ph.name, out)
		selfUsed, otherUsed := selfCPU()-self0, processesCPU(o.pids)-other0
		if ctx.Err() != nil {
			return res, ctx.Err()
		}
		p := summarizeProofs(ph.name, ph.inFlight, samples, o.warmup, len(c.Replicas))
		if n := len(samples); n > 0 {
			p.CPUSelfMs = ms(selfUsed) / float64(n)
			if len(o.pids) > 0 {
				p.CPUOtherMs = ms(otherUsed) / float64(n)
			}
		}
		if p.Proofs == 0 {
			return res, fmt.Errorf("%s phase: no proof (%d failed; first error: %v)", ph.name, p.Failed, firstErr(samples))
		}
		res.Phases = append(res.Phases, p)
		all = append(all, samples...)
	}

	// Every proof is checked as a bridge would, off the clock.
	for _, s := range all {
		if s.err != nil {
			continue
		}
		if err := client.VerifyBalanceProof(c, s.proof); err != nil {
			return res, fmt.Errorf("the aggregator served a proof that does not verify: %w (%+v)", err, s.proof)
		}
		res.Verified++
	}
	fmt.Fprintf(out, "\nbench: all %d proofs verified with client.VerifyBalanceProof\n\n", res.Verified)
	printProofsTable(out, res)
	return res, nil
}

func fetchProof(ctx context.Context, hc *http.Client, base string, t proofTarget) (*client.BalanceProof, error) {
	u := base + "/aggregate_balance?" + url.Values{"address": {t.address.Hex()}, "token": {t.token}}.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("HTTP %d: %s", resp.StatusCode, body)
	}
	var p client.BalanceProof
	if err := json.Unmarshal(body, &p); err != nil {
		return nil, err
	}
	return &p, nil
}

// runProofPhase keeps inFlight requests going for d, cycling through the
// targets, with a progress line per second.
func runProofPhase(ctx context.Context, hc *http.Client, base string, targets []proofTarget, inFlight int, d time.Duration, name string, out io.Writer) []proofSample {
	end := time.Now().Add(d)
	var next atomic.Int64
	var done, failed atomic.Int64
	results := make([][]proofSample, inFlight)
	var wg sync.WaitGroup
	for w := 0; w < inFlight; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for ctx.Err() == nil && time.Now().Before(end) {
				t := targets[int(next.Add(1)-1)%len(targets)]
				start := time.Now()
				p, err := fetchProof(ctx, hc, base, t)
				results[w] = append(results[w], proofSample{start: start, latency: time.Since(start), proof: p, err: err})
				done.Add(1)
				if err != nil {
					failed.Add(1)
				}
			}
		}(w)
	}
	stop := make(chan struct{})
	var pw sync.WaitGroup
	pw.Add(1)
	go func() {
		defer pw.Done()
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		start, last := time.Now(), int64(0)
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			n := done.Load()
			fmt.Fprintf(out, "  %s %3.0fs  proofs %d  failed %d  last second %d/s\n", name, time.Since(start).Seconds(), n, failed.Load(), n-last)
			last = n
		}
	}()
	wg.Wait()
	close(stop)
	pw.Wait()
	var all []proofSample
	for _, r := range results {
		all = append(all, r...)
	}
	return all
}

// summarizeProofs computes a phase's figures from the samples that started
// after the warm-up.
func summarizeProofs(name string, inFlight int, samples []proofSample, warmup time.Duration, replicas int) proofsPhase {
	p := proofsPhase{Name: name, InFlight: inFlight}
	if len(samples) == 0 {
		return p
	}
	first, last := samples[0].start, samples[0].start.Add(samples[0].latency)
	for _, s := range samples {
		if s.start.Before(first) {
			first = s.start
		}
		if e := s.start.Add(s.latency); e.After(last) {
			last = e
		}
	}
	from := first.Add(warmup)
	var ds []time.Duration
	for _, s := range samples {
		if s.start.Before(from) {
			continue
		}
		if s.err != nil {
			p.Failed++
			continue
		}
		ds = append(ds, s.latency)
		if len(s.proof.Signers) == replicas {
			p.AllSigned++
		}
	}
	p.Proofs = len(ds)
	if p.Proofs == 0 || !last.After(from) {
		return p
	}
	slices.Sort(ds)
	p.PerSec = float64(p.Proofs) / last.Sub(from).Seconds()
	p.P50Ms = ms(load.Percentile(ds, 50))
	p.P90Ms = ms(load.Percentile(ds, 90))
	p.P99Ms = ms(load.Percentile(ds, 99))
	return p
}

func firstErr(samples []proofSample) error {
	for _, s := range samples {
		if s.err != nil {
			return s.err
		}
	}
	return errors.New("none")
}

func printProofsTable(out io.Writer, res proofsResult) {
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "phase\tin flight\tproofs\tproofs/s\tp50 ms\tp90 ms\tp99 ms\tfailed\tall signed\tcpu ms/proof\t")
	for _, p := range res.Phases {
		cpu := fmt.Sprintf("%.2f", p.CPUSelfMs)
		if p.CPUOtherMs > 0 {
			cpu = fmt.Sprintf("%.2f + %.2f", p.CPUSelfMs, p.CPUOtherMs)
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%.0f\t%.2f\t%.2f\t%.2f\t%d\t%d\t%s\t\n", p.Name, p.InFlight, p.Proofs, p.PerSec, p.P50Ms, p.P90Ms, p.P99Ms, p.Failed, p.AllSigned, cpu)
	}
	tw.Flush()
	verdict := func(ok bool) string {
		if ok {
			return "met"
		}
		return "MISSED"
	}
	lat, thr := res.Phases[0], res.Phases[len(res.Phases)-1]
	fmt.Fprintf(out, "targets (%d replicas, threshold %d): p50 <= %d ms: %.2f ms, %s; >= %d proofs/s: %.0f/s, %s\n",
		res.Replicas, res.Threshold, proofsTargetP50Ms, lat.P50Ms, verdict(lat.P50Ms <= proofsTargetP50Ms),
		proofsTargetPerSec, thr.PerSec, verdict(thr.PerSec >= proofsTargetPerSec))
	fmt.Fprintf(out, "(figures exclude a warm-up at the start of each phase; 'all signed': proofs signed by every replica;\n"+
		" cpu: this process (aggregator + load generator) + the network's replicas and nodes, per proof)\n")
	if thr.CPUOtherMs > 0 {
		total := thr.CPUSelfMs + thr.CPUOtherMs
		fmt.Fprintf(out, "cpu bound: %.2f ms of CPU per proof in all, so at most %.0f proofs/s on %d otherwise idle cores (load average now %s)\n",
			total, float64(runtime.NumCPU())*1000/total, runtime.NumCPU(), loadAverage())
	}
}

// selfCPU is this process's CPU time so far (user + system).
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// processesCPU sums the CPU time so far of processes by pid, from
// /proc/PID/stat (Linux; elsewhere, and for a process that is gone, 0).
func processesCPU(pids []int) time.Duration {
	const clockTicksPerSec = 100 // USER_HZ, fixed at 100 on Linux
	var total time.Duration
	for _, pid := range pids {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		if err != nil {
			continue
		}
		// Fields after "(comm)": state is field 3; utime and stime are 14
		// and 15, so 11 and 12 after the closing parenthesis.
		i := bytes.LastIndexByte(b, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(b[i+1:]))
		if len(f) < 13 {
			continue
		}
		ut, err1 := strconv.ParseInt(f[11], 10, 64)
		st, err2 := strconv.ParseInt(f[12], 10, 64)
		if err1 != nil || err2 != nil {
			continue
		}
		total += time.Duration(ut+st) * time.Second / clockTicksPerSec
	}
	return total
}

// loadAverage is the 1-minute load average, for reading the figures.
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	if f := strings.Fields(string(b)); len(f) > 0 {
		return f[0]
	}
	return "unknown"
}
