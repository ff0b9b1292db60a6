package sim

import (
	"fmt"

	"github.com/seqbook/seqbook/client/eip712"
	"github.com/seqbook/seqbook/sequencer/core"
	"github.com/seqbook/seqbook/sequencer/wire"
)

// Coalition strategies: two colluding Byzantine nodes at consecutive
// indexes (N = 7, f = 2). The first, as leader of a view u, leaves a
// certificate behind that the honest nodes never adopted; the second,
// leading view u+1, plays leader by script (its own core is muted there)
// and uses that certificate to rewind honest nodes' logs within its view
// and ask them to sign again. Each script is a sequence an honest node
// must refuse at one step; a node that breaks the rule it targets goes
// on, and the coalition ends up with two conflicting quorum proofs.
const (
	// ByzRewinder: view u withholds its lock proof LP_A (old chain A).
	// View u+1 locks a fresh chain B at index j > LP_A's, rewinds three
	// honest nodes to A through LP_A, extends A to j and asks them for
	// Lock(u+1, j) again: rule 1 refuses, else two lock proofs of one
	// view at one index.
	ByzRewinder = "rewinder"
	// ByzReplayer: as the rewinder, then asks the rewound nodes to
	// Finalize LP_A (a lock proof of view u) in view u+1, moves them back
	// to B and finalizes B past it: rule 3's view check refuses, else two
	// chains finalized.
	ByzReplayer = "replayer"
	// ByzLockIgnorer: view u shows its lock proofs (honest nodes lock
	// chain A) and keeps its finalize proofs. View u+1 ignores the
	// reported locks: it asks for Lock(u+1, j) below them, uses that
	// proof (a higher view) to cut their logs back to j, and builds and
	// finalizes a chain B over the index view u finalized: rule 2
	// refuses the first Lock, else two finalize proofs at one index.
	ByzLockIgnorer = "lock-ignorer"
	// ByzSyncReplayer: as the rewinder up to B's lock proof, which it
	// then has three honest nodes finalize (their lock is B's now). It
	// offers them LP_A, of the older view, as the view's starting point
	// to sync to, then lets the view change: a node does not move its log
	// to a lower lock nor give its lock up in a sync for one, else the
	// next leader sees only A's lock and finalizes A over B.
	ByzSyncReplayer = "sync-replayer"
)

// coalitionPlans are the strategies that need two consecutive nodes.
var coalitionPlans = []string{ByzRewinder, ByzReplayer, ByzLockIgnorer, ByzSyncReplayer}

func isCoalitionPlan(name string) bool {
	for _, p := range coalitionPlans {
		if p == name {
			return true
		}
	}
	return false
}

// coalition is the shared state of the two nodes.
type coalition struct {
	w          *world
	plan       string
	prep, lead int
	domain     eip712.Domain

	// From the prep node's view.
	prepView uint64
	oldLock  *wire.Proof // LP_A, the lock proof of view prepView it kept
	// startLock is the index of the lock its NewView adopted as leader:
	// its lock proofs at or below it lock nothing new.
	startLock uint64
	app       string

	pup *puppet // the script under way in the lead node's view
}

// coalitionNode is one member's byzantine wrapper.
type coalitionNode struct {
	c    *coalition
	self int
}

func (m *coalitionNode) name() string { return m.c.plan }

func newCoalition(w *world, plan string, prep, lead int) *coalition {
	return &coalition{w: w, plan: plan, prep: prep, lead: lead, domain: eip712.NewDomain(chainID)}
}

// leaderOf is the node leading view v.
func (c *coalition) leaderOf(v uint64) int { return int(v % uint64(c.w.n)) }

// honest lists the nodes outside the coalition, increasing.
func (c *coalition) honest() []int {
	var out []int
	for i := 0; i < c.w.n; i++ {
		if i != c.prep && i != c.lead {
			out = append(out, i)
		}
	}
	return out
}

// active reports whether the script runs in view v (the lead node's core
// is then muted towards everyone).
func (c *coalition) active(v uint64) bool {
	return c.pup != nil && c.pup.view == v && !c.pup.aborted
}

