package core

import (
	"fmt"
	"maps"
	"slices"

	"github.com/seqbook/seqbook/sequencer/wire"
)

// leadState is the leader's per-app state for the current view.
type leadState struct {
	// tips[i] is how far node i's log follows ours, from its last post;
	// known[i] says a post of this view matched our log there.
	tips  []uint64
	known []bool
	// pushed[i] is the end of what we sent node i (replies and pushes);
	// stalled[i] is since when its posts have shown no progress while
	// short of it (then what was sent is taken as lost and sent again).
	pushed  []uint64
	stalled []uint64
	// pushDue: push at the next Ready (see push).
	pushDue bool
	// lastSeqs[o] is the highest Seq from origin o in our log: posts at or
	// below it are duplicates.
	lastSeqs []uint64
	// viewLock is the newest lock proof formed in this view.
	viewLock  *wire.Proof
	lockRound *voteRound
	finRound  *voteRound
	sentTick  uint64
	// roundTick is when the last round started (see RoundGapTicks);
	// fpUnsent: a finalize proof formed that no Round carried yet.
	roundTick uint64
	fpUnsent  bool
	// roundFinal is the finalized index the last Round sent carried.
	roundFinal uint64
}

// voteRound collects signatures for one Lock or Finalize message.
//
// Votes are not checked one by one as they arrive: a pairing per vote is
// most of a leader's CPU. They wait in unchecked until, with the checked
// ones, they could complete a quorum; then one aggregate check covers them
// all, and only when it fails is each checked alone to drop the bad ones
// (see roundProof).
type voteRound struct {
	kind      wire.ProofKind
	index     uint64
	hash      wire.Hash
	lp        *wire.Proof // finalize rounds: the lock proof they finalize
	votes     map[int]wire.Signature
	unchecked map[int]wire.Signature
	// selfDue: the leader's own signature is still to be made (see
	// signOwnVotes).
	selfDue bool
}

func newVoteRound(kind wire.ProofKind, index uint64, hash wire.Hash, lp *wire.Proof) *voteRound {
	return &voteRound{kind: kind, index: index, hash: hash, lp: lp, votes: map[int]wire.Signature{}, unchecked: map[int]wire.Signature{}}
}

// has reports whether node i's vote is in (checked or not).
func (r *voteRound) has(i int) bool {
	_, ok := r.votes[i]
	_, pending := r.unchecked[i]
	return ok || pending
}

// activateLeader starts leading an app whose log holds the adopted chain:
// announce it with NewView and start sequencing.
func (n *Node) activateLeader(a *app) {
	n.log.Debug("leading", "app", a.name, "view", n.view, "tip", a.tip(), "lock", a.lockIdx(), "final", a.finalIdx())
	a.phase = phaseActive
	a.phaseSince = n.tick
	l := &leadState{
		tips:     make([]uint64, n.cfg.Nodes),
		known:    make([]bool, n.cfg.Nodes),
		pushed:   make([]uint64, n.cfg.Nodes),
		stalled:  make([]uint64, n.cfg.Nodes),
		lastSeqs: slices.Clone(a.hard.OriginSeqs),
	}
	for i := range a.mem {
		e := &a.mem[i]
		if e.Seq > l.lastSeqs[e.Origin] {
			l.lastSeqs[e.Origin] = e.Seq
		}
	}
	a.lead = l
	n.broadcast(n.newViewMsg(a))
	n.selfPost(a)
	n.maybeStartRounds(a)
}

func (n *Node) leaderTick(a *app) {
	if a.phase != phaseActive || a.lead == nil {
		return
	}
	if n.tick-a.lastPostTick >= uint64(n.cfg.PostIntervalTicks) {
		n.selfPost(a)
	}
	n.maybeStartRounds(a)
	l := a.lead
	if (l.lockRound != nil || l.finRound != nil) && n.tick-l.sentTick >= uint64(n.cfg.RetryTicks) {
		n.sendRounds(a, false)
	}
}

