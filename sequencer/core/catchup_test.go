package core

import (
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"testing"

	"github.com/seqbook/seqbook/sequencer/wire"
)

// TestCatchUpPlan checks every branch of the catch-up plan on a log of 12
// entries (branch a), with branch b forking from it after index 6.
func TestCatchUpPlan(t *testing.T) {
	a := make(testLog, 0, 12)
	prev := wire.Hash{}
	for i := 0; i < 12; i++ {
		prev = ChainHash(prev, wire.Hash{byte(i), 0xaa})
		a = append(a, prev)
	}
	b := append(testLog{}, a[:6]...)
	prev = a[5]
	for i := 6; i < 14; i++ {
		prev = ChainHash(prev, wire.Hash{byte(i), 0xbb})
		b = append(b, prev)
	}
	on := func(l testLog, kind wire.ProofKind, view uint64, idx int) *wire.Proof {
		return &wire.Proof{Kind: kind, View: view, Index: uint64(idx), ChainingHash: l[idx-1]}
	}
	fin := func(l testLog, view uint64, idx int) *wire.Proof { return on(l, wire.KindFinalize, view, idx) }
	lock := func(l testLog, view uint64, idx int) *wire.Proof { return on(l, wire.KindLock, view, idx) }

	// The node holds branch a up to 12, finalized at 2, locked at (2, 4)
	// unless a case says otherwise; it follows; a round finalizes up to 4.
	ownLock := lock(a, 2, 4)
	type want struct {
		kind        catchUpKind
		proof, lock *wire.Proof
	}
	cases := []struct {
		name string
		edit func(p *catchUpPlan)
		want want
	}{
		{"no target", func(p *catchUpPlan) {}, want{kind: catchUpActivate}},
		{"finalize proof held, within a round", func(p *catchUpPlan) { p.fin = fin(a, 2, 6) },
			want{catchUpFinalize, p0, nil}},
		{"finalize proof held, far behind: the leader's proofs finalize it", func(p *catchUpPlan) { p.fin = fin(a, 2, 7) },
			want{kind: catchUpActivate}},
		{"finalize proof held, far behind, then the lock", func(p *catchUpPlan) { p.fin = fin(a, 2, 7); p.lock = lock(a, 3, 9) },
			want{catchUpRaiseLock, p1, nil}},
		{"finalize proof held, far behind, leader finalizes at once", func(p *catchUpPlan) { p.fin = fin(a, 2, 7); p.leader = true },
			want{catchUpFinalize, p0, nil}},
		{"finalize proof already finalized", func(p *catchUpPlan) { p.fin = fin(a, 1, 2) },
			want{kind: catchUpActivate}},
		{"finalize proof at the finalized index, then the lock", func(p *catchUpPlan) { p.fin = fin(a, 1, 2); p.lock = lock(a, 3, 5) },
			want{catchUpRaiseLock, p1, nil}},
		{"finalize proof not held, no lock", func(p *catchUpPlan) { p.fin = fin(b, 3, 8) },
			want{catchUpFetch, p0, nil}},
		{"finalize proof not held, lock past it and higher: fetch to the lock", func(p *catchUpPlan) { p.fin = fin(b, 3, 8); p.lock = lock(b, 3, 10) },
			want{catchUpFetch, p1, p1}},
		{"finalize proof not held, lock at its index and higher", func(p *catchUpPlan) { p.fin = fin(b, 3, 8); p.lock = lock(b, 4, 8) },
			want{catchUpFetch, p1, p1}},
		{"finalize proof not held, lock past it but not higher: fetch the proof, adopt the lock", func(p *catchUpPlan) {
			p.voter.lock = lock(a, 9, 4)
			p.fin = fin(b, 3, 8)
			p.lock = lock(b, 3, 10)
		}, want{catchUpFetch, p0, p1}},
		{"finalize proof not held, lock below it: fetch the proof only", func(p *catchUpPlan) { p.fin = fin(b, 3, 13); p.lock = lock(b, 3, 10) },
			want{catchUpFetch, p0, nil}},
		{"finalize proof beyond the tip", func(p *catchUpPlan) { p.fin = fin(b, 3, 14) },
			want{catchUpFetch, p0, nil}},
		{"lock held and higher", func(p *catchUpPlan) { p.lock = lock(a, 2, 10) },
			want{catchUpRaiseLock, p1, nil}},
		{"lock held, equal to the node's", func(p *catchUpPlan) { p.lock = lock(a, 2, 4) },
			want{kind: catchUpActivate}},
		{"lock lower than the node's", func(p *catchUpPlan) { p.lock = lock(b, 1, 10) },
			want{kind: catchUpActivate}},
		{"lock of a higher view, lower index, held", func(p *catchUpPlan) { p.lock = lock(a, 3, 3) },
			want{catchUpRaiseLock, p1, nil}},
		{"lock not held past the finalized index", func(p *catchUpPlan) { p.lock = lock(b, 3, 7) },
			want{catchUpFetch, p1, p1}},
		{"lock beyond the tip", func(p *catchUpPlan) { p.lock = lock(b, 3, 13) },
			want{catchUpFetch, p1, p1}},
		{"lock not held, at or below the finalized index", func(p *catchUpPlan) {
			p.voter.lock = lock(a, 2, 8)
			p.finalized = 8
			p.lock = lock(b, 3, 7)
		}, want{kind: catchUpActivate}},
		{"no lock of the node's", func(p *catchUpPlan) { p.voter.lock = nil; p.finalized = 0; p.lock = lock(a, 1, 1) },
			want{catchUpRaiseLock, p1, nil}},
		{"sync-drops-lock canary follows a lower-view lock it lacks", func(p *catchUpPlan) {
			p.voter.mutation = MutationSyncDropsLock
			p.lock = lock(b, 1, 10)
		}, want{catchUpFetch, p1, p1}},
		{"sync-drops-lock canary, lower-view lock held: nothing to raise", func(p *catchUpPlan) {
			p.voter.mutation = MutationSyncDropsLock
			p.lock = lock(a, 1, 10)
		}, want{kind: catchUpActivate}},
		{"sync-drops-lock canary, same-view lower lock: not followed", func(p *catchUpPlan) {
			p.voter.mutation = MutationSyncDropsLock
			p.lock = lock(b, 2, 3)
		}, want{kind: catchUpActivate}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := catchUpPlan{log: a, finalized: 2, voter: voter{view: 5, lock: ownLock}, roundBatchesMax: 4}
			c.edit(&p)
			w := c.want
			// p0 and p1 stand for the target's finalize proof and lock.
			for _, x := range []**wire.Proof{&w.proof, &w.lock} {
				switch *x {
				case p0:
					*x = p.fin
				case p1:
					*x = p.lock
				}
			}
			got := p.next()
			if got.kind != w.kind || got.proof != w.proof || got.lock != w.lock {
				t.Fatalf("got %s %s lock %s, want %s %s lock %s", got.kind, fmtProof(got.proof), fmtProof(got.lock), w.kind, fmtProof(w.proof), fmtProof(w.lock))
			}
		})
	}
}

