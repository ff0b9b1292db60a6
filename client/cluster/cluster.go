// Package cluster reads and checks a cluster file (DESIGN §7): who the
// sequencer nodes and replicas are, their addresses and BLS keys, the chain
// id and the app. Everything that verifies a quorum signature (replicas
// checking finality, the aggregator, a bridge) does it through this file.
package cluster

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"

	"github.com/ethereum/go-ethereum/common"

	"github.com/seqbook/seqbook/client/bls"
	"github.com/seqbook/seqbook/client/eip712"
)

// Member is one sequencer node or replica as written in the file.
type Member struct {
	ID        string `json:"id"`
	HTTP      string `json:"http"`
	QUIC      string `json:"quic,omitempty"` // nodes only
	BLSPubkey string `json:"bls_pubkey"`
	BLSPop    string `json:"bls_pop"`
}

// Aggregator is the aggregator's entry.
type Aggregator struct {
	HTTP string `json:"http"`
}

// File is the cluster file exactly as stored.
type File struct {
	ChainID    uint64     `json:"chain_id"`
	App        string     `json:"app"`
	Nodes      []Member   `json:"nodes"`
	Replicas   []Member   `json:"replicas"`
	Aggregator Aggregator `json:"aggregator"`
	Bridge     string     `json:"bridge"`
}

// Cluster is a checked cluster file with parsed keys. It is read-only
// after Parse and safe for concurrent use.
type Cluster struct {
	File
	Domain      eip712.Domain
	BridgeAddr  common.Address
	nodeKeys    []*bls.PublicKey
	replicaKeys []*bls.PublicKey
	nodeIdx     map[string]int
	replicaIdx  map[string]int
}

// Load reads and checks a cluster file.
func Load(path string) (*Cluster, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("cluster file: %w", err)
	}
	c, err := Parse(b)
	if err != nil {
		return nil, fmt.Errorf("cluster file %s: %w", path, err)
	}
	return c, nil
}

// Parse checks a cluster file's bytes: ids unique, addresses well formed,
// every BLS key valid with a valid proof of possession (a key without one
// could be a rogue key crafted to cancel honest keys in an aggregate).
func Parse(b []byte) (*Cluster, error) {
	var f File
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("invalid JSON: %w", err)
	}
	return New(f)
}

// New checks a File and returns the Cluster.
func New(f File) (*Cluster, error) {
	if f.ChainID == 0 {
		return nil, errors.New("chain_id must be set")
	}
	if f.App == "" {
		return nil, errors.New("app must be set")
	}
	if len(f.Nodes) < 1 {
		return nil, errors.New("no nodes")
	}
	c := &Cluster{File: f, Domain: eip712.NewDomain(f.ChainID)}
	var err error
	if c.nodeKeys, c.nodeIdx, err = checkMembers("node", f.Nodes, true); err != nil {
		return nil, err
	}
	if c.replicaKeys, c.replicaIdx, err = checkMembers("replica", f.Replicas, false); err != nil {
		return nil, err
	}
	if f.Bridge != "" {
		if !common.IsHexAddress(f.Bridge) {
			return nil, fmt.Errorf("bridge %q is not an address", f.Bridge)
		}
		c.BridgeAddr = common.HexToAddress(f.Bridge)
	}
	return c, nil
}

