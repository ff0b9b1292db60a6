package core

import (
	"fmt"
	"log/slog"
	"slices"
	"sort"

	"github.com/seqbook/seqbook/client/eip712"
	"github.com/seqbook/seqbook/sequencer/wire"
)

// verifiedCacheMax bounds the cache of checked quorum proofs. Proofs are
// re-sent on every retry; caching the answer keeps a node from paying a
// pairing per copy. Cleared when full: a miss only costs time.
const verifiedCacheMax = 4096

// recentProofsMax bounds the finalize proofs kept in memory per app for
// answers given before the store has them (between Ready and Advance).
const recentProofsMax = 256

// Node is one sequencer node's protocol state machine. Build it with
// NewNode; drive it as the package doc says.
type Node struct {
	cfg    Config
	crypto Crypto
	store  Store
	domain eip712.Domain
	log    *slog.Logger
	quorum int // Q
	fq     int // dispute quorum, > N/3

	tick uint64 // ticks since start
	// flushDue: an app has a post or push waiting for the next Ready.
	flushDue bool
	nowMs    uint64 // highest wall clock seen

	view      uint64
	cert      *wire.Certificate
	hardDirty bool

	apps  map[string]*app
	names []string // sorted app names: every loop over apps uses it

	// View change.
	disputes         map[int]wire.Signature // disputes of the current view by node
	disputed         bool                   // this node disputed the current view
	disputeReason    wire.DisputeReason
	disputeSentTick  uint64
	pace             pacemaker
	viewStartTick    uint64
	viewStateSent    uint64 // tick the last ViewState was sent
	certSentTick     []uint64
	rtt              []peerRTT               // per peer: the retry timeouts (retry.go)
	netRTT           []netRTT                // per peer: the network's round trip (NetworkRTT)
	heardTick        []uint64                // last tick each peer sent us anything
	pingTick         []uint64                // last tick we pinged each silent peer
	viewStates       map[int]*wire.ViewState // leader: states of the current view
	established      bool                    // leader: chose the view's locks
	quorumStatesTick uint64                  // leader: tick a quorum of states was reached

	verified map[proofKey]bool
	metrics  Metrics

	// readyOut: a Ready was handed out and its Advance has not come yet.
	readyOut bool
	// holding: HasReady holds back the output since the last Ready
	// (holdable) since tick holdTick.
	holding  bool
	holdTick uint64

	// Output since the last Advance.
	persist   map[string]*AppPersist
	msgs      []Envelope
	finalized []Finalized
}

// NewNode builds a node from cfg, its crypto and its store, loading what a
// previous run persisted (a restarted node is a new Node over the same
// store). It fails on an invalid config or an unreadable store.
//
// A restarted node keeps its log and safety records, rejoins its persisted
// view and asks the leader for the view's state again (a ViewState in the
// first Ready) before it signs anything.
func NewNode(cfg Config, crypto Crypto, store Store) (*Node, error) {
	if err := cfg.ValidateBasic(); err != nil {
		return nil, err
	}
	if crypto == nil || store == nil {
		return nil, fmt.Errorf("core: crypto and store are required")
	}
	lg := cfg.Logger
	if lg == nil {
		lg = slog.Default()
	}
	n := &Node{
		cfg:          cfg,
		crypto:       crypto,
		store:        store,
		domain:       eip712.NewDomain(cfg.ChainID),
		log:          lg.With("node", cfg.Self),
		quorum:       cfg.Quorum(),
		pace:         pacemaker{doublingsMax: cfg.TimeoutBackoffMax},
		fq:           cfg.DisputeQuorum(),
		apps:         map[string]*app{},
		disputes:     map[int]wire.Signature{},
		certSentTick: make([]uint64, cfg.Nodes),
		rtt:          make([]peerRTT, cfg.Nodes),
		netRTT:       make([]netRTT, cfg.Nodes),
		heardTick:    make([]uint64, cfg.Nodes),
		pingTick:     make([]uint64, cfg.Nodes),
		viewStates:   map[int]*wire.ViewState{},
		verified:     map[proofKey]bool{},
		persist:      map[string]*AppPersist{},
	}
	if cfg.Mutation == MutationQuorumMinusOne && n.quorum > 1 {
		n.quorum-- // canary: proofs of Q-1 signers are formed and accepted
	}
	snap, err := store.Load()
	if err != nil {
		return nil, fmt.Errorf("core: loading the store: %w", err)
	}
	n.view = snap.Hard.View
	n.cert = snap.Hard.Cert
	if n.view > 0 && n.cert == nil {
		return nil, fmt.Errorf("core: store holds view %d without its certificate", n.view)
	}
	for i := range snap.Apps {
		if err := n.loadApp(&snap.Apps[i]); err != nil {
			return nil, err
		}
	}
	n.rejoinView()
	return n, nil
}

