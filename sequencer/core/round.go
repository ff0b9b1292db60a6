package core

import (
	"maps"
	"math"
	"slices"

	"github.com/seqbook/seqbook/sequencer/wire"
)

// A leader's rounds, pipelined and following the load.
//
// One round is one Round message: it asks every node to sign Finalize for
// the lock proof the previous round formed (fin) and Lock for the next
// candidate (lock), and carries the newest finalize proof. Either part may
// be absent. The next round starts the moment this one's proofs have
// formed and covers everything that gathered meanwhile: at low load the
// first batch a quorum holds starts a round at once; under load rounds
// run back to back and grow with what arrives while one is under way, so
// their fixed cost (signatures, pairings, an fsync per node) is shared by
// more batches. No timer sits between rounds.
//
// At light load more rounds may start while one is under way
// (Config.RoundOverlapBatchesMax, mayStartRound): a batch waits at most a
// quarter of a round (or two ticks) to be asked to be locked, and a lock
// proof is asked to be finalized at once, instead of waiting for the round
// under way, which on a wide-area link is most of a round trip. The rounds
// in flight lock increasing indexes and finalize increasing lock
// proofs, so every node is asked in an order its voter accepts (one
// ordered stream per peer); a part that a newer proof made moot (a lock
// below the view's newest lock proof, a finalize at or below the
// finalized index) is dropped, its votes no longer needed.
//
// What the leader itself may sign is the voter's decision, made when the
// round starts (castLock, castFinalize record it in the round's Ready).
// Making the signature is deferred to the next event (signDeferred): the
// requests leave first and the followers sign while the leader does. That
// is a performance trick and stays out of the voter.

// round is one of the leader's rounds under way.
type round struct {
	lock, fin *tally
	// startTick is when the round started.
	startTick uint64
	// lockFrom is the index the lock part starts after: it locks
	// lock.index - lockFrom batches.
	lockFrom uint64
	// asked is when each node was asked, for its retries and round trip.
	asked roundAsks
}

// roundAsks records whom a round asked when: each node is asked again
// after its retry timeout (retry.go), and its first vote, if it was asked
// once, measures its round trip. A round that is done keeps them a while
// (leadState.recent): the votes a quorum did not wait for measure the
// slower nodes too.
type roundAsks struct {
	// lockAt and finAt are the indexes the round asks to lock and to
	// finalize (0: no such part): votes name them.
	lockAt, finAt uint64
	nodes         []roundAsk
}

type roundAsk struct {
	first, tick  uint64 // when first and last asked
	asked, again bool   // asked at all; asked more than once
	answered     bool   // a vote came (the first one was sampled)
}

// roundsRecentMax bounds the finished rounds a leader keeps to measure
// late votes.
const roundsRecentMax = 4

// tally collects the votes for one Lock or Finalize message.
//
// Votes are not checked one by one as they arrive: a pairing per vote is
// most of a leader's CPU. They wait in unchecked until, with the checked
// ones and the leader's own, they could complete a quorum; then one
// aggregate check covers them all, and only when it fails is each checked
// alone to drop the bad ones (see prove).
type tally struct {
	kind      wire.ProofKind
	index     uint64
	hash      wire.Hash
	lp        *wire.Proof // finalize: the lock proof it finalizes
	votes     map[int]wire.Signature
	unchecked map[int]wire.Signature
	// ownDue: the voter allowed the leader's own vote (recorded); its
	// signature is still to be made.
	ownDue bool
	// share (lock): the round asked every node to send its vote to all
	// (Round.ShareLock); the leader's own goes to all too. unasked
	// (finalize): the lock proof came from such a round, so the nodes
	// sign its Finalize unasked (share.go); they are asked only when their
	// vote has not come within their retry timeout.
	share, unasked bool
	// proof is the quorum proof once formed.
	proof *wire.Proof
}

