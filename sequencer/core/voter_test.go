package core

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/seqbook/seqbook/sequencer/wire"
)

// testLog is a log: hashes[i] is the chaining hash at index i+1.
type testLog []wire.Hash

func (l testLog) hashAt(idx uint64) (wire.Hash, bool) {
	switch {
	case idx == 0:
		return wire.Hash{}, true
	case idx > uint64(len(l)):
		return wire.Hash{}, false
	}
	return l[idx-1], true
}

// forest is a few chains that share prefixes and fork at random points,
// as logs of different leaders' sequences would.
func forest(rng *rand.Rand) []testLog {
	const length = 12
	var out []testLog
	base := make(testLog, 0, length)
	prev := wire.Hash{}
	for i := 0; i < length; i++ {
		prev = ChainHash(prev, wire.Hash{byte(i), 0xaa})
		base = append(base, prev)
	}
	out = append(out, base)
	for b := 1; b < 4; b++ {
		fork := rng.IntN(length)
		l := append(testLog{}, base[:fork]...)
		prev := wire.Hash{}
		if fork > 0 {
			prev = base[fork-1]
		}
		for i := fork; i < length; i++ {
			prev = ChainHash(prev, wire.Hash{byte(i), byte(b), 0xbb})
			l = append(l, prev)
		}
		out = append(out, l)
	}
	return out
}

type signedAt struct {
	view, index uint64
	hash        wire.Hash
	log         testLog // the log when it was signed
	lock        *wire.Proof
}

// exerciseVoter drives a voter with random requests while its log moves
// between the branches of a forest (as syncs and view changes move it),
// records what it signs exactly as castLock/castFinalize do, raises its
// lock as raiseLock does, and returns the first broken property.
func exerciseVoter(seed uint64, mutation Mutation) error {
	rng := rand.New(rand.NewPCG(seed, 7))
	branches := forest(rng)
	v := voter{mutation: mutation}
	log := branches[0][:rng.IntN(len(branches[0])+1)]
	var locks, finals []signedAt
	proofOn := func(kind wire.ProofKind, view uint64, l testLog) *wire.Proof {
		if len(l) == 0 {
			return nil
		}
		idx := 1 + rng.IntN(len(l))
		return &wire.Proof{Kind: kind, View: view, Index: uint64(idx), ChainingHash: l[idx-1]}
	}
	for step := 0; step < 200; step++ {
		switch op := rng.IntN(10); {
		case op == 0: // a view change
			v.view++
		case op == 1: // the log moves to (a prefix of) another branch,
			// keeping the lock's chain as the node does unless the sync
			// is certified from a higher view (rule 2, mayGiveUpLock)
			b := branches[rng.IntN(len(branches))]
			next := b[:rng.IntN(len(b)+1)]
			if l := v.lock; l != nil && !holds(next, l.Index, l.ChainingHash) {
				just := proofOn(wire.KindLock, uint64(rng.IntN(int(v.view)+1)), next)
				if just == nil || !v.mayGiveUpLock(just) {
					continue
				}
				log = next
				v.lock = just // the higher-view certificate it synced to
				continue
			}
			log = next
		case op <= 3: // a lock certificate shown (NewView, Round, sync)
			b := branches[rng.IntN(len(branches))]
			cert := proofOn(wire.KindLock, uint64(rng.IntN(int(v.view)+1)), b)
			if cert != nil && v.lockRaises(log, cert) {
				v.lock = cert
			}
		case op <= 6: // asked to sign a Lock on some branch
			b := branches[rng.IntN(len(branches))]
			req := proofOn(wire.KindLock, v.view, b)
			if req == nil || !v.mayLock(log, req.Index, req.ChainingHash) {
				continue
			}
			v.signedLock = Signed{View: v.view, Index: req.Index, ChainingHash: req.ChainingHash}
			locks = append(locks, signedAt{v.view, req.Index, req.ChainingHash, log, v.lock})
		default: // asked to sign Finalize for a lock proof
			b := branches[rng.IntN(len(branches))]
			lp := proofOn(wire.KindLock, uint64(rng.IntN(int(v.view)+1)), b)
			if lp == nil || !v.mayFinalize(log, lp) {
				continue
			}
			if lp.View != v.view {
				return fmt.Errorf("rule 3: signed Finalize for a lock proof of view %d in view %d", lp.View, v.view)
			}
			v.signedFinalize = Signed{View: v.view, Index: lp.Index, ChainingHash: lp.ChainingHash}
			finals = append(finals, signedAt{v.view, lp.Index, lp.ChainingHash, log, v.lock})
		}
	}
	for k, s := range locks {
		if !holds(s.log, s.index, s.hash) {
			return fmt.Errorf("signed Lock(%d, %d) for a chain its log did not hold", s.view, s.index)
		}
		if l := s.lock; l != nil && (s.index < l.Index || !holds(s.log, l.Index, l.ChainingHash)) {
			return fmt.Errorf("rule 2: signed Lock(%d, %d) off the chain of its lock (%d, %d)", s.view, s.index, l.View, l.Index)
		}
		for _, t := range locks[:k] {
			if t.view != s.view {
				continue
			}
			// Rule 1 as implemented: one view's locks lie on one chain.
			if t.index <= s.index && !holds(s.log, t.index, t.hash) {
				return fmt.Errorf("rule 1: Locks of view %d at %d and %d are on different chains", s.view, t.index, s.index)
			}
			if t.index > s.index {
				return fmt.Errorf("rule 1: Lock of view %d at %d signed after one at %d", s.view, s.index, t.index)
			}
		}
	}
	for k, s := range finals {
		for _, t := range finals[:k] {
			if t.view == s.view && t.index == s.index && t.hash != s.hash {
				return fmt.Errorf("rule 1: two Finalizes of view %d at %d", s.view, s.index)
			}
		}
	}
	return nil
}

