package core

import (
	"slices"

	"github.com/seqbook/seqbook/sequencer/wire"
)

type phase uint8

const (
	// phaseSync: waiting for the view's NewView for this app, or syncing
	// to it. The node signs nothing for the app and does not post.
	phaseSync phase = iota
	// phaseActive: following (or leading) the view for this app.
	phaseActive
)

// pend is a batch submitted to this node and not final yet.
type pend struct {
	seq  uint64
	body []byte
	// index is where the batch sits in the node's log, 0 while it is only
	// initialized.
	index uint64
	// submittedMs is when it was submitted (node clock, persisted).
	submittedMs uint64
	// firstPostTick is when it was first posted in this view (0: not
	// yet); the censorship timeout starts there. sentTick is when a post
	// last carried it: posts resend it only after the leader's retry
	// timeout (retry.go); again, once a post carried it more than once.
	firstPostTick uint64
	sentTick      uint64
	again         bool
}

// app is one app's state on a node.
//
// Log layout: entries 1..base are final and in the store; mem holds
// base+1..tip (some of them may be final too until the next Advance
// persisted them). Invariants:
//
//	base ≤ finalized ≤ locked ≤ tip
//	the log holds the chain of hard.Lock (entry lock.Index has its hash)
//	within one view the log only grows, except when a sync replaces an
//	unfinalized suffix with a chain certified by a quorum proof.
type app struct {
	name      string
	hard      AppHardState
	hardDirty bool

	base     uint64
	baseHash wire.Hash
	baseTs   uint64
	mem      []Entry
	memBytes int

	pend      map[uint64]*pend
	pendBytes int

	phase      phase
	phaseSince uint64
	// target is what the app must reach before it is active in this view:
	// the NewView's proofs (follower) or the adopted ones (leader).
	target struct{ lock, fin *wire.Proof }
	sync   *syncState
	// futureFP is the highest valid finalize proof beyond the tip: applied
	// once the batches arrive.
	futureFP     *wire.Proof
	recentProofs []wire.Proof

	// Follower timers (ticks).
	lastPostTick  uint64
	awaitingSince uint64 // first unanswered post; 0 when answered
	// refusedSince is when the leader first answered a post with Mismatch
	// since it last took one (0: it took the last): a follower sent back to
	// sync again and again never stays in the sync phase long enough for
	// its timer, so this one spans the loop (watchLeader).
	refusedSince  uint64
	lastFinalTick uint64
	// waitingSince is when work (batches submitted here or not final)
	// started waiting, 0 while none waits: the no-progress timer runs
	// from the later of it and lastFinalTick.
	waitingSince uint64

	// postDue: post (follower) or sequence our own batches (leader) at
	// the next Ready; see postSoon.
	postDue bool

	lead *leadState
	// shared: the lock votes this node shares and collects as a follower
	// (share.go).
	shared sharedLocks

	// readyFinal is the finalized index as of the last Ready: what its
	// Advance may drop from memory.
	readyFinal uint64
}

func newApp(name string, nodes int) *app {
	return &app{
		name: name,
		hard: AppHardState{App: name, OriginSeqs: make([]uint64, nodes), NextSeq: 1},
		pend: map[uint64]*pend{},
	}
}

func (a *app) tip() uint64 { return a.base + uint64(len(a.mem)) }

func (a *app) finalIdx() uint64 {
	if a.hard.Finalized == nil {
		return 0
	}
	return a.hard.Finalized.Index
}

func (a *app) lockIdx() uint64 {
	if a.hard.Lock == nil {
		return 0
	}
	return a.hard.Lock.Index
}

func (a *app) tipHash() wire.Hash {
	if len(a.mem) == 0 {
		return a.baseHash
	}
	return a.mem[len(a.mem)-1].ChainingHash
}

func (a *app) tipTs() uint64 {
	if len(a.mem) == 0 {
		return a.baseTs
	}
	return a.mem[len(a.mem)-1].Timestamp
}

func (a *app) unfinalized() (count uint64, bytes int) {
	fin := a.finalIdx()
	count = a.tip() - fin
	bytes = a.memBytes
	for i := uint64(0); i < fin-a.base; i++ {
		bytes -= len(a.mem[i].Body)
	}
	return count, bytes
}