func newTally(kind wire.ProofKind, index uint64, hash wire.Hash, lp *wire.Proof) *tally {
	return &tally{kind: kind, index: index, hash: hash, lp: lp, votes: map[int]wire.Signature{}, unchecked: map[int]wire.Signature{}}
}

// done reports whether t has its proof (an absent part is done).
func (t *tally) done() bool { return t == nil || t.proof != nil }

// has reports whether node i's vote is in (checked or not).
func (t *tally) has(i int) bool {
	_, ok := t.votes[i]
	_, pending := t.unchecked[i]
	return ok || pending
}

func (r *round) done() bool { return r.lock.done() && r.fin.done() }

// advanceRounds forms the proofs the votes in hand allow, drops the
// rounds that are done and starts the next one when it may (see
// mayStartRound). A cluster of one completes rounds at once, so it loops
// until there is nothing left to lock.
func (n *Node) advanceRounds(a *app) {
	l := a.lead
	if l == nil || a.phase != phaseActive {
		return
	}
	for {
		for _, r := range l.rounds {
			n.tallyRound(a, r)
		}
		n.dropSettled(a)
		if !n.mayStartRound(a) {
			break
		}
		// What waits for a round (held output, HasReady) goes first: the
		// round's lock counts what was pushed before it.
		n.pushPending(a)
		r := n.nextRound(a)
		if r == nil {
			break
		}
		r.startTick = n.tick
		l.rounds = append(l.rounds, r)
		n.sendRound(a, r, false)
	}
	if a.finalIdx() > l.announced {
		// A new finalize proof and no round leaving now to carry it:
		// followers learn it at once (and answer their readers).
		n.announceFinal(a)
	}
}

// dropSettled drops the parts of the rounds in flight that a newer proof
// made moot (a lock at or below the view's newest lock proof, a finalize
// at or below the finalized index), then the rounds that are done.
func (n *Node) dropSettled(a *app) {
	l := a.lead
	keep := l.rounds[:0]
	for _, r := range l.rounds {
		if t := r.lock; t != nil && !t.done() && l.viewLock != nil && l.viewLock.Index >= t.index {
			r.lock = nil
		}
		if t := r.fin; t != nil && !t.done() && a.finalIdx() >= t.index {
			r.fin = nil
		}
		if !r.done() {
			keep = append(keep, r)
			continue
		}
		if (r.lock != nil && r.lock.proof != nil) || (r.fin != nil && r.fin.proof != nil) {
			l.roundTicks = max(n.tick-r.startTick, 1)
		}
		if len(l.recent) == roundsRecentMax {
			l.recent = append(l.recent[:0], l.recent[1:]...)
		}
		l.recent = append(l.recent, r.asked)
	}
	clear(l.rounds[len(keep):])
	l.rounds = keep
}

// roundsInFlightMax bounds the leader's rounds under way per app (each
// holds two tallies of at most one vote per node): the lock rounds of a
// light load on a long round trip, and the finalize rounds of their
// proofs.
const roundsInFlightMax = 16

// roundSpacing and roundSpacingTicksMax: at light load a lock round starts
// a quarter of a round (the last round's) after the one before it, or
// two ticks (20 ms) after it when that is sooner. A batch then waits at
// most that long before it is asked to be locked, while the rounds' fixed
// cost (a signature, a proof check and an fsync on every node) stays
// bounded whatever the load: at most four lock rounds per round's time,
// and at most one per two ticks on a long round trip, where rounds are
// few per second anyway.
const (
	roundSpacing         = 4
	roundSpacingTicksMax = 2
)

