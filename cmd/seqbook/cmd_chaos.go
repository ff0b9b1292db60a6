package main

import (
	"context"
	"crypto/ecdsa"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/seqbook/seqbook/internal/localnet"
	"github.com/seqbook/seqbook/internal/localnet/load"
)

func init() {
	register(command{
		name:    "chaos",
		summary: "crash the leader, a follower and a replica under load; check agreement, exactly-once and finality gaps",
		run:     runChaos,
	})
}

// chaosSummary is the result, printed and written by --json.
type chaosSummary struct {
	Sent             int      `json:"sent"`
	Accepted         int      `json:"accepted"`
	Applied          int      `json:"applied"`
	Trades           int      `json:"trades"`
	MaxFinalityGapMs int64    `json:"max_finality_gap_ms"`
	FinalityBoundMs  int64    `json:"finality_bound_ms"`
	Views            []uint64 `json:"views"`
	FinalIndex       uint64   `json:"final_index"`
	StateDigest      string   `json:"state_digest"`
	Kills            []string `json:"kills"`
	Failures         []string `json:"failures"`
	OK               bool     `json:"ok"`
}

func runChaos(args []string) int {
	fs := flag.NewFlagSet("chaos", flag.ContinueOnError)
	nf := addNetFlags(fs, "", false)
	duration := fs.Duration("duration", 60*time.Second, "how long the load runs; the three crashes are spread over it")
	rate := fs.Float64("rate", 40, "signed orders per second, spread over all replicas")
	down := fs.Duration("down", 3*time.Second, "how long each crashed component stays down")
	bound := fs.Duration("finality-bound", 15*time.Second, "largest finality gap allowed (docs/operations.md)")
	drain := fs.Duration("drain", 90*time.Second, "how long to wait for the replicas to agree after the load")
	traders := fs.Int("signers", 16, "bench trader keys signing the orders (at most --traders)")
	jsonOut := fs.String("json", "", "also write the summary to this file as JSON")
	keep := fs.Bool("keep", false, "keep the temporary data folder (keys, logs)")
	setUsage(fs, "Usage: seqbook chaos [flags]",
		"Starts a local network and sends it signed orders at --rate for --duration. Meanwhile it",
		"SIGKILLs the current leader, then a follower node, then a replica, restarting each after",
		"--down. Afterwards every replica must report the same state digest at the same index,",
		"every order a replica accepted must be applied exactly once on every replica, and no gap",
		"between finalizations may exceed --finality-bound. Exits non-zero otherwise.",
	)
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	if *duration < 3**down || *rate <= 0 || *rate > 10000 || *traders < 2 || *traders > *nf.traders || *bound <= 0 {
		return fail("chaos", fmt.Errorf("need --duration >= 3×--down, 0 < --rate <= 10000, 2 <= --signers <= %d, --finality-bound > 0", *nf.traders))
	}
	ctx, cancel := interruptContext()
	defer cancel()

	fmt.Printf("chaos: starting a local network (%d nodes, %d replicas, aggregator)\n", *nf.nodes, *nf.replicas)
	var deathMu sync.Mutex
	var deaths []string
	n, done, err := throwawayNetKeep(ctx, nf, "seqbook-chaos-", keep, os.Stdout, func(c *localnet.Config) {
		c.OnExit = func(e localnet.Exit) { deathMu.Lock(); deaths = append(deaths, e.ID); deathMu.Unlock() }
	})
	if err != nil {
		return fail("chaos", err)
	}
	defer done()
	n.WriteEndpoints(os.Stdout)

	sum := chaos(ctx, n, *duration, *rate, *down, *bound, *drain, *traders)
	deathMu.Lock()
	for _, id := range deaths {
		sum.Failures = append(sum.Failures, id+" died without being killed (report above)")
	}
	deathMu.Unlock()
	sum.OK = len(sum.Failures) == 0

	fmt.Printf("\nchaos summary\n")
	fmt.Printf("  orders sent %d, accepted %d, applied on every replica %d, trades %d\n", sum.Sent, sum.Accepted, sum.Applied, sum.Trades)
	fmt.Printf("  crashes: %s\n", strings.Join(sum.Kills, "; "))
	fmt.Printf("  views seen: %v\n", sum.Views)
	fmt.Printf("  max finality gap %d ms (bound %d ms)\n", sum.MaxFinalityGapMs, sum.FinalityBoundMs)
	fmt.Printf("  final state: index %d, digest %s on every replica\n", sum.FinalIndex, sum.StateDigest)
	if *jsonOut != "" {
		if err := writeJSONFile(*jsonOut, sum); err != nil {
			return fail("chaos", err)
		}
	}
	if !sum.OK {
		for _, f := range sum.Failures {
			fmt.Printf("  FAIL: %s\n", f)
		}
		*keep = true
		return fail("chaos", fmt.Errorf("%d check(s) failed", len(sum.Failures)))
	}
	fmt.Println("chaos: ok")
	return 0
}

