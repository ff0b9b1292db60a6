package core

import "github.com/seqbook/seqbook/sequencer/wire"

// The voter is the whole of what an honest node may sign (DESIGN §4, rules
// 1–3) and when its lock certificate rises. It is pure: it reads the
// node's safety records and its log (through chain) and answers yes or no;
// it changes nothing, signs nothing and checks no signature (the callers
// verify proofs before asking, and record what was signed in the same
// Ready as the vote). docs/protocol.md §5 is its prose; voter_test.go its
// properties; every rule has a mutation canary in the simulator.

// chain is the node's log as the voter sees it: the chaining hash at an
// index, false beyond the tip.
type chain interface {
	hashAt(idx uint64) (wire.Hash, bool)
}

// voter is one app's safety records in the current view.
type voter struct {
	// view is the node's current view: it signs for no other.
	view uint64
	// lock is the node's highest lock certificate (a lock proof, or a
	// finalize proof, which implies one); nil when none.
	lock *wire.Proof
	// signedLock and signedFinalize are the last Lock and Finalize it
	// signed (rule 1's records; View 0 and Index 0 when none).
	signedLock, signedFinalize Signed
	// mutation breaks one rule on purpose (the simulator's canaries).
	mutation Mutation
}

// holds reports whether the log has hash h at index idx.
func holds(log chain, idx uint64, h wire.Hash) bool {
	got, ok := log.hashAt(idx)
	return ok && got == h
}

// mayLock reports whether the node may sign Lock(view, idx, h).
//
//   - It holds that chain: it saw and checked every batch and timestamp
//     in it (and so can check rule 2 against it).
//   - Rule 2: the chain extends the chain of the lock certificate (idx is
//     at or past it and the log, which holds the certificate's chain, is
//     that chain up to there).
//   - Rule 1: within a view its signed locks only move forward along one
//     chain, so it never signs two different Locks for one (view, index).
func (v voter) mayLock(log chain, idx uint64, h wire.Hash) bool {
	if v.mutation == MutationSignAnyHash {
		return true
	}
	if !holds(log, idx, h) {
		return false
	}
	if l := v.lock; l != nil && v.mutation != MutationRule2 {
		if idx < l.Index || !holds(log, l.Index, l.ChainingHash) {
			return false
		}
	}
	rec := v.signedLock
	if rec.View > v.view {
		return false
	}
	if rec.View == v.view && rec.Index > 0 && v.mutation != MutationRule1 {
		if idx < rec.Index || !holds(log, rec.Index, rec.ChainingHash) {
			return false
		}
	}
	return true
}

// mayFinalize reports whether the node may sign Finalize for lp, a lock
// proof whose signature the caller verified.
//
//   - Rule 3: lp is a lock proof of the current view, and the log holds
//     its chain (so the node adopts lp as its lock before signing).
//   - Rule 1: within a view its signed finalizes only move forward, never
//     two different ones at one index.
func (v voter) mayFinalize(log chain, lp *wire.Proof) bool {
	if lp == nil || lp.Kind != wire.KindLock {
		return false
	}
	if (lp.View != v.view && v.mutation != MutationFinalizeOldViewLock) || !holds(log, lp.Index, lp.ChainingHash) {
		return false
	}
	rec := v.signedFinalize
	if rec.View > v.view {
		return false
	}
	if rec.View == v.view && rec.Index > 0 && v.mutation != MutationRule1 {
		if lp.Index < rec.Index || (lp.Index == rec.Index && lp.ChainingHash != rec.ChainingHash) {
			return false
		}
	}
	return true
}

// lockRaises reports whether cert (a verified lock certificate) becomes the
// node's lock: it is higher in (view, index) order and the log holds its
// chain. Of the same view, holding the new chain means it extends the old
// one (lemma 1 of docs/protocol.md §7); of a higher view it replaces
// whatever the old chain was: the "unless shown a lock proof from a higher
// view" of rule 2.
func (v voter) lockRaises(log chain, cert *wire.Proof) bool {
	return cert != nil && lockHigher(cert, v.lock) && holds(log, cert.Index, cert.ChainingHash)
}

// mayGiveUpLock reports whether a sync may replace the log's chain of the
// lock with another chain certified by just: only when just is from a
// higher view than the lock (rule 2).
func (v voter) mayGiveUpLock(just *wire.Proof) bool {
	if v.mutation == MutationSyncDropsLock {
		return true
	}
	return v.lock == nil || just.View > v.lock.View
}

// mayFollowLock reports whether a lock certificate a new leader shows
// (NewView) is one the node moves its log to: only one higher than its own
// lock. MutationSyncDropsLock drops the comparison here too, so that a
// lower-view certificate can start the sync whose rule-2 check
// (mayGiveUpLock) it also drops: with only that check gone no honest path
// ever offers a sync a lower-view certificate.
func (v voter) mayFollowLock(cert *wire.Proof) bool {
	if v.mutation == MutationSyncDropsLock && v.lock != nil && cert.View < v.lock.View {
		return true
	}
	return lockHigher(cert, v.lock)
}

// lockHigher orders lock certificates by (view, index); nil is lowest.
func lockHigher(a, b *wire.Proof) bool {
	if a == nil {
		return false
	}
	if b == nil {
		return true
	}
	return a.View > b.View || (a.View == b.View && a.Index > b.Index)
}
