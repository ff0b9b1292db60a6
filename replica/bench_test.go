package replica

import (
	"crypto/ecdsa"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/seqbook/seqbook/client/keys"
)

// Benchmarks (go test -bench . -run XXX ./replica):
//
//	BenchmarkApplyVerified   the apply loop on decoded, already verified
//	                         batches: orders/s on one core (target ≥ 25,000)
//	BenchmarkVerifyOp        signature recovery per operation, one core
//	BenchmarkVerifyBatch     the same with the worker pool (all cores)
//	BenchmarkDecodeOp        JSON decoding + EIP-712 hashing per operation
//	BenchmarkApplyCommitBolt apply + one bbolt transaction (fsync) per batch
//	BenchmarkSnapshot        ledger snapshot and state digest with a deep book

const (
	benchTraders     = 64
	benchOrders      = 20_000
	benchBatchOrders = 200
)

var benchOnce struct {
	sync.Once
	bodies [][]byte
	gen    *Genesis
}

// benchStream signs a stream of limit and market orders from many traders
// around one price, so about half of them trade and the book stays a few
// hundred levels deep. Built once per process.
func benchStream(b *testing.B) ([][]byte, *Genesis) {
	benchOnce.Do(func() {
		rng := rand.New(rand.NewPCG(42, 42))
		ks := make([]*ecdsa.PrivateKey, benchTraders)
		g := &Genesis{}
		for i := range ks {
			ks[i] = keys.DeterministicTrader(fmt.Sprintf("bench-%d", i))
			g.Balances = append(g.Balances,
				GenesisBalance{Address: addr(ks[i]).Hex(), Token: "USDT", Amount: "1000000000"},
				GenesisBalance{Address: addr(ks[i]).Hex(), Token: "ETH", Amount: "1000000"})
		}
		nonces := make([]uint64, benchTraders)
		var reqs []any
		for n := 0; n < benchOrders; n++ {
			i := rng.IntN(benchTraders)
			nonces[i]++
			side := []string{"buy", "sell"}[rng.IntN(2)]
			typ := "limit"
			if rng.IntN(10) == 0 {
				typ = "market"
			}
			price := uint64(1900+rng.IntN(200)) * 1_000_000
			reqs = append(reqs, signOrder(b, ks[i], orderSpec{side: side, typ: typ, qty: uint64(1+rng.IntN(50)) * 10_000,
				price: price, nonce: nonces[i], expiry: testNowSec + 3000}))
			if len(reqs) == benchBatchOrders {
				benchOnce.bodies = append(benchOnce.bodies, batchOf(b, reqs...))
				reqs = nil
			}
		}
		benchOnce.gen = g
	})
	return benchOnce.bodies, benchOnce.gen
}

func preparedStream(b *testing.B, bodies [][]byte) []prepared {
	ts := uint64(testNowSec * 1000)
	var prev [32]byte
	out := make([]prepared, len(bodies))
	for i, body := range bodies {
		bt := Batch{Index: uint64(i + 1), Timestamp: ts, Body: body}
		bt.ChainingHash = NextChainingHash(prev, BatchHash(ts, body))
		prev = bt.ChainingHash
		out[i] = prepareBatch(testDomain(), bt, 0, nil)
	}
	return out
}

func BenchmarkApplyVerified(b *testing.B) {
	bodies, g := benchStream(b)
	preps := preparedStream(b, bodies)
	newLedger := func() *Ledger {
		l, err := NewLedger(DefaultLedgerConfig(), testDomain(), g)
		if err != nil {
			b.Fatal(err)
		}
		return l
	}
	l := newLedger()
	next := 0
	rejected := 0
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if next == len(preps) {
			b.StopTimer()
			l, next = newLedger(), 0
			b.StartTimer()
		}
		p := preps[next]
		a := l.ApplyBatch(p.batch, p.ops, p.batchErr, p.sigErrs)
		for _, o := range a.Outcomes {
			if o.Status == "rejected" {
				rejected++
			}
		}
		next++
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N*benchBatchOrders)/b.Elapsed().Seconds(), "orders/s")
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*benchBatchOrders), "ns/order")
	if rejected > b.N*benchBatchOrders/10 {
		b.Fatalf("%d of %d orders rejected: the stream does not measure matching", rejected, b.N*benchBatchOrders)
	}
}