// memEntry returns entry idx if it is in memory.
func (a *app) memEntry(idx uint64) *Entry {
	if idx <= a.base || idx > a.tip() {
		return nil
	}
	return &a.mem[idx-a.base-1]
}

// hashAt is the chaining hash of the log at idx (zero at 0).
func (n *Node) hashAt(a *app, idx uint64) (wire.Hash, bool) {
	switch {
	case idx == 0:
		return wire.Hash{}, true
	case idx > a.tip():
		return wire.Hash{}, false
	case idx == a.base:
		return a.baseHash, true
	case idx > a.base:
		return a.mem[idx-a.base-1].ChainingHash, true
	}
	es, err := n.store.Entries(a.name, idx, 1, wire.MaxBatchBytes)
	if err != nil || len(es) != 1 || es[0].Index != idx {
		n.log.Error("store read failed", "app", a.name, "index", idx, "err", err)
		return wire.Hash{}, false
	}
	return es[0].ChainingHash, true
}

// readEntries returns up to count entries from index from, at most about
// bytesMax body bytes (at least one), reading the store below base.
func (n *Node) readEntries(a *app, from uint64, count int, bytesMax int) []Entry {
	var out []Entry
	size := 0
	if from <= a.base && from > 0 {
		es, err := n.store.Entries(a.name, from, min(count, int(a.base-from+1)), bytesMax)
		if err != nil {
			n.log.Error("store read failed", "app", a.name, "from", from, "err", err)
			return nil
		}
		out = es
		for _, e := range es {
			size += len(e.Body)
		}
		if len(es) == 0 || es[len(es)-1].Index != from+uint64(len(es))-1 {
			return nil
		}
		from += uint64(len(es))
		if from <= a.base {
			return out // bytes or count ran out inside the store
		}
	}
	for idx := from; idx <= a.tip() && len(out) < count; idx++ {
		e := a.mem[idx-a.base-1]
		if len(out) > 0 && size+len(e.Body) > bytesMax {
			break
		}
		size += len(e.Body)
		out = append(out, e)
	}
	return out
}

// makeEntry computes a received batch's hashes on top of prev.
func makeEntry(b wire.Batch, prev wire.Hash) Entry {
	h := BatchHash(b.Timestamp, b.Body)
	return Entry{Batch: b, Hash: h, ChainingHash: ChainHash(prev, h)}
}

// appendEntry adds e at tip+1. The caller checked that e extends the log.
func (n *Node) appendEntry(a *app, e Entry) {
	if e.Index != a.tip()+1 || e.ChainingHash != ChainHash(a.tipHash(), e.Hash) {
		panic("core: appendEntry: entry does not extend the log")
	}
	a.mem = append(a.mem, e)
	a.memBytes += len(e.Body)
	ap := n.appPersist(a)
	ap.Entries = append(ap.Entries, e)
	n.matchOwn(a, &a.mem[len(a.mem)-1])
}

// checkFutureFP applies a finalize proof that was beyond the tip once the
// log reaches it.
func (n *Node) checkFutureFP(a *app) {
	if a.futureFP != nil && a.tip() >= a.futureFP.Index && a.sync == nil {
		fp := a.futureFP
		a.futureFP = nil
		n.applyFinalizeProof(a, fp, false)
	}
}

// matchOwn marks a pending batch of this node as sequenced when e is it.
func (n *Node) matchOwn(a *app, e *Entry) {
	if int(e.Origin) != n.cfg.Self {
		return
	}
	if p := a.pend[e.Seq]; p != nil && p.index == 0 && string(p.body) == string(e.Body) {
		p.index = e.Index
	}
}

// truncate drops the log after index after (never a final entry); own
// batches that were in the dropped part are initialized again.
func (n *Node) truncate(a *app, after uint64) {
	if after >= a.tip() {
		return
	}
	if after < a.finalIdx() {
		panic("core: truncating final entries")
	}
	for _, e := range a.mem[after-a.base:] {
		a.memBytes -= len(e.Body)
	}
	a.mem = a.mem[:after-a.base]
	for _, p := range a.pend {
		if p.index > after {
			p.index = 0
		}
	}
	ap := n.appPersist(a)
	if !ap.Truncate || after < ap.TruncateAfter {
		ap.Truncate, ap.TruncateAfter = true, after
	}
	ap.Entries = slices.DeleteFunc(ap.Entries, func(e Entry) bool { return e.Index > after })
	if a.futureFP != nil && a.futureFP.Index <= a.tip() {
		a.futureFP = nil
	}
}