// chaos runs the load, the crashes and the checks; failures are collected
// in the summary rather than stopping at the first.
func chaos(ctx context.Context, n *localnet.Network, duration time.Duration, rate float64, down, bound, drain time.Duration, traderCount int) chaosSummary {
	sum := chaosSummary{FinalityBoundMs: bound.Milliseconds()}
	failf := func(format string, a ...any) {
		msg := fmt.Sprintf(format, a...)
		fmt.Printf("chaos: FAIL %s\n", msg)
		sum.Failures = append(sum.Failures, msg)
	}
	began := time.Now()
	logf := func(format string, a ...any) {
		fmt.Printf("[%5.1fs] %s\n", time.Since(began).Seconds(), fmt.Sprintf(format, a...))
	}
	h := load.NewHTTP(10 * time.Second)
	urls := n.ReplicaURLs()

	traders := make([]*ecdsa.PrivateKey, traderCount)
	for i := range traders {
		traders[i] = localnet.TraderKey(i)
	}
	count := int(rate*duration.Seconds()) + 1
	orders, err := load.Sign(load.Plan{ChainID: n.Cluster.ChainID, Traders: traders, Count: count,
		NonceBase: uint64(time.Now().UnixNano()), Expiry: uint64(time.Now().Add(50 * time.Minute).Unix())})
	if err != nil {
		failf("signing: %v", err)
		return sum
	}
	logf("signed %d orders; load %.0f orders/s for %s", count, rate, duration)

	// Finality monitor: the highest finalized index any node reports, and
	// the longest time it stood still while the load ran.
	mon := load.NewFinalityMonitor(h, n.NodeURLs(), n.Cluster.App)
	mctx, mcancel := context.WithCancel(ctx)
	monDone := make(chan struct{})
	go func() { mon.Run(mctx, 50*time.Millisecond); close(monDone) }()

	sender := &load.Sender{H: h, Replicas: urls, InFlightMax: 512}
	lctx, lcancel := context.WithTimeout(ctx, duration)
	defer lcancel()
	var outs []load.Outcome
	loadDone := make(chan struct{})
	go func() { outs = sender.OpenLoop(lctx, orders, rate); close(loadDone) }()

	// The crashes: leader at 15 %, a follower at 45 %, a replica at 70 %.
	type crash struct {
		at   float64 // fraction of the load's duration
		role string
		pick func() (string, error)
	}
	var lastLeader string
	crashes := []crash{
		{0.15, "leader", func() (string, error) {
			l, err := currentLeader(ctx, h, n)
			lastLeader = l
			return l, err
		}},
		{0.45, "follower", func() (string, error) {
			l, err := currentLeader(ctx, h, n)
			if err != nil {
				return "", err
			}
			// A follower that is neither the leader nor the node crashed
			// before (it may still be catching up).
			for _, m := range n.Cluster.Nodes {
				if m.ID != l && m.ID != lastLeader {
					return m.ID, nil
				}
			}
			return "", errors.New("no follower to crash")
		}},
		{0.70, "replica", func() (string, error) { return n.Cluster.Replicas[len(n.Cluster.Replicas)-1].ID, nil }},
	}
	for _, c := range crashes {
		wait := time.Until(began.Add(time.Duration(c.at * float64(duration))))
		sleepCtx(lctx, wait)
		if lctx.Err() != nil {
			break
		}
		id, err := c.pick()
		if err != nil {
			failf("choosing whom to crash: %v", err)
			continue
		}
		role := c.role
		logf("SIGKILL %s (%s); sent %d accepted %d so far", id, role, sender.Counters.Sent.Load(), sender.Counters.Accepted.Load())
		if err := n.Kill(id); err != nil {
			failf("killing %s: %v", id, err)
			continue
		}
		sum.Kills = append(sum.Kills, fmt.Sprintf("%s (%s) at %.1fs", id, role, time.Since(began).Seconds()))
		sleepCtx(ctx, down)
		t0 := time.Now()
		if err := n.StartComponent(ctx, id); err != nil {
			failf("restarting %s: %v", id, err)
			continue
		}
		logf("restarted %s, ready after %d ms", id, time.Since(t0).Milliseconds())
	}
	<-loadDone
	logf("load done: sent %d, accepted %d, refused %d", sender.Counters.Sent.Load(), sender.Counters.Accepted.Load(), sender.Counters.Refused.Load())
	mcancel()
	<-monDone
	gap := mon.MaxGap()
	sum.MaxFinalityGapMs = gap.Milliseconds()
	sum.Views = mon.Views()
	if gap > bound {
		failf("finality stood still for %s (bound %s), at %s", gap.Round(time.Millisecond), bound, mon.MaxGapAt().Sub(began).Round(time.Millisecond))
	}

	sum.Sent = len(outs)
	if n, why := summarize(outs); n < len(outs) {
		logf("refused: %d%s", len(outs)-n, why)
	}
	var accepted []string
	for k, x := range outs {
		if x.Accepted {
			accepted = append(accepted, orders[k].ID)
		}
	}
	sum.Accepted = len(accepted)
	if sum.Accepted == 0 {
		failf("no order was accepted")
		return sum
	}

	logf("waiting up to %s for every replica to apply everything and agree", drain)
	dctx, dcancel := context.WithTimeout(ctx, drain)
	conv, err := load.WaitConverged(dctx, h, urls, mon.Highest())
	dcancel()
	if err != nil {
		failf("%v", err)
		return sum
	}
	sum.FinalIndex, sum.StateDigest = conv.Index, conv.Digest
	logf("all %d replicas at index %d, digest %s", len(urls), conv.Index, load.ShortHash(conv.Digest))

	applied, failures := load.CheckExactlyOnce(ctx, h, urls, accepted)
	sum.Applied = applied
	for _, f := range failures {
		failf("%s", f)
	}
	trades, failures := load.CheckTradesMatchFills(ctx, h, urls[0], accepted)
	sum.Trades = trades
	for _, f := range failures {
		failf("%s", f)
	}
	return sum
}

// currentLeader asks every reachable node for its view and returns the
// leader of the highest view reported.
func currentLeader(ctx context.Context, h *load.HTTP, n *localnet.Network) (string, error) {
	var best uint64
	leader := ""
	for _, u := range n.NodeURLs() {
		qctx, cancel := context.WithTimeout(ctx, time.Second)
		s, err := h.NodeState(qctx, u)
		cancel()
		if err != nil {
			continue
		}
		if leader == "" || s.View > best {
			best, leader = s.View, s.Leader
		}
	}
	if leader == "" {
		return "", errors.New("no node answered GET /node/state")
	}
	if _, ok := n.Cluster.NodeIndex(leader); !ok {
		return "", fmt.Errorf("nodes name %q as leader, not a node of the cluster", leader)
	}
	return leader, nil
}