// mayStartRound reports whether a round may start now: when none is under
// way; beside the ones under way (at most roundsInFlightMax, with overlap
// on) when a lock proof formed that no round finalizes yet; or, when the
// network holds a round for two ticks or more (quorumFloor, a wide-area
// link), when the newest round under way started at least a quarter of a
// round's time ago or two ticks ago (roundSpacing) and the rounds under
// way lock at most RoundOverlapBatchesMax batches each on average and four
// times that in all (a light load). A lock
// proof does not wait: its finalize is the last step before finality, and
// waiting for the rounds under way would add what is left of them to the
// finality of every batch it covers. Under load rounds run one at a time
// and grow with what arrives while one is under way.
func (n *Node) mayStartRound(a *app) bool {
	l := a.lead
	rs := l.rounds
	if len(rs) == 0 {
		return true
	}
	if len(rs) >= roundsInFlightMax || n.cfg.RoundOverlapBatchesMax == 0 {
		return false
	}
	if n.finalizeWaits(a) {
		return true
	}
	if l.roundTicks == 0 || !n.roundsHeldByNetwork() {
		// A round trip under two ticks, as on one host: overlapping would
		// only add rounds for a busy CPU to do, and a busy CPU is what
		// holds them.
		return false
	}
	if age := n.tick - rs[len(rs)-1].startTick; age*roundSpacing < l.roundTicks && age < roundSpacingTicksMax {
		return false
	}
	locks := uint64(0)
	for _, r := range rs {
		if r.lock != nil {
			locks += r.lock.index - r.lockFrom
		}
	}
	return locks <= uint64(n.cfg.RoundOverlapBatchesMax)*uint64(min(len(rs), roundSpacing))
}

// finalizeWaits reports whether the view's newest lock proof is neither
// final nor asked to be finalized by a round under way.
func (n *Node) finalizeWaits(a *app) bool {
	lp := a.lead.viewLock
	return lp != nil && lp.Index > a.finalIdx() && lp.Index > askedIdx(a, finPart)
}

// nextRound builds the next round: finalize the view's newest lock proof
// if it is neither final nor being finalized, lock the next candidate if
// there is one; nil when there is neither.
func (n *Node) nextRound(a *app) *round {
	l := a.lead
	r := &round{}
	if lp := l.viewLock; n.finalizeWaits(a) {
		r.fin = newTally(wire.KindFinalize, lp.Index, lp.ChainingHash, lp)
		r.fin.ownDue = n.castFinalize(a, lp)
		r.fin.unasked = l.viewLockShared
		l.takeEarly(r.fin)
	}
	if idx, from, ok := n.lockCandidate(a); ok {
		h, _ := n.hashAt(a, idx)
		r.lock = newTally(wire.KindLock, idx, h, nil)
		r.lock.ownDue = n.castLock(a, idx, h)
		r.lock.share = n.shareLockVotes()
		r.lockFrom = from
		n.log.Debug("lock round", "app", a.name, "view", n.view, "index", idx)
	}
	if r.lock == nil && r.fin == nil {
		return nil
	}
	r.asked.nodes = make([]roundAsk, n.cfg.Nodes)
	if r.lock != nil {
		r.asked.lockAt = r.lock.index
	}
	if r.fin != nil && !r.fin.unasked {
		// (A vote given unasked measures no round trip.)
		r.asked.finAt = r.fin.index
	}
	return r
}

// shareLockVotes reports whether a new lock round asks the nodes to send
// their votes to every node (Config.ShareLockVotes).
func (n *Node) shareLockVotes() bool {
	switch n.cfg.ShareLockVotes {
	case ShareAlways:
		return true
	case ShareNever:
		return false
	}
	return n.roundsHeldByNetwork()
}

// roundsHeldByNetwork reports whether the network holds a round for two
// ticks or more (a wide-area link): the network's round trip to a quorum
// of peers is that long (networkFloor, from the transport), or, until the
// runtime says, the leader's quorum of peers answers no sooner than that
// at best (quorumFloor). Only then do rounds overlap and lock votes go to
// every node.
func (n *Node) roundsHeldByNetwork() bool {
	if f, ok := n.networkFloor(); ok {
		return f >= roundSpacingTicksMax
	}
	return n.quorumFloor() >= roundSpacingTicksMax
}