func checkMembers(kind string, ms []Member, needQUIC bool) ([]*bls.PublicKey, map[string]int, error) {
	keys := make([]*bls.PublicKey, len(ms))
	idx := make(map[string]int, len(ms))
	for i, m := range ms {
		if m.ID == "" {
			return nil, nil, fmt.Errorf("%s #%d has no id", kind, i+1)
		}
		if _, dup := idx[m.ID]; dup {
			return nil, nil, fmt.Errorf("%s id %q appears twice", kind, m.ID)
		}
		idx[m.ID] = i
		if _, _, err := net.SplitHostPort(m.HTTP); err != nil {
			return nil, nil, fmt.Errorf("%s %s: http address %q: %v", kind, m.ID, m.HTTP, err)
		}
		if needQUIC {
			if _, _, err := net.SplitHostPort(m.QUIC); err != nil {
				return nil, nil, fmt.Errorf("%s %s: quic address %q: %v", kind, m.ID, m.QUIC, err)
			}
		}
		pk, err := bls.PublicKeyFromHex(m.BLSPubkey)
		if err != nil {
			return nil, nil, fmt.Errorf("%s %s: %v", kind, m.ID, err)
		}
		pop, err := bls.SignatureFromHex(m.BLSPop)
		if err != nil {
			return nil, nil, fmt.Errorf("%s %s: proof of possession: %v", kind, m.ID, err)
		}
		if !pk.VerifyPossession(pop) {
			return nil, nil, fmt.Errorf("%s %s: proof of possession does not verify for its key", kind, m.ID)
		}
		for j := 0; j < i; j++ {
			if keys[j].Equal(pk) {
				return nil, nil, fmt.Errorf("%s %s uses the same BLS key as %s", kind, m.ID, ms[j].ID)
			}
		}
		keys[i] = pk
	}
	return keys, idx, nil
}

// Quorum is the smallest number of nodes greater than 2N/3 (DESIGN §4).
func Quorum(n int) int { return 2*n/3 + 1 }

// NodeQuorum is Quorum(len(Nodes)).
func (c *Cluster) NodeQuorum() int { return Quorum(len(c.Nodes)) }

// ReplicaThreshold is how many replicas must sign a balance or withdrawal
// proof: a strict majority. Replicas are deterministic functions of the
// same finalized log, so honest ones always agree; a majority threshold
// keeps proofs forming with a minority of replicas down while a minority of
// faulty replicas cannot sign a value alone.
func (c *Cluster) ReplicaThreshold() int { return len(c.Replicas)/2 + 1 }

// NodeIndex returns the position of a node id in cluster order.
func (c *Cluster) NodeIndex(id string) (int, bool) { i, ok := c.nodeIdx[id]; return i, ok }

// ReplicaIndex returns the position of a replica id in cluster order.
func (c *Cluster) ReplicaIndex(id string) (int, bool) { i, ok := c.replicaIdx[id]; return i, ok }

// NodeKey returns the BLS key of node i.
func (c *Cluster) NodeKey(i int) *bls.PublicKey { return c.nodeKeys[i] }

// ReplicaKey returns the BLS key of replica i.
func (c *Cluster) ReplicaKey(i int) *bls.PublicKey { return c.replicaKeys[i] }

// Leader returns the index of the leader of a view: view mod N.
func (c *Cluster) Leader(view uint64) int { return int(view % uint64(len(c.Nodes))) }

// VerifyNodeQuorum checks that sig is an aggregate by the named nodes over
// digest and that they are at least a quorum.
func (c *Cluster) VerifyNodeQuorum(digest [32]byte, sig *bls.Signature, signers []string) error {
	return verifyQuorum("node", c.nodeIdx, c.nodeKeys, c.NodeQuorum(), digest, sig, signers)
}

// VerifyReplicaQuorum checks that sig is an aggregate by the named replicas
// over digest and that they reach ReplicaThreshold.
func (c *Cluster) VerifyReplicaQuorum(digest [32]byte, sig *bls.Signature, signers []string) error {
	return verifyQuorum("replica", c.replicaIdx, c.replicaKeys, c.ReplicaThreshold(), digest, sig, signers)
}

func verifyQuorum(kind string, idx map[string]int, keys []*bls.PublicKey, need int, digest [32]byte, sig *bls.Signature, signers []string) error {
	if sig == nil {
		return errors.New("no signature")
	}
	seen := make(map[string]bool, len(signers))
	pks := make([]*bls.PublicKey, 0, len(signers))
	for _, id := range signers {
		i, ok := idx[id]
		if !ok {
			return fmt.Errorf("signer %q is not a %s of the cluster", id, kind)
		}
		if seen[id] {
			return fmt.Errorf("signer %q listed twice", id)
		}
		seen[id] = true
		pks = append(pks, keys[i])
	}
	if len(pks) < need {
		return fmt.Errorf("%d signers, need at least %d", len(pks), need)
	}
	if !sig.VerifyAggregate(pks, digest) {
		return errors.New("aggregate BLS signature does not verify")
	}
	return nil
}
