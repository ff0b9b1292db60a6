package aggregator

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"

	blst "github.com/supranational/blst/bindings/go"

	"github.com/seqbook/seqbook/client/bls"
	"github.com/seqbook/seqbook/client/cluster"
	"github.com/seqbook/seqbook/client/eip712"
)

// Problem kinds: why a replica is not a signer of a proof. They are stable
// words (logs are grepped for them, and the log limiter keys on them).
const (
	kindUnreachable = "unreachable"   // transport error, timeout
	kindHTTPError   = "http_error"    // an error status
	kindNotFound    = "not_found"     // does not know the withdrawal
	kindMalformed   = "malformed"     // not the answer we asked for
	kindBadSig      = "bad_signature" // signature does not verify with its cluster key
	kindDisagrees   = "disagrees"     // validly signed another value than the quorum
	kindMinority    = "no_quorum"     // signed a value no quorum agreed on
)

// share is one replica's part in a proof attempt: either a signed answer
// that passed the edge checks (Digest, Sig, Value set) or the reason it has
// none (Kind, Reason set). The core below decides on shares only; fetching
// and decoding happen before.
type share struct {
	replica int
	// signed answer
	digest [32]byte
	sig    *bls.Signature
	value  string // what it signed, for reports: "balance 5 at index 17"
	// the signed fields the proof is built from
	units      uint64             // balance answers: the balance in base units
	withdrawal *eip712.Withdrawal // withdrawal answers
	state      [32]byte           // attestations: the state digest
	// set when the replica is not a signer
	kind   string
	reason string
}

func (s *share) signed() bool { return s.sig != nil }

// decision is the outcome of one proof attempt over every replica's share.
type decision struct {
	// ok: a value was validly signed by at least the threshold.
	ok        bool
	digest    [32]byte
	winner    int   // a replica of the winning group, to read the value from
	signers   []int // cluster order
	aggregate *bls.Signature
	// shares has every replica's share in cluster order, with the reason
	// filled in for each non-signer.
	shares []share
}

// decide groups the signed shares by digest (the digest commits to every
// field of the answer, so equal digests mean equal answers), verifies every
// signature against its replica's key in the cluster file, and picks the
// digest that at least ReplicaThreshold replicas validly signed. The same
// shares give the same decision (but for the 2^-63 chance verifyGroup
// leaves a forger).
//
// Invariant: at most one digest can win, because each replica has one
// share and the threshold is a strict majority.
func decide(c *cluster.Cluster, v *verifier, shares []share) decision {
	if len(shares) != len(c.Replicas) {
		panic(fmt.Sprintf("aggregator: %d shares for %d replicas", len(shares), len(c.Replicas)))
	}
	need := c.ReplicaThreshold()
	if 2*need <= len(c.Replicas) {
		panic("aggregator: replica threshold is not a strict majority")
	}
	d := decision{shares: shares, winner: -1}

	// Groups in order of first appearance, so the result never depends on
	// map iteration order.
	var order [][32]byte
	groups := map[[32]byte][]int{}
	for i := range shares {
		s := &shares[i]
		if s.replica != i {
			panic("aggregator: shares out of cluster order")
		}
		if !s.signed() {
			continue
		}
		if _, seen := groups[s.digest]; !seen {
			order = append(order, s.digest)
		}
		groups[s.digest] = append(groups[s.digest], i)
	}

	for _, dg := range order {
		members := groups[dg]
		valid := v.verifyGroup(dg, shares, members)
		var good []int
		for k, i := range members {
			if !valid[k] {
				shares[i].kind = kindBadSig
				shares[i].reason = fmt.Sprintf("answered %s but its signature does not verify with its cluster key", shares[i].value)
				continue
			}
			good = append(good, i)
		}
		if len(good) >= need {
			if d.ok {
				panic("aggregator: two values reached a majority threshold")
			}
			d.ok, d.digest, d.signers, d.winner = true, dg, good, good[0]
		}
	}

	// Every signed share that is not in the winning group is a
	// non-signer; say why.
	for i := range shares {
		s := &shares[i]
		if !s.signed() || s.kind != "" {
			continue
		}
		if d.ok && s.digest == d.digest {
			continue
		}
		if d.ok {
			s.kind = kindDisagrees
			s.reason = fmt.Sprintf("signed %s, the quorum signed %s", s.value, shares[d.winner].value)
		} else {
			s.kind = kindMinority
			s.reason = fmt.Sprintf("signed %s, which fewer than %d replicas signed", s.value, need)
		}
	}
	if d.ok {
		sigs := make([]*bls.Signature, len(d.signers))
		for k, i := range d.signers {
			sigs[k] = shares[i].sig
		}
		d.aggregate = bls.Aggregate(sigs)
	}
	return d
}

