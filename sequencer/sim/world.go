package sim

import (
	"container/heap"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"log/slog"
	"math/rand/v2"
	"slices"

	"github.com/seqbook/seqbook/client/bls"
	"github.com/seqbook/seqbook/client/cluster"
	"github.com/seqbook/seqbook/client/eip712"
	"github.com/seqbook/seqbook/sequencer/core"
	"github.com/seqbook/seqbook/sequencer/node/runner"
	"github.com/seqbook/seqbook/sequencer/wire"
)

// Simulated time: tick t is startMs + t*tickMs on a perfect clock; each
// node sees it shifted by its skew.
const (
	startMs = 1_700_000_000_000
	tickMs  = 10
	chainID = eip712.DefaultChainID
)

var apps = []string{"orderbook", "alt"}

// simNode is one node: the node runtime's runner around a core, its
// memory store, and (while it is up) the recorder watching the runner.
type simNode struct {
	id      int
	core    *core.Node     // nil while crashed
	rn      *runner.Runner // drives core; nil while crashed
	rec     *recorder      // watches rn; nil while crashed
	store   *core.MemoryStore
	crypto  core.Crypto
	cfg     core.Config
	skewMs  int64
	downTil int // tick to restart at, while crashed
	// flight is a Ready being saved (group commit, as the node runtime
	// does it): until flightTil the node keeps stepping events, whose
	// output gathers for the next Ready; a crash loses it unsaved.
	flight    *runner.Flight
	flightTil int
	// ticked is the world tick the core has been ticked through. With
	// Options.SkipIdleTicks it lags while the core's ticks are idle (as
	// the node runtime sleeps through them); catchUp brings it level
	// before the core sees anything else.
	ticked int
}

type packet struct {
	at, seq  int
	from, to int
	data     []byte
}

type queue []*packet

func (q queue) Len() int { return len(q) }
func (q queue) Less(i, j int) bool {
	if q[i].at != q[j].at {
		return q[i].at < q[j].at
	}
	return q[i].seq < q[j].seq
}
func (q queue) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *queue) Push(x any)   { *q = append(*q, x.(*packet)) }
func (q *queue) Pop() any {
	old := *q
	p := old[len(old)-1]
	*q = old[:len(old)-1]
	return p
}

type accepted struct {
	app  string
	body string
	node int
}

type world struct {
	o     Options
	rng   *rand.Rand
	log   *slog.Logger
	n     int
	nodes []*simNode
	byz   []byzantine
	chk   *checker
	stats Stats

	tick int
	// tickDone is the last world tick whose Tick phase ran: what a node's
	// core must have been ticked through before it sees an event.
	tickDone int
	// sent digests every message sent (tick, from, to, bytes), in order.
	sent    hash.Hash
	seq     int
	net     queue
	blocked [][]bool // blocked[from][to]
	partTil int      // tick the current partition heals
	// fault rates of this seed
	dropP, dupP         float64
	delayMax            int
	crashP, partP, subP float64
	crashAfterSaveP     float64 // saved, crashed before sending
	crashAfterSendP     float64 // sent, crashed before the next save
	slowSaveP           float64 // chance a save takes 1–3 ticks (group commit)

	accepted []accepted
	subCount int
	// RotateLeaders: the view seen last and since when.
	rotView  uint64
	rotSince int
	// Calm runs: submissions only before busyTil; the next burst starts
	// at idleTil.
	busyTil, idleTil int
}