// selfPost sequences the leader's own initialized batches.
func (n *Node) selfPost(a *app) {
	a.lastPostTick = n.tick
	n.renumberSkipped(a)
	tip := a.tip()
	for _, seq := range a.initializedSeqs() {
		if !n.leaderAppend(a, n.cfg.Self, seq, a.pend[seq].body) {
			break
		}
	}
	if a.tip() > tip {
		n.pushSoon(a)
	}
}

func (n *Node) pushSoon(a *app) {
	a.lead.pushDue = true
	n.flushDue = true
}

// trackSent notes a post of node i reporting tip. While i is short of
// what we sent it, its posts must show progress; after RetryTicks without
// any, what was sent since its tip is taken as lost (a dropped connection,
// an evicted queue) and the next reply sends it again.
func (n *Node) trackSent(l *leadState, i int, tip uint64) {
	switch {
	case tip >= l.pushed[i] || tip > l.tips[i]:
		l.stalled[i] = 0
	case l.stalled[i] == 0:
		l.stalled[i] = max(n.tick, 1)
	case n.tick-l.stalled[i] >= uint64(n.cfg.RetryTicks):
		l.pushed[i], l.stalled[i] = tip, 0
	}
}

// push sends the followers whose log is known to match ours the batches
// they have not been sent yet (as a PostReply nobody asked for), once per
// Ready however many batches were appended in it. Without it a follower would
// fetch new batches only on its next post, and the leader would learn
// that it holds them only on the post after: two intervals before a lock
// round can include them. The follower's eager post acknowledges them.
func (n *Node) push(a *app) {
	l := a.lead
	for i := 0; i < n.cfg.Nodes; i++ {
		if i == n.cfg.Self || !l.known[i] {
			continue
		}
		from := max(l.tips[i], l.pushed[i])
		if from >= a.tip() {
			continue
		}
		r := n.replyAfter(a, from)
		if len(r.Batches) == 0 {
			continue
		}
		l.pushed[i] = from + uint64(len(r.Batches))
		n.send(i, r)
	}
}

// replyAfter is a PostReply with a page of our log after index after.
func (n *Node) replyAfter(a *app, after uint64) *wire.PostReply {
	r := &wire.PostReply{App: a.name, View: n.view, After: after}
	if after < a.tip() {
		for _, e := range n.readEntries(a, after+1, n.cfg.PageBatchesMax, n.cfg.PageBytesMax) {
			r.Batches = append(r.Batches, e.Batch)
		}
	}
	return r
}

// leaderAppend sequences one posted batch: stamped with the leader's
// clock, never before the previous batch. It returns false when the
// unfinalized bounds are full (the poster keeps the batch and retries).
func (n *Node) leaderAppend(a *app, origin int, seq uint64, body []byte) bool {
	l := a.lead
	if seq <= l.lastSeqs[origin] {
		return true // already sequenced
	}
	if n.nowMs == 0 {
		return false // no clock reading yet (before the first Tick): nothing to stamp with
	}
	if cnt, size := a.unfinalized(); cnt >= uint64(n.cfg.UnfinalizedBatchesMax) || size+len(body) > n.cfg.UnfinalizedBytesMax {
		return false
	}
	b := wire.Batch{Index: a.tip() + 1, Timestamp: max(n.nowMs, a.tipTs()), Origin: uint16(origin), Seq: seq, Body: body}
	n.appendEntry(a, makeEntry(b, a.tipHash()))
	l.lastSeqs[origin] = seq
	n.metrics.BatchesSequenced++
	return true
}