// loadApp rebuilds one app from the store.
func (n *Node) loadApp(s *AppSnapshot) error {
	if err := wire.ValidateApp(s.Hard.App); err != nil {
		return fmt.Errorf("core: store: %w", err)
	}
	a := newApp(s.Hard.App, n.cfg.Nodes)
	a.hard = cloneAppHard(s.Hard)
	if len(a.hard.OriginSeqs) != n.cfg.Nodes {
		seqs := make([]uint64, n.cfg.Nodes)
		copy(seqs, a.hard.OriginSeqs)
		a.hard.OriginSeqs = seqs
	}
	if a.hard.NextSeq == 0 {
		a.hard.NextSeq = 1
	}
	a.base = a.finalIdx()
	if a.hard.Finalized != nil {
		a.baseHash = a.hard.Finalized.ChainingHash
		es, err := n.store.Entries(a.name, a.base, 1, wire.MaxBatchBytes)
		if err != nil {
			return fmt.Errorf("core: store: %s: %w", a.name, err)
		}
		if len(es) != 1 || es[0].Index != a.base || es[0].ChainingHash != a.baseHash {
			return fmt.Errorf("core: store: %s: entry %d does not match its finalize proof", a.name, a.base)
		}
		a.baseTs = es[0].Timestamp
	}
	prev := a.baseHash
	for i, e := range s.Entries {
		if e.Index != a.base+1+uint64(i) || e.ChainingHash != ChainHash(prev, e.Hash) {
			return fmt.Errorf("core: store: %s: log broken at entry %d", a.name, e.Index)
		}
		prev = e.ChainingHash
		a.mem = append(a.mem, e)
		a.memBytes += len(e.Body)
	}
	if a.hard.Lock != nil {
		if h, ok := n.hashAt(a, a.hard.Lock.Index); !ok || h != a.hard.Lock.ChainingHash {
			return fmt.Errorf("core: store: %s: log does not hold the chain of the lock at %d", a.name, a.hard.Lock.Index)
		}
	}
	for _, p := range s.Pending {
		a.pend[p.Seq] = &pend{seq: p.Seq, body: p.Body, submittedMs: p.SubmittedMs}
		a.pendBytes += len(p.Body)
		if p.Seq >= a.hard.NextSeq {
			a.hard.NextSeq = p.Seq + 1
		}
	}
	for i := range a.mem {
		n.matchOwn(a, &a.mem[i])
	}
	n.apps[a.name] = a
	n.names = append(n.names, a.name)
	sort.Strings(n.names)
	return nil
}

// Tick advances abstract time by one tick. nowMs is the runtime's wall
// clock in unix milliseconds: the leader stamps batches with it (never
// decreasing) and followers compare leader stamps with it.
func (n *Node) Tick(nowMs uint64) {
	n.signDeferred()
	n.tick++
	if nowMs > n.nowMs {
		n.nowMs = nowMs
	}
	if n.isLeader() {
		n.maybeEstablish()
	}
	for _, name := range n.names {
		a := n.apps[name]
		n.syncTick(a)
		// A dispute inside this loop can change the view (and the leader).
		if n.isLeader() {
			n.leaderTick(a)
		} else {
			n.followerTick(a)
		}
	}
	if !n.isLeader() && n.anyAppSyncing() && n.retryDue(n.leader(), n.viewStateSent) {
		n.metrics.ViewStateResends++
		n.sendViewState()
	}
	if n.disputed && n.tick-n.disputeSentTick >= n.retryTicksAll() {
		n.metrics.DisputeResends++
		n.broadcastDispute()
	}
	n.pingSilentPeers()
}

