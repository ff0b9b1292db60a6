package replica

import (
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/seqbook/seqbook/internal/metrics"
)

// PromMetrics is what the replica exports on GET /metrics
// (docs/operations.md lists them). Counters the replica already keeps in
// Metrics are read from there at scrape time, so each number has one
// source.
type PromMetrics struct {
	reg     *prometheus.Registry   // nil: NopMetrics, nothing exported
	sources []prometheus.Collector // what registerSources registered for the current replica

	// OpsAccepted counts operations taken at the intake, by op kind.
	OpsAccepted *prometheus.CounterVec
	// OpsRejected counts refused operations by stage (intake: the HTTP
	// answer; apply: the deterministic outcome) and a bounded reason.
	OpsRejected *prometheus.CounterVec
	// Fetched is the last finalized index the follower fetched and
	// verified; Fetched - applied is the work in hand.
	Fetched prometheus.Gauge
	// ApplyLag is, for the last batch applied, the time from its leader
	// stamp to its commit here; ApplyDelay the same for every batch.
	ApplyLag   prometheus.Gauge
	ApplyDelay prometheus.Histogram
	BatchOps   prometheus.Histogram
	BatchBytes prometheus.Histogram
	Snapshot   prometheus.Histogram
	// SignedReads counts BLS-signed answers, by kind.
	SignedReads *prometheus.CounterVec

	// State attestations (docs/verification.md): the last index a quorum
	// of replicas (this one counted) attested the same digest for, and 1
	// while this replica's digest differs from a quorum's (it refuses
	// signed reads and rebuilds).
	AttestationChecked  prometheus.Gauge
	AttestationDiverged prometheus.Gauge

	// The live feed (GET /ws).
	FeedSubscribers  prometheus.Gauge
	FeedMessages     *prometheus.CounterVec // by channel
	FeedSlowClosed   prometheus.Counter
	FeedPublishDelay prometheus.Histogram
}

// NopMetrics returns metrics that count but are exported nowhere.
func NopMetrics() *PromMetrics { return newPromMetrics(nil) }

// PrometheusMetrics returns metrics registered in reg, served on GET
// /metrics once the replica that uses them is built.
func PrometheusMetrics(reg *prometheus.Registry) *PromMetrics { return newPromMetrics(reg) }

func newPromMetrics(reg *prometheus.Registry) *PromMetrics {
	f := promauto.With(metrics.Registerer(reg))
	opts := func(name, help string) prometheus.Opts {
		return prometheus.Opts{Namespace: metrics.Namespace, Subsystem: "replica", Name: name, Help: help}
	}
	hist := func(name, help string, b []float64) prometheus.Histogram {
		return f.NewHistogram(prometheus.HistogramOpts{Namespace: metrics.Namespace, Subsystem: "replica", Name: name, Help: help, Buckets: b})
	}
	return &PromMetrics{
		reg:         reg,
		OpsAccepted: f.NewCounterVec(prometheus.CounterOpts(opts("ops_accepted_total", "Operations accepted at the intake, by op.")), []string{"op"}),
		OpsRejected: f.NewCounterVec(prometheus.CounterOpts(opts("ops_rejected_total", "Operations refused, by stage (intake, apply) and reason.")), []string{"stage", "reason"}),
		Fetched:     f.NewGauge(prometheus.GaugeOpts(opts("fetched_index", "Last finalized batch index fetched and verified by the follower."))),
		ApplyLag:    f.NewGauge(prometheus.GaugeOpts(opts("apply_lag_seconds", "For the last applied batch: time from its leader stamp to its commit here."))),
		ApplyDelay:  hist("apply_delay_seconds", "Time from a batch's leader stamp to its commit here.", metrics.SlowSeconds),
		BatchOps:    hist("batch_ops", "Operations per applied batch.", prometheus.ExponentialBuckets(1, 2, 14)),
		BatchBytes:  hist("batch_bytes", "Bytes per applied batch.", prometheus.ExponentialBuckets(64, 4, 10)),
		Snapshot:    hist("snapshot_seconds", "Time to encode and store one state snapshot.", metrics.FastSeconds),
		SignedReads: f.NewCounterVec(prometheus.CounterOpts(opts("signed_reads_total", "BLS-signed answers served, by kind (balance, withdrawal).")), []string{"kind"}),

		AttestationChecked:  f.NewGauge(prometheus.GaugeOpts(opts("attestation_agreed_index", "Last index whose state digest a quorum of replicas attested the same as this one."))),
		AttestationDiverged: f.NewGauge(prometheus.GaugeOpts(opts("attestation_diverged", "1 while this replica's state digest differs from a quorum's (signed reads refused, rebuilding), else 0."))),

		FeedSubscribers:  f.NewGauge(prometheus.GaugeOpts(opts("ws_subscriptions", "Live feed subscriptions open."))),
		FeedMessages:     f.NewCounterVec(prometheus.CounterOpts(opts("ws_messages_total", "Live feed messages queued to subscribers, by channel.")), []string{"channel"}),
		FeedSlowClosed:   f.NewCounter(prometheus.CounterOpts(opts("ws_slow_closed_total", "Live feed connections closed because they fell behind."))),
		FeedPublishDelay: hist("ws_publish_seconds", "Time the apply loop spends handing one page to the live feed.", metrics.FastSeconds),
	}
}