// takeEarly moves into t, a new finalize tally, the finalize votes that
// came before it (a node that aggregated a shared lock proof before the
// leader did).
func (l *leadState) takeEarly(t *tally) {
	for i, v := range l.early {
		if v != nil && v.Index == t.index && v.ChainingHash == t.hash {
			t.unchecked[i] = v.Signature
			l.early[i] = nil
		}
	}
}

// askedIdx is the highest index the rounds in flight ask to lock (part
// picks r.lock) or to finalize (r.fin); 0 if none.
func askedIdx(a *app, part func(r *round) *tally) uint64 {
	idx := uint64(0)
	for _, r := range a.lead.rounds {
		if t := part(r); t != nil {
			idx = max(idx, t.index)
		}
	}
	return idx
}

func lockPart(r *round) *tally { return r.lock }
func finPart(r *round) *tally  { return r.fin }

// sendRound asks the nodes for the votes they have not given yet, with
// the newest finalize proof (a follower checks it together with the lock
// proof it is asked to finalize: one multi-pairing): every node when the
// round starts, and on retry only those whose retry timeout ran out since
// they were last asked. It returns how many nodes it asked.
func (n *Node) sendRound(a *app, r *round, retry bool) int {
	var spare []bool
	sparesDue := false
	if !retry {
		spare = n.spares(a, r)
	} else {
		sparesDue = n.askedLate(r)
	}
	sent, told := 0, false
	for i := 0; i < n.cfg.Nodes; i++ {
		ask := &r.asked.nodes[i]
		if i == n.cfg.Self || (retry && !n.retryDue(i, ask.tick) && !(sparesDue && !ask.asked)) {
			continue
		}
		if spare != nil && spare[i] {
			// Asked on a retry pass once an asked node's retry timeout
			// has run out without its vote (or its own has), if the round
			// still needs votes by then.
			ask.tick = n.tick
			told = n.sendFinalized(a, i) || told
			continue
		}
		lock, fin := r.lock, r.fin
		if lock.done() || lock.has(i) {
			lock = nil
		}
		if fin.done() || fin.has(i) {
			fin = nil
		}
		if fin != nil && fin.unasked && !retry {
			// The node finalizes it unasked; it is asked once its retry
			// timeout runs out without its vote.
			fin = nil
			ask.tick = n.tick
		}
		if lock == nil && fin == nil {
			continue
		}
		m := &wire.Round{App: a.name, View: n.view, Finalized: cloneProof(a.hard.Finalized)}
		if lock != nil {
			m.Lock = &wire.LockTarget{Index: lock.index, ChainingHash: lock.hash}
			m.ShareLock = lock.share
		}
		if fin != nil {
			m.Finalize = cloneProof(fin.lp)
		}
		if ask.asked {
			// Its retry timeout ran out without its vote.
			ask.again = true
			a.lead.late[i] = true
		} else {
			ask.first = n.tick
		}
		ask.asked, ask.tick = true, n.tick
		n.send(i, m)
		sent++
	}
	if sent > 0 || told {
		a.lead.announced = a.finalIdx()
	}
	return sent
}

// askedLate reports whether a node r asked still owes a vote for a part
// under way and its retry timeout has run out: then the round's spares are
// asked too, whatever their own timeouts.
func (n *Node) askedLate(r *round) bool {
	for i := range r.asked.nodes {
		ask := &r.asked.nodes[i]
		if i == n.cfg.Self || !ask.asked || !n.retryDue(i, ask.tick) {
			continue
		}
		if (!r.lock.done() && !r.lock.has(i)) || (!r.fin.done() && !r.fin.has(i)) {
			return true
		}
	}
	return false
}

