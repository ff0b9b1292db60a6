package core

import (
	"fmt"
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
	// viewLock is the newest lock proof formed in this view;
	// viewLockShared: its round shared the lock votes, so the nodes
	// finalize it unasked.
	viewLock       *wire.Proof
	viewLockShared bool
	// early[i] is node i's newest finalize vote for a lock proof not
	// formed here yet (see stepVote).
	early []*wire.SignedTarget
	// rounds are the rounds under way, oldest first: at most
	// roundsInFlightMax, more than one only at light load (see round.go).
	rounds []*round
	// roundTicks is how long the last round that formed a proof took
	// (0 before the first).
	roundTicks uint64
	// recent are the asks of the last rounds done, oldest first (at most
	// roundsRecentMax): late votes still measure round trips.
	recent []roundAsks
	// announced is the finalized index the last Round message carried:
	// replies carry the proofs up to it (newer ones ride with the next
	// Round, checked together with its lock proof).
	announced uint64
	// late[i]: node i was asked again in a round because its retry
	// timeout ran out without its vote (cleared by a vote in time); such
	// a node is the first spare (spares). finSent[i] is the finalized
	// index of the last finalize proof sent to node i as a spare.
	late    []bool
	finSent []uint64
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
		early:    make([]*wire.SignedTarget, n.cfg.Nodes),
		late:     make([]bool, n.cfg.Nodes),
		finSent:  make([]uint64, n.cfg.Nodes),
		lastSeqs: slices.Clone(a.hard.OriginSeqs),
	}
	for i := range a.mem {
		e := &a.mem[i]
		if e.Seq > l.lastSeqs[e.Origin] {
			l.lastSeqs[e.Origin] = e.Seq
		}
	}
	a.lead = l
	n.knowFromViewStates(a)
	n.broadcast(n.newViewMsg(a))
	n.selfPost(a)
	n.advanceRounds(a)
}

// knowFromViewStates takes as known (matching our log) the followers
// whose view state showed a tip on our chain at or past the adopted lock:
// they hold its chain, so our NewView activates them without a sync, and
// the first round can follow it on the same stream instead of waiting
// for their first posts (a network round trip in every leader change).
// A follower that is not active when the round arrives just does not
// vote; the round is asked again (retry.go) and its posts correct
// tips. Which followers the leader counts is liveness only: every node's
// voter decides what it signs.
func (n *Node) knowFromViewStates(a *app) {
	l := a.lead
	for i := 0; i < n.cfg.Nodes; i++ {
		vs := n.viewStates[i]
		if i == n.cfg.Self || vs == nil {
			continue
		}
		for _, as := range vs.Apps {
			if as.App != a.name {
				continue
			}
			if h, ok := n.hashAt(a, as.Tip.Index); ok && h == as.Tip.ChainingHash && as.Tip.Index >= a.lockIdx() {
				l.tips[i], l.known[i] = as.Tip.Index, true
			}
		}
	}
}

func (n *Node) leaderTick(a *app) {
	if a.phase != phaseActive || a.lead == nil {
		return
	}
	if n.tick-a.lastPostTick >= uint64(n.cfg.PostIntervalTicks) {
		n.selfPost(a)
	}
	n.advanceRounds(a)
	for _, r := range a.lead.rounds {
		// To the nodes that have not voted, once their retry timeout ran out.
		n.metrics.RoundResends += uint64(n.sendRound(a, r, true))
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

// pushPending (leader) sequences the leader's own batches a submit left
// for the next Ready and pushes to the followers what they were not sent
// yet: what a round about to start must cover.
func (n *Node) pushPending(a *app) {
	if a.postDue {
		a.postDue = false
		n.selfPost(a)
	}
	if l := a.lead; l.pushDue {
		l.pushDue = false
		n.push(a)
	}
}

func (n *Node) pushSoon(a *app) {
	a.lead.pushDue = true
	n.flushDue = true
}

// trackSent notes a post of node i reporting tip. While i is short of
// what we sent it, its posts must show progress; after its retry timeout
// (retry.go) without any, what was sent since its tip is taken as lost (a
// dropped connection, an evicted queue) and the next reply sends it again.
func (n *Node) trackSent(l *leadState, i int, tip uint64) {
	switch {
	case tip >= l.pushed[i] || tip > l.tips[i]:
		l.stalled[i] = 0
	case l.stalled[i] == 0:
		l.stalled[i] = max(n.tick, 1)
	case n.retryDue(i, l.stalled[i]):
		l.pushed[i], l.stalled[i] = tip, 0
		n.metrics.PushResends++
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
	if p.Finalized < l.announced {
		reply.Proofs = n.proofsIn(a, p.Finalized+1, min(end, l.announced), n.cfg.ProofsPerReplyMax)
	}
	n.send(from, reply)
	l.pushed[from] = max(l.pushed[from], end)
	if a.tip() > tip {
		n.pushSoon(a)
	}
	n.advanceRounds(a)
	return nil
}

// lockCandidate picks the next index to lock: the highest index at least
// Q nodes hold (the leader included), cut so one round covers at most
// RoundBatchesMax batches and RoundBytesMax bytes after the highest lock
// formed or asked for, and never below the adopted lock (nodes refuse to
// lock below their own). It returns the index and the one the round
// starts after.
func (n *Node) lockCandidate(a *app) (idx, from uint64, ok bool) {
	l := a.lead
	// A follower whose log matched ours holds what we pushed to it by the
	// time a Round sent after the push reaches it (one ordered stream per
	// peer), so the round need not wait for its post to say so. If it does
	// not (a lost connection), it does not vote, and trackSent sends the
	// batches again.
	tips := make([]uint64, n.cfg.Nodes)
	for i := range tips {
		tips[i] = l.tips[i]
		if l.known[i] {
			tips[i] = max(tips[i], l.pushed[i])
		}
	}
	tips[n.cfg.Self] = a.tip()
	slices.Sort(tips)
	slices.Reverse(tips)
	cand := tips[n.quorum-1]
	fin := a.finalIdx()
	floor := max(fin, askedIdx(a, lockPart))
	if l.viewLock != nil {
		floor = max(floor, l.viewLock.Index)
	} else if cand < a.lockIdx() {
		return 0, 0, false // a quorum does not hold the adopted chain yet
	}
	if cand <= floor {
		return 0, 0, false
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
	return limit, floor, limit > floor
}