func newWorld(o Options, rng *rand.Rand, lg *slog.Logger) *world {
	w := &world{o: o, rng: rng, log: lg, n: o.Nodes, sent: sha256.New()}
	w.blocked = make([][]bool, w.n)
	for i := range w.blocked {
		w.blocked[i] = make([]bool, w.n)
	}
	if !o.Quiet {
		w.dropP = rng.Float64() * 0.15
		w.dupP = rng.Float64() * 0.05
		w.delayMax = 1 + rng.IntN(6)
		w.crashP = rng.Float64() * 0.004
		w.partP = rng.Float64() * 0.004
		w.crashAfterSaveP = rng.Float64() * 0.002
		w.crashAfterSendP = rng.Float64() * 0.002
		if rng.IntN(2) == 0 {
			w.slowSaveP = rng.Float64() * 0.5
		}
	} else {
		w.delayMax = 2
	}
	w.subP = 0.1 + rng.Float64()*0.4
	lg.Info("sim: world", "seed", o.Seed, "nodes", o.Nodes, "byzantine", o.Byzantine, "at", o.ByzantineNodes, "drop", w.dropP, "dup", w.dupP,
		"delay_max", w.delayMax, "crash", w.crashP, "partition", w.partP, "submit", w.subP)
	cryptos := w.makeCrypto()
	w.chk = newChecker(w.n, cryptos[0])
	for i := 0; i < w.n; i++ {
		cfg := core.TestConfig(chainID, w.n, i)
		cfg.ShareLockVotes = o.shareMode()
		cfg.SpareVoters = o.spareMode()
		cfg.HoldTicksMax = o.holdTicks()
		cfg.Logger = lg
		sn := &simNode{id: i, store: core.NewMemoryStore(), crypto: cryptos[i], cfg: cfg}
		if !o.Quiet {
			sn.skewMs = int64(rng.IntN(2*150+1)) - 150 // well inside ClockSkewMsMax (500)
		}
		w.nodes = append(w.nodes, sn)
	}
	w.byz = make([]byzantine, w.n)
	if len(o.ByzantineNodes) != len(o.Byzantine) {
		panic("sim: one Byzantine node index per behaviour")
	}
	coalitions := map[string]*coalition{}
	for k, name := range o.Byzantine {
		i := o.ByzantineNodes[k]
		if w.byz[i] != nil {
			panic(fmt.Sprintf("sim: node %d given two Byzantine behaviours", i))
		}
		w.chk.byzantine[i] = true
		if isCoalitionPlan(name) {
			// Two entries of one plan: the first leads the view that
			// prepares, the second the one that runs the script.
			if c := coalitions[name]; c != nil {
				c.lead = i
				w.byz[i] = &coalitionNode{c: c, self: i}
				continue
			}
			c := newCoalition(w, name, i, -1)
			coalitions[name] = c
			w.byz[i] = &coalitionNode{c: c, self: i}
			continue
		}
		w.byz[i] = newByzantine(name, i, w)
	}
	for name, c := range coalitions {
		if c.lead < 0 || c.lead != (c.prep+1)%w.n {
			panic(fmt.Sprintf("sim: %s needs two consecutive nodes", name))
		}
	}
	for i, sn := range w.nodes {
		if w.byz[i] == nil {
			sn.cfg.Mutation = o.Mutation
		}
		w.start(sn)
	}
	return w
}

// makeCrypto builds every node's signer: the keyring, or real BLS keys
// derived from the seed.
func (w *world) makeCrypto() []core.Crypto {
	out := make([]core.Crypto, w.n)
	if !w.o.RealBLS {
		k := newKeyring(w.o.Seed, w.n)
		for i := range out {
			out[i] = &fakeCrypto{k: k, self: i}
		}
		return out
	}
	f := cluster.File{ChainID: chainID, App: apps[0], Aggregator: cluster.Aggregator{HTTP: "127.0.0.1:1"}}
	keys := make([]*bls.SecretKey, w.n)
	for i := 0; i < w.n; i++ {
		for ctr := 0; ; ctr++ {
			b := eip712.Keccak256([]byte(fmt.Sprintf("seqbook/sim/bls/%d/%d/%d", w.o.Seed, i, ctr)))
			if sk, err := bls.SecretKeyFromBytes(b[:]); err == nil {
				keys[i] = sk
				break
			}
		}
		f.Nodes = append(f.Nodes, cluster.Member{
			ID: fmt.Sprintf("node%d", i+1), HTTP: fmt.Sprintf("127.0.0.1:%d", 6001+i), QUIC: fmt.Sprintf("127.0.0.1:%d", 7001+i),
			BLSPubkey: keys[i].PublicKey().Hex(), BLSPop: keys[i].ProvePossession().Hex(),
		})
	}
	c, err := cluster.New(f)
	if err != nil {
		panic("sim: cluster: " + err.Error())
	}
	for i := range out {
		bc, err := core.NewBLSCrypto(c, i, keys[i])
		if err != nil {
			panic("sim: " + err.Error())
		}
		out[i] = bc
	}
	return out
}

