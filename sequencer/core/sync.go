package core

import (
	"fmt"

	"github.com/seqbook/seqbook/sequencer/wire"
)

// syncState fetches the chain that ends at target from peers, a page at a
// time. Nothing fetched touches the log until it is certified: a page is
// applied when it ends at a finalize proof, or when the fetched run
// reaches the target, whose hash comes from a verified proof. A peer that
// sends garbage only wastes the fetch; the next retry asks another peer
// and starts over from the last certified point.
type syncState struct {
	target   *wire.Proof // lock or finalize proof to reach
	lock     *wire.Proof // lock certificate to adopt once reached (may equal target)
	base     uint64      // the log up to base is certified; fetched entries follow it
	baseHash wire.Hash
	baseTs   uint64
	// have is a certified point past base the node offers as a start
	// (its lock, when below the target); 0 when none.
	have     wire.Tip
	haveTs   uint64
	buf      []Entry
	bufBytes int
	peers    []int
	peer     int // index into peers
	sentTick uint64
}

// startSync begins fetching the chain of target (a verified proof); lock,
// when non-nil, is adopted once the chain is in the log. Peers are tried
// in order: the leader of the view first, then everyone else.
func (n *Node) startSync(a *app, target, lock *wire.Proof, preferred ...int) {
	if a.sync != nil && a.sync.target.Index == target.Index && a.sync.target.ChainingHash == target.ChainingHash {
		return // already fetching it
	}
	s := &syncState{target: cloneProof(target), lock: cloneProof(lock)}
	seen := map[int]bool{n.cfg.Self: true}
	for _, p := range append(preferred, n.leader()) {
		if !seen[p] {
			seen[p] = true
			s.peers = append(s.peers, p)
		}
	}
	for i := 0; i < n.cfg.Nodes; i++ {
		if !seen[i] {
			seen[i] = true
			s.peers = append(s.peers, i)
		}
	}
	a.sync = s
	n.metrics.SyncsStarted++
	n.log.Debug("sync start", "app", a.name, "target_kind", target.Kind.String(), "target_view", target.View, "target_index", target.Index, "peers", s.peers)
	n.restartSync(a)
}

// restartSync starts the fetch over from the finalized index with the
// current peer.
func (n *Node) restartSync(a *app) {
	s := a.sync
	s.base = a.finalIdx()
	s.baseHash, _ = n.hashAt(a, s.base)
	s.baseTs = n.tsAt(a, s.base)
	s.buf, s.bufBytes = nil, 0
	s.have, s.haveTs = wire.Tip{}, 0
	if l := a.hard.Lock; l != nil && l.Index > s.base && l.Index < s.target.Index {
		s.have, s.haveTs = wire.Tip{Index: l.Index, ChainingHash: l.ChainingHash}, n.tsAt(a, l.Index)
	}
	n.sendSyncRequest(a)
}

func (n *Node) sendSyncRequest(a *app) {
	s := a.sync
	s.sentTick = n.tick
	after := s.base + uint64(len(s.buf))
	req := &wire.SyncRequest{
		App: a.name, View: n.view, After: after,
		Target: wire.LockTarget{Index: s.target.Index, ChainingHash: s.target.ChainingHash},
	}
	if len(s.buf) == 0 && s.have.Index > after {
		req.Have = s.have
	}
	n.send(s.peers[s.peer], req)
}

// syncTick asks the next peer when the current one stopped answering.
// What was fetched so far is kept: it is checked when the run reaches a
// proof or the target, and thrown away only if that check fails.
func (n *Node) syncTick(a *app) {
	if a.sync == nil || !n.retryDue(a.sync.peers[a.sync.peer], a.sync.sentTick) {
		return
	}
	a.sync.peer = (a.sync.peer + 1) % len(a.sync.peers)
	n.metrics.SyncResends++
	n.sendSyncRequest(a)
}

// tsAt is the timestamp of entry idx (0 at index 0).
func (n *Node) tsAt(a *app, idx uint64) uint64 {
	if idx == 0 {
		return 0
	}
	if idx == a.base {
		return a.baseTs
	}
	if e := a.memEntry(idx); e != nil {
		return e.Timestamp
	}
	es := n.readEntries(a, idx, 1, wire.MaxBatchBytes)
	if len(es) == 1 {
		return es[0].Timestamp
	}
	return 0
}