// pingSilentPeers sends our view state to every peer we have not heard
// from for LeaderTimeoutTicks (at most once per LeaderTimeoutTicks). A
// node can only learn of a newer view from a peer that talks to it; a
// leader nobody posts to anymore, or a node whose messages all go to a dead
// leader, would otherwise never hear of the views it missed. A peer in a
// newer view answers the stale state with its certificate.
func (n *Node) pingSilentPeers() {
	timeout := uint64(n.cfg.LeaderTimeoutTicks)
	for p := 0; p < n.cfg.Nodes; p++ {
		if p == n.cfg.Self || n.tick-n.heardTick[p] <= timeout || n.tick-n.pingTick[p] <= timeout {
			continue
		}
		n.pingTick[p] = n.tick
		n.send(p, n.buildViewState())
	}
}

// Step processes one message from node from (a cluster index the transport
// authenticated). msg must come from wire.Decode, which ran ValidateBasic.
// It returns an error when the message is invalid for the protocol (bad
// signature, inconsistent hashes, wrong sender); the runtime logs it and
// may count it against the peer. Stale or duplicate messages are not
// errors.
func (n *Node) Step(from int, msg wire.Message) error {
	n.signDeferred()
	err := n.step(from, msg)
	if err != nil {
		n.metrics.StepErrors++
	}
	return err
}

// Metrics returns a copy of the node's counters.
func (n *Node) Metrics() Metrics { return n.metrics }

func (n *Node) step(from int, msg wire.Message) error {
	if from < 0 || from >= n.cfg.Nodes || from == n.cfg.Self {
		return fmt.Errorf("core: message from invalid node %d", from)
	}
	n.heardTick[from] = n.tick
	switch m := msg.(type) {
	case *wire.ViewChange:
		return n.stepViewChange(from, m)
	case *wire.SyncRequest:
		n.serveSync(from, m)
		return nil
	case *wire.SyncReply:
		return n.stepSyncReply(from, m)
	}
	v := msg.SenderView()
	if v < n.view {
		// The sender is behind: show it how we got here.
		n.sendCertTo(from)
		return nil
	}
	if v > n.view {
		vs, ok := msg.(*wire.ViewState)
		if !ok || vs.Cert == nil {
			// We are behind. Tell the sender where we are: it answers a
			// lower-view message with the certificate we are missing.
			n.pokePeer(from)
			return nil
		}
		if err := n.adoptCert(vs.Cert); err != nil {
			return err
		}
	}
	switch m := msg.(type) {
	case *wire.Dispute:
		return n.stepDispute(from, m)
	case *wire.ViewState:
		return n.stepViewState(from, m)
	case *wire.NewView:
		return n.stepNewView(from, m)
	case *wire.Post:
		return n.stepPost(from, m)
	case *wire.PostReply:
		return n.stepPostReply(from, m)
	case *wire.Round:
		return n.stepRound(from, m)
	case *wire.Vote:
		return n.stepVote(from, m)
	}
	return fmt.Errorf("core: unexpected message %T", msg)
}

// Submit adds a batch received over HTTP to the app's initialized batches.
// Errors: ErrInvalidApp, ErrBodyTooLarge, ErrInvalidBody, ErrBacklogFull,
// ErrTooManyApps; on error nothing changed.
func (n *Node) Submit(app string, body []byte) error {
	n.signDeferred()
	if err := wire.ValidateApp(app); err != nil {
		return fmt.Errorf("%w: %v", ErrInvalidApp, err)
	}
	if len(body) > wire.MaxBatchBytes {
		return fmt.Errorf("%w: %d bytes, limit %d", ErrBodyTooLarge, len(body), wire.MaxBatchBytes)
	}
	if err := wire.ValidateBody(body); err != nil {
		return fmt.Errorf("%w", ErrInvalidBody)
	}
	a := n.apps[app]
	if a == nil {
		if len(n.apps) >= n.cfg.AppsMax {
			return fmt.Errorf("%w: limit %d", ErrTooManyApps, n.cfg.AppsMax)
		}
	} else if len(a.pend) >= n.cfg.PendingBatchesMax || a.pendBytes+len(body) > n.cfg.PendingBytesMax {
		return fmt.Errorf("%w: %d batches, %d bytes waiting on this node", ErrBacklogFull, len(a.pend), a.pendBytes)
	}
	if a == nil {
		a = n.newAppHere(app)
		if n.isLeader() && n.established {
			// Nobody reported it for this view: it starts empty here.
			n.activateLeader(a)
		}
	}
	body = slices.Clone(body)
	p := &pend{seq: a.hard.NextSeq, body: body, submittedMs: n.nowMs}
	a.hard.NextSeq++
	a.hardDirty = true
	a.pend[p.seq] = p
	a.pendBytes += len(body)
	ap := n.appPersist(a)
	ap.PendingPut = append(ap.PendingPut, Pending{Seq: p.seq, Body: body, SubmittedMs: p.submittedMs})
	n.postSoon(a)
	return nil
}