// ownMaxSeqInLog is the highest Seq of this node's batches in its log.
func (n *Node) ownMaxSeqInLog(a *app) uint64 {
	m := a.hard.OriginSeqs[n.cfg.Self]
	for i := range a.mem {
		if int(a.mem[i].Origin) == n.cfg.Self && a.mem[i].Seq > m {
			m = a.mem[i].Seq
		}
	}
	return m
}

// renumberSkipped gives a fresh Seq to initialized batches whose Seq is
// below one of this node's batches already in the log. An honest leader
// sequences each node's batches in Seq order and drops posts at or below
// the highest Seq it holds, so such a batch would never be sequenced
// again; renumbering keeps it from being lost. (Only a faulty leader
// reorders; the cost is at worst a duplicate.)
func (n *Node) renumberSkipped(a *app) {
	maxSeq := n.ownMaxSeqInLog(a)
	var skipped []uint64
	for seq, p := range a.pend {
		if p.index == 0 && seq <= maxSeq {
			skipped = append(skipped, seq)
		}
	}
	if len(skipped) == 0 {
		return
	}
	slices.Sort(skipped)
	ap := n.appPersist(a)
	for _, seq := range skipped {
		p := a.pend[seq]
		delete(a.pend, seq)
		p.seq = max(a.hard.NextSeq, maxSeq+1)
		a.hard.NextSeq = p.seq + 1
		a.pend[p.seq] = p
		ap.PendingDelete = append(ap.PendingDelete, seq)
		ap.PendingPut = append(ap.PendingPut, Pending{Seq: p.seq, Body: p.body, SubmittedMs: p.submittedMs})
	}
	a.hardDirty = true
}

// hasInitialized reports whether any of this node's own batches is
// initialized (not in the log yet): initializedSeqs without building the
// list, for holdable, which runs on every HasReady.
func (a *app) hasInitialized() bool {
	for _, p := range a.pend {
		if p.index == 0 {
			return true
		}
	}
	return false
}

// initializedSeqs lists the Seqs of batches waiting to be sequenced, in
// order.
func (a *app) initializedSeqs() []uint64 {
	var out []uint64
	for seq, p := range a.pend {
		if p.index == 0 {
			out = append(out, seq)
		}
	}
	slices.Sort(out)
	return out
}

// proofsIn returns the finalize proofs this node holds with from ≤ index ≤
// to, increasing, at most limit: from the store, plus the ones made since
// the last Advance.
func (n *Node) proofsIn(a *app, from, to uint64, limit int) []wire.Proof {
	if from > to || limit <= 0 {
		return nil
	}
	out, err := n.store.Proofs(a.name, from, to, limit)
	if err != nil {
		n.log.Error("store read failed", "app", a.name, "err", err)
		out = nil
	}
	for _, p := range a.recentProofs {
		if p.Index < from || p.Index > to {
			continue
		}
		k, found := slices.BinarySearchFunc(out, p.Index, func(x wire.Proof, idx uint64) int { return cmpU64(x.Index, idx) })
		if !found {
			out = slices.Insert(out, k, p)
		}
	}
	if len(out) > limit {
		out = out[:limit]
	}
	return out
}