// nowMsAt is node i's clock at world tick t.
func (w *world) nowMsAt(i, t int) uint64 {
	return uint64(int64(startMs+t*tickMs) + w.nodes[i].skewMs)
}

// start builds a node's core from its store (a fresh node or a restart)
// and the runtime's runner around it, watched by a new recorder.
func (w *world) start(sn *simNode) {
	c, err := core.NewNode(sn.cfg, sn.crypto, sn.store)
	if err != nil {
		w.chk.violate("node %d failed to start from its store: %v", sn.id, err)
		return
	}
	sn.core = c
	sn.rec = newRecorder(w, sn.id)
	sn.rn = runner.New(watchedCore{Node: c, rec: sn.rec}, port{w: w, sn: sn}, runner.Options{Mutation: sn.cfg.Mutation})
	sn.ticked = w.tickDone // its first Tick is the next Tick phase's
	w.chk.observeStatus(sn.id, c.Status())
	w.drain(sn)
}

// crash stops a node's process: the save under way is lost, and so are
// the messages of Readies not yet sent and the PUTs not yet answered.
func (w *world) crash(sn *simNode, downTicks int) {
	w.log.Info("sim: crash", "node", sn.id, "tick", w.tick, "down", downTicks)
	sn.core, sn.rn, sn.rec, sn.flight = nil, nil, nil, nil
	sn.downTil = w.tick + downTicks
	w.stats.Crashes++
}

// drain plays the node runtime's loop after an event: the runner takes the
// core's Ready (and finishes one with nothing to persist); the world, as
// the runtime's saver, saves it now or, for a slow save, some ticks later
// while the node goes on stepping events (group commit).
func (w *world) drain(sn *simNode) {
	w.catchUp(sn)
	for sn.rn != nil && sn.flight == nil && sn.core.HasReady() {
		f := sn.rn.TakeReady()
		if f == nil {
			continue // nothing to persist: the runner finished it
		}
		if w.slowSaveP > 0 && w.rng.Float64() < w.slowSaveP {
			sn.flight, sn.flightTil = f, w.tick+1+w.rng.IntN(3)
			return
		}
		w.save(sn, f)
	}
}

// finishSaves completes the slow saves that are due, then drains what the
// nodes gathered meanwhile.
func (w *world) finishSaves() {
	for _, sn := range w.nodes {
		if sn.rn != nil && sn.flight != nil && w.tick >= sn.flightTil {
			f := sn.flight
			sn.flight = nil
			w.catchUp(sn)
			w.save(sn, f)
			w.drain(sn)
		}
	}
}

// save saves a Flight's Persist (the runtime's saver), maybe crashes the
// node right after (persisted, never sent), reports the save to the
// runner (which sends, advances and answers PUTs), and maybe crashes the
// node right after that (sent; what it gathered since is lost).
func (w *world) save(sn *simNode, f *runner.Flight) {
	if err := (watchedStore{MemoryStore: sn.store, rec: sn.rec}).Save(&f.Ready.Persist); err != nil {
		w.chk.violate("node %d: store refused a Persist: %v", sn.id, err)
		return
	}
	w.stats.Saves++
	w.chk.observeReady(sn.id, &f.Ready)
	if w.crashAfterSaveP > 0 && w.rng.Float64() < w.crashAfterSaveP {
		w.stats.CrashesAfterSave++
		w.crash(sn, 1+w.rng.IntN(100))
		return
	}
	sn.rn.Saved(nil)
	w.chk.observeStatus(sn.id, sn.core.Status())
	if w.crashAfterSendP > 0 && w.rng.Float64() < w.crashAfterSendP {
		w.stats.CrashesAfterSend++
		w.crash(sn, 1+w.rng.IntN(100))
	}
}

