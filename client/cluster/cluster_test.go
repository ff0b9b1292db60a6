package cluster

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/seqbook/seqbook/client/bls"
	"github.com/seqbook/seqbook/client/eip712"
)

// fixedKeys are BLS keys derived from fixed scalars so tests are
// reproducible without randomness.
func fixedKey(t testing.TB, i int) *bls.SecretKey {
	t.Helper()
	h := eip712.Keccak256([]byte(fmt.Sprintf("cluster test key %d", i)))
	h[0] &= 0x3f // below the group order
	sk, err := bls.SecretKeyFromBytes(h[:])
	if err != nil {
		t.Fatal(err)
	}
	return sk
}

type fixture struct {
	nodeKeys    []*bls.SecretKey
	replicaKeys []*bls.SecretKey
	file        File
}

func newFixture(t testing.TB, nodes, replicas int) *fixture {
	t.Helper()
	fx := &fixture{file: File{ChainID: 31337, App: "orderbook", Aggregator: Aggregator{HTTP: "127.0.0.1:8001"},
		Bridge: "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"}}
	for i := 0; i < nodes; i++ {
		sk := fixedKey(t, i)
		fx.nodeKeys = append(fx.nodeKeys, sk)
		fx.file.Nodes = append(fx.file.Nodes, Member{ID: fmt.Sprintf("node%d", i+1), HTTP: fmt.Sprintf("127.0.0.1:%d", 6001+i),
			QUIC: fmt.Sprintf("127.0.0.1:%d", 7001+i), BLSPubkey: sk.PublicKey().Hex(), BLSPop: sk.ProvePossession().Hex()})
	}
	for i := 0; i < replicas; i++ {
		sk := fixedKey(t, 100+i)
		fx.replicaKeys = append(fx.replicaKeys, sk)
		fx.file.Replicas = append(fx.file.Replicas, Member{ID: fmt.Sprintf("replica%d", i+1), HTTP: fmt.Sprintf("127.0.0.1:%d", 5001+i),
			BLSPubkey: sk.PublicKey().Hex(), BLSPop: sk.ProvePossession().Hex()})
	}
	return fx
}