// stepPost (leader) sequences a node's batches and answers with the log
// after its tip and the finalize proofs after its finalized index.
func (n *Node) stepPost(from int, p *wire.Post) error {
	if !n.isLeader() {
		return fmt.Errorf("core: Post from node %d to a non-leader", from)
	}
	a := n.apps[p.App]
	if !n.established || a == nil || a.phase != phaseActive || a.lead == nil {
		n.send(from, &wire.PostReply{App: p.App, View: n.view, After: p.Tip.Index, Mismatch: true})
		return nil
	}
	if h, ok := n.hashAt(a, p.Tip.Index); !ok || h != p.Tip.ChainingHash {
		n.send(from, &wire.PostReply{App: p.App, View: n.view, After: p.Tip.Index, Mismatch: true})
		return nil
	}
	l := a.lead
	n.trackSent(l, from, p.Tip.Index)
	l.tips[from] = max(l.tips[from], p.Tip.Index)
	l.known[from] = true
	tip := a.tip()
	for _, b := range p.Batches {
		if !n.leaderAppend(a, from, b.Seq, b.Body) {
			break
		}
	}
	// The reply carries what was not sent yet: the batches up to
	// pushed[from] are on their way in order on the same connection.
	after := max(p.Tip.Index, l.pushed[from])
	reply := n.replyAfter(a, after)
	end := after + uint64(len(reply.Batches))
	// Finalize proofs go in replies once a Round has carried them: a
	// follower in step gets each new one with the next round's lock proof
	// and checks both together; one that missed it gets it here.
	if p.Finalized < l.roundFinal {
		reply.Proofs = n.proofsIn(a, p.Finalized+1, min(end, l.roundFinal), n.cfg.ProofsPerReplyMax)
	}
	n.send(from, reply)
	l.pushed[from] = max(l.pushed[from], end)
	if a.tip() > tip {
		n.pushSoon(a)
	}
	n.maybeStartRounds(a)
	return nil
}

// lockCandidate picks the next index to lock: the highest index at least
// Q nodes hold (the leader included), cut so one round covers at most
// RoundBatchesMax batches and RoundBytesMax bytes, and never below the
// adopted lock (nodes refuse to lock below their own).
func (n *Node) lockCandidate(a *app) (uint64, bool) {
	l := a.lead
	tips := slices.Clone(l.tips)
	tips[n.cfg.Self] = a.tip()
	slices.Sort(tips)
	slices.Reverse(tips)
	cand := tips[n.quorum-1]
	fin := a.finalIdx()
	floor := fin
	if l.viewLock != nil {
		floor = max(floor, l.viewLock.Index)
	} else if cand < a.lockIdx() {
		return 0, false // a quorum does not hold the adopted chain yet
	}
	if cand <= floor {
		return 0, false
	}
	limit := min(cand, floor+uint64(n.cfg.RoundBatchesMax))
	size := 0
	for idx := floor + 1; idx <= limit; idx++ {
		size += len(a.memEntry(idx).Body)
		if size > n.cfg.RoundBytesMax && idx > floor+1 {
			limit = idx - 1
			break
		}
	}
	if l.viewLock == nil {
		limit = max(limit, a.lockIdx())
	}
	return limit, limit > floor
}

// maybeStartRounds starts a finalize round for the newest lock proof and a
// lock round for the next candidate, pipelined, and keeps going while
// rounds complete at once (a cluster of one).
func (n *Node) maybeStartRounds(a *app) {
	l := a.lead
	if l == nil || a.phase != phaseActive {
		return
	}
	var newFP *wire.Proof
	anyStarted := false
	// A new round waits for the gap after the last one began (the next
	// Tick starts it); a round of a cluster of one costs no messages.
	gapOK := n.quorum == 1 || l.roundTick == 0 || n.tick-l.roundTick >= uint64(n.cfg.RoundGapTicks)
	for {
		if gapOK && l.finRound == nil && l.viewLock != nil && l.viewLock.Index > a.finalIdx() {
			r := newVoteRound(wire.KindFinalize, l.viewLock.Index, l.viewLock.ChainingHash, l.viewLock)
			n.selfVote(a, r)
			l.finRound, anyStarted = r, true
		}
		if gapOK && l.lockRound == nil {
			if idx, ok := n.lockCandidate(a); ok {
				h, _ := n.hashAt(a, idx)
				r := newVoteRound(wire.KindLock, idx, h, nil)
				n.selfVote(a, r)
				l.lockRound, anyStarted = r, true
				n.log.Debug("lock round", "app", a.name, "view", n.view, "index", idx)
			}
		}
		locked, fp := n.checkRoundQuorum(a)
		if fp != nil {
			newFP = fp
		}
		if !locked && fp == nil {
			break // otherwise a proof formed at once (a cluster of one): go on
		}
	}
	if anyStarted {
		l.roundTick = max(n.tick, 1)
	}
	// A new finalize proof rides with the next round's requests, so each
	// follower checks it together with the lock proof it is asked to
	// finalize (one multi-pairing, not two checks); when no round starts
	// by the end of the gap, it goes alone.
	if newFP != nil {
		l.fpUnsent = true
	}
	if anyStarted || (l.fpUnsent && gapOK) {
		n.sendRounds(a, l.fpUnsent)
		l.fpUnsent = false
	}
}