func (m *coalitionNode) outgoing(env core.Envelope) []core.Envelope {
	c := m.c
	if m.self == c.prep {
		return c.prepOutgoing(env)
	}
	// The lead node: muted while its script runs (the script speaks for
	// it), except for view changes and disputes of other views.
	if c.pup != nil && !c.pup.aborted {
		if v := env.Msg.SenderView(); v == c.pup.view {
			switch env.Msg.(type) {
			case *wire.ViewChange:
			default:
				return nil
			}
		}
	}
	return []core.Envelope{env}
}

// prepOutgoing runs the prep node: as leader, it keeps its lock proofs
// (rewinder, replayer) or its finalize proofs (lock ignorer) to itself;
// while the script runs, it is silent.
func (c *coalition) prepOutgoing(env core.Envelope) []core.Envelope {
	if c.pup != nil && !c.pup.aborted && env.Msg.SenderView() == c.pup.view {
		return nil
	}
	if nv, ok := env.Msg.(*wire.NewView); ok && nv.Lock != nil {
		c.startLock = max(c.startLock, nv.Lock.Index)
	}
	r, ok := env.Msg.(*wire.Round)
	switch {
	case ok && c.leaderOf(r.View) == c.prep:
		cp := *r
		// Its lock proofs stay its own only if the nodes do not share
		// their lock votes: it never asks them to.
		cp.ShareLock = false
		if c.plan == ByzLockIgnorer {
			cp.Finalized = nil
		} else if r.Finalize != nil && r.Finalize.Index > c.startLock {
			// A lock proof of new batches. The view's first round locks
			// again, in this view, the chain its NewView adopted: the
			// nodes hold that lock already, so it is no old chain to
			// rewind to, and keeping it would stall the view before any
			// new batch is locked.
			c.keepLock(r.App, r.Finalize)
			cp.Finalize = nil
		}
		if cp.Lock == nil && cp.Finalize == nil && cp.Finalized == nil {
			return nil
		}
		env.Msg = &cp
	case c.plan == ByzLockIgnorer:
		// Hide finalize proofs everywhere, as withhold-fp does.
		return (&withholder{finalize: true}).outgoing(env)
	}
	return []core.Envelope{env}
}

// keepLock records the highest lock proof the prep node formed as leader.
func (c *coalition) keepLock(app string, lp *wire.Proof) {
	if c.oldLock == nil || lp.View > c.oldLock.View || (lp.View == c.oldLock.View && lp.Index > c.oldLock.Index) {
		c.oldLock, c.app, c.prepView = (*wire.Proof).Clone(lp), app, lp.View
	}
}

func (m *coalitionNode) incoming(from int, msg wire.Message) []core.Envelope {
	c := m.c
	if m.self != c.lead {
		return nil
	}
	v := msg.SenderView()
	if c.leaderOf(v) != c.lead {
		return nil
	}
	if c.pup == nil || c.pup.view != v {
		if !c.startScript(v) {
			return nil
		}
	}
	if c.pup.aborted {
		return nil
	}
	return c.pup.step(from, msg)
}

// startScript begins the script for view v if the prep node led v-1 and
// left what the plan needs.
func (c *coalition) startScript(v uint64) bool {
	if v == 0 || c.leaderOf(v-1) != c.prep || (c.pup != nil && c.pup.view >= v) {
		return false
	}
	if c.plan == ByzLockIgnorer {
		c.app = apps[0]
		c.prepView = v - 1
	} else if c.oldLock == nil || c.oldLock.View != v-1 {
		return false
	}
	c.pup = newPuppet(c, v)
	return true
}

// chainSeg is a run of entries after a point both chains share.
type chainSeg struct {
	entries map[uint64]core.Entry
}

func (s *chainSeg) at(i uint64) (core.Entry, bool) {
	e, ok := s.entries[i]
	return e, ok
}

// puppet is the lead node's scripted leadership of one view.
type puppet struct {
	c       *coalition
	view    uint64
	app     string
	aborted bool
	stage   int
	why     string

	states map[int]*wire.AppState
	part   []int       // the honest nodes the script drives
	fin    *wire.Proof // the finalize proof every honest node holds
	final  uint64
	finTs  uint64

	chainA, chainB, chainX *chainSeg // A: the old chain; B: fresh; X: A extended
	lockB, lockA2, lockLow *wire.Proof
	target                 uint64 // the index the script locks at
	movers                 []int  // honest nodes it rewinds
	moved                  map[int]bool
	tips                   map[int]wire.Tip
	goal                   map[int]goal
	votes                  map[[32]byte]map[int]wire.Signature
	made                   map[[32]byte]bool
	seq                    uint64
}

