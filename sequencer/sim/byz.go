package sim

import (
	"github.com/seqbook/seqbook/client/eip712"
	"github.com/seqbook/seqbook/sequencer/core"
	"github.com/seqbook/seqbook/sequencer/wire"
)

// byzantine wraps an honest core and overrides one behaviour: it may
// rewrite, drop or add to what the core sends, and may react to what the
// node receives before the core sees it. It signs only with its own key.
type byzantine interface {
	name() string
	outgoing(env core.Envelope) []core.Envelope
	incoming(from int, m wire.Message) []core.Envelope
}

func newByzantine(name string, self int, w *world) byzantine {
	base := byzBase{self: self, w: w, crypto: w.nodes[self].crypto, domain: eip712.NewDomain(chainID)}
	switch name {
	case ByzEquivocate:
		return &equivocator{byzBase: base, forks: map[string]*fork{}, votes: map[[32]byte]map[int]wire.Signature{}}
	case ByzWithholdFP:
		return &withholder{byzBase: base, finalize: true}
	case ByzWithholdLP:
		return &withholder{byzBase: base}
	case ByzWrongHash:
		return &wrongHash{byzBase: base}
	case ByzDoubleSign:
		return &doubleSigner{byzBase: base}
	case ByzBadVotes:
		return &badVoter{byzBase: base}
	}
	panic("sim: unknown Byzantine behaviour " + name)
}

type byzBase struct {
	self   int
	w      *world
	crypto core.Crypto
	domain eip712.Domain
}

func (b *byzBase) incoming(int, wire.Message) []core.Envelope { return nil }

// doubleSigner signs every Lock and Finalize anyone asks for, whatever its
// log and its earlier signatures say (breaks rules 1–3 for itself).
type doubleSigner struct{ byzBase }

func (d *doubleSigner) name() string { return ByzDoubleSign }

func (d *doubleSigner) outgoing(env core.Envelope) []core.Envelope { return []core.Envelope{env} }

func (d *doubleSigner) incoming(from int, m wire.Message) []core.Envelope {
	r, ok := m.(*wire.Round)
	if !ok {
		return nil
	}
	v := &wire.Vote{App: r.App, View: r.View}
	if r.Lock != nil {
		sig := d.crypto.Sign(core.LockDigest(d.domain, r.App, r.View, r.Lock.Index, r.Lock.ChainingHash))
		v.Lock = &wire.SignedTarget{Index: r.Lock.Index, ChainingHash: r.Lock.ChainingHash, Signature: sig}
	}
	if p := r.Finalize; p != nil {
		sig := d.crypto.Sign(core.FinalizeDigest(d.domain, r.App, r.View, p.Index, p.ChainingHash))
		v.Finalize = &wire.SignedTarget{Index: p.Index, ChainingHash: p.ChainingHash, Signature: sig}
	}
	if v.Lock == nil && v.Finalize == nil {
		return nil
	}
	return []core.Envelope{{To: from, Msg: v}}
}

// withholder, as leader, keeps proofs to itself: finalize proofs never
// leave it (and it hides its state from the next leaders), or it never
// asks for finalize signatures at all.
type withholder struct {
	byzBase
	finalize bool // withhold finalize proofs; otherwise lock proofs
}

func (h *withholder) name() string {
	if h.finalize {
		return ByzWithholdFP
	}
	return ByzWithholdLP
}

func (h *withholder) outgoing(env core.Envelope) []core.Envelope {
	switch m := env.Msg.(type) {
	case *wire.Round:
		r := *m
		if h.finalize {
			r.Finalized = nil
		} else {
			r.Finalize = nil
		}
		// Shared lock votes would give the nodes the lock proofs (and
		// with them the locks) it keeps from them: it never asks for them.
		r.ShareLock = false
		if r.Lock == nil && r.Finalize == nil && r.Finalized == nil {
			return nil
		}
		env.Msg = &r
	case *wire.PostReply:
		if h.finalize {
			r := *m
			r.Proofs = nil
			env.Msg = &r
		}
	case *wire.SyncReply:
		if h.finalize {
			r := *m
			r.Proofs = nil
			env.Msg = &r
		}
	case *wire.NewView:
		if h.finalize {
			r := *m
			r.Finalized = nil
			if r.Lock != nil && r.Lock.Kind == wire.KindFinalize {
				r.Lock = nil
			}
			env.Msg = &r
		}
	case *wire.ViewState:
		if h.finalize {
			return nil // hide what it holds from the next leader
		}
	}
	return []core.Envelope{env}
}

// wrongHash, as leader, asks to lock chaining hashes nobody holds.
type wrongHash struct{ byzBase }

func (h *wrongHash) name() string { return ByzWrongHash }

