package core

import (
	"fmt"

	"github.com/seqbook/seqbook/sequencer/wire"
)

// followerTick posts on schedule and lets the pacemaker check the leader.
func (n *Node) followerTick(a *app) {
	if a.phase == phaseActive && n.tick-a.lastPostTick >= n.postInterval(a) {
		n.post(a)
	}
	n.watchLeader(a)
}

// postInterval is the follower's posting interval: the DESIGN's 20 ms
// while it has batches of its own waiting or entries not yet final, the
// longer heartbeat interval when there is nothing for the leader to learn.
func (n *Node) postInterval(a *app) uint64 {
	if len(a.pend) == 0 && a.tip() == a.finalIdx() {
		return uint64(n.cfg.IdlePostIntervalTicks)
	}
	return uint64(n.cfg.PostIntervalTicks)
}

// postSoon asks for a post at the next Ready instead of the next
// interval: batches were submitted here, or (follower) batches were
// appended to our log, which the leader must learn to lock them. Deferring
// to Ready makes a burst of submits or pushes cost one post.
func (n *Node) postSoon(a *app) {
	a.postDue = true
	n.flushDue = true
}

// flush does the posts and pushes deferred to this Ready.
func (n *Node) flush() {
	if !n.flushDue {
		return
	}
	n.flushDue = false
	for _, name := range n.names {
		a := n.apps[name]
		if a.phase != phaseActive || a.sync != nil {
			a.postDue = false
			continue
		}
		if !n.isLeader() {
			n.postPending(a)
			continue
		}
		if a.lead != nil {
			// advanceRounds sequences and pushes what waits (pushPending)
			// before a round starts, so a new round covers it.
			n.pushPending(a)
			n.advanceRounds(a)
		}
	}
}

// postPending (follower) does the post a submit or a push left for the
// next Ready, now.
func (n *Node) postPending(a *app) {
	if a.postDue {
		a.postDue = false
		n.post(a)
	}
}

// post sends the leader this node's initialized batches and the end of
// its log (which also asks for the batches after it).
func (n *Node) post(a *app) {
	a.lastPostTick = n.tick
	p := &wire.Post{App: a.name, View: n.view, Tip: wire.Tip{Index: a.tip(), ChainingHash: a.tipHash()}, Finalized: a.finalIdx()}
	size := 0
	for _, seq := range a.initializedSeqs() {
		pd := a.pend[seq]
		if pd.sentTick != 0 && !n.retryDue(n.leader(), pd.sentTick) {
			continue // a recent post carries it
		}
		if len(p.Batches) > 0 && (size+len(pd.body) > n.cfg.PostBytesMax || len(p.Batches) >= wire.MaxBatchesPerMessage) {
			break
		}
		if pd.sentTick != 0 {
			n.metrics.BatchResends++
			pd.again = true
		}
		pd.sentTick = max(n.tick, 1)
		size += len(pd.body)
		p.Batches = append(p.Batches, wire.PostedBatch{Seq: seq, Body: pd.body})
		if pd.firstPostTick == 0 {
			pd.firstPostTick = n.tick
		}
	}
	if a.awaitingSince == 0 {
		a.awaitingSince = n.tick
	}
	n.send(n.leader(), p)
}