// stepSyncReply takes a page of the chain being fetched: it buffers the
// page, applies every prefix a finalize proof certifies, and either ends
// the sync at the target or asks for the next page.
func (n *Node) stepSyncReply(from int, r *wire.SyncReply) error {
	a := n.apps[r.App]
	if a == nil || a.sync == nil {
		return nil
	}
	s := a.sync
	s.takeHave(r)
	if r.After != s.base+uint64(len(s.buf)) || len(r.Batches) == 0 {
		return nil // stale, or the peer cannot help: the retry moves on
	}
	if from == s.peers[s.peer] {
		n.rtt[from].sample(n.tick - s.sentTick) // the answer to our last request
	}
	if !s.buffer(n.cfg.Nodes, r.Batches) {
		n.restartSyncWithNextPeer(a)
		return fmt.Errorf("core: sync reply for %s from node %d: invalid batch", r.App, from)
	}
	if err := n.applyCertified(a, r.Proofs); err != nil {
		return err
	}
	switch {
	case s.base >= s.target.Index:
		n.finishSync(a)
	case s.base+uint64(len(s.buf)) >= s.target.Index:
		return n.reachTarget(a, from)
	case len(s.buf) > n.cfg.UnfinalizedBatchesMax+n.cfg.PageBatchesMax || s.bufBytes > n.cfg.UnfinalizedBytesMax+n.cfg.PageBytesMax:
		// Uncertified run longer than any honest unfinalized suffix.
		n.restartSyncWithNextPeer(a)
		return fmt.Errorf("core: sync of %s from node %d: uncertified run too long", a.name, from)
	default:
		n.sendSyncRequest(a)
	}
	return nil
}

// takeHave moves the fetch's start to the point the node offered (its
// lock) when the peer's reply starts there: the peer confirmed that point
// is on the target's chain (if it lied, the target's hash check fails and
// the fetch starts over).
func (s *syncState) takeHave(r *wire.SyncReply) {
	if len(s.buf) == 0 && s.have.Index > s.base && r.After == s.have.Index {
		s.base, s.baseHash, s.baseTs = s.have.Index, s.have.ChainingHash, s.haveTs
		s.have = wire.Tip{}
	}
}

// buffer appends a page's batches (up to the target) to the uncertified
// run, chaining their hashes; false if one is malformed (an unknown origin
// or a timestamp going back).
func (s *syncState) buffer(nodes int, batches []wire.Batch) bool {
	prevHash, prevTs := s.baseHash, s.baseTs
	if len(s.buf) > 0 {
		last := s.buf[len(s.buf)-1]
		prevHash, prevTs = last.ChainingHash, last.Timestamp
	}
	for _, b := range batches {
		if b.Index > s.target.Index {
			break // past what we asked for
		}
		if int(b.Origin) >= nodes || b.Timestamp < prevTs {
			return false
		}
		e := makeEntry(b, prevHash)
		s.buf = append(s.buf, e)
		s.bufBytes += len(b.Body)
		prevHash, prevTs = e.ChainingHash, e.Timestamp
	}
	return true
}

// applyCertified puts into the log every prefix of the fetched run that
// ends at a valid finalize proof, and finalizes it.
func (n *Node) applyCertified(a *app, proofs []wire.Proof) error {
	s := a.sync
	for i := range proofs {
		p := &proofs[i]
		if p.Index <= s.base || p.Index > s.base+uint64(len(s.buf)) {
			continue
		}
		k := p.Index - s.base
		if s.buf[k-1].ChainingHash != p.ChainingHash || !n.verifyFinalizeProof(a.name, p) {
			continue
		}
		if !n.adoptCertifiedChain(a, s.base, s.buf[:k], p) {
			a.sync = nil
			return fmt.Errorf("core: sync of %s: finalize proof at %d conflicts with our lock", a.name, p.Index)
		}
		n.finalizeTo(a, p)
		last := s.buf[k-1]
		s.base, s.baseHash, s.baseTs = p.Index, last.ChainingHash, last.Timestamp
		s.buf = s.buf[k:]
		s.bufBytes = 0
		for _, e := range s.buf {
			s.bufBytes += len(e.Body)
		}
	}
	return nil
}

// reachTarget ends a fetch whose run reached the target's index: the run
// must end at the target's hash (a verified proof's), then it replaces the
// log there and the target is the lock.
func (n *Node) reachTarget(a *app, from int) error {
	s := a.sync
	k := s.target.Index - s.base
	if s.buf[k-1].ChainingHash != s.target.ChainingHash {
		n.restartSyncWithNextPeer(a)
		return fmt.Errorf("core: sync of %s from node %d: chain does not reach the target hash", a.name, from)
	}
	if !n.adoptCertifiedChain(a, s.base, s.buf[:k], s.target) {
		a.sync = nil
		return fmt.Errorf("core: sync of %s: target at %d conflicts with our lock", a.name, s.target.Index)
	}
	n.finishSync(a)
	return nil
}