// HasReady reports whether Ready has anything to persist, send or report.
func (n *Node) HasReady() bool {
	if !n.hasOutput() {
		return false
	}
	if !n.holdable() {
		return true
	}
	if !n.holding {
		n.holding, n.holdTick = true, n.tick
	}
	return n.tick-n.holdTick >= uint64(n.cfg.HoldTicksMax)
}

// hasOutput reports whether anything changed since the last Ready.
func (n *Node) hasOutput() bool {
	if n.hardDirty || len(n.persist) > 0 || len(n.msgs) > 0 || len(n.finalized) > 0 || n.flushDue {
		return true
	}
	for _, name := range n.names {
		if n.apps[name].hardDirty {
			return true
		}
	}
	return false
}

// holdable reports whether the output since the last Ready may wait for
// the round under way (Config.HoldTicksMax, finalizationComing): it only carries batches
// (entries and pending batches to persist, a leader's pushes and post
// replies, a follower's posts; the app hard state a submit changes, its
// next Seq) of apps whose round is under way, whose next output (votes,
// proofs, the next round's requests) will not wait and will take it
// along, in one save. No message but those waits, so a vote, a round's
// request or a proof never does (the safety records they change travel
// with them), nor a view change or a finalization. What a round needs
// from what waited goes first when the output that releases it is made:
// a leader pushes before a round's requests (advanceRounds), a follower
// posts before its vote (stepRound), so the leader holds a follower's
// batches when that vote completes the round and locks them in the next.
// It is a performance rule, not a safety one: what waits is still saved
// before it is sent, with the output that releases it.
func (n *Node) holdable() bool {
	if n.cfg.HoldTicksMax == 0 || n.hardDirty || len(n.finalized) > 0 {
		return false
	}
	for _, env := range n.msgs {
		var app string
		own := false // a follower's post carrying its own batches
		switch m := env.Msg.(type) {
		case *wire.PostReply:
			app = m.App
		case *wire.Post:
			app = m.App
			own = len(m.Batches) > 0
		default:
			return false
		}
		if a := n.apps[app]; a == nil || !n.roundUnderWay(a) && (own || !n.finalizationComing(a)) {
			return false
		}
	}
	for _, name := range n.names {
		a := n.apps[name]
		ap := n.persist[name]
		due := a.postDue || (a.lead != nil && a.lead.pushDue)
		if ap == nil && !due && !a.hardDirty {
			continue
		}
		if !n.roundUnderWay(a) && (a.hardDirty || (ap != nil && len(ap.PendingPut) > 0) || a.hasInitialized() || !n.finalizationComing(a)) {
			return false
		}
		if ap != nil && (ap.Truncate || len(ap.Proofs) > 0 || len(ap.PendingDelete) > 0) {
			return false
		}
	}
	return true
}

// roundUnderWay reports whether app a has a round under way whose next
// output is coming: the leader's rounds in flight; a follower's Lock of
// this view above its finalized index (the round that finalizes it is
// to come).
func (n *Node) roundUnderWay(a *app) bool {
	if a.phase != phaseActive || a.sync != nil {
		return false
	}
	if n.isLeader() {
		return a.lead != nil && len(a.lead.rounds) > 0
	}
	sl := a.hard.SignedLock
	return sl.View == n.view && sl.Index > a.finalIdx()
}

// finalizationComing reports whether a follower's log of app a holds
// batches that are not final yet: their finalize proof is on its way, and
// applying it releases held output. Output that carries no batch of this
// node's own (pushed entries saved, a post that only reports its tip) may
// wait for it when no round is under way here (holdable): a spare voter
// (docs/protocol.md §4 step 8) signs no Lock, and would otherwise save
// every push alone. Its own batches wait only for a round under way.
func (n *Node) finalizationComing(a *app) bool {
	return !n.isLeader() && a.phase == phaseActive && a.sync == nil && a.tip() > a.finalIdx()
}

