package aggregator

import (
	"context"
	"testing"

	"github.com/seqbook/seqbook/client/eip712"
)

// BenchmarkBalanceProof is one whole proof over HTTP against three fake
// replicas on this machine (their signing included): both rounds, three
// signature checks, aggregation and the self-check.
func BenchmarkBalanceProof(b *testing.B) {
	tn := newTestNet(b, 3, nil)
	tn.ledger.set(1, alice, "USDT", 1000_000000)
	a := tn.aggregator(b, nil)
	ctx := context.Background()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := a.Balance(ctx, alice, "USDT"); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkDecide is the CPU part alone: checking three signed shares and
// aggregating them.
func BenchmarkDecide(b *testing.B) {
	tn := newTestNet(b, 3, nil)
	d := tn.c.Domain.Digest(&eip712.Balance{App: "orderbook", Account: alice, Token: "USDT", Balance: 5, Index: 1})
	shares := make([]share, 3)
	for i := range shares {
		shares[i] = share{replica: i, digest: d, sig: tn.keys[i].Sign(d), value: "balance 0.000005 at index 1"}
	}
	v := newVerifier(tn.c)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if dec := decide(tn.c, v, shares); !dec.ok {
			b.Fatal("no quorum")
		}
	}
}
