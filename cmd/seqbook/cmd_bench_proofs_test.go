package main

import (
	"context"
	"io"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/common"

	"github.com/seqbook/seqbook/aggregator"
	"github.com/seqbook/seqbook/client/amount"
	"github.com/seqbook/seqbook/client/bls"
	"github.com/seqbook/seqbook/client/cluster"
	"github.com/seqbook/seqbook/client/eip712"
	"github.com/seqbook/seqbook/client/keys"
	"github.com/seqbook/seqbook/client/obapi"
)

// memReplicas is an in-memory twin of the aggregator's replica port:
// replicas at a fixed index whose balance of anything is the address's
// last byte in whole tokens, each signing with its key.
type memReplicas struct {
	c     *cluster.Cluster
	keys  []*bls.SecretKey
	index uint64
	down  int // this replica fails every question (-1: none)
}

func (m *memReplicas) State(ctx context.Context, i int) (uint64, error) {
	if i == m.down {
		return 0, io.ErrUnexpectedEOF
	}
	return m.index, nil
}

func (m *memReplicas) Balance(ctx context.Context, i int, address, token string, index uint64) (*obapi.Balance, error) {
	if i == m.down {
		return nil, io.ErrUnexpectedEOF
	}
	a := common.HexToAddress(address)
	units := uint64(a[19]) * amount.Scale
	d := m.c.Domain.Digest(&eip712.Balance{App: m.c.App, Account: a, Token: token, Balance: units, Index: index})
	return &obapi.Balance{Address: a.Hex(), Token: token, Balance: amount.Format(units), BalanceUnits: strconv.FormatUint(units, 10),
		Index: index, Replica: m.c.Replicas[i].ID, Signature: m.keys[i].Sign(d).Hex()}, nil
}

func (m *memReplicas) Withdrawal(ctx context.Context, i int, id string) (*obapi.Withdrawal, error) {
	return nil, aggregator.ErrNotFound
}

func (m *memReplicas) Attestation(ctx context.Context, i int, index uint64) (*obapi.Attestation, error) {
	return nil, aggregator.ErrNotFound
}

func memCluster(t *testing.T, n int) (*cluster.Cluster, []*bls.SecretKey) {
	t.Helper()
	nk := keys.DeterministicBLS("bench proofs test node")
	f := cluster.File{ChainID: 31337, App: "orderbook", Nodes: []cluster.Member{{ID: "node1", HTTP: "127.0.0.1:1", QUIC: "127.0.0.1:2",
		BLSPubkey: nk.PublicKey().Hex(), BLSPop: nk.ProvePossession().Hex()}}}
	var sks []*bls.SecretKey
	for i := 0; i < n; i++ {
		sk := keys.DeterministicBLS("bench proofs test replica " + strconv.Itoa(i))
		sks = append(sks, sk)
		f.Replicas = append(f.Replicas, cluster.Member{ID: "replica" + strconv.Itoa(i+1), HTTP: "127.0.0.1:3",
			BLSPubkey: sk.PublicKey().Hex(), BLSPop: sk.ProvePossession().Hex()})
	}
	c, err := cluster.New(f)
	if err != nil {
		t.Fatal(err)
	}
	return c, sks
}

func TestBenchProofsMeasuresVerifiedProofs(t *testing.T) {
	c, sks := memCluster(t, 3)
	agg, err := aggregator.New(c, &memReplicas{c: c, keys: sks, index: 7, down: 2}, aggregator.TestConfig(), nil)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(agg.Handler())
	defer srv.Close()
	var out strings.Builder
	o := proofsOpts{latencyDuration: 300 * time.Millisecond, duration: 300 * time.Millisecond, warmup: 50 * time.Millisecond, concurrency: 4}
	res, err := benchProofs(context.Background(), c, srv.URL, proofTargets(2), o, &out)
	if err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	if len(res.Phases) != 2 || res.Verified == 0 || res.Replicas != 3 || res.Threshold != 2 {
		t.Fatalf("result %+v", res)
	}
	for _, p := range res.Phases {
		if p.Proofs == 0 || p.Failed != 0 || p.PerSec <= 0 || p.P50Ms <= 0 || p.P50Ms > p.P90Ms || p.P90Ms > p.P99Ms {
			t.Fatalf("phase %+v", p)
		}
		// replica3 is down: no proof has every replica's signature.
		if p.AllSigned != 0 {
			t.Fatalf("phase %+v counts proofs signed by a down replica", p)
		}
	}
	for _, want := range []string{"phase", "throughput", "targets (3 replicas, threshold 2)", "proofs verified"} {
		if !strings.Contains(out.String(), want) {
			t.Fatalf("output lacks %q:\n%s", want, out.String())
		}
	}
}

func TestBenchProofsFailsWithoutQuorum(t *testing.T) {
	c, sks := memCluster(t, 1)
	agg, err := aggregator.New(c, &memReplicas{c: c, keys: sks, index: 1, down: 0}, aggregator.TestConfig(), nil)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(agg.Handler())
	defer srv.Close()
	o := proofsOpts{latencyDuration: 100 * time.Millisecond, duration: 100 * time.Millisecond, concurrency: 1}
	_, err = benchProofs(context.Background(), c, srv.URL, proofTargets(0), o, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "HTTP 424") {
		t.Fatalf("err %v, want the aggregator's 424", err)
	}
}