func newPuppet(c *coalition, v uint64) *puppet {
	return &puppet{c: c, view: v, app: c.app, states: map[int]*wire.AppState{}, moved: map[int]bool{},
		tips: map[int]wire.Tip{}, goal: map[int]goal{}, votes: map[[32]byte]map[int]wire.Signature{}, made: map[[32]byte]bool{}}
}

func (p *puppet) abort(format string, args ...any) []core.Envelope {
	p.aborted = true
	p.why = fmt.Sprintf(format, args...)
	p.c.w.log.Info("sim: coalition script gives up", "plan", p.c.plan, "view", p.view, "why", p.why)
	return nil
}

// Script stages.
const (
	stWaitStates = iota // collecting the honest nodes' view states
	stGrowB             // B pushed, waiting for tips to lock it
	stLockB             // Lock requests for B out
	stRewind            // movers resyncing to A
	stGrowX             // A extended, waiting for movers' tips
	stAskAgain          // the request a rule must refuse is out
	stBack              // movers resyncing back to B
	stFinalB            // Finalize for B out
	stDone
)

func (p *puppet) honest() []int { return p.c.honest() }

// goal is the chain a node is being grown on, up to end.
type goal struct {
	segs []*chainSeg
	end  uint64
}

// grow assigns node i a chain and pushes what it lacks of it.
func (p *puppet) grow(i int, after, end uint64, segs ...*chainSeg) core.Envelope {
	p.goal[i] = goal{segs: segs, end: end}
	return p.push(i, after, end, segs...)
}

// onChain reports whether tip is on segs (or is the finalized point).
func (p *puppet) onChain(tip wire.Tip, segs ...*chainSeg) bool {
	if tip.Index == p.final {
		return p.fin == nil || tip.ChainingHash == p.fin.ChainingHash
	}
	e, ok := entryOn(tip.Index, segs...)
	return ok && e.ChainingHash == tip.ChainingHash
}

func (p *puppet) step(from int, msg wire.Message) []core.Envelope {
	before := p.stage
	defer func() {
		if p.stage != before {
			p.c.w.log.Info("sim: coalition script", "plan", p.c.plan, "view", p.view, "stage", p.stage, "tick", p.c.w.tick)
		}
	}()
	switch m := msg.(type) {
	case *wire.ViewState:
		return p.onViewState(from, m)
	case *wire.Post:
		if m.App != p.app {
			return nil
		}
		p.tips[from] = m.Tip
		// Answer every post (a leader that does not is disputed), with
		// the rest of the chain the node is being grown on if it holds
		// its beginning: a push may have overtaken the NewView.
		reply := core.Envelope{To: from, Msg: &wire.PostReply{App: p.app, View: p.view, After: m.Tip.Index}}
		if g, ok := p.goal[from]; ok && m.Tip.Index < g.end && p.onChain(m.Tip, g.segs...) {
			reply = p.push(from, m.Tip.Index, g.end, g.segs...)
		}
		return append([]core.Envelope{reply}, p.progress()...)
	case *wire.Vote:
		if m.App != p.app {
			return nil
		}
		return p.onVote(from, m)
	case *wire.SyncRequest:
		return p.serveSync(from, m)
	}
	return nil
}

func (p *puppet) onViewState(from int, vs *wire.ViewState) []core.Envelope {
	if from == p.c.prep || from == p.c.lead {
		return nil
	}
	var as *wire.AppState
	for i := range vs.Apps {
		if vs.Apps[i].App == p.app {
			as = &vs.Apps[i]
		}
	}
	if as == nil {
		return nil
	}
	if p.stage == stWaitStates {
		p.states[from] = as
		if len(p.states) < len(p.honest()) {
			return nil
		}
		return p.begin()
	}
	// A mover that resynchronises after a Mismatch: show it where to go.
	if !p.moved[from] && (p.stage == stRewind || p.stage == stBack) {
		p.moved[from] = true
		lock := p.c.oldLock
		switch {
		case p.stage == stBack:
			lock = p.lockB
		case p.c.plan == ByzLockIgnorer:
			lock = p.lockLow
		}
		return []core.Envelope{{To: from, Msg: &wire.NewView{App: p.app, View: p.view, Lock: (*wire.Proof).Clone(lock), Finalized: (*wire.Proof).Clone(p.fin)}}}
	}
	return nil
}