func (h *wrongHash) outgoing(env core.Envelope) []core.Envelope {
	if r, ok := env.Msg.(*wire.Round); ok && r.Lock != nil {
		c := *r
		t := *r.Lock
		t.ChainingHash[0] ^= 0xff
		c.Lock = &t
		env.Msg = &c
	}
	return []core.Envelope{env}
}

// equivocator, as leader, shows half of the nodes (set B) a different
// sequence: every batch after the fork point gets its timestamp moved by
// one millisecond, so its hash and every chaining hash after it differ.
// It translates B's tips back so its honest core keeps serving them, asks
// B to lock B's chain, and aggregates any quorum of signatures it sees on
// one digest into a proof that it then pushes to everyone: if honest nodes
// ever signed two conflicting chains, a conflicting finalize proof would
// come out of it.
type equivocator struct {
	byzBase
	forks map[string]*fork
	// votes[digest][node] collects every signature it receives.
	votes map[[32]byte]map[int]wire.Signature
	// made[digest] is the signer count of the last proof it built there.
	made map[[32]byte]int
}

type fork struct {
	view uint64
	// inB is the half shown the other sequence, drawn at random from the
	// seed for every fork (never the equivocator itself).
	inB   map[int]bool
	at    uint64               // batches after this index are altered for B
	hashA map[uint64]wire.Hash // chaining hashes of the true chain
	hashB map[uint64]wire.Hash // and of B's chain
	tips  map[int]wire.Tip     // last tip each node posted
}

func (e *equivocator) name() string { return ByzEquivocate }

// inB reports whether node is shown B's sequence in app's current fork.
func (e *equivocator) inB(app string, view uint64, node int) bool {
	return e.forkFor(app, view).inB[node]
}

func (e *equivocator) forkFor(app string, view uint64) *fork {
	f := e.forks[app]
	if f == nil || f.view != view {
		f = &fork{view: view, inB: map[int]bool{}, hashA: map[uint64]wire.Hash{}, hashB: map[uint64]wire.Hash{}, tips: map[int]wire.Tip{}}
		// A random half of the others (at least one, never all), so
		// every honest node sits on either side across seeds and views.
		others := make([]int, 0, e.w.n-1)
		for i := 0; i < e.w.n; i++ {
			if i != e.self {
				others = append(others, i)
			}
		}
		e.w.rng.Shuffle(len(others), func(i, j int) { others[i], others[j] = others[j], others[i] })
		for _, i := range others[:1+e.w.rng.IntN(len(others)-1)] {
			f.inB[i] = true
		}
		e.forks[app] = f
	}
	return f
}

func (e *equivocator) incoming(from int, m wire.Message) []core.Envelope {
	switch m := m.(type) {
	case *wire.Post:
		f := e.forkFor(m.App, m.View)
		f.tips[from] = m.Tip
		// Translate a B tip on B's chain back to the true chain.
		if f.inB[from] && f.at > 0 && m.Tip.Index > f.at {
			if hb, ok := f.hashB[m.Tip.Index]; ok && hb == m.Tip.ChainingHash {
				if ha, ok := f.hashA[m.Tip.Index]; ok {
					m.Tip.ChainingHash = ha
				}
			}
		}
	case *wire.Vote:
		return e.collect(from, m)
	}
	return nil
}

func (e *equivocator) outgoing(env core.Envelope) []core.Envelope {
	switch m := env.Msg.(type) {
	case *wire.PostReply:
		f := e.forkFor(m.App, m.View)
		tip, ok := f.tips[env.To]
		// The fork point is set at a reply that starts at the receiver's
		// tip (whose hash we know); after it, every reply and push is
		// forked for B.
		if !ok || m.Mismatch || (f.at == 0 && tip.Index != m.After) {
			return []core.Envelope{env}
		}
		if f.at == 0 && len(m.Batches) > 0 {
			f.at = m.After
			f.hashA[f.at], f.hashB[f.at] = tip.ChainingHash, tip.ChainingHash
		}
		r := *m
		r.Batches = nil
		for _, b := range m.Batches {
			ha, okA := f.hashA[b.Index-1]
			hb, okB := f.hashB[b.Index-1]
			if okA && okB {
				f.hashA[b.Index] = core.ChainHash(ha, core.BatchHash(b.Timestamp, b.Body))
				alt := b
				if b.Index > f.at {
					alt.Timestamp++
				}
				f.hashB[b.Index] = core.ChainHash(hb, core.BatchHash(alt.Timestamp, alt.Body))
			}
			if f.inB[env.To] && b.Index > f.at && f.at > 0 {
				b.Timestamp++
			}
			r.Batches = append(r.Batches, b)
		}
		env.Msg = &r
	case *wire.Round:
		if m.Lock == nil {
			return []core.Envelope{env}
		}
		f := e.forkFor(m.App, m.View)
		idx, ha := m.Lock.Index, m.Lock.ChainingHash
		hb, forked := f.hashB[idx]
		forked = forked && idx > f.at && f.at > 0
		if !forked {
			hb = ha
			hb[0] ^= 0xff // no B chain there yet: a hash nobody holds
		}
		other := hb
		if f.inB[env.To] && forked {
			other = ha
			r := *m
			r.Lock = &wire.LockTarget{Index: idx, ChainingHash: hb}
			r.Finalize = nil // the true chain's lock proof would show B the fork
			env.Msg = &r
		}
		// Sign B's version too, as a colluding leader would, and ask the
		// same node about the other chain at the same index: an honest
		// node refuses (rule 1, and it does not hold it), so no second
		// lock proof of the view can form unless a rule is broken.
		d := core.LockDigest(e.domain, m.App, m.View, idx, hb)
		e.record(e.self, d, e.crypto.Sign(d))
		second := &wire.Round{App: m.App, View: m.View, Lock: &wire.LockTarget{Index: idx, ChainingHash: other}}
		return []core.Envelope{env, {To: env.To, Msg: second}}
	}
	return []core.Envelope{env}
}

