package client

import (
	"fmt"

	"github.com/seqbook/seqbook/client/bls"
	"github.com/seqbook/seqbook/client/cluster"
	"github.com/seqbook/seqbook/client/eip712"
)

// StateProof is the aggregator's quorum proof of the replicated state at
// an index, as served by GET /aggregate_state?index=N: replicas' BLS
// signatures over the EIP-712 digest of
// State(string app,uint64 index,bytes32 stateDigest), aggregated into one
// (docs/verification.md). It is checked like a balance proof, with
// VerifyStateProof.
type StateProof struct {
	App string `json:"app"`
	// Index is the applied batch index the state digest is as of.
	Index uint64 `json:"index"`
	// StateDigest is the replicas' state digest after Index (GET /state's
	// state_digest), 0x + 64 hex digits: the value signed.
	StateDigest string   `json:"state_digest"`
	Digest      string   `json:"digest"`
	Signature   string   `json:"signature"`
	Signers     []string `json:"signers"`
	NonSigners  []string `json:"non_signers"`
	Threshold   int      `json:"threshold"`
}

// Message returns the signed State message the proof's fields describe.
func (p *StateProof) Message() (eip712.State, error) {
	d, err := parseHex32Field("state_digest", p.StateDigest)
	if err != nil {
		return eip712.State{}, err
	}
	return eip712.State{App: p.App, Index: p.Index, StateDigest: d}, nil
}

// VerifyStateProof checks a state proof against a cluster file the way
// VerifyBalanceProof checks a balance proof, trusting nothing in it. A nil
// error means a threshold of replicas attested exactly this state digest at
// this index.
func VerifyStateProof(c *cluster.Cluster, p *StateProof) error {
	if p == nil {
		return fmt.Errorf("%w: no proof", ErrProofMalformed)
	}
	return verifyMessageProof(c, p.App, func() (eip712.Message, error) { m, err := p.Message(); return &m, err },
		p.Digest, p.Signature, p.Signers, p.NonSigners, p.Threshold)
}

// NewStateProof assembles a state proof from an aggregate signature of the
// named replicas over m, like NewBalanceProof.
func NewStateProof(c *cluster.Cluster, m eip712.State, sig *bls.Signature, signers []string) *StateProof {
	s, ns := splitReplicas(c, signers)
	return &StateProof{
		App: m.App, Index: m.Index, StateDigest: hex32(m.StateDigest), Digest: hex32(c.Domain.Digest(&m)),
		Signature: sig.Hex(), Signers: s, NonSigners: ns, Threshold: c.ReplicaThreshold(),
	}
}

// ParseStateProof decodes a state proof document, refusing unknown fields.
func ParseStateProof(b []byte) (*StateProof, error) {
	if len(b) > proofBytesMax {
		return nil, fmt.Errorf("%w: document of %d bytes", ErrProofMalformed, len(b))
	}
	var p StateProof
	if err := decodeStrict(b, &p); err != nil {
		return nil, fmt.Errorf("%w: state proof: %v", ErrProofMalformed, err)
	}
	return &p, nil
}