// begin checks the honest nodes' states and starts the script.
func (p *puppet) begin() []core.Envelope {
	w := p.c.w
	// The finalized index most honest nodes share (a node that crashed
	// may lag, one that was shown a proof last may lead).
	count := map[uint64]int{}
	for _, i := range p.honest() {
		if fi := p.states[i].Finalized; fi != nil {
			count[fi.Index]++
			if c, best := count[fi.Index], count[p.final]; p.fin == nil || c > best || (c == best && fi.Index > p.final) {
				p.fin, p.final = fi, fi.Index
			}
		}
	}
	// The script drives the honest nodes that finalized as far as any
	// (a node that lags behind, say after a crash, only watches).
	p.part = nil
	for _, i := range p.honest() {
		if fi := p.states[i].Finalized; (fi == nil && p.final == 0) || (fi != nil && fi.Index == p.final) {
			p.part = append(p.part, i)
		}
	}
	if len(p.part) < p.c.w.quorum()-2 {
		var fs []uint64
		for _, i := range p.honest() {
			if fi := p.states[i].Finalized; fi != nil {
				fs = append(fs, fi.Index)
			}
		}
		return p.abort("only %d honest nodes finalized up to %d (%v)", len(p.part), p.final, fs)
	}
	prepStore := w.nodes[p.c.prep].store
	if p.final > 0 {
		es, err := prepStore.Entries(p.app, p.final, 1, wire.MaxBatchBytes)
		if err != nil || len(es) != 1 || es[0].ChainingHash != p.fin.ChainingHash {
			return p.abort("the prep node does not hold the finalized entry")
		}
		p.finTs = es[0].Timestamp
	}
	// Chain A: what the prep node's log holds after the finalized index.
	p.chainA = &chainSeg{entries: map[uint64]core.Entry{}}
	for i := p.final + 1; ; i++ {
		es, err := prepStore.Entries(p.app, i, 1, wire.MaxBatchBytes)
		if err != nil || len(es) != 1 || es[0].Index != i {
			break
		}
		p.chainA.entries[i] = es[0]
	}
	var out []core.Envelope
	for _, i := range p.honest() {
		out = append(out, core.Envelope{To: i, Msg: &wire.NewView{App: p.app, View: p.view, Finalized: (*wire.Proof).Clone(p.fin)}})
	}
	switch p.c.plan {
	case ByzRewinder, ByzReplayer, ByzSyncReplayer:
		k := p.c.oldLock.Index
		if e, ok := p.chainA.at(k); k <= p.final || !ok || e.ChainingHash != p.c.oldLock.ChainingHash {
			return p.abort("old lock at %d is not above the finalized %d on the prep node's log", k, p.final)
		}
		// B starts at the highest lock the nodes report (on A: the prep
		// node adopted it), so it conflicts with nothing they hold.
		base, baseHash, baseTs := p.final, wire.Hash{}, p.finTs
		if p.fin != nil {
			baseHash = p.fin.ChainingHash
		}
		for _, i := range p.part {
			if l := p.states[i].Lock; l != nil && l.Index > base {
				e, ok := p.chainA.at(l.Index)
				if !ok || e.ChainingHash != l.ChainingHash {
					return p.abort("node %d holds a lock off the prep node's log", i)
				}
				base, baseHash, baseTs = l.Index, e.ChainingHash, e.Timestamp
			}
		}
		if k <= base {
			return p.abort("old lock at %d is not above the nodes' locks at %d", k, base)
		}
		p.target = k + 2
		p.chainB = p.fabricateFrom(base, baseHash, baseTs, p.target, "B")
		p.stage = stGrowB
		for _, i := range p.part {
			out = append(out, p.grow(i, p.states[i].Tip.Index, p.target, p.chainB, p.chainA))
		}
	case ByzLockIgnorer:
		low := uint64(0)
		for _, i := range p.part {
			l := p.states[i].Lock
			if l == nil || l.View != p.c.prepView || l.Index <= p.final+1 {
				return p.abort("node %d has no lock of view %d above %d", i, p.c.prepView, p.final+1)
			}
			if low == 0 || l.Index < low {
				low = l.Index
			}
		}
		fp, ok, _ := prepStore.LastProof(p.app)
		if !ok || fp.Index <= p.final+1 || fp.View != p.c.prepView {
			return p.abort("the prep node kept no finalize proof of its view above %d", p.final+1)
		}
		p.target = fp.Index
		e, ok := p.chainA.at(p.final + 1)
		if !ok {
			return p.abort("no entry after the finalized index")
		}
		// Lock below every reported lock, on their own chain.
		p.stage = stLockB
		for _, i := range p.part {
			out = append(out, core.Envelope{To: i, Msg: &wire.Round{App: p.app, View: p.view, Lock: &wire.LockTarget{Index: e.Index, ChainingHash: e.ChainingHash}}})
		}
	}
	return out
}