func (e *equivocator) record(node int, digest [32]byte, sig wire.Signature) {
	if e.votes[digest] == nil {
		e.votes[digest] = map[int]wire.Signature{}
	}
	e.votes[digest][node] = sig
}

// collect keeps every valid signature and builds a proof when a quorum
// signed one digest: a lock proof goes to B with a finalize request, a
// finalize proof goes to everyone.
func (e *equivocator) collect(from int, v *wire.Vote) []core.Envelope {
	var out []core.Envelope
	try := func(kind wire.ProofKind, s *wire.SignedTarget) {
		if s == nil {
			return
		}
		var d [32]byte
		if kind == wire.KindLock {
			d = core.LockDigest(e.domain, v.App, v.View, s.Index, s.ChainingHash)
		} else {
			d = core.FinalizeDigest(e.domain, v.App, v.View, s.Index, s.ChainingHash)
		}
		if !e.crypto.Verify(from, d, s.Signature) {
			return
		}
		e.record(from, d, s.Signature)
		if kind == wire.KindFinalize {
			e.record(e.self, d, e.crypto.Sign(d))
		}
		if e.made == nil {
			e.made = map[[32]byte]int{}
		}
		// It builds a proof of Q-1 signers first, then one of Q: an
		// honest node refuses the first (quorumSigners), so only a node
		// that counts wrong accepts it.
		cnt := len(e.votes[d])
		if cnt < e.w.quorum()-1 || e.made[d] >= min(cnt, e.w.quorum()) {
			return
		}
		e.made[d] = cnt
		var signers wire.Bitmap
		var sigs []wire.Signature
		for _, n := range sortedKeys(e.votes[d]) {
			signers = signers.With(n)
			sigs = append(sigs, e.votes[d][n])
		}
		agg, err := e.crypto.Aggregate(sigs)
		if err != nil {
			return
		}
		p := &wire.Proof{Kind: kind, View: v.View, Index: s.Index, ChainingHash: s.ChainingHash, Signers: signers, Signature: agg}
		for i := 0; i < e.w.n; i++ {
			if i == e.self {
				continue
			}
			r := &wire.Round{App: v.App, View: v.View}
			if kind == wire.KindLock {
				if !e.inB(v.App, v.View, i) {
					continue
				}
				r.Finalize = p
			} else {
				r.Finalized = p
			}
			out = append(out, core.Envelope{To: i, Msg: r})
		}
	}
	try(wire.KindLock, v.Lock)
	try(wire.KindFinalize, v.Finalize)
	return out
}

// badVoter answers rounds like an honest node but flips a bit of every
// signature in its votes: the leader must find the bad votes among good
// ones (it checks votes together, then alone when the aggregate fails)
// and form its proofs without them. Every other vote's flipped bit breaks
// the signature's encoding instead (bytes that are no point at all), so
// that aggregating it fails before any check.
type badVoter struct {
	byzBase
	votes int
}

func (b *badVoter) name() string { return ByzBadVotes }

func (b *badVoter) outgoing(env core.Envelope) []core.Envelope {
	if v, ok := env.Msg.(*wire.Vote); ok {
		c := *v
		for _, s := range []**wire.SignedTarget{&c.Lock, &c.Finalize} {
			if *s != nil {
				t := **s
				if b.votes++; b.votes%2 == 0 {
					t.Signature[0] ^= 0x80
				} else {
					t.Signature[0] ^= 1
				}
				*s = &t
			}
		}
		env.Msg = &c
	}
	return []core.Envelope{env}
}
