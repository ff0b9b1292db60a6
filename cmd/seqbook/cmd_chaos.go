package main

import (
	"context"
	"crypto/ecdsa"
	"errors"
	"flag"
	"fmt"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/seqbook/seqbook/client/amount"
	"github.com/seqbook/seqbook/client/obapi"
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
	mon := newFinalityMonitor(h, n.NodeURLs(), n.Cluster.App)
	mctx, mcancel := context.WithCancel(ctx)
	monDone := make(chan struct{})
	go func() { mon.run(mctx, 50*time.Millisecond); close(monDone) }()

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
	gap := mon.maxGap()
	sum.MaxFinalityGapMs = gap.Milliseconds()
	sum.Views = mon.views()
	if gap > bound {
		failf("finality stood still for %s (bound %s), at %s", gap.Round(time.Millisecond), bound, mon.maxGapAt().Sub(began).Round(time.Millisecond))
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
	conv, err := load.WaitConverged(dctx, h, urls, mon.highest())
	dcancel()
	if err != nil {
		failf("%v", err)
		return sum
	}
	sum.FinalIndex, sum.StateDigest = conv.Index, conv.Digest
	logf("all %d replicas at index %d, digest %s", len(urls), conv.Index, load.ShortHash(conv.Digest))

	applied, failures := checkExactlyOnce(ctx, h, urls, accepted)
	sum.Applied = applied
	for _, f := range failures {
		failf("%s", f)
	}
	trades, failures := checkTradesMatchFills(ctx, h, urls[0], accepted)
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

// checkExactlyOnce reads every accepted order from every replica: each
// must exist in a final state (not pending, not rejected) with the same
// status, fill and batch index everywhere, and filled + remaining equal to
// its quantity. It returns how many passed.
func checkExactlyOnce(ctx context.Context, h *load.HTTP, urls []string, ids []string) (int, []string) {
	var failures []string
	applied := 0
	for _, id := range ids {
		var first obapi.Order
		ok := true
		for r, u := range urls {
			o, err := h.Order(ctx, u, id)
			switch {
			case err != nil:
				failures = append(failures, fmt.Sprintf("accepted order %s: %s: %v", id, u, err))
				ok = false
			case o.Status == obapi.StatusPending || o.Status == obapi.StatusRejected || o.Status == "":
				failures = append(failures, fmt.Sprintf("accepted order %s is %q on %s %s", id, o.Status, u, o.Reason))
				ok = false
			case r > 0 && (o.Status != first.Status || o.Filled != first.Filled || o.Index != first.Index):
				failures = append(failures, fmt.Sprintf("order %s differs: %s says %s/%s@%d, %s says %s/%s@%d",
					id, urls[0], first.Status, first.Filled, first.Index, u, o.Status, o.Filled, o.Index))
				ok = false
			}
			if r == 0 {
				first = o
			}
			if !ok {
				break
			}
		}
		if ok {
			applied++
		}
		if len(failures) > 20 {
			failures = append(failures, "… (more failures not checked)")
			break
		}
	}
	return applied, failures
}

// checkTradesMatchFills reads the whole trade log of one replica (all
// agree: same digest) and checks that the quantity each of our orders
// traded equals the fill its record shows and never exceeds its quantity:
// an order applied twice would trade twice.
func checkTradesMatchFills(ctx context.Context, h *load.HTTP, url string, ids []string) (int, []string) {
	ours := make(map[string]uint64, len(ids))
	for _, id := range ids {
		ours[id] = 0
	}
	trades := 0
	var after uint64
	for {
		var page obapi.Trades
		if err := h.GetJSON(ctx, fmt.Sprintf("%s/trades?market=%s&after=%d&limit=%d", url, "ETH%2FUSDT", after, obapi.TradesPageMax), &page); err != nil {
			return trades, []string{fmt.Sprintf("reading trades: %v", err)}
		}
		for _, t := range page.Trades {
			q, err := amount.Parse(t.Quantity)
			if err != nil {
				return trades, []string{fmt.Sprintf("trade %d quantity %q: %v", t.Seq, t.Quantity, err)}
			}
			for _, id := range []string{t.MakerOrder, t.TakerOrder} {
				if _, mine := ours[id]; mine {
					ours[id] += q
				}
			}
			trades++
		}
		if len(page.Trades) == 0 || page.Next <= after {
			break
		}
		after = page.Next
	}
	var failures []string
	keys := make([]string, 0, len(ours))
	for id := range ours {
		keys = append(keys, id)
	}
	sort.Strings(keys)
	for _, id := range keys {
		traded := ours[id]
		if traded > load.OrderQuantity {
			failures = append(failures, fmt.Sprintf("order %s traded %d base units, more than its quantity %d", id, traded, load.OrderQuantity))
			continue
		}
		o, err := h.Order(ctx, url, id)
		if err != nil {
			failures = append(failures, fmt.Sprintf("order %s: %v", id, err))
			continue
		}
		filled, err := amount.Parse(o.Filled)
		if err != nil || filled != traded {
			failures = append(failures, fmt.Sprintf("order %s shows %s filled but traded %d base units", id, o.Filled, traded))
		}
		if len(failures) > 20 {
			break
		}
	}
	return trades, failures
}

// finalityMonitor follows the highest finalized index reported by any
// node and the longest time it stood still.
type finalityMonitor struct {
	h     *load.HTTP
	nodes []string
	app   string

	mu        sync.Mutex
	top       uint64
	since     time.Time // when top last rose
	gap       time.Duration
	gapAt     time.Time
	viewsSeen map[uint64]bool
}

func newFinalityMonitor(h *load.HTTP, nodes []string, app string) *finalityMonitor {
	return &finalityMonitor{h: h, nodes: nodes, app: app, viewsSeen: map[uint64]bool{}}
}

func (m *finalityMonitor) run(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		for _, u := range m.nodes {
			qctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
			s, err := m.h.NodeState(qctx, u)
			cancel()
			if err != nil {
				continue
			}
			now := time.Now()
			m.mu.Lock()
			m.viewsSeen[s.View] = true
			f := s.Apps[m.app].Finalized
			if f > m.top {
				if !m.since.IsZero() {
					if g := now.Sub(m.since); g > m.gap {
						m.gap, m.gapAt = g, now
					}
				}
				m.top, m.since = f, now
			}
			m.mu.Unlock()
		}
		select {
		case <-ctx.Done():
			// The time since the last rise counts too: finality that
			// stopped for good is the worst gap.
			m.mu.Lock()
			if !m.since.IsZero() {
				if g := time.Since(m.since); g > m.gap {
					m.gap, m.gapAt = g, time.Now()
				}
			}
			m.mu.Unlock()
			return
		case <-t.C:
		}
	}
}

func (m *finalityMonitor) maxGap() time.Duration { m.mu.Lock(); defer m.mu.Unlock(); return m.gap }
func (m *finalityMonitor) maxGapAt() time.Time   { m.mu.Lock(); defer m.mu.Unlock(); return m.gapAt }
func (m *finalityMonitor) highest() uint64       { m.mu.Lock(); defer m.mu.Unlock(); return m.top }

func (m *finalityMonitor) views() []uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	vs := make([]uint64, 0, len(m.viewsSeen))
	for v := range m.viewsSeen {
		vs = append(vs, v)
	}
	sort.Slice(vs, func(i, j int) bool { return vs[i] < vs[j] })
	return vs
}