// selfVote adds the leader's own vote to a new round. With other nodes in
// the quorum it is only scheduled: signing (a hash to the curve and a
// scalar multiplication) would delay the requests, and the vote is needed
// only once others answer; signOwnVotes makes it on the next event, while
// the followers work on theirs.
func (n *Node) selfVote(a *app, r *voteRound) {
	if n.quorum > 1 {
		r.selfDue, n.selfVotesDue = true, true
		return
	}
	n.signOwn(a, r)
}

// signOwn signs the leader's vote of r if the safety rules allow (they are
// checked now, against the state of now); the record is persisted in the
// Ready in which the vote is used.
func (n *Node) signOwn(a *app, r *voteRound) {
	r.selfDue = false
	var sig wire.Signature
	var ok bool
	if r.kind == wire.KindLock {
		sig, ok = n.signLock(a, r.index, r.hash)
	} else {
		sig, ok = n.signFinalize(a, r.lp)
	}
	if ok {
		r.votes[n.cfg.Self] = sig
	}
}

// signOwnVotes makes the leader's scheduled votes, and forms proofs they
// complete. It runs first in Tick, Step and Submit.
func (n *Node) signOwnVotes() {
	if !n.selfVotesDue {
		return
	}
	n.selfVotesDue = false
	if !n.isLeader() {
		return
	}
	for _, name := range n.names {
		a := n.apps[name]
		l := a.lead
		if l == nil || a.phase != phaseActive {
			continue
		}
		signed := false
		for _, r := range []*voteRound{l.lockRound, l.finRound} {
			if r != nil && r.selfDue {
				n.signOwn(a, r)
				signed = true
			}
		}
		if signed {
			n.maybeStartRounds(a)
		}
	}
}

// sendRounds sends every node the requests it has not answered yet, and
// the newest finalize proof (to everyone when newFP says it is new).
func (n *Node) sendRounds(a *app, newFP bool) {
	l := a.lead
	l.sentTick = n.tick
	l.roundFinal = a.finalIdx()
	for i := 0; i < n.cfg.Nodes; i++ {
		if i == n.cfg.Self {
			continue
		}
		r := &wire.Round{App: a.name, View: n.view}
		if lr := l.lockRound; lr != nil {
			if !lr.has(i) {
				r.Lock = &wire.LockTarget{Index: lr.index, ChainingHash: lr.hash}
			}
		}
		if fr := l.finRound; fr != nil {
			if !fr.has(i) {
				r.Finalize = cloneProof(fr.lp)
			}
		}
		if r.Lock == nil && r.Finalize == nil && !newFP {
			continue
		}
		r.Finalized = cloneProof(a.hard.Finalized)
		n.send(i, r)
	}
}

// stepVote (leader) collects a node's signatures for the open rounds.
func (n *Node) stepVote(from int, v *wire.Vote) error {
	if !n.isLeader() {
		return nil
	}
	a := n.apps[v.App]
	if a == nil || a.lead == nil {
		return nil
	}
	l := a.lead
	for _, c := range []struct {
		s *wire.SignedTarget
		r *voteRound
	}{{v.Lock, l.lockRound}, {v.Finalize, l.finRound}} {
		if c.s != nil && c.r != nil && c.s.Index == c.r.index && c.s.ChainingHash == c.r.hash && !c.r.has(from) {
			c.r.unchecked[from] = c.s.Signature
		}
	}
	n.maybeStartRounds(a)
	return nil
}