func (fx *fixture) json(t testing.TB) []byte {
	t.Helper()
	b, err := json.Marshal(fx.file)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParseGoodFile(t *testing.T) {
	fx := newFixture(t, 4, 3)
	c, err := Parse(fx.json(t))
	if err != nil {
		t.Fatal(err)
	}
	if c.NodeQuorum() != 3 || c.ReplicaThreshold() != 2 {
		t.Errorf("quorum %d threshold %d", c.NodeQuorum(), c.ReplicaThreshold())
	}
	if i, ok := c.NodeIndex("node3"); !ok || i != 2 {
		t.Errorf("NodeIndex(node3) = %d, %v", i, ok)
	}
	if _, ok := c.NodeIndex("replica1"); ok {
		t.Error("a replica id found among nodes")
	}
	if i, ok := c.ReplicaIndex("replica2"); !ok || i != 1 {
		t.Errorf("ReplicaIndex(replica2) = %d, %v", i, ok)
	}
	if !c.NodeKey(1).Equal(fx.nodeKeys[1].PublicKey()) || !c.ReplicaKey(2).Equal(fx.replicaKeys[2].PublicKey()) {
		t.Error("keys out of cluster order")
	}
	if c.Leader(0) != 0 || c.Leader(5) != 1 || c.Leader(7) != 3 {
		t.Error("Leader is not view mod N")
	}
	if c.Domain.Separator() != eip712.NewDomain(31337).Separator() {
		t.Error("domain is not the chain's")
	}
	if c.BridgeAddr.Hex() != fx.file.Bridge {
		t.Errorf("bridge %s", c.BridgeAddr.Hex())
	}
	path := filepath.Join(t.TempDir(), "cluster.json")
	if err := os.WriteFile(path, fx.json(t), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(path); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(filepath.Join(t.TempDir(), "missing.json")); err == nil {
		t.Fatal("Load of a missing file succeeded")
	}
}

func TestQuorum(t *testing.T) {
	// Quorum is the smallest q with q > 2n/3: compared with the definition.
	for n := 1; n <= 100; n++ {
		q := Quorum(n)
		if !(3*q > 2*n) || 3*(q-1) > 2*n {
			t.Errorf("Quorum(%d) = %d", n, q)
		}
	}
}

func TestParseRejects(t *testing.T) {
	for _, tc := range []struct {
		name   string
		mutate func(fx *fixture)
		want   string
	}{
		{"bad pop", func(fx *fixture) { fx.file.Nodes[1].BLSPop = fx.nodeKeys[2].ProvePossession().Hex() }, "proof of possession does not verify"},
		{"plain signature as pop", func(fx *fixture) {
			fx.file.Replicas[0].BLSPop = fx.replicaKeys[0].Sign([32]byte{}).Hex()
		}, "proof of possession does not verify"},
		{"pop not hex", func(fx *fixture) { fx.file.Nodes[0].BLSPop = "0xnothex" }, "proof of possession"},
		{"missing pop", func(fx *fixture) { fx.file.Nodes[0].BLSPop = "" }, "proof of possession"},
		{"duplicate node id", func(fx *fixture) { fx.file.Nodes[2].ID = "node1" }, "appears twice"},
		{"duplicate replica id", func(fx *fixture) { fx.file.Replicas[1].ID = "replica1" }, "appears twice"},
		{"empty id", func(fx *fixture) { fx.file.Nodes[0].ID = "" }, "has no id"},
		{"duplicate node key", func(fx *fixture) {
			fx.file.Nodes[3].BLSPubkey, fx.file.Nodes[3].BLSPop = fx.file.Nodes[0].BLSPubkey, fx.file.Nodes[0].BLSPop
		}, "same BLS key"},
		{"duplicate replica key", func(fx *fixture) {
			fx.file.Replicas[2].BLSPubkey, fx.file.Replicas[2].BLSPop = fx.file.Replicas[1].BLSPubkey, fx.file.Replicas[1].BLSPop
		}, "same BLS key"},
		{"bad pubkey", func(fx *fixture) { fx.file.Nodes[0].BLSPubkey = "0x" + strings.Repeat("00", 48) }, "public key"},
		{"short pubkey", func(fx *fixture) { fx.file.Nodes[0].BLSPubkey = "0x1234" }, "public key"},
		{"bad http address", func(fx *fixture) { fx.file.Nodes[0].HTTP = "localhost" }, "http address"},
		{"bad replica http address", func(fx *fixture) { fx.file.Replicas[0].HTTP = "" }, "http address"},
		{"bad quic address", func(fx *fixture) { fx.file.Nodes[2].QUIC = "127.0.0.1" }, "quic address"},
		{"bad bridge", func(fx *fixture) { fx.file.Bridge = "0x1234" }, "bridge"},
		{"no chain id", func(fx *fixture) { fx.file.ChainID = 0 }, "chain_id"},
		{"no app", func(fx *fixture) { fx.file.App = "" }, "app"},
		{"no nodes", func(fx *fixture) { fx.file.Nodes = nil }, "no nodes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fx := newFixture(t, 4, 3)
			tc.mutate(fx)
			_, err := Parse(fx.json(t))
			if err == nil {
				t.Fatal("accepted")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not say %q", err, tc.want)
			}
		})
	}
	for _, raw := range []string{"", "{", "[]", `{"chain_id": -1}`, `{"chain_id": 1, "app": "x", "nodes": [], "extra": 1}`} {
		if _, err := Parse([]byte(raw)); err == nil {
			t.Errorf("Parse(%q) accepted", raw)
		}
	}
}

func TestVerifyNodeQuorum(t *testing.T) {
	fx := newFixture(t, 4, 3)
	c, err := Parse(fx.json(t))
	if err != nil {
		t.Fatal(err)
	}
	d := eip712.NewDomain(31337).Digest(&eip712.Finalize{App: "orderbook", View: 1, Index: 9, ChainingHash: [32]byte{7}})
	sign := func(idx ...int) *bls.Signature {
		var sigs []*bls.Signature
		for _, i := range idx {
			sigs = append(sigs, fx.nodeKeys[i].Sign(d))
		}
		return bls.Aggregate(sigs)
	}
	if err := c.VerifyNodeQuorum(d, sign(0, 1, 2), []string{"node1", "node2", "node3"}); err != nil {
		t.Fatalf("good quorum: %v", err)
	}
	if err := c.VerifyNodeQuorum(d, sign(0, 1, 2, 3), []string{"node4", "node2", "node3", "node1"}); err != nil {
		t.Fatalf("all four, listed out of order: %v", err)
	}
	for _, tc := range []struct {
		name    string
		sig     *bls.Signature
		signers []string
		want    string
	}{
		{"too few", sign(0, 1), []string{"node1", "node2"}, "need at least 3"},
		{"unknown signer", sign(0, 1, 2), []string{"node1", "node2", "node9"}, "not a node"},
		{"replica as node", sign(0, 1, 2), []string{"node1", "node2", "replica1"}, "not a node"},
		{"duplicate signer", sign(0, 1, 1), []string{"node1", "node2", "node2"}, "listed twice"},
		{"wrong signer list", sign(0, 1, 2), []string{"node1", "node2", "node4"}, "does not verify"},
		{"signer claimed without signing", sign(0, 1), []string{"node1", "node2", "node3"}, "does not verify"},
		{"no signature", nil, []string{"node1", "node2", "node3"}, "no signature"},
	} {
		if err := c.VerifyNodeQuorum(d, tc.sig, tc.signers); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error saying %q", tc.name, err, tc.want)
		}
	}
	other := d
	other[0] ^= 1
	if err := c.VerifyNodeQuorum(other, sign(0, 1, 2), []string{"node1", "node2", "node3"}); err == nil {
		t.Error("quorum signature verified on another digest")
	}
	// Replica proofs use replica keys and the majority threshold.
	rsig := bls.Aggregate([]*bls.Signature{fx.replicaKeys[0].Sign(d), fx.replicaKeys[2].Sign(d)})
	if err := c.VerifyReplicaQuorum(d, rsig, []string{"replica1", "replica3"}); err != nil {
		t.Fatalf("replica majority: %v", err)
	}
	if err := c.VerifyReplicaQuorum(d, fx.replicaKeys[0].Sign(d), []string{"replica1"}); err == nil {
		t.Error("one replica of three passed the threshold")
	}
	if err := c.VerifyReplicaQuorum(d, rsig, []string{"node1", "node3"}); err == nil {
		t.Error("node ids accepted as replica signers")
	}
}

