package aggregator

import (
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/seqbook/seqbook/internal/metrics"
)

// Metrics is what the aggregator exports on GET /metrics
// (docs/operations.md lists them).
type Metrics struct {
	reg *prometheus.Registry // nil: NopMetrics, nothing exported

	// Proofs counts proof requests answered, by kind (balance,
	// withdrawal) and result (ok, no_quorum, not_found, bad_request,
	// busy, error).
	Proofs *prometheus.CounterVec
	// ProofLatency is the time to answer a proof request, by kind.
	ProofLatency *prometheus.HistogramVec
	// NonSigners counts replicas left out of a proof, by replica and the
	// kind of problem (unreachable, disagrees, bad_signature…).
	NonSigners *prometheus.CounterVec
}

// NopMetrics returns metrics that count but are exported nowhere.
func NopMetrics() *Metrics { return newMetrics(nil) }

// PrometheusMetrics returns metrics registered in reg.
func PrometheusMetrics(reg *prometheus.Registry) *Metrics { return newMetrics(reg) }

func newMetrics(reg *prometheus.Registry) *Metrics {
	f := promauto.With(metrics.Registerer(reg))
	return &Metrics{
		reg: reg,
		Proofs: f.NewCounterVec(prometheus.CounterOpts{Namespace: metrics.Namespace, Subsystem: "aggregator", Name: "proofs_total",
			Help: "Proof requests answered, by kind and result."}, []string{"kind", "result"}),
		ProofLatency: f.NewHistogramVec(prometheus.HistogramOpts{Namespace: metrics.Namespace, Subsystem: "aggregator", Name: "proof_seconds",
			Help: "Time to answer a proof request, by kind.", Buckets: metrics.SlowSeconds}, []string{"kind"}),
		NonSigners: f.NewCounterVec(prometheus.CounterOpts{Namespace: metrics.Namespace, Subsystem: "aggregator", Name: "non_signers_total",
			Help: "Replicas left out of a proof attempt, by replica and problem."}, []string{"replica", "problem"}),
	}
}

// Handler serves the registry (empty for NopMetrics).
func (m *Metrics) Handler() http.Handler {
	if m.reg == nil {
		return metrics.Handler(nil) // a nil *Registry is not a nil Gatherer
	}
	return metrics.Handler(m.reg)
}

// observeProof is the middleware of the proof routes: it times the
// request and counts its result by the status answered. It also allows
// any origin to read the answer: proofs are public and carry their own
// verification, and the replicas' web explorer fetches them from
// another origin.
func (a *Aggregator) observeProof(kind string) gin.HandlerFunc {
	return func(c *gin.Context) {
		c.Header("Access-Control-Allow-Origin", "*")
		start := time.Now()
		c.Next()
		a.metrics.ProofLatency.WithLabelValues(kind).Observe(time.Since(start).Seconds())
		a.metrics.Proofs.WithLabelValues(kind, proofResult(c.Writer.Status())).Inc()
	}
}

func proofResult(status int) string {
	switch status {
	case http.StatusOK:
		return "ok"
	case http.StatusFailedDependency:
		return "no_quorum"
	case http.StatusNotFound:
		return "not_found"
	case http.StatusBadRequest:
		return "bad_request"
	case http.StatusServiceUnavailable:
		return "busy"
	}
	return "error_" + strconv.Itoa(status)
}
