// Package sim is the sequencer's deterministic cluster simulator (in the
// spirit of TigerBeetle's VOPR): one seed drives a whole cluster of
// core.Nodes over an in-memory network that drops, duplicates, delays and
// reorders messages, partitions nodes (also one way), crashes and restarts
// them from their memory stores, skews their clocks, submits client
// batches to random nodes, and makes up to f nodes Byzantine at indexes
// drawn from the seed (equivocating or withholding leaders, wrong chaining
// hashes, double signing, and coalitions of two that rewind honest nodes'
// logs within a view, coalition.go). Every message goes through the wire
// codec. Each node's Ready handling is the node runtime's own
// (sequencer/node/runner) behind simulated time, store and network,
// checked for persist-before-send (runtime.go). Mutation canaries (canary.go) run a deliberately broken protocol
// against the strategies that reach the rule it breaks.
//
// A checker runs after every step: no two valid finalize proofs for
// different chaining hashes at one (app, index) anywhere (messages, node
// outputs, stores); no node's finalized index goes back; every honest
// node's finalized batches are the same. After the faults stop (partitions
// healed, every node up), finality must resume within a bound of ticks and
// every batch an honest node accepted must be finalized. A failed run
// reports its seed; `go test ./sequencer/sim -run TestSim -seed=<n> -v`
// replays it.
package sim

import (
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"strings"

	"github.com/seqbook/seqbook/sequencer/core"
)

// Behaviour names of Byzantine nodes.
const (
	ByzEquivocate = "equivocate"  // leader: different sequences to two halves, builds proofs for either
	ByzWithholdFP = "withhold-fp" // leader: never lets a finalize proof out; hides its state in view changes
	ByzWithholdLP = "withhold-lp" // leader: never asks for finalize signatures
	ByzWrongHash  = "wrong-hash"  // leader: asks to lock wrong chaining hashes
	ByzDoubleSign = "double-sign" // node: signs every Lock and Finalize anyone asks for
	ByzBadVotes   = "bad-votes"   // node: sends votes whose signatures do not verify
)

var allByz = []string{ByzEquivocate, ByzWithholdFP, ByzWithholdLP, ByzWrongHash, ByzDoubleSign, ByzBadVotes}

// DefaultLivenessTicks bounds the recovery after healing (every batch an
// honest node accepted final everywhere). Measured: the slowest recovery
// was 620 ticks over seeds 1–1500 of the default mix, 720 over seeds
// 1–400 with N = 7, and 960 over 300 seeds with a finalize-proof
// withholding leader in every run (seqbook sim --seeds 1500; --nodes 7
// --seeds 400; --mutation rule3 --control --seeds 300); most runs settle in
// under 100. The margin is one more view than that worst run needed, at
// the capped backoff: a faulty leader still in office after healing is
// deposed by the no-progress timeout, 60 ticks × 2^4 = 960 ticks with the
// test timeouts. 960 + 960 rounded up is 2000; a run that needs more is a
// liveness bug to look at, not bad luck.
const DefaultLivenessTicks = 2000