// p0 and p1 are placeholders in TestCatchUpPlan's table for the case's
// target finalize proof and lock.
var p0, p1 = &wire.Proof{}, &wire.Proof{}

func fmtProof(p *wire.Proof) string {
	if p == nil {
		return "none"
	}
	return fmt.Sprintf("%s(%d,%d)", p.Kind, p.View, p.Index)
}

// nopCrypto signs nothing and accepts everything: catchUp checks no
// signature (its callers verified the target's proofs).
type nopCrypto struct{}

func (nopCrypto) Sign([32]byte) wire.Signature                               { return wire.Signature{} }
func (nopCrypto) Verify(int, [32]byte, wire.Signature) bool                  { return true }
func (nopCrypto) Aggregate([]wire.Signature) (wire.Signature, error)         { return wire.Signature{}, nil }
func (nopCrypto) VerifyAggregate(wire.Bitmap, [32]byte, wire.Signature) bool { return true }
func (nopCrypto) VerifyAggregates([]AggregateCheck) bool                     { return true }

// TestCatchUpEnds runs the executor on random situations (a log on one of
// a few forked branches, finalized and locked somewhere on it, a target
// anywhere, leading or following, with and without the canaries that move
// the lock) and requires it to end where the plan says it must: a fetch
// under way for the plan's target, or active with nothing left to do. A
// step that made no progress would hit the executor's own panics.
func TestCatchUpEnds(t *testing.T) {
	rng := rand.New(rand.NewPCG(10, 5))
	const length = 12
	// Branches of entries: branch 0, and forks of it.
	var branches [][]Entry
	for br := 0; br < 4; br++ {
		fork := 0
		if br > 0 {
			fork = rng.IntN(length)
		}
		var es []Entry
		prev := wire.Hash{}
		for i := 1; i <= length; i++ {
			if i <= fork {
				es = append(es, branches[0][i-1])
				prev = es[i-1].ChainingHash
				continue
			}
			e := makeEntry(wire.Batch{Index: uint64(i), Origin: 3, Seq: uint64(i), Timestamp: uint64(i), Body: []byte{byte(br), byte(i)}}, prev)
			es = append(es, e)
			prev = e.ChainingHash
		}
		branches = append(branches, es)
	}
	proofOn := func(kind wire.ProofKind, view uint64, br, idx int) *wire.Proof {
		return &wire.Proof{Kind: kind, View: view, Index: uint64(idx), ChainingHash: branches[br][idx-1].ChainingHash}
	}
	counts := map[catchUpKind]int{}
	for trial := 0; trial < 3000; trial++ {
		self := rng.IntN(2) // node 0 leads view 0
		cfg := TestConfig(1, 4, self)
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
		cfg.RoundBatchesMax = 1 + rng.IntN(6)
		cfg.Mutation = []Mutation{MutationNone, MutationNone, MutationSyncDropsLock, MutationForgetLocks}[rng.IntN(4)]
		n, err := NewNode(cfg, nopCrypto{}, NewMemoryStore())
		if err != nil {
			t.Fatal(err)
		}
		a := n.newAppHere("app")
		br := rng.IntN(len(branches))
		tip := rng.IntN(length + 1)
		for _, e := range branches[br][:tip] {
			n.appendEntry(a, e)
		}
		if tip > 0 {
			f := rng.IntN(tip + 1)
			if f > 0 {
				a.hard.Finalized = proofOn(wire.KindFinalize, uint64(rng.IntN(3)), br, f)
				a.hard.Lock = a.hard.Finalized
			}
			if l := f + rng.IntN(tip-f+1); l > f {
				a.hard.Lock = proofOn(wire.KindLock, uint64(rng.IntN(4)), br, l)
				if a.hard.Finalized != nil && a.hard.Lock.View < a.hard.Finalized.View {
					a.hard.Lock.View = a.hard.Finalized.View
				}
			}
		}
		a.phase = phaseSync
		if rng.IntN(4) > 0 {
			a.target.fin = proofOn(wire.KindFinalize, uint64(rng.IntN(5)), rng.IntN(len(branches)), 1+rng.IntN(length))
		}
		if rng.IntN(4) > 0 {
			a.target.lock = proofOn(wire.KindLock, uint64(rng.IntN(5)), rng.IntN(len(branches)), 1+rng.IntN(length))
		}
		first := n.catchUpPlanOf(a).next()
		counts[first.kind]++
		n.catchUp(a, nil)

		situation := fmt.Sprintf("trial %d: self %d, mutation %s, target fin %s lock %s", trial, self, cfg.Mutation, fmtProof(a.target.fin), fmtProof(a.target.lock))
		after := n.catchUpPlanOf(a).next()
		switch {
		case a.sync != nil:
			if a.phase != phaseSync {
				t.Fatalf("%s: fetching while active", situation)
			}
			if after.kind != catchUpFetch || a.sync.target.Index != after.proof.Index || a.sync.target.ChainingHash != after.proof.ChainingHash {
				t.Fatalf("%s: fetching %s, but the plan now says %s %s", situation, fmtProof(a.sync.target), after.kind, fmtProof(after.proof))
			}
		case a.phase == phaseActive:
			if after.kind != catchUpActivate {
				t.Fatalf("%s: active, but the plan still says %s %s", situation, after.kind, fmtProof(after.proof))
			}
		default:
			t.Fatalf("%s: catchUp returned neither active nor fetching", situation)
		}
		if l := a.hard.Lock; l != nil && !holds(appLog{n, a}, l.Index, l.ChainingHash) {
			t.Fatalf("%s: the log does not hold the lock's chain", situation)
		}
	}
	for _, k := range []catchUpKind{catchUpActivate, catchUpFinalize, catchUpRaiseLock, catchUpFetch} {
		if counts[k] < 50 {
			t.Errorf("only %d trials started with %s: the random situations miss a branch", counts[k], k)
		}
	}
}