// stepPostReply appends the leader's batches after our tip, checking that
// they extend our log, that timestamps never decrease and are not ahead
// of our clock (nor behind the time we posted our own batches), then
// applies the finalize proofs that came with them.
func (n *Node) stepPostReply(from int, r *wire.PostReply) error {
	if from != n.leader() {
		return fmt.Errorf("core: PostReply from node %d, leader of view %d is %d", from, n.view, n.leader())
	}
	a := n.apps[r.App]
	if a == nil || a.phase != phaseActive || a.sync != nil {
		return nil
	}
	a.awaitingSince = 0
	if r.Mismatch {
		if a.refusedSince == 0 {
			a.refusedSince = max(n.tick, 1)
		}
		a.phase = phaseSync
		a.phaseSince = n.tick
		n.sendViewState()
		return nil
	}
	a.refusedSince = 0
	tip := a.tip()
	for _, b := range r.Batches {
		if b.Index <= a.tip() {
			if e := a.memEntry(b.Index); e != nil && e.Hash != BatchHash(b.Timestamp, b.Body) {
				n.dispute(wire.ReasonMisbehaved, a.name)
				return fmt.Errorf("core: leader sent %s batch %d different from the one it sent before", a.name, b.Index)
			}
			continue
		}
		if b.Index != a.tip()+1 {
			break
		}
		if err := n.checkLeaderBatch(a, &b); err != nil {
			n.dispute(wire.ReasonMisbehaved, a.name)
			return err
		}
		if cnt, size := a.unfinalized(); cnt >= uint64(n.cfg.UnfinalizedBatchesMax) || size+len(b.Body) > n.cfg.UnfinalizedBytesMax {
			break // hold no more until finality catches up
		}
		n.appendEntry(a, makeEntry(b, a.tipHash()))
	}
	n.sampleOwnBatches(a, tip)
	n.renumberSkipped(a)
	if len(r.Proofs) > 1 {
		var ps []*wire.Proof
		for i := range r.Proofs {
			if r.Proofs[i].Index > a.finalIdx() {
				ps = append(ps, &r.Proofs[i])
			}
		}
		n.preverify(a.name, ps...)
	}
	for i := range r.Proofs {
		p := &r.Proofs[i]
		if p.Index <= a.finalIdx() {
			continue
		}
		if !n.verifyFinalizeProof(a.name, p) {
			return fmt.Errorf("core: PostReply for %s: invalid finalize proof at %d", a.name, p.Index)
		}
		n.applyFinalizeProof(a, p, true)
		if a.sync != nil {
			break
		}
	}
	n.checkFutureFP(a)
	if a.tip() > tip && a.sync == nil {
		n.postSoon(a) // tell the leader we hold them
	}
	return nil
}

// sampleOwnBatches measures the leader's round trip by our batches that
// came back sequenced after index after: from the post that carried them
// to their return (the leader sequences a batch when the post arrives and
// its reply carries it back).
func (n *Node) sampleOwnBatches(a *app, after uint64) {
	for idx := after + 1; idx <= a.tip(); idx++ {
		e := a.memEntry(idx)
		if e == nil || int(e.Origin) != n.cfg.Self {
			continue
		}
		if pd := a.pend[e.Seq]; pd != nil && pd.index == idx && pd.sentTick != 0 {
			n.sampleAnswer(n.leader(), pd.firstPostTick, pd.again)
		}
	}
}

// checkLeaderBatch checks a batch the leader appends after our tip.
func (n *Node) checkLeaderBatch(a *app, b *wire.Batch) error {
	if int(b.Origin) >= n.cfg.Nodes {
		return fmt.Errorf("core: leader sent %s batch %d from unknown origin %d", a.name, b.Index, b.Origin)
	}
	if b.Timestamp < a.tipTs() {
		return fmt.Errorf("core: leader sent %s batch %d with a timestamp going back (%d < %d)", a.name, b.Index, b.Timestamp, a.tipTs())
	}
	if b.Timestamp > n.nowMs+n.cfg.ClockSkewMsMax {
		return fmt.Errorf("core: leader stamped %s batch %d at %d, %d ms ahead of our clock", a.name, b.Index, b.Timestamp, b.Timestamp-n.nowMs)
	}
	if int(b.Origin) == n.cfg.Self {
		if p := a.pend[b.Seq]; p != nil && string(p.body) == string(b.Body) && b.Timestamp+n.cfg.ClockSkewMsMax < p.submittedMs {
			return fmt.Errorf("core: leader stamped our %s batch %d at %d, before it was submitted here at %d", a.name, b.Index, b.Timestamp, p.submittedMs)
		}
	}
	return nil
}

// stepRound answers the leader's lock/finalize requests with the
// signatures the safety rules allow.
func (n *Node) stepRound(from int, r *wire.Round) error {
	if from != n.leader() {
		return fmt.Errorf("core: Round from node %d, leader of view %d is %d", from, n.view, n.leader())
	}
	a := n.apps[r.App]
	if a == nil || a.phase != phaseActive || a.sync != nil {
		return nil
	}
	if p := r.Finalized; p != nil && p.Index > a.finalIdx() {
		n.preverify(a.name, p, r.Finalize) // both in one multi-pairing
		if !n.verifyFinalizeProof(a.name, p) {
			return fmt.Errorf("core: Round for %s: invalid finalize proof", a.name)
		}
		n.applyFinalizeProof(a, p, false)
		if a.sync != nil {
			return nil
		}
	}
	// Batches waiting for a post (held back, HasReady) go before the
	// vote: the leader has them when the vote completes its round.
	n.postPending(a)
	vote := &wire.Vote{App: a.name, View: n.view}
	if lp := r.Finalize; lp != nil {
		if !n.verifyProof(a.name, lp) {
			return fmt.Errorf("core: Round for %s: invalid lock proof", a.name)
		}
		fin, ok := n.finalizeOn(a, lp)
		if !ok {
			return nil
		}
		vote.Finalize = fin
	}
	if t := r.Lock; t != nil {
		if n.castLock(a, t.Index, t.ChainingHash) {
			vote.Lock = &wire.SignedTarget{Index: t.Index, ChainingHash: t.ChainingHash, Signature: n.lockSig(a, t.Index, t.ChainingHash)}
		}
	}
	if vote.Lock != nil || vote.Finalize != nil {
		n.send(from, vote)
	}
	if vote.Lock != nil && r.ShareLock {
		n.shareLock(a, vote.Lock)
	}
	return nil
}

