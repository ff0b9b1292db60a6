package core

import (
	"fmt"
	"math"
)

// Idle ticks: a runtime need not wake every tick.
//
// Most ticks of a quiet node do nothing: every timer is far from due. A
// runtime that woke every TickMs only to find that out would burn CPU on
// an idle network (four nodes at 100 wake-ups a second). IdleTicks says how
// many coming ticks would do nothing, and Skip lets them pass uncounted by
// the timers' logic, so the runtime sleeps until the first tick that may
// act. Time stays ticks: Skip(k) then Tick is exactly k+1 Ticks, the
// simulator checks that (same run, same messages, with and without
// skipping), and protocol timeouts are counted as before.
//
// IdleTicks is conservative: any state with work under way (batches
// waiting, entries not final, a round, a sync, a dispute, a view being
// established) answers 0, so such a node ticks every TickMs as always.
// Only a node whose every app is final and quiet sleeps, until the
// earliest of its idle timers: a follower's heartbeat post, the leader
// timeout of an unanswered post, the ping of a silent peer, and the
// moment its Status stops calling it ready.

// idleTicksNone is IdleTicks' answer when no timer is running at all (a
// node alone in its cluster with nothing to do).
const idleTicksNone = math.MaxUint64

// IdleTicks reports how many coming ticks would do nothing at all: Tick
// would send nothing, persist nothing, start or fire no timer and leave
// Status unchanged. The runtime may Skip that many and sleep until the
// tick after them. 0: the next tick may act. Every Step, Submit, Ready
// and Advance may shorten it; ask again after each.
func (n *Node) IdleTicks() uint64 {
	if n.disputed {
		return 0 // the dispute is sent again after its retry timeout
	}
	if n.holding {
		return 0 // held output is released by a tick at the latest (HasReady)
	}
	leader := n.isLeader()
	if leader && !n.established {
		return 0 // waiting out the view-state grace
	}
	if !leader && n.anyAppSyncing() {
		return 0 // the view state is sent again after its retry timeout
	}
	next := uint64(idleTicksNone) // the first tick that may act
	due := func(tick uint64) { next = min(next, tick) }
	for _, name := range n.names {
		a := n.apps[name]
		if a.phase != phaseActive || a.sync != nil || len(a.pend) > 0 || a.tip() > a.finalIdx() || a.waitingSince != 0 || a.refusedSince != 0 {
			// Work under way: its timers count every tick. (A waitingSince
			// left from finished work is cleared by the next Tick.)
			return 0
		}
		if leader {
			l := a.lead
			if l == nil || len(l.rounds) > 0 || a.finalIdx() > l.announced || (l.viewLock != nil && l.viewLock.Index > a.finalIdx()) {
				return 0
			}
			continue // leaderTick has nothing to post, lock or retry
		}
		// followerTick: the heartbeat post (postInterval is the idle one:
		// nothing waits), and watchLeader's timer of an unanswered post.
		due(a.lastPostTick + uint64(n.cfg.IdlePostIntervalTicks))
		if a.awaitingSince > 0 {
			due(a.awaitingSince + n.pace.scaled(n.cfg.LeaderTimeoutTicks) + 1)
		}
	}
	// pingSilentPeers.
	timeout := uint64(n.cfg.LeaderTimeoutTicks)
	for p := 0; p < n.cfg.Nodes; p++ {
		if p != n.cfg.Self {
			due(max(n.heardTick[p], n.pingTick[p]) + timeout + 1)
		}
	}
	// Status: a follower stops being ready when the leader is silent.
	if heard := n.heardTick[n.leader()]; !leader && heard > 0 {
		due(heard + 2*n.pace.scaled(n.cfg.LeaderTimeoutTicks) + 1)
	}
	if next <= n.tick+1 {
		return 0
	}
	if next == idleTicksNone {
		return idleTicksNone
	}
	return next - n.tick - 1
}

// Skip lets ticks pass without running them: the same as calling Tick
// that many times, which IdleTicks promised would do nothing. It panics
// when ticks is more than IdleTicks(): a runtime that skips a tick that
// acts loses a timer.
func (n *Node) Skip(ticks uint64) {
	if ticks == 0 {
		return
	}
	if idle := n.IdleTicks(); ticks > idle {
		panic(fmt.Sprintf("core: Skip(%d) with only %d idle ticks", ticks, idle))
	}
	n.tick += ticks
}
