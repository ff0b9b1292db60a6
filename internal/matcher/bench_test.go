package matcher_test

import (
	"testing"

	"github.com/seqbook/seqbook/internal/matcher"
	"github.com/seqbook/seqbook/internal/matcher/benchload"
)

// BenchmarkPlace measures one limit order through the matcher on the
// benchload workload (10K resting orders, then orders over 101 ticks, 1–10
// lots, 1000 funded accounts, reservations on). Order generation is outside
// the timer. It reports orders/s and trades per order.
//
//	go test ./internal/matcher -run '^$' -bench Place -benchtime 1000000x
func BenchmarkPlace(b *testing.B) {
	cfg := benchload.DefaultConfig()
	w := benchload.New(cfg)
	e, err := w.Setup()
	if err != nil {
		b.Fatal(err)
	}
	var res matcher.PlaceResult
	orders := make([]matcher.Order, 0, benchload.ChunkOrders)
	trades := 0
	b.ReportAllocs()
	b.ResetTimer()
	for done := 0; done < b.N; {
		b.StopTimer()
		orders = w.Next(orders[:0], min(benchload.ChunkOrders, b.N-done))
		b.StartTimer()
		for i := range orders {
			if err := e.PlaceInto(orders[i], &res); err == nil {
				trades += len(res.Trades)
			}
		}
		done += len(orders)
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "orders/s")
	b.ReportMetric(float64(trades)/float64(b.N), "trades/order")
}

// BenchmarkDigest measures the per-batch state digest on the set-up book
// (10K resting orders, 1000 accounts).
func BenchmarkDigest(b *testing.B) {
	e, err := benchload.New(benchload.DefaultConfig()).Setup()
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		e.Digest()
	}
}

func TestBenchloadSmall(t *testing.T) {
	cfg := benchload.DefaultConfig()
	cfg.Resting, cfg.Orders = 200, 5000
	r, err := benchload.Run(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if r.Orders != 5000 || r.Trades == 0 || r.Rejected != 0 || r.OrdersPerSecond() <= 0 {
		t.Fatalf("%+v", r)
	}
}