// roundProof returns the proof of r once it holds a quorum of valid votes,
// or nil. Unchecked votes are checked together with one aggregate
// verification; if that fails, each is checked alone and the bad ones are
// dropped (their senders are logged), so a Byzantine vote costs the leader
// a few pairings but never a wrong proof. An aggregate over PoP-checked
// keys that verifies names only nodes whose signatures are in it: no
// coalition can add an honest node to a proof it did not sign.
func (n *Node) roundProof(a *app, r *voteRound, cand *wire.Proof) *wire.Proof {
	if cand == nil {
		return nil
	}
	if len(r.unchecked) > 0 {
		digest := ProofDigest(n.domain, a.name, cand) // what every vote of r signs
		if n.verifyProof(a.name, cand) {
			maps.Copy(r.votes, r.unchecked)
			clear(r.unchecked)
			return cand
		}
		for i := 0; i < n.cfg.Nodes; i++ {
			sig, ok := r.unchecked[i]
			if !ok {
				continue
			}
			if n.crypto.Verify(i, digest, sig) {
				r.votes[i] = sig
			} else {
				n.metrics.StepErrors++
				n.log.Warn("bad vote signature", "app", a.name, "view", n.view, "from", i, "kind", r.kind, "index", r.index)
			}
		}
		clear(r.unchecked)
		if len(r.votes) < n.quorum {
			return nil
		}
		return n.aggregate(a, r, r.votes)
	}
	return cand
}

// roundCandidate aggregates every vote of r, checked or not, once there
// are a quorum of them; nil before.
func (n *Node) roundCandidate(a *app, r *voteRound) *wire.Proof {
	if r == nil || len(r.votes)+len(r.unchecked) < n.quorum {
		return nil
	}
	all := maps.Clone(r.votes)
	maps.Copy(all, r.unchecked)
	return n.aggregate(a, r, all)
}

// checkRoundQuorum turns rounds with Q votes into proofs: a lock proof
// becomes the view's lock (and the leader's lock certificate), a finalize
// proof finalizes. It reports whether a lock proof formed and returns the
// new finalize proof, if any.
func (n *Node) checkRoundQuorum(a *app) (locked bool, fp *wire.Proof) {
	l := a.lead
	// When both rounds complete together (one vote often carries both
	// signatures), one multi-pairing checks both candidates.
	lc, fc := n.roundCandidate(a, l.lockRound), n.roundCandidate(a, l.finRound)
	if lc != nil && fc != nil && len(l.lockRound.unchecked) > 0 && len(l.finRound.unchecked) > 0 {
		n.preverify(a.name, lc, fc)
	}
	if lr := l.lockRound; lr != nil {
		if lp := n.roundProof(a, lr, lc); lp != nil {
			l.lockRound = nil
			l.viewLock = lp
			n.adoptLock(a, lp)
			locked = true
			n.metrics.LockProofs++
			n.log.Debug("lock proof", "app", a.name, "view", n.view, "index", lp.Index)
		}
	}
	if fr := l.finRound; fr != nil {
		if fp = n.roundProof(a, fr, fc); fp != nil {
			l.finRound = nil
			n.metrics.FinalizeProofs++
			n.finalizeTo(a, fp)
		}
	}
	return locked, fp
}

// aggregate combines votes (node → signature) for r into a proof.
func (n *Node) aggregate(a *app, r *voteRound, votes map[int]wire.Signature) *wire.Proof {
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
		n.log.Error("aggregating votes failed", "app", a.name, "err", err)
		return nil
	}
	return &wire.Proof{Kind: r.kind, View: n.view, Index: r.index, ChainingHash: r.hash, Signers: signers, Signature: agg}
}
