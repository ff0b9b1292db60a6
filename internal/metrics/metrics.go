// Package metrics holds what the Prometheus metrics of the node, the
// replica and the aggregator share: the registry they are registered in,
// the /metrics handler, bucket layouts and a way to read a counter back.
//
// Each component owns a Metrics struct built with a promauto factory over
// a registry; NopMetrics builds the same struct over no registry (the
// values still count, nothing exports them), so library users and tests
// pay nothing for wiring. Only a component's setup (its cmd, or the
// sequencer node package) creates a Registry and serves it.
package metrics

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"
)

// Namespace prefixes every metric name (DESIGN §8).
const Namespace = "seqbook"

// NewRegistry returns a registry holding the Go runtime and process
// collectors, ready for a component's metrics.
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// Handler serves g in the Prometheus text format. A nil g serves an empty
// page (a component built with NopMetrics).
func Handler(g prometheus.Gatherer) http.Handler {
	if g == nil {
		g = prometheus.NewRegistry()
	}
	return promhttp.HandlerFor(g, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
}

// Registerer returns reg as a Registerer, or nil (no registration) when
// reg is nil: promauto.With(nil) builds metrics without registering them.
func Registerer(reg *prometheus.Registry) prometheus.Registerer {
	if reg == nil {
		return nil
	}
	return reg
}

// Bucket layouts, in seconds.
var (
	// FastSeconds spans 100 µs .. ~3 s: fsyncs, rounds, snapshot encodes.
	FastSeconds = prometheus.ExponentialBuckets(0.0001, 2, 16)
	// SlowSeconds spans 1 ms .. ~65 s: end-to-end latencies.
	SlowSeconds = prometheus.ExponentialBuckets(0.001, 2, 17)
)

// CounterValue reads a counter's current value (for the JSON state pages
// that show the same numbers to humans).
func CounterValue(c prometheus.Counter) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil || m.Counter == nil {
		return 0
	}
	return m.Counter.GetValue()
}

// HistogramSum reads a histogram's sum of observations and their count.
func HistogramSum(h prometheus.Histogram) (sum float64, count uint64) {
	var m dto.Metric
	if err := h.(prometheus.Metric).Write(&m); err != nil || m.Histogram == nil {
		return 0, 0
	}
	return m.Histogram.GetSampleSum(), m.Histogram.GetSampleCount()
}