// Ready returns what changed since the last Ready and hands it over: the
// node forgets it (the next Ready starts empty). Handle it (Persist first,
// then Messages, then Finalized) and call Advance. Between Ready and Advance
// the runtime may keep calling Tick, Step and Submit while it saves (group
// commit): their output goes to the next Ready, whose Persist is saved after
// this one's. It must not call Ready again before Advance.
func (n *Node) Ready() Ready {
	if n.readyOut {
		panic("core: Ready called again before Advance")
	}
	n.flush()
	n.holding = false
	var rd Ready
	if n.hardDirty {
		h := cloneHard(HardState{View: n.view, Cert: n.cert})
		rd.Persist.Hard = &h
		n.hardDirty = false
	}
	for _, name := range n.names {
		a := n.apps[name]
		ap := n.persist[name]
		if a.hardDirty {
			if ap == nil {
				ap = n.appPersist(a)
			}
			h := cloneAppHard(a.hard)
			ap.Hard = &h
			a.hardDirty = false
		}
		if ap != nil {
			rd.Persist.Apps = append(rd.Persist.Apps, *ap)
		}
		// What this Ready makes durable: Advance may drop entries up to
		// here from memory (and no further: later finalizations are
		// saved by later Readys).
		a.readyFinal = a.finalIdx()
	}
	rd.Messages = n.msgs
	rd.Finalized = n.finalized
	n.persist = map[string]*AppPersist{}
	n.msgs = nil
	n.finalized = nil
	n.readyOut = true
	return rd
}

// Advance tells the node the last Ready was handled: persisted, sent and
// reported. Entries it finalized now live in the store; the node drops them
// from memory.
func (n *Node) Advance() {
	if !n.readyOut {
		panic("core: Advance without a Ready")
	}
	n.readyOut = false
	for _, name := range n.names {
		a := n.apps[name]
		if fin := min(a.readyFinal, a.finalIdx()); fin > a.base {
			k := fin - a.base
			last := a.mem[k-1]
			for _, e := range a.mem[:k] {
				a.memBytes -= len(e.Body)
			}
			a.mem = slices.Clone(a.mem[k:])
			a.base, a.baseHash, a.baseTs = fin, last.ChainingHash, last.Timestamp
		}
	}
}

// Status returns a snapshot of the node's view, leader and per-app indexes.
func (n *Node) Status() Status {
	st := Status{Node: n.cfg.Self, View: n.view, Leader: n.cfg.Leader(n.view)}
	if n.isLeader() {
		st.Ready = n.established && !n.anyAppSyncing()
	} else {
		// Following means hearing from the leader: its answers, rounds, or
		// at least its pings (every LeaderTimeoutTicks even when idle).
		heard := n.heardTick[n.leader()]
		window := 2 * n.pace.scaled(n.cfg.LeaderTimeoutTicks)
		st.Ready = heard > 0 && n.tick-heard <= window && !n.anyAppSyncing()
	}
	for _, name := range n.names {
		a := n.apps[name]
		init := 0
		for _, p := range a.pend {
			if p.index == 0 {
				init++
			}
		}
		st.Apps = append(st.Apps, AppStatus{
			App: name, Initialized: init, Sequenced: a.tip(),
			Locked: a.lockIdx(), Finalized: a.finalIdx(),
		})
	}
	return st
}

// pokePeer sends a peer that is ahead of us our view state (rate limited
// per peer), so it answers with its certificate.
func (n *Node) pokePeer(peer int) {
	if n.certSentTick[peer] != 0 && n.tick-n.certSentTick[peer] < uint64(n.cfg.RetryTicks) {
		return
	}
	n.certSentTick[peer] = n.tick
	n.send(peer, n.buildViewState())
}

func (n *Node) isLeader() bool { return n.cfg.Leader(n.view) == n.cfg.Self }

func (n *Node) leader() int { return n.cfg.Leader(n.view) }

func (n *Node) send(to int, m wire.Message) {
	if to == n.cfg.Self {
		panic("core: sending to self")
	}
	n.msgs = append(n.msgs, Envelope{To: to, Msg: m})
}

