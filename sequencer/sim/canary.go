package sim

import "github.com/seqbook/seqbook/sequencer/core"

// CanaryOptions are the options of one seed of the mutation canary for m
// (seqbook sim --mutation, make canaries): the Byzantine strategies that
// can reach the rule m breaks, with every honest node running m. The
// same options with core.MutationNone are the control run, which must
// stay clean: what a canary catches is then the mutation, not the
// strategy. A mutation without a strategy of its own (one the simulator
// cannot drive, such as a runtime's) gets the random mix of Run.
func CanaryOptions(m core.Mutation, seed uint64) Options {
	o := Options{Seed: seed, Mutation: m}
	switch m {
	case core.MutationForgetLocks, core.MutationRule3:
		// Honest nodes whose locks stay low while a finalize proof
		// exists: a leader that keeps its finalize proofs to itself
		// lets the next leader build over them.
		o.Nodes, o.Byzantine, o.Ticks = 4, []string{ByzWithholdFP}, 600
	case core.MutationQuorumMinusOne, core.MutationSignAnyHash:
		// A leader that shows two sequences, asks one node about both
		// and aggregates whatever it gets (Q-1 signers too).
		o.Nodes, o.Byzantine, o.Ticks = 4, []string{ByzEquivocate}, 600
	case core.MutationRule1:
		o = coalitionOptions(o, ByzRewinder)
	case core.MutationFinalizeOldViewLock:
		o = coalitionOptions(o, ByzReplayer)
	case core.MutationRule2:
		o = coalitionOptions(o, ByzLockIgnorer)
	case core.MutationSyncDropsLock:
		o = coalitionOptions(o, ByzSyncReplayer)
	}
	return o
}

// coalitionOptions runs plan's two nodes in a quiet cluster of seven
// whose honest leaders are crashed in turn until the coalition leads.
func coalitionOptions(o Options, plan string) Options {
	o.Nodes, o.Byzantine, o.Ticks = 7, []string{plan, plan}, 2000
	o.Quiet, o.RotateLeaders, o.OneApp = true, true, true
	return o
}

// CaughtSafety reports whether r found a safety violation (what a canary
// must find; a liveness failure of a broken variant does not count).
func CaughtSafety(r *Result) (string, bool) {
	for _, v := range r.Violations {
		if len(v) >= 6 && v[:6] == "SAFETY" {
			return v, true
		}
	}
	return "", false
}
