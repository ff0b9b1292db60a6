package core

import (
	"slices"

	"github.com/seqbook/seqbook/sequencer/wire"
)

// Shared lock votes: finality one network delay sooner on a wide-area link.
//
// In a plain round the leader gathers the Lock votes, aggregates the lock
// proof and sends it back to ask for Finalize votes: after the lock votes
// reach the leader, finality waits for one more trip to the followers and
// back. When the leader's Round says ShareLock, each node sends its Lock
// vote to every node as well, aggregates the lock proof from the votes it
// gets (its own among them) and sends the leader its Finalize vote unasked,
// which reaches the leader one network delay before the leader's finalize
// request would have reached the node.
//
// Nothing a node signs changes: the proof a node aggregates is a lock proof
// like the leader's, a quorum's signatures over the same (view, app,
// index, chaining hash), checked before use, and rule 3 applies to it as to
// the leader's (finalizeOn). A node that cannot aggregate it (votes lost, a
// Byzantine node's bad signature among too few good ones) is asked by the
// leader once its retry timeout runs out (sendRound), as in a plain round.

// sharedLocks are the lock votes a follower collects for the shared rounds
// it voted in: one tally per Lock it signed in the view, oldest first, at
// most roundsInFlightMax. A vote for a Lock the node did not sign (or not
// yet) is dropped, so another node's votes cannot make it hold more.
type sharedLocks struct {
	view    uint64
	tallies []*tally
}

// shareLock sends the node's own Lock vote of a ShareLock round to every
// node but the leader (who got the whole vote) and opens its tally.
func (n *Node) shareLock(a *app, own *wire.SignedTarget) {
	for i := 0; i < n.cfg.Nodes; i++ {
		if i != n.cfg.Self && i != n.leader() {
			n.send(i, &wire.Vote{App: a.name, View: n.view, Lock: own})
		}
	}
	s := &a.shared
	if s.view != n.view {
		*s = sharedLocks{view: n.view}
	}
	n.pruneShared(a, a.finalIdx())
	if len(s.tallies) == roundsInFlightMax {
		s.tallies = slices.Delete(s.tallies, 0, 1)
	}
	t := newTally(wire.KindLock, own.Index, own.ChainingHash, nil)
	t.votes[n.cfg.Self] = own.Signature
	s.tallies = append(s.tallies, t)
}

// stepSharedLock (follower) takes a node's shared Lock vote into the tally
// of the same Lock this node signed, and finalizes once they aggregate into
// a valid lock proof.
func (n *Node) stepSharedLock(from int, v *wire.Vote) {
	a := n.apps[v.App]
	if a == nil || v.Lock == nil || v.View != n.view || a.shared.view != n.view || a.phase != phaseActive || a.sync != nil {
		return
	}
	var t *tally
	for _, c := range a.shared.tallies {
		if c.index == v.Lock.Index && c.hash == v.Lock.ChainingHash {
			t = c
		}
	}
	if t == nil || t.done() || t.has(from) {
		return
	}
	t.unchecked[from] = v.Lock.Signature
	lp := n.prove(a, t, n.candidate(a, t))
	if lp == nil {
		return
	}
	t.proof = lp
	n.metrics.SharedLockProofs++
	n.pruneShared(a, lp.Index)
	fin, ok := n.finalizeOn(a, lp)
	if ok && fin != nil {
		n.send(n.leader(), &wire.Vote{App: a.name, View: n.view, Finalize: fin})
	}
}

// pruneShared drops the tallies at or below idx: a lock proof or a
// finalization there made them moot.
func (n *Node) pruneShared(a *app, idx uint64) {
	a.shared.tallies = slices.DeleteFunc(a.shared.tallies, func(t *tally) bool { return t.index <= idx })
}