// verifyGroup checks the signatures of the shares in members, which all
// carry digest dg, each against its own replica's key.
//
// Several shares are checked at once with a randomized batch check: with
// independent random 63-bit odd scalars r_i, the single pairing equation
// e(Σ r_i·pk_i, H(dg)) = e(g1, Σ r_i·σ_i) holds when every σ_i is valid and,
// when one is not, only if a forger guessed the r_i (probability 2^-63). It
// costs one pairing check where checking each share costs one per share.
// If the batch fails, each share is checked alone to find the bad ones.
func (v *verifier) verifyGroup(dg [32]byte, shares []share, members []int) []bool {
	valid := make([]bool, len(members))
	if len(members) > 1 && v.batchValid(dg, shares, members) {
		for k := range valid {
			valid[k] = true
		}
		return valid
	}
	for k, i := range members {
		valid[k] = shares[i].sig.Verify(v.c.ReplicaKey(i), dg)
	}
	return valid
}

// verifier checks replica signatures; it holds the replicas' keys in
// blst's form, converted once.
type verifier struct {
	c    *cluster.Cluster
	keys []blst.P1Affine
}

func newVerifier(c *cluster.Cluster) *verifier {
	v := &verifier{c: c, keys: make([]blst.P1Affine, len(c.Replicas))}
	for i := range c.Replicas {
		pk := new(blst.P1Affine).Uncompress(c.ReplicaKey(i).Bytes())
		if pk == nil {
			// cluster.New parsed and checked this key: a bug, not input.
			panic(fmt.Sprintf("aggregator: blst refuses replica %d's checked key", i))
		}
		v.keys[i] = *pk
	}
	return v
}

func (v *verifier) batchValid(dg [32]byte, shares []share, members []int) bool {
	sigs := make([]blst.P2Affine, len(members))
	keys := make([]blst.P1Affine, len(members))
	for k, i := range members {
		// Already decoded (and checked to be in the subgroup) by
		// bls.SignatureFromHex at the edge.
		p := new(blst.P2Affine).Uncompress(shares[i].sig.Bytes())
		if p == nil {
			return false
		}
		sigs[k], keys[k] = *p, v.keys[i]
	}
	const scalarBytes = 8
	scalars := make([]byte, scalarBytes*len(members))
	if _, err := rand.Read(scalars); err != nil {
		return false
	}
	for k := range members {
		scalars[k*scalarBytes] |= 1 // odd, so never zero (little-endian)
	}
	sigSum := blst.P2AffinesMult(sigs, scalars, 8*scalarBytes)
	keySum := blst.P1AffinesMult(keys, scalars, 8*scalarBytes)
	if sigSum == nil || keySum == nil {
		return false
	}
	return sigSum.ToAffine().Verify(false, keySum.ToAffine(), false, dg[:], []byte(bls.DSTSignature))
}

// ids returns the cluster ids of replicas given by position.
func ids(c *cluster.Cluster, replicas []int) []string {
	out := make([]string, len(replicas))
	for k, i := range replicas {
		out[k] = c.Replicas[i].ID
	}
	return out
}

// nonSigners returns the replicas not in signers, in cluster order.
func nonSigners(c *cluster.Cluster, signers []int) []int {
	in := make([]bool, len(c.Replicas))
	for _, i := range signers {
		in[i] = true
	}
	out := []int{}
	for i := range c.Replicas {
		if !in[i] {
			out = append(out, i)
		}
	}
	return out
}

// checkProof verifies an assembled proof before it is served, the way a
// bridge does (docs/verification.md): the digest recomputed from the
// proof's own fields, signers and non-signers partitioning the replicas,
// the cluster's threshold, and the aggregate signature over the summed
// keys of the signers, checked with blst (herumi made the aggregate, so a
// bug in either library, in grouping or in assembly shows up here rather
// than at a bridge). Every proof in the tests and in `seqbook bench proofs`
// is also checked with the client SDK's verifier.
func (v *verifier) checkProof(fields eip712.Message, digestHex, sigHex string, signers, nonSigners []string, threshold int) error {
	digest := v.c.Domain.Digest(fields)
	if hex32(digest) != digestHex {
		return fmt.Errorf("digest %s, its fields hash to %s", digestHex, hex32(digest))
	}
	if threshold != v.c.ReplicaThreshold() || len(signers) < threshold {
		return fmt.Errorf("%d signers for threshold %d (the cluster's is %d)", len(signers), threshold, v.c.ReplicaThreshold())
	}
	listed := make([]bool, len(v.c.Replicas))
	var keySum blst.P1Aggregate
	for k, id := range append(slices.Clone(signers), nonSigners...) {
		i, ok := v.c.ReplicaIndex(id)
		if !ok || listed[i] {
			return fmt.Errorf("replica %q unknown or listed twice", id)
		}
		listed[i] = true
		if k < len(signers) && !keySum.Add(&v.keys[i], false) {
			return fmt.Errorf("summing the key of %s", id)
		}
	}
	if len(signers)+len(nonSigners) != len(v.c.Replicas) {
		return fmt.Errorf("%d signers and %d non-signers for %d replicas", len(signers), len(nonSigners), len(v.c.Replicas))
	}
	raw, err := hex.DecodeString(strings.TrimPrefix(sigHex, "0x"))
	if err != nil {
		return fmt.Errorf("signature: %v", err)
	}
	sig := new(blst.P2Affine).Uncompress(raw)
	if sig == nil || !sig.Verify(true, keySum.ToAffine(), false, digest[:], []byte(bls.DSTSignature)) {
		return errors.New("aggregate signature does not verify with the signers' summed keys")
	}
	return nil
}
