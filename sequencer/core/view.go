package core

import (
	"fmt"
	"sort"

	"github.com/seqbook/seqbook/sequencer/wire"
)

// dispute signs and broadcasts this node's dispute of the current leader,
// once per view (retransmitted by Tick until the view changes). A node
// only disputes what it saw itself; a certificate needs more than N/3
// disputes, so at least one comes from an honest node that saw the leader
// fail, and f faulty nodes cannot depose an honest leader.
func (n *Node) dispute(reason wire.DisputeReason, app string) {
	if n.disputed || n.isLeader() {
		return
	}
	n.disputed = true
	n.disputeReason = reason
	n.metrics.DisputesSent++
	n.log.Info("disputing the leader", "view", n.view, "leader", n.leader(), "reason", reason.String(), "app", app)
	n.disputes[n.cfg.Self] = n.crypto.Sign(DisputeDigest(n.cfg.ChainID, n.view))
	n.broadcastDispute()
	n.maybeViewChange()
}

func (n *Node) broadcastDispute() {
	n.disputeSentTick = n.tick
	n.broadcast(&wire.Dispute{View: n.view, Reason: n.disputeReason, Signature: n.disputes[n.cfg.Self]})
}

// stepDispute collects a peer's dispute of the current view.
func (n *Node) stepDispute(from int, d *wire.Dispute) error {
	if _, dup := n.disputes[from]; dup {
		return nil
	}
	if !n.crypto.Verify(from, DisputeDigest(n.cfg.ChainID, d.View), d.Signature) {
		return fmt.Errorf("core: dispute of view %d from node %d: bad signature", d.View, from)
	}
	n.disputes[from] = d.Signature
	n.maybeViewChange()
	return nil
}

// maybeViewChange forms a certificate once more than N/3 nodes disputed
// the current view, and moves to the next.
func (n *Node) maybeViewChange() {
	if len(n.disputes) < n.fq {
		return
	}
	var signers wire.Bitmap
	var sigs []wire.Signature
	for i := 0; i < n.cfg.Nodes; i++ {
		if s, ok := n.disputes[i]; ok {
			signers = signers.With(i)
			sigs = append(sigs, s)
		}
	}
	agg, err := n.crypto.Aggregate(sigs)
	if err != nil {
		n.log.Error("aggregating disputes failed", "err", err)
		return
	}
	cert := &wire.Certificate{View: n.view, Signers: signers, Signature: agg}
	n.enterView(n.view+1, cert)
}

// verifyCert checks a dispute certificate.
func (n *Node) verifyCert(c *wire.Certificate) error {
	if c.Signers.Max() >= n.cfg.Nodes || c.Signers.Count() < n.fq {
		return fmt.Errorf("core: certificate of view %d: %d signers, need %d", c.View, c.Signers.Count(), n.fq)
	}
	if !n.crypto.VerifyAggregate(c.Signers, DisputeDigest(n.cfg.ChainID, c.View), c.Signature) {
		return fmt.Errorf("core: certificate of view %d: bad signature", c.View)
	}
	return nil
}

// adoptCert moves to the view after a verified certificate's view if that
// is ahead of ours.
func (n *Node) adoptCert(c *wire.Certificate) error {
	if c.View < n.view {
		return nil
	}
	if err := n.verifyCert(c); err != nil {
		return err
	}
	n.enterView(c.View+1, c)
	return nil
}

func (n *Node) stepViewChange(from int, m *wire.ViewChange) error {
	if m.Cert.View < n.view {
		if m.Cert.View+1 < n.view {
			n.sendCertTo(from)
		}
		return nil
	}
	return n.adoptCert(&m.Cert)
}

// sendCertTo shows a peer in an older view our certificate, at most once
// per RetryTicks per peer.
func (n *Node) sendCertTo(peer int) {
	if n.cert == nil || (n.certSentTick[peer] != 0 && n.tick-n.certSentTick[peer] < uint64(n.cfg.RetryTicks)) {
		return
	}
	n.certSentTick[peer] = n.tick
	n.send(peer, &wire.ViewChange{Cert: *n.cert})
}