// FuzzClusterParse: any bytes, never a panic; whatever is accepted has
// unique ids and a key for every member.
func FuzzClusterParse(f *testing.F) {
	fx := newFixture(f, 4, 3)
	good := fx.json(f)
	f.Add(good)
	f.Add([]byte(`{"chain_id":1,"app":"a","nodes":[{"id":"n","http":"h:1","quic":"h:2","bls_pubkey":"0x00","bls_pop":"0x00"}]}`))
	f.Add([]byte("{}"))
	f.Add([]byte("null"))
	f.Add([]byte(`{"nodes": [null]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := Parse(b)
		if err != nil {
			return
		}
		for i, n := range c.Nodes {
			if j, ok := c.NodeIndex(n.ID); !ok || j != i || c.NodeKey(i) == nil {
				t.Fatalf("node %q: index %d %v", n.ID, j, ok)
			}
		}
		for i, r := range c.Replicas {
			if j, ok := c.ReplicaIndex(r.ID); !ok || j != i || c.ReplicaKey(i) == nil {
				t.Fatalf("replica %q: index %d %v", r.ID, j, ok)
			}
		}
		if c.NodeQuorum() < 1 || c.NodeQuorum() > len(c.Nodes) {
			t.Fatalf("quorum %d of %d", c.NodeQuorum(), len(c.Nodes))
		}
	})
}