// Options configure one run. Zero values pick defaults from the seed.
type Options struct {
	Seed uint64
	// Nodes is N; 0 picks 4 (7 for one seed in eight).
	Nodes int
	// Ticks is the length of the faulty phase (default 1500 ticks of 10 ms).
	Ticks int
	// LivenessTicks bounds how long after healing finality must resume and
	// every accepted batch be final (default DefaultLivenessTicks).
	LivenessTicks int
	// RealBLS signs with herumi BLS instead of the keyed-hash keyring.
	RealBLS bool
	// Byzantine lists behaviours of the Byzantine nodes; nil picks at
	// random (at most f), an empty non-nil slice means none.
	Byzantine []string
	// ByzantineNodes are the indexes Byzantine[k] runs on; nil picks
	// distinct indexes at random from the seed (Run) or the first ones
	// (NewCluster, whose scripts name their nodes).
	ByzantineNodes []int
	// RotateLeaders crashes (for 40 ticks) every honest leader that has
	// led for 120 ticks, so views move through every node even in a quiet
	// run (the coalition strategies need to lead).
	RotateLeaders bool
	// OneApp submits every batch to one app (the coalition scripts
	// drive one app's log).
	OneApp bool
	// Mutation is applied to every honest node (the mutation canary).
	Mutation core.Mutation
	// Quiet disables faults except Byzantine nodes (scenario tests set
	// their own).
	Quiet bool
	// Calm is a healthy cluster under bursty load: no faults, no
	// Byzantine node, batches in bursts separated by idle gaps longer
	// than the finalize timeout. The checker then also requires that no
	// view ever changes (a view change needs a fault). nil Byzantine and
	// not Quiet pick it for one seed in eight.
	Calm bool
	// SkipIdleTicks ticks a node only when its core's IdleTicks says a
	// tick may act, catching up before any event, as the node runtime
	// does; otherwise every node ticks every tick. A run must be the
	// same either way (TestSkipIdleTicksChangesNothing).
	SkipIdleTicks bool
	// Share is every node's Config.ShareLockVotes; nil picks by the seed
	// (auto, always, never for seed mod 3 = 0, 1, 2), so each mode runs
	// under every strategy.
	Share *core.ShareMode
	// Spare is every node's Config.SpareVoters; nil picks by the seed
	// (auto, always, never for seed/6 mod 3 = 0, 1, 2), so each mode runs
	// with every share mode and hold.
	Spare *core.SpareMode
	// Hold is every node's Config.HoldTicksMax; nil picks by the seed (0
	// or 3 ticks for seed/3 even or odd, so both run with each share
	// mode).
	Hold *int
	// Trace receives a log of protocol events; nil discards it.
	Trace io.Writer
}

// shareMode is the nodes' Config.ShareLockVotes (see Options.Share).
func (o *Options) shareMode() core.ShareMode {
	if o.Share != nil {
		return *o.Share
	}
	return core.ShareMode(o.Seed % 3)
}

// spareMode is the nodes' Config.SpareVoters (see Options.Spare).
func (o *Options) spareMode() core.SpareMode {
	if o.Spare != nil {
		return *o.Spare
	}
	return core.SpareMode(o.Seed / 6 % 3)
}

// holdTicks is the nodes' Config.HoldTicksMax (see Options.Hold).
func (o *Options) holdTicks() int {
	if o.Hold != nil {
		return *o.Hold
	}
	return int(o.Seed/3%2) * 3
}

// Result summarises a run.
type Result struct {
	Seed       uint64
	Nodes      int
	Calm       bool // a run without faults (see Options.Calm)
	Share      core.ShareMode
	Spare      core.SpareMode
	Hold       int // Config.HoldTicksMax
	Byzantine  map[int]string
	Violations []string
	// Finalized is the canonical finalized index per app at the end.
	Finalized map[string]uint64
	MaxView   uint64
	Stats     Stats
	// SentDigest is a SHA-256 over every message sent, with its tick,
	// sender and receiver, and every node's status (view, leader, ready)
	// at every tick: two runs that behave alike have the same.
	SentDigest [32]byte
}

// Stats counts what happened in a run.
type Stats struct {
	Ticks, Messages, Dropped, Duplicated, Crashes, Partitions int
	Submitted, Accepted, ProofsChecked                        int
	HealTicks                                                 int // ticks from healing to settled
	// Crashes right after a save returned (its messages never sent) and
	// right after a Ready's messages left (before the next save).
	CrashesAfterSave, CrashesAfterSend int
	TicksSkipped                       int // node ticks left out (Options.SkipIdleTicks)
	// SharedLockProofs: lock proofs followers aggregated from shared lock
	// votes (Options.Share), counted by the cores running at the end.
	SharedLockProofs int
	// Saves counts the nodes' store saves (Options.Hold lowers it).
	Saves int
}