func (w *world) send(from, to int, data []byte) {
	w.stats.Messages++
	var head [24]byte
	binary.BigEndian.PutUint64(head[0:], uint64(w.tick))
	binary.BigEndian.PutUint64(head[8:], uint64(from))
	binary.BigEndian.PutUint64(head[16:], uint64(to))
	w.sent.Write(head[:])
	w.sent.Write(data)
	if w.blocked[from][to] || (w.dropP > 0 && w.rng.Float64() < w.dropP) {
		w.stats.Dropped++
		return
	}
	copies := 1
	if w.dupP > 0 && w.rng.Float64() < w.dupP {
		copies = 2
		w.stats.Duplicated++
	}
	for c := 0; c < copies; c++ {
		w.seq++
		heap.Push(&w.net, &packet{at: w.tick + 1 + w.rng.IntN(w.delayMax), seq: w.seq, from: from, to: to, data: data})
	}
}

// step runs one tick: faults, ticks, deliveries, checks.
func (w *world) step(faults bool) {
	w.tick++
	w.stats.Ticks++
	if faults {
		w.faults()
		if w.o.RotateLeaders {
			w.rotate()
		}
	}
	for _, sn := range w.nodes {
		if sn.core == nil && sn.downTil <= w.tick && (!faults || sn.downTil > 0) {
			w.log.Info("sim: restart", "node", sn.id, "tick", w.tick)
			w.start(sn)
		}
	}
	w.finishSaves()
	if faults && w.submitting() && w.rng.Float64() < w.subP {
		w.submit()
	}
	for _, sn := range w.nodes {
		if sn.rn == nil {
			continue
		}
		if w.o.SkipIdleTicks && uint64(w.tick-sn.ticked) <= sn.core.IdleTicks() {
			w.stats.TicksSkipped++ // nothing due: the runtime would sleep on
			continue
		}
		w.tickThrough(sn, w.tick)
		w.drain(sn)
	}
	w.tickDone = w.tick
	w.digestStatus()
	for w.net.Len() > 0 && w.net[0].at <= w.tick {
		p := heap.Pop(&w.net).(*packet)
		w.deliver(p)
		if w.chk.failed() {
			return
		}
	}
}

// tickThrough ticks sn's core through world tick t: the ticks it has not
// seen before t are skipped (IdleTicks promised they do nothing), t's is a
// Tick with the node's clock at t.
func (w *world) tickThrough(sn *simNode, t int) {
	if k := t - sn.ticked; k > 0 {
		sn.core.Skip(uint64(k - 1))
		sn.core.Tick(w.nowMsAt(sn.id, t))
		sn.ticked = t
	}
}

// catchUp ticks sn's core through the last Tick phase before it sees an
// event (a message, a submit, a finished save), as the node runtime does
// when it wakes: so the core's clock reads the same as if it had ticked
// every tick.
func (w *world) catchUp(sn *simNode) {
	if sn.core != nil {
		w.tickThrough(sn, w.tickDone)
	}
}

// digestStatus adds every node's status (view, leader, ready) to the
// digest of the run: a node skipping idle ticks must report the same as
// one that ticked them all.
func (w *world) digestStatus() {
	var b []byte
	for _, sn := range w.nodes {
		if sn.core == nil {
			b = append(b, 0xff)
			continue
		}
		st := sn.core.Status()
		b = binary.BigEndian.AppendUint64(b, st.View)
		b = binary.BigEndian.AppendUint64(b, uint64(st.Leader))
		if st.Ready {
			b = append(b, 1)
		} else {
			b = append(b, 0)
		}
	}
	w.sent.Write(b)
}

func (w *world) deliver(p *packet) {
	sn := w.nodes[p.to]
	if sn.rn == nil {
		return
	}
	m, err := wire.Decode(p.data)
	if errors.Is(err, wire.ErrOtherViewLockProof) && sn.cfg.Mutation == core.MutationFinalizeOldViewLock && w.byz[p.to] == nil {
		// The canary drops rule 3's view check everywhere it is made:
		// at the edge as well as in the voter.
		m, err = wire.DecodeUnvalidated(p.data)
	}
	if err != nil {
		if w.byz[p.from] != nil {
			return // the edge refused a Byzantine node's message: its job
		}
		w.chk.violate("node %d sent undecodable bytes: %v", p.from, err)
		return
	}
	if b := w.byz[p.to]; b != nil {
		for _, e := range b.incoming(p.from, m) {
			w.chk.observeMessage(e.Msg)
			w.send(p.to, e.To, wire.Encode(e.Msg))
		}
	}
	w.catchUp(sn)
	if err := sn.rn.Step(p.from, m); err != nil {
		w.log.Debug("sim: step error", "node", p.to, "from", p.from, "type", m.Type().String(), "err", err)
		if w.byz[p.from] == nil && w.byz[p.to] == nil {
			w.chk.violate("honest node %d rejected a message from honest node %d: %v", p.to, p.from, err)
		}
	}
	w.drain(sn)
}

