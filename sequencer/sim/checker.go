package sim

import (
	"fmt"

	"github.com/seqbook/seqbook/client/cluster"
	"github.com/seqbook/seqbook/client/eip712"
	"github.com/seqbook/seqbook/sequencer/core"
	"github.com/seqbook/seqbook/sequencer/wire"
)

// violationsMax stops collecting after this many: the first explains the
// failure, the rest are noise.
const violationsMax = 20

type appIndex struct {
	app   string
	index uint64
}

type canonEntry struct {
	hash, chaining wire.Hash
	body           string
}

// checker holds the one canonical finalized sequence per app that every
// honest node must match, and every valid finalize proof seen anywhere.
type checker struct {
	n, q      int
	domain    eip712.Domain
	verifier  core.Crypto
	byzantine map[int]bool

	// final[(app, index)] is the chaining hash every valid finalize proof
	// at that point must carry.
	final map[appIndex]wire.Hash
	// locks[(app, index, view)] is the chaining hash of lock proofs: two
	// lock proofs of one view and index must agree too.
	locks   map[lockKey]wire.Hash
	checked map[checkKey]bool
	// canon[app][i] is finalized entry i+1 as the first honest node that
	// finalized it reported it.
	canon      map[string][]canonEntry
	finalBody  map[string]map[string]bool
	nodeFinals []map[string]uint64

	proofsChecked int
	violations    []string
}

type checkKey struct {
	app          string
	kind         wire.ProofKind
	view, index  uint64
	chainingHash wire.Hash
	signers      string
	signature    wire.Signature
}

type lockKey struct {
	app         string
	index, view uint64
}

func newChecker(n int, verifier core.Crypto) *checker {
	c := &checker{
		n: n, q: cluster.Quorum(n), domain: eip712.NewDomain(chainID), verifier: verifier,
		byzantine: map[int]bool{},
		final:     map[appIndex]wire.Hash{}, locks: map[lockKey]wire.Hash{}, checked: map[checkKey]bool{},
		canon: map[string][]canonEntry{}, finalBody: map[string]map[string]bool{},
	}
	for i := 0; i < n; i++ {
		c.nodeFinals = append(c.nodeFinals, map[string]uint64{})
	}
	return c
}

func (c *checker) failed() bool { return len(c.violations) > 0 }

func (c *checker) violate(format string, args ...any) {
	if len(c.violations) < violationsMax {
		c.violations = append(c.violations, fmt.Sprintf(format, args...))
	}
}

// observeProof records a proof if it is valid (a quorum of cluster nodes
// and an aggregate signature that verifies) and checks it against every
// other valid proof for the same place.
func (c *checker) observeProof(app string, p *wire.Proof) {
	if p == nil {
		return
	}
	key := checkKey{app, p.Kind, p.View, p.Index, p.ChainingHash, string(p.Signers), p.Signature}
	if c.checked[key] {
		return
	}
	c.checked[key] = true
	if p.Signers.Max() >= c.n || p.Signers.Count() < c.q {
		return
	}
	c.proofsChecked++
	if !c.verifier.VerifyAggregate(p.Signers, core.ProofDigest(c.domain, app, p), p.Signature) {
		return // a forgery: proves nothing, harms nothing
	}
	switch p.Kind {
	case wire.KindFinalize:
		k := appIndex{app, p.Index}
		if h, ok := c.final[k]; ok && h != p.ChainingHash {
			c.violate("SAFETY: two finalize proofs for %s at index %d: %x and %x (view %d)", app, p.Index, h[:6], p.ChainingHash[:6], p.View)
			return
		}
		c.final[k] = p.ChainingHash
		if e := c.canonAt(app, p.Index); e != nil && e.chaining != p.ChainingHash {
			c.violate("SAFETY: finalize proof for %s at %d (view %d) disagrees with the finalized sequence", app, p.Index, p.View)
		}
	case wire.KindLock:
		k := lockKey{app, p.Index, p.View}
		if h, ok := c.locks[k]; ok && h != p.ChainingHash {
			c.violate("SAFETY: two lock proofs for %s at index %d in view %d", app, p.Index, p.View)
		}
		c.locks[k] = p.ChainingHash
	}
}

// valid checks a finalize proof's quorum and signature.
func (c *checker) valid(app string, p *wire.Proof) bool {
	return p.Kind == wire.KindFinalize && p.Signers.Max() < c.n && p.Signers.Count() >= c.q &&
		c.verifier.VerifyAggregate(p.Signers, core.ProofDigest(c.domain, app, p), p.Signature)
}

func (c *checker) canonAt(app string, idx uint64) *canonEntry {
	cs := c.canon[app]
	if idx == 0 || idx > uint64(len(cs)) {
		return nil
	}
	return &cs[idx-1]
}