// finalizeTo makes every entry up to p.Index final. p is a verified
// finalize proof whose chaining hash the log holds at p.Index.
func (n *Node) finalizeTo(a *app, p *wire.Proof) {
	if p.Kind != wire.KindFinalize {
		panic("core: finalizeTo: not a finalize proof")
	}
	old := a.finalIdx()
	if p.Index <= old {
		return
	}
	if h, ok := n.hashAt(a, p.Index); !ok || h != p.ChainingHash {
		panic("core: finalizeTo: log does not hold the proof's chain")
	}
	ents := slices.Clone(a.mem[old-a.base : p.Index-a.base])
	n.metrics.BatchesFinalized += uint64(len(ents))
	ap := n.appPersist(a)
	for i := range ents {
		e := &ents[i]
		if int(e.Origin) < n.cfg.Nodes && e.Seq > a.hard.OriginSeqs[e.Origin] {
			a.hard.OriginSeqs[e.Origin] = e.Seq
		}
		if int(e.Origin) == n.cfg.Self {
			if pd := a.pend[e.Seq]; pd != nil && pd.index == e.Index {
				delete(a.pend, e.Seq)
				a.pendBytes -= len(pd.body)
				ap.PendingDelete = append(ap.PendingDelete, e.Seq)
			}
		}
	}
	fp := cloneProof(p)
	a.hard.Finalized = fp
	a.hardDirty = true
	// A finalize proof is a lock certificate (it implies a lock proof of
	// its view, index and hash): finalized ≤ locked.
	n.raiseLock(a, fp)
	ap.Proofs = append(ap.Proofs, *fp)
	a.recentProofs = append(a.recentProofs, *fp)
	if len(a.recentProofs) > recentProofsMax {
		a.recentProofs = slices.Clone(a.recentProofs[len(a.recentProofs)-recentProofsMax/2:])
	}
	n.finalized = append(n.finalized, Finalized{App: a.name, Entries: ents, Proof: *fp})
	n.log.Debug("finalized", "app", a.name, "index", p.Index, "proof_view", p.View, "view", n.view)
	a.lastFinalTick = n.tick
	n.pace.finalized()
	if a.futureFP != nil && a.futureFP.Index <= p.Index {
		a.futureFP = nil
	}
	// Own batches finalized under a different Seq order may leave earlier
	// ones behind.
	n.renumberSkipped(a)
}

// applyFinalizeProof handles a finalize proof a peer showed us (already
// verified): finalize if we hold its chain, wait for the batches if it is
// beyond our tip, resynchronise if our unfinalized suffix disagrees.
//
// inOrder says the proof comes from a source that sends every proof after
// our finalized index in order (PostReply, SyncReply). A proof from
// elsewhere (the newest one in a Round) that would skip more than a round
// is left to those: finalizing through it would store no proof for the
// rounds it skips, and pages of finalized batches must end at proofs.
func (n *Node) applyFinalizeProof(a *app, p *wire.Proof, inOrder bool) {
	if p.Index <= a.finalIdx() {
		return
	}
	if p.Index > a.tip() {
		if a.futureFP == nil || p.Index > a.futureFP.Index {
			a.futureFP = cloneProof(p)
		}
		return
	}
	h, ok := n.hashAt(a, p.Index)
	if !ok {
		return
	}
	if h == p.ChainingHash {
		if !inOrder && p.Index-a.finalIdx() > uint64(n.cfg.RoundBatchesMax) {
			return
		}
		n.finalizeTo(a, p)
		return
	}
	// Our unfinalized log is on another branch than a finalized chain: a
	// faulty leader gave us a different sequence. The proof is the truth.
	n.log.Warn("log disagrees with a finalize proof; resynchronising", "app", a.name, "index", p.Index, "view", p.View)
	n.startSync(a, p, nil)
}

// raiseLock makes cert (a verified lock certificate) the app's lock when
// the voter says it raises it (higher, and the log holds its chain). It is
// the only place the lock changes (besides the canaries' breakLock). A lock
// from a higher view may sit at a lower index than the old one: while
// syncing to a view, the log past it came from an abandoned branch and is
// dropped.
func (n *Node) raiseLock(a *app, cert *wire.Proof) {
	if !lockHigher(cert, a.hard.Lock) {
		return
	}
	if !n.voterOf(a).lockRaises(appLog{n, a}, cert) {
		panic("core: raiseLock: log does not hold the certificate's chain")
	}
	old := a.hard.Lock
	a.hard.Lock = cloneProof(cert)
	a.hardDirty = true
	if old != nil && cert.View > old.View && cert.Index < old.Index && a.phase == phaseSync {
		n.truncate(a, max(cert.Index, a.finalIdx()))
	}
}

// breakLock sets the lock to cert whatever it was: the canaries' deliberate
// break of rule 2 (MutationForgetLocks at a view change,
// MutationSyncDropsLock when a sync replaces the lock's chain), and the only
// write of the lock besides raiseLock. An honest node never calls it.
func (n *Node) breakLock(a *app, cert *wire.Proof) {
	if m := n.cfg.Mutation; m != MutationForgetLocks && m != MutationSyncDropsLock {
		panic("core: breakLock without a mutation that breaks the lock")
	}
	a.hard.Lock = cloneProof(cert)
	a.hardDirty = true
}