// TestVoterProperties: over many random histories the voter never breaks
// rules 1–3.
func TestVoterProperties(t *testing.T) {
	for seed := uint64(1); seed <= 3000; seed++ {
		if err := exerciseVoter(seed, MutationNone); err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
	}
}

// TestVoterPropertiesCatchMutations: each broken voter rule is caught by
// the properties above (so the properties can fail).
func TestVoterPropertiesCatchMutations(t *testing.T) {
	for _, m := range []Mutation{MutationRule1, MutationRule2, MutationFinalizeOldViewLock, MutationSignAnyHash} {
		caught := false
		for seed := uint64(1); seed <= 3000 && !caught; seed++ {
			caught = exerciseVoter(seed, m) != nil
		}
		if !caught {
			t.Errorf("mutation %d not caught by the voter properties", m)
		}
	}
}

// TestVoterRules pins single decisions.
func TestVoterRules(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	bs := forest(rng)
	a := bs[0]
	var b testLog
	for _, l := range bs[1:] {
		if l[len(l)-1] != a[len(a)-1] && l[0] == a[0] {
			b = l
			break
		}
	}
	if b == nil {
		t.Skip("forest without a late fork")
	}
	fork := 0
	for fork < len(a) && a[fork] == b[fork] {
		fork++
	}
	v := voter{view: 3}
	if !v.mayLock(a, uint64(len(a)), a[len(a)-1]) {
		t.Fatal("a fresh voter refused a Lock on its own log")
	}
	if v.mayLock(a, uint64(len(a)), b[len(b)-1]) {
		t.Fatal("signed a Lock for a hash its log does not hold")
	}
	v.signedLock = Signed{View: 3, Index: uint64(len(a)), ChainingHash: a[len(a)-1]}
	if v.mayLock(b, uint64(len(b)), b[len(b)-1]) {
		t.Fatal("rule 1: signed a second Lock of view 3 at one index on another chain")
	}
	if v.mayLock(a, uint64(len(a)-1), a[len(a)-2]) {
		t.Fatal("rule 1: signed a Lock below its last one in the same view")
	}
	v.view = 4
	v.lock = &wire.Proof{Kind: wire.KindLock, View: 3, Index: uint64(len(a)), ChainingHash: a[len(a)-1]}
	if v.mayLock(b, uint64(len(b)), b[len(b)-1]) {
		t.Fatal("rule 2: signed a Lock off the chain of its lock")
	}
	lp := &wire.Proof{Kind: wire.KindLock, View: 3, Index: uint64(len(a)), ChainingHash: a[len(a)-1]}
	if v.mayFinalize(a, lp) {
		t.Fatal("rule 3: signed Finalize for a lock proof of an older view")
	}
	lp.View = 4
	if !v.mayFinalize(a, lp) {
		t.Fatal("refused Finalize for a lock proof of the view on its log")
	}
	if !v.mayGiveUpLock(&wire.Proof{View: 4}) || v.mayGiveUpLock(&wire.Proof{View: 3}) {
		t.Fatal("rule 2: a lock may be given up only for a higher-view certificate")
	}
	if v.lockRaises(b, &wire.Proof{Kind: wire.KindLock, View: 4, Index: uint64(len(b)), ChainingHash: a[len(a)-1]}) {
		t.Fatal("raised the lock to a certificate whose chain the log does not hold")
	}
}