func BenchmarkVerifyOp(b *testing.B) {
	bodies, _ := benchStream(b)
	ops, err := DecodeBatch(testDomain(), bodies[0])
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := ops[i%len(ops)].Op.Verify(); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N), "µs/op-verify")
}

func BenchmarkVerifyBatch(b *testing.B) {
	bodies, _ := benchStream(b)
	ops, err := DecodeBatch(testDomain(), bodies[0])
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		VerifyBatch(ops, 0)
	}
	b.ReportMetric(float64(b.N*len(ops))/b.Elapsed().Seconds(), "ops/s")
}

func BenchmarkDecodeOp(b *testing.B) {
	bodies, _ := benchStream(b)
	b.ResetTimer()
	n := 0
	for i := 0; i < b.N; i++ {
		ops, err := DecodeBatch(testDomain(), bodies[i%len(bodies)])
		if err != nil {
			b.Fatal(err)
		}
		n += len(ops)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(n), "ns/op-decode")
}

// BenchmarkApplyCommitBolt is the full per-batch cost on disk: apply a
// verified batch, then commit it (logged batch, snapshot every
// SnapshotEvery) in one bbolt transaction with fsync.
func BenchmarkApplyCommitBolt(b *testing.B) {
	bodies, g := benchStream(b)
	preps := preparedStream(b, bodies)
	const snapshotEvery = 1000
	setup := func() (*Ledger, *BoltStore) {
		l, err := NewLedger(DefaultLedgerConfig(), testDomain(), g)
		if err != nil {
			b.Fatal(err)
		}
		s, err := OpenBoltStore(b.TempDir(), BoltOptions{})
		if err != nil {
			b.Fatal(err)
		}
		return l, s
	}
	l, s := setup()
	next := 0
	var commitTime time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if next == len(preps) {
			b.StopTimer()
			s.Close()
			l, s = setup()
			next = 0
			b.StartTimer()
		}
		p := preps[next]
		l.ApplyBatch(p.batch, p.ops, p.batchErr, p.sigErrs)
		c := &Commit{Batches: []Batch{p.batch}}
		if l.index%snapshotEvery == 0 {
			snap, err := l.MarshalSnapshot()
			if err != nil {
				b.Fatal(err)
			}
			c.Snapshot, c.SnapshotIndex = snap, l.index
		}
		t0 := time.Now()
		if err := s.Commit(c); err != nil {
			b.Fatal(err)
		}
		commitTime += time.Since(t0)
		next++
	}
	b.StopTimer()
	s.Close()
	b.ReportMetric(float64(b.N*benchBatchOrders)/b.Elapsed().Seconds(), "orders/s")
	b.ReportMetric(float64(commitTime.Microseconds())/float64(b.N), "µs/commit")
}

// BenchmarkSnapshot measures the periodic costs with the book the stream
// leaves: a full ledger snapshot and the state digest.
func BenchmarkSnapshot(b *testing.B) {
	bodies, g := benchStream(b)
	preps := preparedStream(b, bodies)
	l, err := NewLedger(DefaultLedgerConfig(), testDomain(), g)
	if err != nil {
		b.Fatal(err)
	}
	for _, p := range preps {
		l.ApplyBatch(p.batch, p.ops, p.batchErr, p.sigErrs)
	}
	b.Run("marshal", func(b *testing.B) {
		var size int
		for i := 0; i < b.N; i++ {
			s, err := l.MarshalSnapshot()
			if err != nil {
				b.Fatal(err)
			}
			size = len(s)
		}
		b.ReportMetric(float64(size), "bytes")
		b.ReportMetric(float64(l.eng.OpenOrderCount()), "open-orders")
		b.ReportMetric(float64(len(l.records)), "records")
	})
	b.Run("digest", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			l.digestAt = ^uint64(0) // defeat the cache
			l.Digest()
		}
	})
	// The integrity layer's cost per snapshot: sealing (a CRC-32C per
	// section) and opening (checking them) the same bytes.
	raw, err := l.MarshalSnapshot()
	if err != nil {
		b.Fatal(err)
	}
	d, _ := l.Digest()
	b.Run("seal+open", func(b *testing.B) {
		b.SetBytes(int64(len(raw)))
		for i := 0; i < b.N; i++ {
			if _, err := openSnapshot(sealSnapshot(l.index, d, raw)); err != nil {
				b.Fatal(err)
			}
		}
	})
}