// fabricateFrom makes a chain of new batches after index base (chaining
// hash prev, timestamp ts) up to index end, stamped with the lead node's
// clock.
func (p *puppet) fabricateFrom(base uint64, prev wire.Hash, ts uint64, end uint64, tag string) *chainSeg {
	s := &chainSeg{entries: map[uint64]core.Entry{}}
	now := p.c.w.nowMsAt(p.c.lead, p.c.w.tick)
	for i := base + 1; i <= end; i++ {
		p.seq++
		b := wire.Batch{Index: i, Timestamp: max(ts, now), Origin: uint16(p.c.lead), Seq: 1<<40 + p.seq,
			Body: []byte(fmt.Sprintf(`{"coalition":%q,"view":%d,"index":%d}`, tag, p.view, i))}
		h := core.BatchHash(b.Timestamp, b.Body)
		e := core.Entry{Batch: b, Hash: h, ChainingHash: core.ChainHash(prev, h)}
		s.entries[i] = e
		prev, ts = e.ChainingHash, e.Timestamp
	}
	return s
}

// push sends node i the batches after index after up to end, from the
// first of segs that has each.
func (p *puppet) push(i int, after, end uint64, segs ...*chainSeg) core.Envelope {
	r := &wire.PostReply{App: p.app, View: p.view, After: after}
	for k := after + 1; k <= end; k++ {
		e, ok := entryOn(k, segs...)
		if !ok {
			break
		}
		r.Batches = append(r.Batches, e.Batch)
	}
	return core.Envelope{To: i, Msg: r}
}

func entryOn(i uint64, segs ...*chainSeg) (core.Entry, bool) {
	for _, s := range segs {
		if s == nil {
			continue
		}
		if e, ok := s.at(i); ok {
			return e, true
		}
	}
	return core.Entry{}, false
}

// onTips counts the honest nodes (among who) whose last post is tip.
func (p *puppet) onTips(who []int, idx uint64, h wire.Hash) int {
	n := 0
	for _, i := range who {
		if t, ok := p.tips[i]; ok && t.Index == idx && t.ChainingHash == h {
			n++
		}
	}
	return n
}

// lockOnceGrown asks who for Lock at the target on seg once all of them
// posted it as their tip, and moves the script to stage next.
func (p *puppet) lockOnceGrown(who []int, seg *chainSeg, next int) []core.Envelope {
	e, _ := seg.at(p.target)
	if p.onTips(who, p.target, e.ChainingHash) < len(who) {
		return nil
	}
	p.stage = next
	var out []core.Envelope
	for _, i := range who {
		out = append(out, core.Envelope{To: i, Msg: &wire.Round{App: p.app, View: p.view, Lock: &wire.LockTarget{Index: p.target, ChainingHash: e.ChainingHash}}})
	}
	return out
}

