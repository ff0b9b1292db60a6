package intakebench

import (
	"context"
	"testing"
)

// Both modes place and apply every order (Run checks each answer and waits
// for the open orders to appear).
func TestRunBothModes(t *testing.T) {
	for _, batch := range []int{0, 50} {
		r, err := Run(context.Background(), Options{Orders: 200, Batch: batch, Concurrency: 4, Traders: 4})
		if err != nil {
			t.Fatalf("batch %d: %v", batch, err)
		}
		want := 200
		if batch > 1 {
			want = 4
		}
		if r.Orders != 200 || r.Requests != want || r.Seconds <= 0 {
			t.Fatalf("batch %d: %+v", batch, r)
		}
	}
	if _, err := Run(context.Background(), Options{Orders: 10, Batch: 101, Concurrency: 1, Traders: 1}); err == nil {
		t.Fatal("a batch over 100 was taken")
	}
}

func benchmarkIntake(b *testing.B, batch int) {
	var orders int
	var cpu, secs float64
	for b.Loop() {
		r, err := Run(context.Background(), Options{Orders: 2000, Batch: batch, Concurrency: 8, Traders: 16})
		if err != nil {
			b.Fatal(err)
		}
		orders += r.Orders
		cpu += r.CPUSeconds
		secs += r.Seconds
	}
	b.ReportMetric(cpu*1e6/float64(orders), "cpu-µs/order")
	b.ReportMetric(float64(orders)/secs, "orders/s")
}

// go test ./internal/intakebench -bench . -benchtime 3x
func BenchmarkIntakeSingle(b *testing.B)   { benchmarkIntake(b, 1) }
func BenchmarkIntakeBatch100(b *testing.B) { benchmarkIntake(b, 100) }