// finalizeOn is a node's answer to a valid lock proof lp of this view,
// from the leader's round or aggregated from shared lock votes: rule 3
// makes it the node's lock, then the voter may allow the Finalize it
// returns (nil if not, or while the batches are still on their way). ok
// is false when lp shows the leader gave this node a different chain:
// the node then disputes and syncs.
func (n *Node) finalizeOn(a *app, lp *wire.Proof) (fin *wire.SignedTarget, ok bool) {
	h, held := n.hashAt(a, lp.Index)
	switch {
	case !held:
		// Beyond our tip: the batches are on their way.
		return nil, true
	case h != lp.ChainingHash:
		// A quorum locked a chain we do not hold in this view: the
		// leader gave us a different sequence.
		n.dispute(wire.ReasonMisbehaved, a.name)
		n.startSync(a, lp, lp)
		return nil, false
	}
	// Rule 3: the lock proof becomes our lock before we sign.
	if n.cfg.Mutation != MutationRule3 {
		n.raiseLock(a, lp)
	}
	if !n.castFinalize(a, lp) {
		return nil, true
	}
	return &wire.SignedTarget{Index: lp.Index, ChainingHash: lp.ChainingHash, Signature: n.finalizeSig(a, lp)}, true
}

// castLock asks the voter whether this node may sign Lock(view, idx,
// hash) and, if so, records it (rule 1's record, persisted in the same
// Ready as the vote that carries the signature: Ready's contract saves it
// first). The caller makes the signature (lockSig), at once or later.
func (n *Node) castLock(a *app, idx uint64, hash wire.Hash) bool {
	if a.phase != phaseActive || a.sync != nil {
		return false
	}
	n.assertHoldsLock(a)
	if !n.voterOf(a).mayLock(appLog{n, a}, idx, hash) {
		return false
	}
	a.hard.SignedLock = Signed{View: n.view, Index: idx, ChainingHash: hash}
	a.hardDirty = true
	return true
}

// castFinalize asks the voter whether this node may sign Finalize for the
// lock proof lp (verified by the caller) and, if so, records it.
func (n *Node) castFinalize(a *app, lp *wire.Proof) bool {
	if !n.voterOf(a).mayFinalize(appLog{n, a}, lp) {
		return false
	}
	a.hard.SignedFinalize = Signed{View: n.view, Index: lp.Index, ChainingHash: lp.ChainingHash}
	a.hardDirty = true
	return true
}

// lockSig and finalizeSig make the signatures of votes cast above.
func (n *Node) lockSig(a *app, idx uint64, hash wire.Hash) wire.Signature {
	return n.crypto.Sign(LockDigest(n.domain, a.name, n.view, idx, hash))
}

func (n *Node) finalizeSig(a *app, lp *wire.Proof) wire.Signature {
	return n.crypto.Sign(FinalizeDigest(n.domain, a.name, n.view, lp.Index, lp.ChainingHash))
}

// voterOf is the voter of app a: its safety records in the current view.
func (n *Node) voterOf(a *app) voter {
	return voter{view: n.view, lock: a.hard.Lock, signedLock: a.hard.SignedLock, signedFinalize: a.hard.SignedFinalize, mutation: n.cfg.Mutation}
}

// appLog is an app's log as the voter reads it.
type appLog struct {
	n *Node
	a *app
}

func (l appLog) hashAt(idx uint64) (wire.Hash, bool) { return l.n.hashAt(l.a, idx) }

// assertHoldsLock checks the invariant that the log holds the chain of the
// lock certificate.
func (n *Node) assertHoldsLock(a *app) {
	if l := a.hard.Lock; l != nil && !holds(appLog{n, a}, l.Index, l.ChainingHash) {
		panic("core: invariant broken: the log does not hold the lock's chain")
	}
}