// progress moves the script on when the posts show the nodes got there.
func (p *puppet) progress() []core.Envelope {
	q := p.c.w.quorum()
	need := q - 2 // honest signers a quorum needs beside the coalition
	var out []core.Envelope
	switch p.stage {
	case stGrowB:
		return p.lockOnceGrown(p.part, p.chainB, stLockB)
	case stRewind:
		var want uint64
		var h wire.Hash
		if p.c.plan == ByzLockIgnorer {
			want, h = p.lockLow.Index, p.lockLow.ChainingHash
		} else {
			want, h = p.c.oldLock.Index, p.c.oldLock.ChainingHash
		}
		if p.onTips(p.movers, want, h) < len(p.movers) {
			return nil
		}
		switch p.c.plan {
		case ByzSyncReplayer:
			// They gave up B's lock for A's: let the view change.
			p.stage = stDone
		case ByzReplayer:
			p.stage = stAskAgain
			for _, i := range p.movers {
				out = append(out, core.Envelope{To: i, Msg: &wire.Round{App: p.app, View: p.view, Finalize: (*wire.Proof).Clone(p.c.oldLock)}})
			}
		default:
			p.stage = stGrowX
			e, _ := p.chainA.at(want)
			p.chainX = p.fabricateFrom(want, h, e.Timestamp, p.target, "X")
			for _, i := range p.movers {
				out = append(out, p.grow(i, want, p.target, p.chainX, p.chainA))
			}
		}
	case stGrowX:
		return p.lockOnceGrown(p.movers, p.chainX, stAskAgain)
	case stBack:
		if p.onTips(p.part, p.lockB.Index, p.lockB.ChainingHash) < need {
			return nil
		}
		p.stage = stFinalB
		for _, i := range p.part {
			out = append(out, core.Envelope{To: i, Msg: &wire.Round{App: p.app, View: p.view, Finalize: (*wire.Proof).Clone(p.lockB)}})
		}
	}
	return out
}

// onVote collects signatures; a quorum (with the coalition's own) makes a
// proof and moves the script on.
func (p *puppet) onVote(from int, v *wire.Vote) []core.Envelope {
	var out []core.Envelope
	for _, part := range []struct {
		kind wire.ProofKind
		s    *wire.SignedTarget
	}{{wire.KindLock, v.Lock}, {wire.KindFinalize, v.Finalize}} {
		if part.s == nil {
			continue
		}
		pr := p.collect(from, part.kind, part.s)
		if pr == nil {
			continue
		}
		out = append(out, p.proved(pr)...)
	}
	return out
}

func (p *puppet) collect(from int, kind wire.ProofKind, s *wire.SignedTarget) *wire.Proof {
	w := p.c.w
	pr := &wire.Proof{Kind: kind, View: p.view, Index: s.Index, ChainingHash: s.ChainingHash}
	d := core.ProofDigest(p.c.domain, p.app, pr)
	if !w.nodes[p.c.lead].crypto.Verify(from, d, s.Signature) {
		return nil
	}
	if p.votes[d] == nil {
		p.votes[d] = map[int]wire.Signature{}
		for _, b := range []int{p.c.prep, p.c.lead} { // the coalition signs anything
			p.votes[d][b] = w.nodes[b].crypto.Sign(d)
		}
	}
	p.votes[d][from] = s.Signature
	if len(p.votes[d]) < w.quorum() || p.made[d] {
		return nil
	}
	p.made[d] = true
	var sigs []wire.Signature
	for _, n := range sortedKeys(p.votes[d]) {
		pr.Signers = pr.Signers.With(n)
		sigs = append(sigs, p.votes[d][n])
	}
	agg, err := w.nodes[p.c.lead].crypto.Aggregate(sigs)
	if err != nil {
		return nil
	}
	pr.Signature = agg
	return pr
}

// show sends a proof to the prep node (the checker sees every message).
func (p *puppet) show(pr *wire.Proof) core.Envelope {
	r := &wire.Round{App: p.app, View: p.view}
	if pr.Kind == wire.KindLock {
		r.Finalize = pr
	} else {
		r.Finalized = pr
	}
	return core.Envelope{To: p.c.prep, Msg: r}
}