// spares returns the followers a new round r leaves unasked
// (Config.SpareVoters), or nil when it asks every one. A quorum is the
// leader and Q-1 followers; each vote beyond that costs its node two
// signatures and a proof check that no proof uses, and on one host that
// CPU is what holds the rounds. So when the leader signs every part of r
// itself, the followers least likely to answer soon are spares: late ones
// first (see leadState.late), then those whose posts have not matched our
// log in this view, then the slowest by round trip (one that never
// answered first), then the last in cluster order. In SpareAuto the
// round asks every follower instead when any of the Q-1 it would ask is
// late or not known to hold our log: then the spares would be needed. A
// spare is asked on a retry pass once an asked node's retry timeout has
// run out without its vote (askedLate), or its own has, so the round
// still completes when an asked node is slow or gone, one retry timeout
// later; that node is late from then on and becomes the spare. Which
// nodes are asked decides liveness only.
func (n *Node) spares(a *app, r *round) []bool {
	mode := n.cfg.SpareVoters
	if mode == SpareNever || (mode == SpareAuto && n.roundsHeldByNetwork()) {
		return nil
	}
	if (r.lock != nil && (!r.lock.ownDue || r.lock.share)) || (r.fin != nil && (!r.fin.ownDue || r.fin.unasked)) {
		// Without the leader's own vote a quorum needs Q followers; a
		// shared lock round needs every node's vote at every node.
		return nil
	}
	l := a.lead
	followers := make([]int, 0, n.cfg.Nodes)
	for i := range n.cfg.Nodes {
		if i != n.cfg.Self {
			followers = append(followers, i)
		}
	}
	spareN := len(followers) - (n.quorum - 1)
	if spareN <= 0 {
		return nil
	}
	rank := func(i int) [4]uint64 { // larger: a worse voter to wait for (then later in cluster order)
		rtt := uint64(math.MaxUint64) // never answered: slowest
		if n.rtt[i].sampled {
			rtt = n.rtt[i].srtt8
		}
		return [4]uint64{b2u(l.late[i]), b2u(!l.known[i]), rtt, uint64(i)}
	}
	slices.SortFunc(followers, func(x, y int) int {
		rx, ry := rank(x), rank(y)
		return -slices.Compare(rx[:], ry[:])
	})
	if mode == SpareAuto {
		for _, i := range followers[spareN:] {
			if l.late[i] || !l.known[i] {
				return nil
			}
		}
	}
	spare := make([]bool, n.cfg.Nodes)
	for _, i := range followers[:spareN] {
		spare[i] = true
	}
	return spare
}

func b2u(b bool) uint64 {
	if b {
		return 1
	}
	return 0
}

// sendFinalized sends node i, a spare of a new round, the newest finalize
// proof alone if it was not sent to it as a spare yet (an asked node gets
// it in the round's request). It reports whether it sent one.
func (n *Node) sendFinalized(a *app, i int) bool {
	fp := a.hard.Finalized
	if fp == nil || fp.Index <= a.lead.finSent[i] {
		return false
	}
	a.lead.finSent[i] = fp.Index
	n.send(i, &wire.Round{App: a.name, View: n.view, Finalized: cloneProof(fp)})
	return true
}

// sampleVote measures node from's round trip by its first vote for a
// round under way or recently done.
func (n *Node) sampleVote(l *leadState, from int, v *wire.Vote) {
	match := func(ra roundAsks) bool {
		return (v.Lock != nil && ra.lockAt != 0 && v.Lock.Index == ra.lockAt) ||
			(v.Finalize != nil && ra.finAt != 0 && v.Finalize.Index == ra.finAt)
	}
	for k := range len(l.recent) + len(l.rounds) {
		var ra roundAsks
		if k < len(l.recent) {
			ra = l.recent[k]
		} else {
			ra = l.rounds[k-len(l.recent)].asked
		}
		if !match(ra) {
			continue
		}
		ask := &ra.nodes[from]
		if ask.asked && !ask.answered {
			n.sampleAnswer(from, ask.first, ask.again)
			if !ask.again {
				l.late[from] = false // answered within its retry timeout
			}
		}
		ask.answered = true
		return
	}
}

// announceFinal sends everyone the newest finalize proof alone.
func (n *Node) announceFinal(a *app) {
	a.lead.announced = a.finalIdx()
	n.broadcast(&wire.Round{App: a.name, View: n.view, Finalized: cloneProof(a.hard.Finalized)})
}