func (n *Node) broadcast(m wire.Message) {
	for i := 0; i < n.cfg.Nodes; i++ {
		if i != n.cfg.Self {
			n.send(i, m)
		}
	}
}

// appPersist returns the app's pending persistence record.
func (n *Node) appPersist(a *app) *AppPersist {
	ap := n.persist[a.name]
	if ap == nil {
		ap = &AppPersist{App: a.name}
		n.persist[a.name] = ap
	}
	return ap
}

// newAppHere creates an app this node has never seen (bounded by AppsMax
// by the callers), waiting for the view's NewView.
func (n *Node) newAppHere(name string) *app {
	a := newApp(name, n.cfg.Nodes)
	a.hardDirty = true
	a.phaseSince = n.tick
	a.lastFinalTick = n.tick
	n.apps[name] = a
	n.names = append(n.names, name)
	sort.Strings(n.names)
	n.appPersist(a)
	return a
}

// getApp returns an app, creating it when a peer names one we do not know
// (up to AppsMax); nil when full.
func (n *Node) getApp(name string) *app {
	if a := n.apps[name]; a != nil {
		return a
	}
	if len(n.apps) >= n.cfg.AppsMax {
		return nil
	}
	return n.newAppHere(name)
}

func (n *Node) anyAppSyncing() bool {
	for _, name := range n.names {
		if n.apps[name].phase == phaseSync {
			return true
		}
	}
	return false
}

// verifyProof checks a quorum proof for app: a Lock or Finalize proof (no
// other kind, checked here as well as by the wire decoder, since Step takes
// messages that need not come through one), at least Q distinct cluster
// nodes and a valid aggregate signature on the Lock or Finalize digest.
func (n *Node) verifyProof(app string, p *wire.Proof) bool {
	if !n.quorumSigners(p) || p.Kind != wire.KindLock && p.Kind != wire.KindFinalize {
		return false
	}
	key := keyOf(app, p)
	if ok, hit := n.verified[key]; hit {
		return ok
	}
	ok := n.crypto.VerifyAggregate(p.Signers, ProofDigest(n.domain, app, p), p.Signature)
	n.remember(key, ok)
	return ok
}

// verifyFinalizeProof is verifyProof for a proof that is to finalize
// something: the kind is checked here too, not only by the wire decoder,
// since a valid lock proof is no evidence that anything is final.
func (n *Node) verifyFinalizeProof(app string, p *wire.Proof) bool {
	return p != nil && p.Kind == wire.KindFinalize && n.verifyProof(app, p)
}

// quorumSigners reports whether p names at least Q distinct cluster nodes.
func (n *Node) quorumSigners(p *wire.Proof) bool {
	return p != nil && p.Signers.Max() < n.cfg.Nodes && p.Signers.Count() >= n.quorum
}

// remember caches a proof check's answer, emptying the cache when full.
func (n *Node) remember(key proofKey, ok bool) {
	if len(n.verified) >= verifiedCacheMax {
		clear(n.verified)
	}
	n.verified[key] = ok
}

// preverify checks, with one multi-pairing, the proofs among ps that
// verifyProof would have to check (well-formed, not cached), when there
// are two or more, and caches them as valid if they all are. If not,
// nothing is cached and verifyProof checks each alone when asked; so
// calling it first never changes an answer, only what it costs.
func (n *Node) preverify(app string, ps ...*wire.Proof) {
	var keys []proofKey
	var checks []AggregateCheck
	for _, p := range ps {
		if !n.quorumSigners(p) {
			continue
		}
		key := keyOf(app, p)
		if _, hit := n.verified[key]; hit {
			continue
		}
		keys = append(keys, key)
		checks = append(checks, AggregateCheck{Signers: p.Signers, Digest: ProofDigest(n.domain, app, p), Signature: p.Signature})
	}
	if len(checks) < 2 || !n.crypto.VerifyAggregates(checks) {
		return
	}
	for _, key := range keys {
		n.remember(key, true)
	}
}

// proofKey identifies a proof (with its app) for the verification cache.
type proofKey struct {
	app          string
	kind         wire.ProofKind
	view, index  uint64
	chainingHash wire.Hash
	signers      string
	signature    wire.Signature
}

func keyOf(app string, p *wire.Proof) proofKey {
	return proofKey{app, p.Kind, p.View, p.Index, p.ChainingHash, string(p.Signers), p.Signature}
}
