package core

import "github.com/seqbook/seqbook/sequencer/wire"

// Catching up into a view. An app in the sync phase has a target: the
// finalize proof and lock certificate the view starts from (the NewView's,
// or on the leader the highest of a quorum's view states). The plan
// (catchUpPlan.next) says what the node does next to reach it; the
// executor (Node.catchUp) does it and asks again, until the app takes part
// in the view or a fetch must bring batches first. The plan changes
// nothing; the executor is the only place the steps act.

// catchUpKind is the kind of a catch-up step.
type catchUpKind uint8

const (
	// catchUpActivate: take part in the view (lead or follow it).
	catchUpActivate catchUpKind = iota
	// catchUpFinalize: finalize up to proof, a finalize proof whose chain
	// the log holds.
	catchUpFinalize
	// catchUpRaiseLock: make proof, a lock certificate whose chain the log
	// holds and higher than the node's lock, the lock.
	catchUpRaiseLock
	// catchUpFetch: fetch the chain of proof, which the log lacks, and
	// adopt lock (nil, or a certificate at or past proof's index) once it
	// is in the log.
	catchUpFetch
)

func (k catchUpKind) String() string {
	switch k {
	case catchUpActivate:
		return "activate"
	case catchUpFinalize:
		return "finalize"
	case catchUpRaiseLock:
		return "raise-lock"
	case catchUpFetch:
		return "fetch"
	}
	return "unknown"
}

// catchUpStep is one step of the plan.
type catchUpStep struct {
	kind  catchUpKind
	proof *wire.Proof
	lock  *wire.Proof // catchUpFetch only
}

// catchUpPlan is what the plan reads of an app in the sync phase.
type catchUpPlan struct {
	// lock and fin are the target: the lock certificate and finalize proof
	// to reach (nil when the view starts from none).
	lock, fin *wire.Proof
	log       chain
	// finalized is the app's finalized index.
	finalized uint64
	// voter holds the node's lock (and the mutation it runs).
	voter voter
	// leader: this node leads the view.
	leader bool
	// roundBatchesMax is how far one round finalizes (Config).
	roundBatchesMax uint64
}

// next is the step that brings the app closer to its target: the finalize
// proof first, then the lock certificate, then taking part in the view.
//
//   - A finalize proof past the finalized index whose chain the log holds
//     is finalized at once by a leader (no one else would send it the
//     proofs). A follower finalizes through it only when that skips at
//     most a round; further behind, the leader's in-order proofs finalize
//     it (see applyFinalizeProof), and the plan goes on to the lock.
//   - A finalize proof whose chain the log lacks is fetched: up to the
//     target lock instead when that is at or past the proof and higher
//     than the node's lock (one fetch for both), adopting the target lock
//     once there either way.
//   - A lock certificate the voter follows (mayFollowLock: only a higher
//     one, save for MutationSyncDropsLock) is raised to when the log holds
//     its chain and it is higher than the node's lock, and fetched when the
//     log lacks its chain past the finalized index.
//   - Otherwise the app is where the view starts: activate.
func (p catchUpPlan) next() catchUpStep {
	if fin := p.fin; fin != nil && fin.Index > p.finalized {
		if !holds(p.log, fin.Index, fin.ChainingHash) {
			lock := p.lock
			if lock != nil && lock.Index < fin.Index {
				lock = nil
			}
			target := fin
			if lock != nil && lockHigher(lock, p.voter.lock) {
				target = lock
			}
			return catchUpStep{kind: catchUpFetch, proof: target, lock: lock}
		}
		if p.leader || fin.Index-p.finalized <= p.roundBatchesMax {
			return catchUpStep{kind: catchUpFinalize, proof: fin}
		}
	}
	if lock := p.lock; lock != nil && p.voter.mayFollowLock(lock) {
		if holds(p.log, lock.Index, lock.ChainingHash) {
			if lockHigher(lock, p.voter.lock) {
				return catchUpStep{kind: catchUpRaiseLock, proof: lock}
			}
		} else if lock.Index > p.finalized {
			return catchUpStep{kind: catchUpFetch, proof: lock, lock: lock}
		}
	}
	return catchUpStep{kind: catchUpActivate}
}

// catchUpPlanOf is the plan of app a as it stands.
func (n *Node) catchUpPlanOf(a *app) catchUpPlan {
	return catchUpPlan{
		lock: a.target.lock, fin: a.target.fin,
		log:             appLog{n, a},
		finalized:       a.finalIdx(),
		voter:           n.voterOf(a),
		leader:          n.isLeader(),
		roundBatchesMax: uint64(n.cfg.RoundBatchesMax),
	}
}

// catchUpStepsMax bounds the steps of one catchUp: a finalize, a raise,
// then a fetch or an activation (see catchUp).
const catchUpStepsMax = 3

// catchUp runs the plan's steps for an app in the sync phase until the app
// takes part in the view or waits for a fetch (whose end calls catchUp
// again); it does nothing to an active app or one already fetching.
// sources are the nodes that reported the target (the leader's view
// states), asked first by a fetch.
//
// It ends: a fetch or an activation ends the loop (a.sync is set, or the
// phase is active), and the two other steps each make progress that no
// step undoes, checked after each one (a step that did nothing would be
// planned again forever: that is a bug, and panics):
//   - finalize moves the finalized index up to the target's, past which
//     the plan never finalizes again;
//   - raise-lock moves the lock up in (view, index) order to the target
//     lock, and the plan raises only to a strictly higher one; nothing in
//     the loop lowers the lock (finalizeTo only raises it; the canaries
//     lower it only at a view change or while a fetch replaces the log,
//     outside the loop), so it raises at most once.
//
// The plan tries the finalize proof before the lock, and a raise can only
// shorten the log (raiseLock truncates past a higher-view lock), never
// make the log hold a proof it lacked: so at most one finalize, then one
// raise, come before the last step (catchUpStepsMax). The target does not
// change inside the loop.
func (n *Node) catchUp(a *app, sources []int) {
	for steps := 0; a.phase == phaseSync && a.sync == nil; steps++ {
		if steps == catchUpStepsMax {
			panic("core: catchUp: more steps than the plan can take")
		}
		step := n.catchUpPlanOf(a).next()
		switch step.kind {
		case catchUpFinalize:
			before := a.finalIdx()
			n.finalizeTo(a, step.proof)
			if a.finalIdx() <= before {
				panic("core: catchUp: finalizing made no progress")
			}
		case catchUpRaiseLock:
			before := a.hard.Lock
			n.raiseLock(a, step.proof)
			if !lockHigher(a.hard.Lock, before) {
				panic("core: catchUp: raising the lock made no progress")
			}
		case catchUpFetch:
			n.startSync(a, step.proof, step.lock, sources...)
		case catchUpActivate:
			if n.isLeader() {
				n.activateLeader(a)
			} else {
				n.activateFollower(a)
			}
		}
	}
}