// stepVote (leader) collects a node's signatures for the rounds under way.
// A follower gets the lock votes other nodes share (share.go).
func (n *Node) stepVote(from int, v *wire.Vote) error {
	if !n.isLeader() {
		n.stepSharedLock(from, v)
		return nil
	}
	a := n.apps[v.App]
	if a == nil || a.lead == nil || v.View != n.view {
		return nil
	}
	n.sampleVote(a.lead, from, v)
	finHeld := false
	for _, r := range a.lead.rounds {
		for _, c := range []struct {
			s *wire.SignedTarget
			t *tally
		}{{v.Lock, r.lock}, {v.Finalize, r.fin}} {
			if c.s != nil && !c.t.done() && c.s.Index == c.t.index && c.s.ChainingHash == c.t.hash && !c.t.has(from) {
				c.t.unchecked[from] = c.s.Signature
			}
		}
		finHeld = finHeld || (r.fin != nil && v.Finalize != nil && r.fin.index == v.Finalize.Index)
	}
	if f := v.Finalize; f != nil && !finHeld && f.Index > a.finalIdx() && (a.lead.viewLock == nil || f.Index > a.lead.viewLock.Index) {
		// Given unasked for a shared lock proof this leader has not
		// formed yet: kept (the newest per node) for its finalize round.
		a.lead.early[from] = f
	}
	if len(a.lead.rounds) == 0 {
		return nil
	}
	n.advanceRounds(a)
	return nil
}

// tallyRound turns the parts of r that hold a quorum of votes into proofs:
// a lock proof becomes the view's lock and the leader's lock certificate, a
// finalize proof finalizes.
func (n *Node) tallyRound(a *app, r *round) {
	lc, fc := n.candidate(a, r.lock), n.candidate(a, r.fin)
	if lc != nil && fc != nil && len(r.lock.unchecked) > 0 && len(r.fin.unchecked) > 0 {
		n.preverify(a.name, lc, fc) // both at once: one multi-pairing
	}
	if lp := n.prove(a, r.lock, lc); lp != nil {
		r.lock.proof = lp
		if a.lead.viewLock == nil || lp.Index > a.lead.viewLock.Index {
			a.lead.viewLock = lp // (an older round's proof may form after a newer one's)
			a.lead.viewLockShared = r.lock.share
		}
		n.raiseLock(a, lp)
		n.metrics.LockProofs++
		n.log.Debug("lock proof", "app", a.name, "view", n.view, "index", lp.Index)
	}
	if fp := n.prove(a, r.fin, fc); fp != nil {
		r.fin.proof = fp
		n.metrics.FinalizeProofs++
		n.finalizeTo(a, fp)
	}
}

// candidate aggregates every vote of t, checked or not, and the leader's
// own (signed now if still due), once they make a quorum; nil before, and
// nil once t has its proof.
func (n *Node) candidate(a *app, t *tally) *wire.Proof {
	if t.done() {
		return nil
	}
	own := 0
	if t.ownDue {
		own = 1
	}
	if len(t.votes)+len(t.unchecked)+own < n.quorum {
		return nil
	}
	n.signOwn(a, t)
	all := maps.Clone(t.votes)
	maps.Copy(all, t.unchecked)
	if cand := n.aggregate(a, t, all); cand != nil || len(t.unchecked) == 0 {
		return cand
	}
	// A vote whose bytes are no signature at all (a Byzantine sender's)
	// fails the aggregation itself, before any check: check the unchecked
	// votes one by one, drop the bad ones and aggregate the rest. Else
	// that one vote would fail every candidate of t, and the round would
	// never form its proof.
	return n.checkEach(a, t)
}