// Failed reports whether the run found a violation.
func (r *Result) Failed() bool { return len(r.Violations) > 0 }

// String is a one-line summary.
func (r *Result) String() string {
	var b strings.Builder
	calm := ""
	if r.Calm {
		calm = " calm"
	}
	fmt.Fprintf(&b, "seed=%d%s n=%d share=%s spare=%s hold=%d byz=%v view=%d final=%v msgs=%d drop=%d crash=%d part=%d acc=%d/%d heal=%d",
		r.Seed, calm, r.Nodes, r.Share, r.Spare, r.Hold, r.Byzantine, r.MaxView, r.Finalized, r.Stats.Messages, r.Stats.Dropped,
		r.Stats.Crashes, r.Stats.Partitions, r.Stats.Accepted, r.Stats.Submitted, r.Stats.HealTicks)
	if r.Failed() {
		fmt.Fprintf(&b, " VIOLATIONS=%d first=%q", len(r.Violations), r.Violations[0])
	}
	return b.String()
}

// Run simulates one seed.
func Run(o Options) *Result {
	rng := rand.New(rand.NewPCG(o.Seed, o.Seed^0x9e3779b97f4a7c15))
	if o.Nodes == 0 {
		o.Nodes = 4
		if rng.IntN(8) == 0 {
			o.Nodes = 7
		}
	}
	if o.Ticks == 0 {
		o.Ticks = 1500
	}
	if o.LivenessTicks == 0 {
		o.LivenessTicks = DefaultLivenessTicks
	}
	if !o.Calm && !o.Quiet && o.Byzantine == nil && o.Mutation == core.MutationNone && rng.IntN(8) == 0 {
		o.Calm = true
	}
	if o.Calm {
		o.Quiet, o.Byzantine = true, []string{}
	}
	if o.Byzantine == nil {
		f := (o.Nodes - 1) / 3
		k := rng.IntN(f + 2) // 0..f+1, clamped: more runs with a Byzantine node than without
		k = min(k, f)
		if k == 2 && rng.IntN(3) == 0 {
			// Two colluding nodes running one coalition script.
			plan := coalitionPlans[rng.IntN(len(coalitionPlans))]
			o.Byzantine = []string{plan, plan}
		}
		for i := len(o.Byzantine); i < k; i++ {
			o.Byzantine = append(o.Byzantine, allByz[rng.IntN(len(allByz))])
		}
	}
	if o.ByzantineNodes == nil {
		o.ByzantineNodes = rng.Perm(o.Nodes)[:len(o.Byzantine)]
		if len(o.Byzantine) == 2 && isCoalitionPlan(o.Byzantine[0]) {
			// A coalition needs consecutive leaders.
			o.ByzantineNodes[1] = (o.ByzantineNodes[0] + 1) % o.Nodes
		}
	}
	var trace *slog.Logger
	if o.Trace != nil {
		trace = slog.New(slog.NewTextHandler(o.Trace, &slog.HandlerOptions{Level: slog.LevelDebug}))
	} else {
		trace = slog.New(slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelError + 1}))
	}
	w := newWorld(o, rng, trace)
	res := &Result{Seed: o.Seed, Nodes: o.Nodes, Calm: o.Calm, Share: o.shareMode(), Spare: o.spareMode(), Hold: o.holdTicks(), Byzantine: map[int]string{}}
	for i, b := range w.byz {
		if b != nil {
			res.Byzantine[i] = b.name()
		}
	}
	for t := 0; t < o.Ticks && !w.chk.failed(); t++ {
		w.step(true)
		if o.Calm {
			w.checkNoViewChange()
		}
	}
	if !w.chk.failed() {
		w.heal()
		settled := false
		for t := 0; t < o.LivenessTicks && !w.chk.failed(); t++ {
			w.step(false)
			if t%20 == 0 && w.settled() {
				settled = true
				w.stats.HealTicks = t
				break
			}
		}
		if !settled && !w.chk.failed() {
			w.chk.violate("liveness: %d ticks after healing, %s", o.LivenessTicks, w.unsettledReason())
		}
		if settled {
			w.checkPages()
		}
		if o.Calm && !w.chk.failed() {
			w.checkNoViewChange()
		}
	}
	res.Violations = w.chk.violations
	res.Finalized = w.chk.canonFinal()
	res.MaxView = w.maxView()
	w.stats.ProofsChecked = w.chk.proofsChecked
	for _, sn := range w.nodes {
		if sn.core != nil {
			w.stats.SharedLockProofs += int(sn.core.Metrics().SharedLockProofs)
		}
	}
	res.Stats = w.stats
	w.sent.Sum(res.SentDigest[:0])
	return res
}