func (n *Node) restartSyncWithNextPeer(a *app) {
	a.sync.peer = (a.sync.peer + 1) % len(a.sync.peers)
	n.restartSync(a)
}

// finishSync ends a sync whose target chain is now in the log: it applies
// what the fetch was for (its finalize proof, its lock certificate), then,
// for an app in the sync phase, catchUp goes on toward the view's target
// (which a newer NewView may have moved during the fetch).
func (n *Node) finishSync(a *app) {
	s := a.sync
	a.sync = nil
	n.log.Debug("sync done", "app", a.name, "target_index", s.target.Index)
	if s.target.Kind == wire.KindFinalize {
		n.applyFinalizeProof(a, s.target, true)
	}
	if s.lock != nil && holds(appLog{n, a}, s.lock.Index, s.lock.ChainingHash) {
		n.raiseLock(a, s.lock)
	}
	n.catchUp(a, nil)
}

// adoptCertifiedChain puts seg (certified by just, a verified proof whose
// chain seg ends at) after index base, replacing what the log holds there,
// and raises the lock to just. It refuses (returns false, changing
// nothing) when that would drop the chain of the node's lock without a
// certificate from a higher view: safety rule 2.
func (n *Node) adoptCertifiedChain(a *app, base uint64, seg []Entry, just *wire.Proof) bool {
	end := base + uint64(len(seg))
	l := a.hard.Lock
	keepsLock := true
	if !holds(appLog{n, a}, end, seg[len(seg)-1].ChainingHash) {
		keepsLock = l == nil || l.Index <= base || (l.Index <= end && seg[l.Index-base-1].ChainingHash == l.ChainingHash)
		if !keepsLock && !n.voterOf(a).mayGiveUpLock(just) {
			n.log.Error("refusing a chain that conflicts with our lock", "app", a.name,
				"lock_view", l.View, "lock_index", l.Index, "proof_view", just.View, "proof_index", just.Index)
			return false
		}
		n.replaceLog(a, base, seg)
	}
	if keepsLock || lockHigher(just, l) {
		// just certifies the chain now in the log: if it replaced the
		// chain of a lower-view lock, it is the lock now.
		n.raiseLock(a, just)
	} else {
		// Only MutationSyncDropsLock gets here (the voter allowed giving
		// up the lock for a certificate that is not higher): the canary
		// takes that certificate as its lock, so the log still holds the
		// lock's chain and the node goes on signing.
		n.breakLock(a, just)
	}
	return true
}

// replaceLog puts seg after index base, replacing what the log holds there
// (never a final entry). The caller checked that seg is certified and that
// rule 2 allows it (adoptCertifiedChain).
func (n *Node) replaceLog(a *app, base uint64, seg []Entry) {
	if base < a.finalIdx() {
		panic("core: replaceLog below the finalized index")
	}
	n.truncate(a, base)
	for _, e := range seg {
		n.appendEntry(a, e)
	}
	n.renumberSkipped(a)
}

// serveSync answers a peer's SyncRequest with a page of our log after
// r.After: up to the target if our log holds its chain, otherwise only our
// finalized batches, with the finalize proofs in that range.
func (n *Node) serveSync(from int, r *wire.SyncRequest) {
	a := n.apps[r.App]
	if a == nil {
		return
	}
	end := a.finalIdx()
	if r.Target.Index > end {
		if h, ok := n.hashAt(a, r.Target.Index); ok && h == r.Target.ChainingHash {
			end = r.Target.Index
		}
	} else if r.Target.Index > 0 {
		end = r.Target.Index
	}
	after := r.After
	if h := r.Have; h.Index > after && h.Index < end {
		if hh, ok := n.hashAt(a, h.Index); ok && hh == h.ChainingHash {
			after = h.Index
		}
	}
	reply := &wire.SyncReply{App: a.name, View: n.view, After: after}
	if after < end {
		count := min(uint64(n.cfg.PageBatchesMax), end-after)
		ents := n.readEntries(a, after+1, int(count), n.cfg.PageBytesMax)
		if len(ents) > 0 {
			reply.Proofs = n.proofsIn(a, after+1, ents[len(ents)-1].Index, n.cfg.ProofsPerReplyMax)
			if len(reply.Proofs) == n.cfg.ProofsPerReplyMax {
				// More proofs than fit: end the page at the last one sent,
				// so the whole page is certified.
				ents = ents[:reply.Proofs[len(reply.Proofs)-1].Index-after]
			}
		}
		for _, e := range ents {
			reply.Batches = append(reply.Batches, e.Batch)
		}
	}
	n.send(from, reply)
}