// prove returns t's proof from cand (its candidate) once it holds a quorum
// of valid votes, or nil. Votes the leader checked (its own, or votes it
// checked one by one after a failed aggregate) are not checked again: only
// a candidate that contains unchecked votes is verified, once. If that
// fails, each unchecked vote is checked alone and the bad ones are dropped
// (their senders are logged), so a Byzantine vote costs the leader a few
// pairings but never a wrong proof. An aggregate over PoP-checked keys
// that verifies names only nodes whose signatures are in it: no coalition
// can add an honest node to a proof it did not sign.
func (n *Node) prove(a *app, t *tally, cand *wire.Proof) *wire.Proof {
	if cand == nil {
		return nil
	}
	if len(t.unchecked) == 0 {
		return cand
	}
	if n.verifyProof(a.name, cand) {
		maps.Copy(t.votes, t.unchecked)
		clear(t.unchecked)
		return cand
	}
	return n.checkEach(a, t)
}

// checkEach checks t's unchecked votes one by one: the valid ones join
// t.votes, the bad ones are dropped and their senders logged. It returns
// the aggregate of the checked votes once they make a quorum, else nil.
func (n *Node) checkEach(a *app, t *tally) *wire.Proof {
	// What every vote of t signs.
	digest := ProofDigest(n.domain, a.name, &wire.Proof{Kind: t.kind, View: n.view, Index: t.index, ChainingHash: t.hash})
	for i := 0; i < n.cfg.Nodes; i++ {
		sig, ok := t.unchecked[i]
		if !ok {
			continue
		}
		if n.crypto.Verify(i, digest, sig) {
			t.votes[i] = sig
		} else {
			n.metrics.StepErrors++
			n.log.Warn("bad vote signature", "app", a.name, "view", n.view, "from", i, "kind", t.kind, "index", t.index)
		}
	}
	clear(t.unchecked)
	if len(t.votes) < n.quorum {
		return nil
	}
	return n.aggregate(a, t, t.votes)
}

// signOwn makes the leader's own signature of t if the voter allowed it.
func (n *Node) signOwn(a *app, t *tally) {
	if !t.ownDue {
		return
	}
	t.ownDue = false
	if t.kind == wire.KindLock {
		sig := n.lockSig(a, t.index, t.hash)
		t.votes[n.cfg.Self] = sig
		if t.share {
			n.broadcast(&wire.Vote{App: a.name, View: n.view, Lock: &wire.SignedTarget{Index: t.index, ChainingHash: t.hash, Signature: sig}})
		}
	} else {
		t.votes[n.cfg.Self] = n.finalizeSig(a, t.lp)
	}
}

// signDeferred makes the leader's own signatures of the rounds under way
// (deferred so the requests left first), and forms the proofs they
// complete. It runs first in Tick, Step and Submit.
func (n *Node) signDeferred() {
	if !n.isLeader() {
		return
	}
	for _, name := range n.names {
		a := n.apps[name]
		if a.lead == nil || a.phase != phaseActive {
			continue
		}
		due := false
		for _, r := range a.lead.rounds {
			for _, t := range []*tally{r.lock, r.fin} {
				if t != nil && t.ownDue {
					n.signOwn(a, t)
					due = true
				}
			}
		}
		if due {
			n.advanceRounds(a)
		}
	}
}

// aggregate combines votes (node → signature) for t into a proof.
func (n *Node) aggregate(a *app, t *tally, votes map[int]wire.Signature) *wire.Proof {
	var signers wire.Bitmap
	var sigs []wire.Signature
	for i := 0; i < n.cfg.Nodes; i++ {
		if s, ok := votes[i]; ok {
			signers = signers.With(i)
			sigs = append(sigs, s)
		}
	}
	agg, err := n.crypto.Aggregate(sigs)
	if err != nil {
		n.log.Warn("aggregating votes failed", "app", a.name, "kind", t.kind, "index", t.index, "err", err)
		return nil
	}
	return &wire.Proof{Kind: t.kind, View: n.view, Index: t.index, ChainingHash: t.hash, Signers: signers, Signature: agg}
}