// faults injects this tick's crashes and partitions.
func (w *world) faults() {
	if w.partTil > 0 && w.tick >= w.partTil {
		w.clearPartition()
	}
	if w.partTil == 0 && w.rng.Float64() < w.partP {
		w.partition()
	}
	if w.rng.Float64() < w.crashP {
		i := w.rng.IntN(w.n)
		if sn := w.nodes[i]; sn.core != nil {
			w.crash(sn, 20+w.rng.IntN(400))
		}
	}
}

// rotate crashes an honest leader that has led for 120 ticks (see
// Options.RotateLeaders).
func (w *world) rotate() {
	v := w.maxView()
	if v != w.rotView {
		w.rotView, w.rotSince = v, w.tick
		return
	}
	l := int(v % uint64(w.n))
	if w.byz[l] != nil || w.tick-w.rotSince < 120 {
		return
	}
	if sn := w.nodes[l]; sn.core != nil {
		w.crash(sn, 40)
		w.rotSince = w.tick
	}
}

func (w *world) partition() {
	w.stats.Partitions++
	w.partTil = w.tick + 50 + w.rng.IntN(400)
	side := make([]bool, w.n)
	for i := range side {
		side[i] = w.rng.IntN(2) == 0
	}
	oneWay := w.rng.IntN(3) == 0
	for a := 0; a < w.n; a++ {
		for b := 0; b < w.n; b++ {
			if side[a] && !side[b] {
				w.blocked[a][b] = true
				if !oneWay {
					w.blocked[b][a] = true
				}
			}
		}
	}
	w.log.Info("sim: partition", "tick", w.tick, "side", side, "one_way", oneWay, "until", w.partTil)
}

func (w *world) clearPartition() {
	for a := range w.blocked {
		clear(w.blocked[a])
	}
	w.partTil = 0
}

// submit sends one client batch to a random node that is up.
func (w *world) submit() {
	i := w.rng.IntN(w.n)
	sn := w.nodes[i]
	if sn.rn == nil {
		return
	}
	app := apps[0]
	if !w.o.OneApp {
		app = apps[w.rng.IntN(len(apps))]
	}
	w.subCount++
	body := fmt.Sprintf(`{"seed":%d,"n":%d,"to":%d}`, w.o.Seed, w.subCount, i)
	w.stats.Submitted++
	if err := w.put(sn, app, body); err != nil {
		return // a bound: the client would retry elsewhere
	}
	w.stats.Accepted++
}

// put is a PUT of one batch to a node that is up, through its runner. The
// batch counts as accepted (on an honest node) when the runner answers
// the PUT, which it must do only after the save that made it durable.
func (w *world) put(sn *simNode, app, body string) error {
	rec, readies := sn.rec, len(sn.rec.needs)
	a := accepted{app: app, body: body, node: sn.id}
	w.catchUp(sn)
	err := sn.rn.Submit(app, []byte(body), func(err error) {
		if err != nil {
			return
		}
		rec.answering(readies)
		if w.byz[a.node] == nil {
			w.accepted = append(w.accepted, a)
		}
	})
	if err != nil {
		return err
	}
	w.drain(sn)
	return nil
}

// submitting reports whether this tick may submit. Calm runs alternate
// bursts of 10–80 ticks with idle gaps of 1–3 finalize timeouts: the first
// batch after a gap must not look like a stalled leader.
func (w *world) submitting() bool {
	if !w.o.Calm {
		return true
	}
	if w.tick >= w.idleTil {
		w.busyTil = w.tick + 10 + w.rng.IntN(71)
		timeout := core.TestConfig(chainID, w.n, 0).FinalizeTimeoutTicks
		w.idleTil = w.busyTil + timeout + w.rng.IntN(2*timeout+1)
	}
	return w.tick < w.busyTil
}

