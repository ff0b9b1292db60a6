package core

import "github.com/seqbook/seqbook/sequencer/wire"

// The pacemaker: view timers and their backoff, apart from replication.
// It decides when a follower disputes the leader (docs/protocol.md §6) and
// how long every view timer runs; it never touches logs, locks or votes.

// pacemaker holds the backoff of the view timers.
//
// Every view that ends without any finalization progress doubles every
// dispute timeout and the new leader's view-state grace, up to
// 2^doublingsMax (Config.TimeoutBackoffMax); a view with progress resets
// them. Doubling makes the time spent in failed views before one lasts long
// enough a constant factor of that length (where linear growth would be
// quadratic); the cap is the delay bound the protocol assumes after the
// network heals: with the defaults 2 s × 2^10 ≈ 34 min for the leader
// timeout.
type pacemaker struct {
	doublings    int  // consecutive views that ended without progress, ≤ doublingsMax
	doublingsMax int  // Config.TimeoutBackoffMax
	progress     bool // something was finalized in the current view
}

// scaled is ticks under the current backoff.
func (p *pacemaker) scaled(ticks int) uint64 {
	return uint64(ticks) << uint(min(p.doublings, p.doublingsMax))
}

// viewEnded updates the backoff when the node leaves a view.
func (p *pacemaker) viewEnded() {
	if p.progress {
		p.doublings = 0
	} else if p.doublings < p.doublingsMax {
		p.doublings++
	}
	p.progress = false
}

// finalized notes finalization progress in the current view.
func (p *pacemaker) finalized() { p.progress = true }

// watchLeader disputes the leader of the view when one of its timers ran
// out for app a:
//   - silent: the leader never brought the app into the view, sends us
//     back to sync on every post (Mismatch) for as long, or does not
//     answer our posts;
//   - no-progress: work has been waiting for the whole finalize timeout and
//     nothing was finalized meanwhile. The timer starts when work starts
//     waiting (or at the last finalization, whichever is later), never
//     earlier: a batch that arrives after an idle hour has the full
//     timeout ahead of it;
//   - censorship: one of our own batches was posted long ago and is still
//     not sequenced.
func (n *Node) watchLeader(a *app) {
	waiting := len(a.pend) > 0 || a.tip() > a.finalIdx()
	switch {
	case !waiting:
		a.waitingSince = 0
	case a.waitingSince == 0:
		a.waitingSince = max(n.tick, 1)
	}
	expired := func(since uint64, ticks int) bool { return since > 0 && n.tick-since > n.pace.scaled(ticks) }
	switch {
	case a.phase == phaseSync && expired(max(a.phaseSince, 1), n.cfg.LeaderTimeoutTicks),
		expired(a.refusedSince, n.cfg.LeaderTimeoutTicks):
		// Not following for that long: left in the sync phase, or sent
		// back to it by every post (an equivocating leader that keeps a
		// quorum going can otherwise starve a follower forever).
		n.dispute(wire.ReasonSilent, a.name)
	case a.phase == phaseActive && expired(a.awaitingSince, n.cfg.LeaderTimeoutTicks):
		n.dispute(wire.ReasonSilent, a.name)
	case waiting && expired(max(a.lastFinalTick, a.waitingSince), n.cfg.FinalizeTimeoutTicks):
		n.dispute(wire.ReasonNoProgress, a.name)
	default:
		for _, p := range a.pend {
			if p.index == 0 && expired(p.firstPostTick, n.cfg.CensorshipTimeoutTicks) {
				n.dispute(wire.ReasonCensorship, a.name)
				break
			}
		}
	}
}
