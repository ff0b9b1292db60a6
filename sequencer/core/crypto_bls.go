package core

import (
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/seqbook/seqbook/client/bls"
	"github.com/seqbook/seqbook/client/cluster"
	"github.com/seqbook/seqbook/sequencer/wire"
)

// BLSCrypto is the real Crypto: herumi ETH-mode BLS with the node keys of a
// cluster file (whose proofs of possession cluster.New has checked, which
// is what makes summing keys safe).
type BLSCrypto struct {
	sk   *bls.SecretKey
	keys []*bls.PublicKey
	// Work counters, read by the runtime for GET /node/state. Atomic
	// because HTTP handlers read them while the loop signs.
	signs, verifies, aggregates, aggregateVerifies, batchVerifies atomic.Uint64
	// built holds the signatures this node made recently (its own, and
	// aggregates), decoded. The leader aggregates its own vote and then
	// verifies the aggregate it just built; decoding either from bytes
	// would repeat a subgroup check (a signature made here, or a sum of
	// points that each passed the check, is in the subgroup). Only the
	// loop goroutine uses it; bounded by builtMax.
	built     map[wire.Signature]*bls.Signature
	builtKeys []wire.Signature
}

// builtMax bounds the decoded signatures kept: a leader uses each soon
// after making it (two signatures and two aggregates per round).
const builtMax = 16

// BLSWork counts the BLS operations a node has done since it started.
type BLSWork struct {
	Signs             uint64 // own signatures made
	Verifies          uint64 // single signatures checked
	Aggregates        uint64 // signature aggregations
	AggregateVerifies uint64 // aggregate (quorum proof) checks
	BatchVerifies     uint64 // multi-pairings that checked several of them at once
}

// Work returns the BLS operation counts so far.
func (b *BLSCrypto) Work() BLSWork {
	return BLSWork{Signs: b.signs.Load(), Verifies: b.verifies.Load(), Aggregates: b.aggregates.Load(),
		AggregateVerifies: b.aggregateVerifies.Load(), BatchVerifies: b.batchVerifies.Load()}
}

var _ Crypto = (*BLSCrypto)(nil)

// NewBLSCrypto returns the Crypto of node self of cluster c signing with sk.
// It checks that sk is the key the cluster file lists for self.
func NewBLSCrypto(c *cluster.Cluster, self int, sk *bls.SecretKey) (*BLSCrypto, error) {
	if self < 0 || self >= len(c.Nodes) {
		return nil, fmt.Errorf("bls crypto: node index %d out of range", self)
	}
	if !sk.PublicKey().Equal(c.NodeKey(self)) {
		return nil, fmt.Errorf("bls crypto: the secret key does not match node %s's public key in the cluster file", c.Nodes[self].ID)
	}
	keys := make([]*bls.PublicKey, len(c.Nodes))
	for i := range keys {
		keys[i] = c.NodeKey(i)
	}
	return &BLSCrypto{sk: sk, keys: keys}, nil
}

// Sign implements Crypto.
func (b *BLSCrypto) Sign(digest [32]byte) wire.Signature {
	b.signs.Add(1)
	sig := b.sk.Sign(digest)
	var out wire.Signature
	copy(out[:], sig.Bytes())
	b.remember(out, sig) // the leader aggregates its own vote: no need to decode it again
	return out
}

// Verify implements Crypto.
func (b *BLSCrypto) Verify(node int, digest [32]byte, sig wire.Signature) bool {
	b.verifies.Add(1)
	if node < 0 || node >= len(b.keys) {
		return false
	}
	s, err := bls.SignatureFromBytes(sig[:])
	if err != nil {
		return false
	}
	return s.Verify(b.keys[node], digest)
}

// Aggregate implements Crypto.
func (b *BLSCrypto) Aggregate(sigs []wire.Signature) (wire.Signature, error) {
	b.aggregates.Add(1)
	if len(sigs) == 0 {
		return wire.Signature{}, errors.New("bls crypto: nothing to aggregate")
	}
	parsed := make([]*bls.Signature, len(sigs))
	for i := range sigs {
		s, err := b.decode(sigs[i])
		if err != nil {
			return wire.Signature{}, fmt.Errorf("bls crypto: signature %d: %w", i, err)
		}
		parsed[i] = s
	}
	agg := bls.Aggregate(parsed)
	var out wire.Signature
	copy(out[:], agg.Bytes())
	b.remember(out, agg)
	return out, nil
}

// remember keeps a decoded aggregate this node built (see built).
func (b *BLSCrypto) remember(sig wire.Signature, s *bls.Signature) {
	if b.built == nil {
		b.built = map[wire.Signature]*bls.Signature{}
	}
	if _, ok := b.built[sig]; ok {
		return
	}
	if len(b.builtKeys) >= builtMax {
		delete(b.built, b.builtKeys[0])
		b.builtKeys = b.builtKeys[1:]
	}
	b.built[sig] = s
	b.builtKeys = append(b.builtKeys, sig)
}

// decode returns a signature decoded from bytes (with herumi's subgroup
// check), or the one this node built from checked parts.
func (b *BLSCrypto) decode(sig wire.Signature) (*bls.Signature, error) {
	if s, ok := b.built[sig]; ok {
		return s, nil
	}
	return bls.SignatureFromBytes(sig[:])
}

// VerifyAggregate implements Crypto.
func (b *BLSCrypto) VerifyAggregate(signers wire.Bitmap, digest [32]byte, sig wire.Signature) bool {
	b.aggregateVerifies.Add(1)
	pks, s, ok := b.parseAggregate(signers, sig)
	return ok && s.VerifyAggregate(pks, digest)
}

// VerifyAggregates implements Crypto with one multi-pairing for all.
func (b *BLSCrypto) VerifyAggregates(checks []AggregateCheck) bool {
	b.aggregateVerifies.Add(uint64(len(checks)))
	b.batchVerifies.Add(1)
	sigs := make([]*bls.Signature, len(checks))
	keys := make([][]*bls.PublicKey, len(checks))
	digests := make([][32]byte, len(checks))
	for i, c := range checks {
		pks, s, ok := b.parseAggregate(c.Signers, c.Signature)
		if !ok {
			return false
		}
		sigs[i], keys[i], digests[i] = s, pks, c.Digest
	}
	return bls.VerifyAggregates(sigs, keys, digests)
}

// parseAggregate returns the keys of signers and the decoded signature.
func (b *BLSCrypto) parseAggregate(signers wire.Bitmap, sig wire.Signature) ([]*bls.PublicKey, *bls.Signature, bool) {
	if signers.Max() >= len(b.keys) {
		return nil, nil, false
	}
	nodes := signers.Nodes()
	if len(nodes) == 0 {
		return nil, nil, false
	}
	pks := make([]*bls.PublicKey, len(nodes))
	for i, n := range nodes {
		pks[i] = b.keys[n]
	}
	s, err := b.decode(sig)
	if err != nil {
		return nil, nil, false
	}
	return pks, s, true
}
