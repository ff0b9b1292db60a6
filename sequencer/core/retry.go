package core

import "slices"

// Retry pacing: a request is asked again after what its answers take.
//
// Messages may be lost, so every request that needs an answer is sent
// again when none came (the protocol relies on retries, never on
// delivery). Sent again too early, a request costs its receiver a decode,
// checks and bandwidth for nothing: across hosts a round (Round out,
// votes back) takes longer than RetryTicks at 100 ms one-way delay, and
// every round would be asked twice.
//
// So each peer has a retry timeout measured in ticks from its answers, as
// TCP's (RFC 6298): the smoothed round trip plus four times its mean
// deviation, never below RetryTicks and never above RetryTicksMax, so a
// lost message is still sent again in bounded time. Until a peer has
// answered, its timeout is RetryTicks.
//
// An answer to a request sent more than once is ambiguous: it may answer
// either copy. TCP then takes no sample and doubles the timeout (Karn's
// rule); here a request is also sent again when it arrived but could not
// be answered yet (a follower not active yet does not vote, and only a
// new ask makes it vote), and a doubled timeout would hold that up. So the
// timeout never doubles, and an ambiguous answer counts as a sample of
// the time since the first send, cut at the peer's current timeout: a
// peer slower than RetryTicks raises its timeout step by step until its
// answers come before it (then measured exactly), and a request that did
// need its second send raises it by little.
//
// The samples: a Round to the first vote from the node asked (rounds
// already done still count a late vote, see leadState.recent), a post to
// the return of its batches sequenced (follower), a sync request to its
// reply. The timeouts pace the rounds, a follower's posted batches, the
// leader's pushes taken as lost (trackSent), sync requests, view states
// (the leader's timeout) and disputes (the longest). Which peer is asked again when decides liveness only: every
// node's voter decides what it signs, and nothing here is read by it.
// Ticks only, no wall clock: the core stays deterministic. Retries only
// run while work is under way, when IdleTicks answers 0, so this adds no
// timer an idle node could sleep through.

// peerRTT estimates the round trip to one peer in ticks.
type peerRTT struct {
	// srtt8 is the smoothed round trip ×8, rttvar4 its mean deviation ×4
	// (fixed point, as in TCP); 0 and 0 before the first sample.
	srtt8, rttvar4 uint64
	sampled        bool
	// floor is the smallest round trip of about the last floorWindow
	// samples (a windowed minimum, as BBR's min_rtt): the network's share
	// of the round trip, without the time a busy peer queued the request.
	// floorAge counts the samples since floor was taken.
	floor, floorAge uint64
}

// floorWindow is how many samples a round-trip floor stands for before a
// newer sample replaces it (a route that got longer is seen after that).
const floorWindow = 64

// sample adds a measured round trip of ticks.
func (p *peerRTT) sample(ticks uint64) {
	ticks = max(ticks, 1)
	if !p.sampled || ticks <= p.floor || p.floorAge >= floorWindow {
		p.floor, p.floorAge = ticks, 0
	} else {
		p.floorAge++
	}
	if !p.sampled {
		p.sampled = true
		p.srtt8, p.rttvar4 = ticks<<3, ticks<<1 // srtt = r, rttvar = r/2
		return
	}
	srtt := p.srtt8 >> 3
	dev := max(ticks, srtt) - min(ticks, srtt)
	p.rttvar4 = p.rttvar4 - p.rttvar4>>2 + dev // rttvar += (|r - srtt| - rttvar) / 4
	p.srtt8 = p.srtt8 - srtt + ticks           // srtt += (r - srtt) / 8
}

// timeout is how long to wait for the peer's answer before asking again:
// within [minTicks, maxTicks].
func (p *peerRTT) timeout(minTicks, maxTicks uint64) uint64 {
	t := minTicks
	if p.sampled {
		t = max(t, p.srtt8>>3+p.rttvar4) // srtt + 4·rttvar
	}
	return min(t, maxTicks)
}

// retryTicks is how long to wait for peer's answer before asking again.
func (n *Node) retryTicks(peer int) uint64 {
	return n.rtt[peer].timeout(uint64(n.cfg.RetryTicks), uint64(n.cfg.RetryTicksMax))
}

// retryDue reports whether a request sent to peer at tick sent is due to
// be sent again.
func (n *Node) retryDue(peer int, sent uint64) bool {
	return n.tick-sent >= n.retryTicks(peer)
}

// sampleAnswer measures peer's round trip by an answer to a request first
// sent at tick first and sent again (again) since: see above.
func (n *Node) sampleAnswer(peer int, first uint64, again bool) {
	ticks := n.tick - first
	if again {
		ticks = min(ticks, n.retryTicks(peer))
	}
	n.rtt[peer].sample(ticks)
}

// quorumFloor is the round-trip floor within which the leader hears from
// enough peers for a quorum: the (Q-1)-th smallest floor of its peers (it
// votes itself); 0 while fewer than Q-1 have answered.
func (n *Node) quorumFloor() uint64 {
	f, _ := n.peersQuorumTicks(func(p int) (uint64, bool) { return n.rtt[p].floor, n.rtt[p].sampled })
	return f
}

// peersQuorumTicks is the (Q-1)-th smallest of the peers' values (the
// leader votes itself: the time within which it hears from enough peers
// for a quorum); ok is false while fewer than Q-1 peers have one.
func (n *Node) peersQuorumTicks(of func(peer int) (uint64, bool)) (ticks uint64, ok bool) {
	var buf [16]uint64
	vals := buf[:0]
	for p := range n.cfg.Nodes {
		if v, has := of(p); p != n.cfg.Self && has {
			vals = append(vals, v)
		}
	}
	if n.quorum < 2 || len(vals) < n.quorum-1 {
		return 0, false
	}
	slices.Sort(vals)
	return vals[n.quorum-2], true
}

// netRTT is the network's round trip to a peer as the runtime's
// transport measured it (NetworkRTT), in ticks rounded down.
type netRTT struct {
	ticks uint64
	known bool
}

// NetworkRTT tells the node the network's round trip to peer, ms
// milliseconds: the transport's own measure, without the time either side
// takes to process (QUIC's min_rtt). It only decides whether rounds are
// held by the network (roundsHeldByNetwork: rounds overlap and lock votes
// are shared across hosts), which the round trips the node measures itself
// (quorumFloor) decide until a quorum's peers have one. Those include the
// peers' processing, and a busy CPU on one host would pass for a long
// link. It is an input like Tick: the core stays deterministic.
func (n *Node) NetworkRTT(peer int, ms uint64) {
	if peer < 0 || peer >= n.cfg.Nodes || peer == n.cfg.Self {
		return
	}
	n.netRTT[peer] = netRTT{ticks: ms / n.cfg.TickMs, known: true}
}

// networkFloor is the network's round trip within which the leader can
// hear from enough peers for a quorum (the (Q-1)-th smallest NetworkRTT of
// its peers); ok is false while fewer than Q-1 peers have one.
func (n *Node) networkFloor() (ticks uint64, ok bool) {
	return n.peersQuorumTicks(func(p int) (uint64, bool) { return n.netRTT[p].ticks, n.netRTT[p].known })
}

// retryTicksAll is the longest retry timeout of the peers: how long to
// wait before sending a broadcast again.
func (n *Node) retryTicksAll() uint64 {
	t := uint64(n.cfg.RetryTicks)
	for p := range n.cfg.Nodes {
		if p != n.cfg.Self {
			t = max(t, n.retryTicks(p))
		}
	}
	return t
}