// proved moves the script on with a new proof.
func (p *puppet) proved(pr *wire.Proof) []core.Envelope {
	out := []core.Envelope{p.show(pr)}
	switch {
	case p.stage == stLockB && pr.Kind == wire.KindLock && p.c.plan == ByzSyncReplayer && pr.Index == p.target:
		// B is locked: three honest nodes finalize it, and lock it.
		p.lockB = pr
		p.movers = p.part[:p.c.w.quorum()-2]
		p.stage = stFinalB
		for _, i := range p.movers {
			out = append(out, core.Envelope{To: i, Msg: &wire.Round{App: p.app, View: p.view, Finalize: (*wire.Proof).Clone(pr)}})
		}
	case p.stage == stFinalB && pr.Kind == wire.KindFinalize && p.c.plan == ByzSyncReplayer:
		// B is final (the proof stays with the coalition). Offer the
		// movers A through the lower-view lock proof.
		p.stage = stRewind
		clear(p.moved)
		out = append(out, p.mismatch(p.movers)...)
	case p.stage == stLockB && pr.Kind == wire.KindLock && p.c.plan != ByzLockIgnorer && pr.Index == p.target:
		// B is locked (nobody is shown it). Rewind a quorum's worth of
		// honest nodes to A through the old lock proof.
		p.lockB = pr
		p.movers = p.part[:p.c.w.quorum()-2]
		p.stage = stRewind
		out = append(out, p.mismatch(p.movers)...)
	case p.stage == stLockB && pr.Kind == wire.KindLock && p.c.plan == ByzLockIgnorer:
		// A lock of this view below every reported lock: cut their logs
		// back to it.
		p.lockLow = pr
		p.movers = p.part
		p.stage = stRewind
		out = append(out, p.mismatch(p.movers)...)
	case p.stage == stAskAgain && pr.Kind == wire.KindLock:
		if p.c.plan == ByzLockIgnorer {
			// B' is locked at the index view u finalized: finalize it.
			p.lockB = pr
			p.stage = stFinalB
			for _, i := range p.movers {
				out = append(out, core.Envelope{To: i, Msg: &wire.Round{App: p.app, View: p.view, Finalize: (*wire.Proof).Clone(pr)}})
			}
			return out
		}
		p.stage = stDone // rewinder: a second lock proof at the target
	case p.stage == stAskAgain && pr.Kind == wire.KindFinalize && p.c.plan == ByzReplayer:
		// A finalized in this view through the old lock proof; move
		// everyone back to B and finalize it past A's index.
		p.stage = stBack
		clear(p.moved)
		out = append(out, p.mismatch(p.movers)...)
	case p.stage == stFinalB && pr.Kind == wire.KindFinalize:
		p.stage = stDone
		// Hand the finalize proof out in order, so the nodes finalize B.
		for _, i := range p.part {
			out = append(out, core.Envelope{To: i, Msg: &wire.PostReply{App: p.app, View: p.view, After: p.tips[i].Index, Proofs: []wire.Proof{*pr}}})
		}
	}
	return out
}

// mismatch sends nodes a Mismatch reply: they resynchronise, and their
// view states get the NewView that moves them.
func (p *puppet) mismatch(nodes []int) []core.Envelope {
	var out []core.Envelope
	for _, i := range nodes {
		out = append(out, core.Envelope{To: i, Msg: &wire.PostReply{App: p.app, View: p.view, After: p.tips[i].Index, Mismatch: true}})
	}
	return out
}

// serveSync answers a fetch of a chain the script knows.
func (p *puppet) serveSync(from int, r *wire.SyncRequest) []core.Envelope {
	if r.App != p.app {
		return nil
	}
	var seg []*chainSeg
	switch h := r.Target.ChainingHash; {
	case hashIs(p.chainB, r.Target.Index, h):
		seg = []*chainSeg{p.chainB, p.chainA}
	case hashIs(p.chainX, r.Target.Index, h):
		seg = []*chainSeg{p.chainX, p.chainA}
	case hashIs(p.chainA, r.Target.Index, h):
		seg = []*chainSeg{p.chainA}
	default:
		return nil
	}
	reply := &wire.SyncReply{App: p.app, View: p.view, After: r.After}
	for k := r.After + 1; k <= r.Target.Index && len(reply.Batches) < wire.MaxBatchesPerMessage; k++ {
		e, ok := entryOn(k, seg...)
		if !ok {
			return nil
		}
		reply.Batches = append(reply.Batches, e.Batch)
	}
	return []core.Envelope{{To: from, Msg: reply}}
}

func hashIs(s *chainSeg, i uint64, h wire.Hash) bool {
	if s == nil {
		return false
	}
	e, ok := s.at(i)
	return ok && e.ChainingHash == h
}