// checkNoViewChange flags any view change in a calm run.
func (w *world) checkNoViewChange() {
	if v := w.maxView(); v > 0 {
		w.chk.violate("view %d reached in a run without faults or Byzantine nodes (tick %d)", v, w.tick)
	}
}

// heal ends the faulty phase: no partitions, no loss, every node up.
func (w *world) heal() {
	w.clearPartition()
	w.dropP, w.dupP, w.crashAfterSaveP, w.crashAfterSendP = 0, 0, 0, 0
	w.slowSaveP = min(w.slowSaveP, 0.2)
	w.delayMax = min(w.delayMax, 3)
	for _, sn := range w.nodes {
		if sn.core == nil {
			sn.downTil = w.tick
		}
	}
	w.log.Info("sim: healed", "tick", w.tick)
}

// settled reports whether every batch an honest node accepted is final
// and every honest node holds the whole finalized sequence.
func (w *world) settled() bool { return w.unsettledReason() == "" }

func (w *world) unsettledReason() string {
	for _, a := range w.accepted {
		if !w.chk.isFinal(a.app, a.body) {
			st := ""
			if c := w.nodes[a.node].core; c != nil {
				st = fmt.Sprintf("%+v", c.Status())
			}
			return fmt.Sprintf("batch %s accepted by node %d for %s is not final (node status %s)", a.body, a.node, a.app, st)
		}
	}
	for _, app := range apps {
		want := w.chk.canonFinal()[app]
		for _, sn := range w.nodes {
			if w.byz[sn.id] != nil || sn.core == nil {
				continue
			}
			if got := w.chk.nodeFinal(sn.id, app); got < want {
				return fmt.Sprintf("node %d finalized %s up to %d of %d", sn.id, app, got, want)
			}
		}
	}
	return ""
}

// checkPages reads every honest node's finalized sequence through
// core.ReadFinalized, as the HTTP API does: each page must end at a
// finalize proof for its last batch, pages must chain, and together they
// must be the canonical sequence.
func (w *world) checkPages() {
	for _, sn := range w.nodes {
		if w.byz[sn.id] != nil {
			continue
		}
		for _, app := range apps {
			var after uint64
			prev := wire.Hash{}
			for pages := 0; ; pages++ {
				p, err := core.ReadFinalized(sn.store, app, after, sn.cfg.PageBatchesMax, sn.cfg.PageBytesMax)
				if err != nil {
					w.chk.violate("node %d: reading %s after %d: %v", sn.id, app, after, err)
					return
				}
				if len(p.Entries) == 0 {
					break
				}
				for _, e := range p.Entries {
					if e.Index != after+1 || e.ChainingHash != core.ChainHash(prev, e.Hash) {
						w.chk.violate("node %d: %s page after %d does not chain at %d", sn.id, app, after, e.Index)
						return
					}
					if ce := w.chk.canonAt(app, e.Index); ce == nil || ce.chaining != e.ChainingHash {
						w.chk.violate("node %d: %s stored batch %d differs from the canonical one", sn.id, app, e.Index)
						return
					}
					after, prev = e.Index, e.ChainingHash
				}
				if p.Proof == nil || p.Proof.Index != after || p.Proof.ChainingHash != prev {
					w.chk.violate("node %d: %s page ending at %d has no proof for it", sn.id, app, after)
					return
				}
				if !w.chk.valid(app, p.Proof) {
					w.chk.violate("node %d: %s stores an invalid finalize proof at %d", sn.id, app, after)
					return
				}
				w.chk.observeProof(app, p.Proof)
			}
			if want := w.chk.nodeFinal(sn.id, app); after != want {
				w.chk.violate("node %d: %s pages end at %d, finalized %d", sn.id, app, after, want)
			}
		}
	}
}

func (w *world) maxView() uint64 {
	var v uint64
	for _, sn := range w.nodes {
		if sn.core != nil {
			v = max(v, sn.core.Status().View)
		}
	}
	return v
}

// quorum is Q for the world's cluster.
func (w *world) quorum() int { return cluster.Quorum(w.n) }

func sortedKeys[K ~int | ~uint64, V any](m map[K]V) []K {
	ks := make([]K, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}