// enterView moves to view v (started by cert): every node drops its
// sequenced-but-not-locked batches (its own go back to initialized), stops
// signing, and reports its state to the new leader, which adopts the
// highest lock of a quorum and answers with NewView per app.
func (n *Node) enterView(v uint64, cert *wire.Certificate) {
	if v <= n.view {
		panic("core: enterView to an older view")
	}
	n.log.Info("entering view", "view", v, "leader", n.cfg.Leader(v), "from_view", n.view)
	n.pace.viewEnded()
	n.view, n.cert, n.hardDirty = v, cloneCert(cert), true
	n.metrics.ViewChanges++
	clear(n.disputes)
	n.disputed = false
	n.viewStartTick = n.tick
	clear(n.viewStates)
	n.established = false
	n.quorumStatesTick = 0
	n.broadcast(&wire.ViewChange{Cert: *n.cert})
	for _, name := range n.names {
		a := n.apps[name]
		if n.cfg.Mutation == MutationForgetLocks {
			// Canary: break rule 2 by forgetting the lock.
			n.breakLock(a, a.hard.Finalized)
		}
		n.truncate(a, max(a.finalIdx(), a.lockIdx()))
		n.resetAppForView(a)
	}
	n.rejoinView()
}

// resetAppForView puts an app back in the sync phase of the current view.
func (n *Node) resetAppForView(a *app) {
	a.lead = nil
	a.sync = nil
	a.phase = phaseSync
	a.phaseSince = n.tick
	a.awaitingSince = 0
	a.refusedSince = 0
	a.lastFinalTick = n.tick
	a.waitingSince = 0
	a.target.lock, a.target.fin = nil, nil
	for _, p := range a.pend {
		p.firstPostTick, p.sentTick, p.again = 0, 0, false
	}
}

// rejoinView reports this node's state to the leader of the current view
// (the leader records its own).
func (n *Node) rejoinView() {
	for _, name := range n.names {
		n.resetAppForView(n.apps[name])
	}
	if n.isLeader() {
		n.viewStates[n.cfg.Self] = n.buildViewState()
		n.maybeEstablish()
		return
	}
	n.sendViewState()
}

func (n *Node) buildViewState() *wire.ViewState {
	vs := &wire.ViewState{View: n.view, Cert: cloneCert(n.cert)}
	for _, name := range n.names {
		a := n.apps[name]
		vs.Apps = append(vs.Apps, wire.AppState{
			App: name, Tip: wire.Tip{Index: a.tip(), ChainingHash: a.tipHash()},
			Lock: cloneProof(a.hard.Lock), Finalized: cloneProof(a.hard.Finalized),
		})
	}
	return vs
}

func (n *Node) sendViewState() {
	n.viewStateSent = n.tick
	n.send(n.leader(), n.buildViewState())
}

// stepViewState (leader) records a node's state for the view; once the
// view is established it answers with NewView for every app it leads
// (a node that lost or never had an app learns of it this way).
func (n *Node) stepViewState(from int, vs *wire.ViewState) error {
	if !n.isLeader() {
		return nil
	}
	n.viewStates[from] = vs
	if !n.established {
		n.maybeEstablish()
		return nil
	}
	for _, as := range vs.Apps {
		a := n.apps[as.App]
		if a == nil {
			if a = n.getApp(as.App); a == nil {
				continue
			}
			// An app the leader learns after choosing: adopt this
			// node's certificates for it.
			n.leaderStartApp(a, []*wire.ViewState{vs}, []int{from})
			continue
		}
	}
	for _, name := range n.names {
		if a := n.apps[name]; a.phase == phaseActive {
			if a.lead != nil {
				// It (re)joins, maybe restarted: what was pushed to it may
				// be gone. Its posts say what it holds; send from there.
				a.lead.known[from], a.lead.pushed[from] = false, 0
			}
			n.send(from, n.newViewMsg(a))
		}
	}
	return nil
}

// awaitingLiveStates reports whether a node whose view state is missing
// may still send it soon: one we heard from within LeaderTimeoutTicks.
// Nodes ping every peer they have not heard from for that long, and the
// disputes and certificate of a view change go to everyone, so a node
// silent for that long is down or cut off: the grace would only wait out
// its full length for it (a leader change after a node died would always
// cost the whole grace). Which states the leader waits for is liveness
// only: the choice of lock never bears on safety (docs/protocol.md §7).
func (n *Node) awaitingLiveStates() bool {
	for i := 0; i < n.cfg.Nodes; i++ {
		if n.viewStates[i] == nil && i != n.cfg.Self && n.tick-n.heardTick[i] <= uint64(n.cfg.LeaderTimeoutTicks) {
			return true
		}
	}
	return false
}

