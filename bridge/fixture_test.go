package bridge

import (
	"context"
	"crypto/ecdsa"
	"fmt"
	"math/big"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/crypto"

	"github.com/seqbook/seqbook/client"
	"github.com/seqbook/seqbook/client/bls"
	"github.com/seqbook/seqbook/client/cluster"
	"github.com/seqbook/seqbook/client/eip712"
)

// fixture is a deployed bridge on a simulated chain for a cluster of
// replicas whose secret keys the test holds, so it can sign any proof.
type fixture struct {
	t       testing.TB
	ctx     context.Context
	chain   *SimChain
	c       *cluster.Cluster
	sks     []*bls.SecretKey
	owner   *Sender // deployer, minter, depositor
	bridge  *Contract
	usdt    *Token // 6 decimals
	dai     *Token // 18 decimals, listed as "DAI"
	cents   *Token // 2 decimals, listed as "CENT"
	ownerKy *ecdsa.PrivateKey
}

// blsKey is a deterministic BLS key for a name.
func blsKey(t testing.TB, name string) *bls.SecretKey {
	t.Helper()
	seed := crypto.Keccak256([]byte("seqbook bridge test " + name))
	seed[0] &= 0x3f // below the group order
	sk, err := bls.SecretKeyFromBytes(seed)
	if err != nil {
		t.Fatal(err)
	}
	return sk
}

func member(id, addr string, sk *bls.SecretKey) cluster.Member {
	return cluster.Member{ID: id, HTTP: addr, BLSPubkey: sk.PublicKey().Hex(), BLSPop: sk.ProvePossession().Hex()}
}

// testCluster is a cluster of n replicas with known keys.
func testCluster(t testing.TB, chainID uint64, n int) (*cluster.Cluster, []*bls.SecretKey) {
	t.Helper()
	node := member("node1", "127.0.0.1:1", blsKey(t, "node1"))
	node.QUIC = "127.0.0.1:2"
	f := cluster.File{ChainID: chainID, App: "orderbook", Nodes: []cluster.Member{node}}
	sks := make([]*bls.SecretKey, n)
	for i := range sks {
		sks[i] = blsKey(t, fmt.Sprintf("replica%d", i+1))
		f.Replicas = append(f.Replicas, member(fmt.Sprintf("replica%d", i+1), fmt.Sprintf("127.0.0.1:%d", 5001+i), sks[i]))
	}
	c, err := cluster.New(f)
	if err != nil {
		t.Fatal(err)
	}
	return c, sks
}

func newFixture(t testing.TB, replicas int) *fixture {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	owner, err := crypto.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	chain, err := NewSimChain(SimConfig{ChainID: eip712.DefaultChainID, Funded: []common20{Fund(owner)}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { chain.Close() })
	f := &fixture{t: t, ctx: ctx, chain: chain, ownerKy: owner}
	f.c, f.sks = testCluster(t, eip712.DefaultChainID, replicas)
	if f.owner, err = NewSender(ctx, chain.Client, owner); err != nil {
		t.Fatal(err)
	}
	if f.usdt, err = DeployToken(ctx, f.owner, "Tether", "USDT", 6); err != nil {
		t.Fatal(err)
	}
	if f.dai, err = DeployToken(ctx, f.owner, "Dai", "DAI", 18); err != nil {
		t.Fatal(err)
	}
	if f.cents, err = DeployToken(ctx, f.owner, "Cents", "CENT", 2); err != nil {
		t.Fatal(err)
	}
	f.bridge, _, err = Deploy(ctx, f.owner, f.c, []Listing{
		{Symbol: "ETH"}, {Symbol: "USDT", Token: f.usdt.Address}, {Symbol: "DAI", Token: f.dai.Address}, {Symbol: "CENT", Token: f.cents.Address},
	})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// proof signs a withdrawal with the replicas at the given positions and
// assembles the aggregator's proof of it.
func (f *fixture) proof(m eip712.Withdrawal, signers ...int) *client.WithdrawalProof {
	f.t.Helper()
	return f.proofIn(f.c.Domain, m, signers...)
}

func (f *fixture) proofIn(d eip712.Domain, m eip712.Withdrawal, signers ...int) *client.WithdrawalProof {
	digest := d.Digest(&m)
	sigs := make([]*bls.Signature, len(signers))
	ids := make([]string, len(signers))
	for i, s := range signers {
		sigs[i] = f.sks[s].Sign(digest)
		ids[i] = f.c.Replicas[s].ID
	}
	return client.NewWithdrawalProof(f.c, m, bls.Aggregate(sigs), ids)
}

// fund gives the bridge tokens to pay out.
func (f *fixture) fundBridge() {
	f.t.Helper()
	eth, _ := new(big.Int).SetString("100000000000000000000", 10) // 100 ETH
	if _, err := f.bridge.DepositETH(f.ctx, f.owner, f.owner.Address(), eth); err != nil {
		f.t.Fatal(err)
	}
	for _, tok := range []*Token{f.usdt, f.dai, f.cents} {
		amt := new(big.Int).Exp(big.NewInt(10), big.NewInt(30), nil)
		if _, err := tok.Mint(f.ctx, f.owner, f.bridge.Address, amt); err != nil {
			f.t.Fatal(err)
		}
	}
}

func (f *fixture) withdrawal(id string, token string, units uint64, to common.Address) eip712.Withdrawal {
	return eip712.Withdrawal{App: f.c.App, ID: eip712.Keccak256([]byte(id)), Trader: common.HexToAddress("0x7F3b0b1530A0d0Ce3D721a6e976C7eA4296A0f5d"),
		Token: token, Amount: units, Recipient: to, Index: 42}
}