// Cluster is a simulated cluster driven step by step, for scripted
// scenarios: no random faults (Quiet), the script decides what breaks.
type Cluster struct{ w *world }

// NewCluster builds a quiet cluster (no random faults, delays of 1–2
// ticks) with the given Byzantine behaviours for nodes 0, 1, ….
func NewCluster(seed uint64, nodes int, byzantine ...string) *Cluster {
	var at []int
	for i := range byzantine {
		at = append(at, i)
	}
	return NewClusterAt(seed, nodes, byzantine, at)
}

// NewClusterAt is NewCluster with Byzantine behaviour byzantine[k] on node
// at[k].
func NewClusterAt(seed uint64, nodes int, byzantine []string, at []int) *Cluster {
	if len(at) != len(byzantine) {
		panic("sim: NewClusterAt: one node index per behaviour")
	}
	o := Options{Seed: seed, Nodes: nodes, Quiet: true, Byzantine: append([]string{}, byzantine...), ByzantineNodes: append([]int{}, at...)}
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	lg := slog.New(slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelError + 1}))
	return &Cluster{w: newWorld(o, rng, lg)}
}

// Run advances the cluster by ticks ticks (no random faults, no random
// submissions).
func (c *Cluster) Run(ticks int) {
	for i := 0; i < ticks && !c.w.chk.failed(); i++ {
		c.w.step(false)
	}
}

// Submit sends one batch to a node, as an HTTP PUT would.
func (c *Cluster) Submit(node int, app, body string) error {
	sn := c.w.nodes[node]
	if sn.rn == nil {
		return fmt.Errorf("node %d is down", node)
	}
	return c.w.put(sn, app, body)
}

// Crash stops a node until Restart; its store survives.
func (c *Cluster) Crash(node int) { c.w.crash(c.w.nodes[node], 1<<30) }

// Restart starts a crashed node from its store.
func (c *Cluster) Restart(node int) { c.w.start(c.w.nodes[node]) }

// Isolate cuts node off from everyone (both ways).
func (c *Cluster) Isolate(node int) {
	for i := 0; i < c.w.n; i++ {
		if i != node {
			c.w.blocked[node][i], c.w.blocked[i][node] = true, true
		}
	}
}

// Heal removes every partition.
func (c *Cluster) Heal() { c.w.clearPartition() }

// Status is a node's status (zero if it is down).
func (c *Cluster) Status(node int) core.Status {
	if sn := c.w.nodes[node]; sn.core != nil {
		return sn.core.Status()
	}
	return core.Status{}
}

// Finalized is the canonical finalized index of app.
func (c *Cluster) Finalized(app string) uint64 { return c.w.chk.canonFinal()[app] }

// Violations lists what the checker found so far.
func (c *Cluster) Violations() []string { return c.w.chk.violations }

// Settled reports whether every accepted batch is final on every honest
// node that is up; if not, why.
func (c *Cluster) Settled() (bool, string) {
	r := c.w.unsettledReason()
	return r == "", r
}

// Store returns a node's store (to read what it persisted).
func (c *Cluster) Store(node int) *core.MemoryStore { return c.w.nodes[node].store }