// maybeEstablish (leader) chooses the view's starting point once it holds
// the states of a quorum and either everyone answered or the grace period
// passed: per app, the highest valid lock certificate and the highest
// finalize proof among them.
func (n *Node) maybeEstablish() {
	if n.established || len(n.viewStates) < n.quorum {
		return
	}
	if n.quorumStatesTick == 0 {
		n.quorumStatesTick = n.tick
	}
	// The grace grows with the view timeouts: after views that made no
	// progress, waiting longer for the states outside the first quorum is
	// what lets the leader see a higher lock that a node outside it holds.
	grace := n.pace.scaled(n.cfg.ViewStateGraceTicks)
	if n.awaitingLiveStates() && n.tick-n.quorumStatesTick < grace {
		return
	}
	n.established = true
	var states []*wire.ViewState
	var from []int
	for i := 0; i < n.cfg.Nodes; i++ {
		if vs := n.viewStates[i]; vs != nil {
			states = append(states, vs)
			from = append(from, i)
		}
	}
	// Apps named by any state, in name order.
	seen := map[string]bool{}
	var names []string
	for _, vs := range states {
		for _, as := range vs.Apps {
			if !seen[as.App] {
				seen[as.App] = true
				names = append(names, as.App)
			}
		}
	}
	for _, name := range n.names {
		if !seen[name] {
			seen[name] = true
			names = append(names, name)
		}
	}
	sort.Strings(names)
	n.log.Info("leading view", "view", n.view, "states", len(states), "apps", len(names))
	for _, name := range names {
		if a := n.getApp(name); a != nil && a.phase == phaseSync {
			n.leaderStartApp(a, states, from)
		}
	}
}

// leaderStartApp adopts, for one app, the highest lock certificate and
// finalize proof among the given states and brings the log to them
// (catchUp), fetching first from the nodes that reported them.
func (n *Node) leaderStartApp(a *app, states []*wire.ViewState, from []int) {
	var lock, fin *wire.Proof
	var sources []int
	for k, vs := range states {
		for i := range vs.Apps {
			as := &vs.Apps[i]
			if as.App != a.name {
				continue
			}
			if as.Lock != nil && lockHigher(as.Lock, lock) && n.verifyProof(a.name, as.Lock) {
				lock = as.Lock
				sources = append([]int{from[k]}, sources...)
			}
			if as.Finalized != nil && (fin == nil || as.Finalized.Index > fin.Index) && n.verifyFinalizeProof(a.name, as.Finalized) {
				fin = as.Finalized
				sources = append(sources, from[k])
			}
		}
	}
	a.target.lock, a.target.fin = cloneProof(lock), cloneProof(fin)
	n.catchUp(a, sources)
}

// newViewMsg is the leader's NewView for an active app.
func (n *Node) newViewMsg(a *app) *wire.NewView {
	return &wire.NewView{App: a.name, View: n.view, Lock: cloneProof(a.hard.Lock), Finalized: cloneProof(a.hard.Finalized)}
}

// stepNewView (follower) takes the leader's starting point for an app.
func (n *Node) stepNewView(from int, nv *wire.NewView) error {
	if from != n.leader() {
		return fmt.Errorf("core: NewView from node %d, leader of view %d is %d", from, n.view, n.leader())
	}
	if nv.Lock != nil && !n.verifyProof(nv.App, nv.Lock) {
		return fmt.Errorf("core: NewView for %s: invalid lock proof", nv.App)
	}
	if nv.Finalized != nil && !n.verifyFinalizeProof(nv.App, nv.Finalized) {
		return fmt.Errorf("core: NewView for %s: invalid finalize proof", nv.App)
	}
	a := n.getApp(nv.App)
	if a == nil || a.phase == phaseActive {
		return nil
	}
	a.target.lock, a.target.fin = cloneProof(nv.Lock), cloneProof(nv.Finalized)
	// A fetch under way is finished first (its target is still a valid
	// certificate); its end runs catchUp toward this newer target. A
	// leader's lock moves on every round: restarting the fetch for each
	// one could never finish.
	n.catchUp(a, nil)
	return nil
}

func (n *Node) activateFollower(a *app) {
	n.log.Debug("following", "app", a.name, "view", n.view, "tip", a.tip(), "lock", a.lockIdx(), "final", a.finalIdx())
	a.phase = phaseActive
	a.phaseSince = n.tick
	a.awaitingSince = 0
	n.post(a)
}

func cloneCert(c *wire.Certificate) *wire.Certificate {
	if c == nil {
		return nil
	}
	out := *c
	out.Signers = append(wire.Bitmap(nil), c.Signers...)
	return &out
}