// observeMessage checks every proof a message carries.
func (c *checker) observeMessage(m wire.Message) {
	switch m := m.(type) {
	case *wire.Round:
		c.observeProof(m.App, m.Finalize)
		c.observeProof(m.App, m.Finalized)
	case *wire.PostReply:
		for i := range m.Proofs {
			c.observeProof(m.App, &m.Proofs[i])
		}
	case *wire.SyncReply:
		for i := range m.Proofs {
			c.observeProof(m.App, &m.Proofs[i])
		}
	case *wire.NewView:
		c.observeProof(m.App, m.Lock)
		c.observeProof(m.App, m.Finalized)
	case *wire.ViewState:
		for i := range m.Apps {
			c.observeProof(m.Apps[i].App, m.Apps[i].Lock)
			c.observeProof(m.Apps[i].App, m.Apps[i].Finalized)
		}
	}
}

// observeReady checks what a node reports final and persists.
func (c *checker) observeReady(node int, rd *core.Ready) {
	for i := range rd.Persist.Apps {
		ap := &rd.Persist.Apps[i]
		for j := range ap.Proofs {
			c.observeProof(ap.App, &ap.Proofs[j])
		}
		if ap.Hard != nil {
			c.observeProof(ap.App, ap.Hard.Lock)
			c.observeProof(ap.App, ap.Hard.Finalized)
		}
	}
	for _, f := range rd.Finalized {
		c.observeProof(f.App, &f.Proof)
		if len(f.Entries) == 0 {
			continue
		}
		last := f.Entries[len(f.Entries)-1]
		if last.Index != f.Proof.Index || last.ChainingHash != f.Proof.ChainingHash {
			c.violate("node %d reported %s final to %d with a proof for %d", node, f.App, last.Index, f.Proof.Index)
		}
		if c.byzantine[node] {
			continue
		}
		if !c.valid(f.App, &f.Proof) {
			// Finality without a quorum proof: quorum intersection, which
			// every safety lemma rests on, does not hold for it.
			c.violate("SAFETY: node %d finalized %s to %d on a proof that is not a quorum proof (%d signers, Q=%d)",
				node, f.App, f.Proof.Index, f.Proof.Signers.Count(), c.q)
		}
		prev := c.nodeFinals[node][f.App]
		if f.Entries[0].Index != prev+1 {
			c.violate("node %d finalized %s from %d after %d: not contiguous", node, f.App, f.Entries[0].Index, prev)
		}
		for _, e := range f.Entries {
			c.canonical(node, f.App, e)
		}
		c.nodeFinals[node][f.App] = last.Index
	}
}

// canonical checks one finalized entry against the canonical sequence, or
// extends it.
func (c *checker) canonical(node int, app string, e core.Entry) {
	if e.Hash != core.BatchHash(e.Timestamp, e.Body) {
		c.violate("node %d finalized %s entry %d whose hash does not match its bytes", node, app, e.Index)
	}
	cs := c.canon[app]
	switch {
	case e.Index <= uint64(len(cs)):
		if ce := cs[e.Index-1]; ce.chaining != e.ChainingHash || ce.hash != e.Hash {
			c.violate("SAFETY: node %d finalized a different %s batch at %d", node, app, e.Index)
		}
	case e.Index == uint64(len(cs))+1:
		prev := wire.Hash{}
		if len(cs) > 0 {
			prev = cs[len(cs)-1].chaining
		}
		if core.ChainHash(prev, e.Hash) != e.ChainingHash {
			c.violate("node %d finalized %s entry %d with a broken chaining hash", node, app, e.Index)
		}
		if h, ok := c.final[appIndex{app, e.Index}]; ok && h != e.ChainingHash {
			c.violate("SAFETY: node %d finalized %s at %d against a finalize proof", node, app, e.Index)
		}
		c.canon[app] = append(cs, canonEntry{hash: e.Hash, chaining: e.ChainingHash, body: string(e.Body)})
		if c.finalBody[app] == nil {
			c.finalBody[app] = map[string]bool{}
		}
		c.finalBody[app][string(e.Body)] = true
	default:
		c.violate("node %d finalized %s entry %d beyond the canonical %d", node, app, e.Index, len(cs))
	}
}

// observeStatus checks that a node's finalized index never goes back (a
// restarted node reports what its store held).
func (c *checker) observeStatus(node int, st core.Status) {
	for _, as := range st.Apps {
		if as.Finalized < c.nodeFinals[node][as.App] {
			c.violate("node %d: %s finalized index went back from %d to %d", node, as.App, c.nodeFinals[node][as.App], as.Finalized)
		}
		if !(as.Finalized <= as.Locked && as.Locked <= as.Sequenced) {
			c.violate("node %d: %s indexes out of order: finalized %d locked %d sequenced %d", node, as.App, as.Finalized, as.Locked, as.Sequenced)
		}
	}
}

func (c *checker) isFinal(app, body string) bool { return c.finalBody[app][body] }

func (c *checker) nodeFinal(node int, app string) uint64 { return c.nodeFinals[node][app] }

func (c *checker) canonFinal() map[string]uint64 {
	out := map[string]uint64{}
	for app, cs := range c.canon {
		out[app] = uint64(len(cs))
	}
	return out
}