// Handler serves the registry (empty for NopMetrics).
func (m *PromMetrics) Handler() http.Handler {
	if m.reg == nil {
		return metrics.Handler(nil) // a nil *Registry is not a nil Gatherer
	}
	return metrics.Handler(m.reg)
}

// registerSources exports what the replica keeps itself, read at scrape
// time. A process that rebuilds its replica (a damaged or diverged state)
// builds a new Replica on the same metrics: the previous replica's
// sources are unregistered first, so the names follow the new one.
func (m *PromMetrics) registerSources(r *Replica) {
	if m.reg == nil {
		return
	}
	for _, c := range m.sources {
		m.reg.Unregister(c)
	}
	m.sources = m.sources[:0]
	add := func(c prometheus.Collector) {
		m.reg.MustRegister(c)
		m.sources = append(m.sources, c)
	}
	gauge := func(name, help string, v func() float64) {
		add(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: metrics.Namespace, Subsystem: "replica", Name: name, Help: help}, v))
	}
	counter := func(name, help string, v func(Metrics) float64) {
		add(prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: metrics.Namespace, Subsystem: "replica", Name: name, Help: help},
			func() float64 { return v(r.Metrics()) }))
	}
	gauge("applied_index", "Last finalized batch index applied.", func() float64 { return float64(r.Applied()) })
	gauge("intake_pending", "Operations accepted and not yet applied.", func() float64 { return float64(r.in.count()) })
	gauge("intake_pending_max", "Bound on intake_pending (answers 429 past it).", func() float64 { return float64(r.cfg.PendingMax) })
	counter("batches_applied_total", "Finalized batches applied.", func(m Metrics) float64 { return float64(m.Applied) })
	counter("ops_applied_total", "Operations in applied batches.", func(m Metrics) float64 { return float64(m.OpsApplied) })
	counter("batches_sent_total", "Batches sent to the sequencer.", func(m Metrics) float64 { return float64(m.BatchesSent) })
	counter("send_failures_total", "Batch sends that failed on every node.", func(m Metrics) float64 { return float64(m.SendFailures) })
	counter("resent_total", "Operations sent again after ResendAfter.", func(m Metrics) float64 { return float64(m.Resent) })
	counter("poll_failures_total", "Failed fetches of finalized batches.", func(m Metrics) float64 { return float64(m.PollFailures) })
	counter("sigs_reused_total", "Applied operations whose signature check from the intake was reused.", func(m Metrics) float64 { return float64(m.SigsReused) })
	counter("commit_seconds_total", "Time spent committing applied batches to the store.", func(m Metrics) float64 { return m.CommitSeconds })
}

// observeApplied records a committed page: per batch its size, its delay
// from the leader stamp, and the apply-stage rejections.
func (m *PromMetrics) observeApplied(preps []prepared, applied []*Applied, now time.Time) {
	nowMs := now.UnixMilli()
	for i, a := range applied {
		m.BatchOps.Observe(float64(len(a.Outcomes)))
		m.BatchBytes.Observe(float64(len(preps[i].batch.Body)))
		d := max(float64(nowMs-int64(a.Timestamp))/1e3, 0)
		m.ApplyDelay.Observe(d)
		m.ApplyLag.Set(d)
		for _, o := range a.Outcomes {
			if o.Status == "rejected" {
				m.OpsRejected.WithLabelValues("apply", applyReason(o.Reason)).Inc()
			}
		}
	}
}

// observeIntake records the intake's answer to one operation. A pending
// one (202: its batch's fate is unknown, it stays in the outbox and will
// be sent) counts as accepted.
func (m *PromMetrics) observeIntake(op *Op, err error) {
	if err == nil || errors.Is(err, errPending) {
		m.OpsAccepted.WithLabelValues(op.Kind.String()).Inc()
		return
	}
	m.OpsRejected.WithLabelValues("intake", intakeReason(err)).Inc()
}

// intakeReason names an intake refusal by its HTTP answer: a small fixed
// set, so the label cannot grow.
func intakeReason(err error) string {
	var he *httpError
	if !errors.As(err, &he) {
		return "invalid"
	}
	switch he.status {
	case http.StatusUnauthorized:
		return "signature"
	case http.StatusConflict:
		return "duplicate"
	case http.StatusTooManyRequests:
		return "backlog_full"
	case http.StatusServiceUnavailable:
		return "send_failed"
	case http.StatusForbidden:
		if strings.HasPrefix(he.msg, "insufficient balance") {
			return "insufficient_balance"
		}
		return "forbidden"
	}
	return "invalid"
}

// applyReasons maps the ledger's rejection texts to label values, by the
// words they start with or contain (first match wins).
var applyReasons = []struct{ match, label string }{
	{"signature", "signature"},
	{"expired", "expired"},
	{"expiry", "expiry_too_far"},
	{"nonce", "nonce_used"},
	{"legacy", "legacy"},
	{"cancel:", "cancel"},
	{"withdraw:", "withdraw"},
	{"deposit:", "deposit"},
	{"insufficient", "insufficient_balance"},
	{"balance", "insufficient_balance"},
	{"market", "market"},
}

// applyReason names a deterministic rejection with a bounded label.
func applyReason(reason string) string {
	low := strings.ToLower(reason)
	for _, r := range applyReasons {
		if strings.Contains(low, r.match) {
			return r.label
		}
	}
	return "other"
}
