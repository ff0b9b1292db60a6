package core

import (
	"fmt"

	"github.com/seqbook/seqbook/sequencer/wire"
)

// followerTick posts on schedule and checks the dispute timeouts.
func (n *Node) followerTick(a *app) {
	if a.phase == phaseActive && n.tick-a.lastPostTick >= uint64(n.cfg.PostIntervalTicks) {
		n.post(a)
	}
	mult := uint64(1 + n.backoff)
	elapsed := func(since uint64, ticks int) bool { return since > 0 && n.tick-since > uint64(ticks)*mult }
	switch {
	case a.phase == phaseSync && elapsed(max(a.phaseSince, 1), n.cfg.LeaderTimeoutTicks):
		// The leader never brought this app into the view.
		n.dispute(wire.ReasonSilent, a.name)
	case a.phase == phaseActive && elapsed(a.awaitingSince, n.cfg.LeaderTimeoutTicks):
		n.dispute(wire.ReasonSilent, a.name)
	case (len(a.pend) > 0 || a.tip() > a.finalIdx()) && elapsed(max(a.lastFinalTick, 1), n.cfg.FinalizeTimeoutTicks):
		n.dispute(wire.ReasonNoProgress, a.name)
	default:
		for _, p := range a.pend {
			if p.index == 0 && elapsed(p.firstPostTick, n.cfg.CensorshipTimeoutTicks) {
				n.dispute(wire.ReasonCensorship, a.name)
				break
			}
		}
	}
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
		due := a.postDue
		a.postDue = false
		if a.phase != phaseActive || a.sync != nil {
			continue
		}
		if !n.isLeader() {
			if due {
				n.post(a)
			}
			continue
		}
		if l := a.lead; l != nil {
			if due {
				n.selfPost(a)
				n.maybeStartRounds(a)
			}
			if l.pushDue {
				l.pushDue = false
				n.push(a)
			}
		}
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
		if pd.sentTick != 0 && n.tick-pd.sentTick < uint64(n.cfg.RetryTicks) {
			continue // a recent post carries it
		}
		if len(p.Batches) > 0 && (size+len(pd.body) > n.cfg.PostBytesMax || len(p.Batches) >= wire.MaxBatchesPerMessage) {
			break
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
		a.phase = phaseSync
		a.phaseSince = n.tick
		n.sendViewState()
		return nil
	}
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
		if !n.verifyProof(a.name, p) {
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
		if !n.verifyProof(a.name, p) {
			return fmt.Errorf("core: Round for %s: invalid finalize proof", a.name)
		}
		n.applyFinalizeProof(a, p, false)
		if a.sync != nil {
			return nil
		}
	}
	vote := &wire.Vote{App: a.name, View: n.view}
	if lp := r.Finalize; lp != nil {
		if !n.verifyProof(a.name, lp) {
			return fmt.Errorf("core: Round for %s: invalid lock proof", a.name)
		}
		h, ok := n.hashAt(a, lp.Index)
		switch {
		case !ok:
			// Beyond our tip: the batches are on their way.
		case h != lp.ChainingHash:
			// A quorum locked a chain we do not hold in this view: the
			// leader gave us a different sequence.
			n.dispute(wire.ReasonMisbehaved, a.name)
			n.startSync(a, lp, lp)
			return nil
		default:
			n.adoptLock(a, lp)
			if sig, ok := n.signFinalize(a, lp); ok {
				vote.Finalize = &wire.SignedTarget{Index: lp.Index, ChainingHash: lp.ChainingHash, Signature: sig}
			}
		}
	}
	if t := r.Lock; t != nil {
		if sig, ok := n.signLock(a, t.Index, t.ChainingHash); ok {
			vote.Lock = &wire.SignedTarget{Index: t.Index, ChainingHash: t.ChainingHash, Signature: sig}
		}
	}
	if vote.Lock != nil || vote.Finalize != nil {
		n.send(from, vote)
	}
	return nil
}

// signLock signs Lock(app, view, idx, hash) if the safety rules allow:
//   - the log holds exactly that chain (so the node saw and checked every
//     batch and timestamp in it);
//   - rule 2: it extends the chain of the highest lock certificate, i.e.
//     idx ≥ its index and the log (which holds that chain) has hash there;
//   - rule 1: within a view, signed locks only move forward along one
//     chain, so two different Locks for one (view, app, index) never exist.
//
// The record is persisted in the same Ready as the vote that carries the
// signature, and Ready's contract saves it first.
func (n *Node) signLock(a *app, idx uint64, hash wire.Hash) (wire.Signature, bool) {
	if a.phase != phaseActive || a.sync != nil {
		return wire.Signature{}, false
	}
	if h, ok := n.hashAt(a, idx); !ok || h != hash {
		return wire.Signature{}, false
	}
	if l := a.hard.Lock; l != nil {
		if idx < l.Index {
			return wire.Signature{}, false
		}
		if lh, ok := n.hashAt(a, l.Index); !ok || lh != l.ChainingHash {
			panic("core: invariant broken: the log does not hold the lock's chain")
		}
	}
	rec := a.hard.SignedLock
	if rec.View > n.view {
		return wire.Signature{}, false
	}
	if rec.View == n.view && rec.Index > 0 {
		if idx < rec.Index {
			return wire.Signature{}, false
		}
		if rh, ok := n.hashAt(a, rec.Index); !ok || rh != rec.ChainingHash {
			return wire.Signature{}, false
		}
	}
	sig := n.crypto.Sign(LockDigest(n.domain, a.name, n.view, idx, hash))
	a.hard.SignedLock = Signed{View: n.view, Index: idx, ChainingHash: hash}
	a.hardDirty = true
	return sig, true
}

// signFinalize signs Finalize for exactly the (view, index, hash) of a
// valid lock proof of the current view (rule 3) whose chain the log holds,
// never two different ones for one (view, app, index) (rule 1).
func (n *Node) signFinalize(a *app, lp *wire.Proof) (wire.Signature, bool) {
	if lp.Kind != wire.KindLock || lp.View != n.view {
		return wire.Signature{}, false
	}
	if h, ok := n.hashAt(a, lp.Index); !ok || h != lp.ChainingHash {
		return wire.Signature{}, false
	}
	rec := a.hard.SignedFinalize
	if rec.View > n.view {
		return wire.Signature{}, false
	}
	if rec.View == n.view && rec.Index > 0 {
		if lp.Index < rec.Index || (lp.Index == rec.Index && lp.ChainingHash != rec.ChainingHash) {
			return wire.Signature{}, false
		}
	}
	sig := n.crypto.Sign(FinalizeDigest(n.domain, a.name, n.view, lp.Index, lp.ChainingHash))
	a.hard.SignedFinalize = Signed{View: n.view, Index: lp.Index, ChainingHash: lp.ChainingHash}
	a.hardDirty = true
	return sig, true
}
