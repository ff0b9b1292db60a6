package replica

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// A process that rebuilds its replica (damaged or diverged state) builds a
// second Replica on the same metrics: that must not panic on a duplicate
// registration, and the exported sources must follow the new replica.
func TestMetricsFollowARebuiltReplica(t *testing.T) {
	clock := newClock()
	reg := prometheus.NewRegistry()
	cfg := testConfig("replica1", clock)
	cfg.Metrics = PrometheusMetrics(reg)
	seq := NewMemSequencer(clock.Ms)
	first, err := New(cfg, seq, NewMemStore())
	if err != nil {
		t.Fatal(err)
	}
	first.Close()
	second, err := New(cfg, seq, NewMemStore())
	if err != nil {
		t.Fatalf("second replica on the same metrics: %v", err)
	}
	defer second.Close()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, f := range families {
		if f.GetName() == "seqbook_replica_applied_index" {
			found = len(f.GetMetric()) == 1
		}
	}
	if !found {
		t.Fatal("seqbook_replica_applied_index is not exported exactly once after the rebuild")
	}
}
