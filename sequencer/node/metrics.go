package node

import (
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/seqbook/seqbook/internal/metrics"
	"github.com/seqbook/seqbook/sequencer/core"
	"github.com/seqbook/seqbook/sequencer/transport"
)

// PromMetrics is what the node exports on GET /metrics
// (docs/operations.md lists them). The loop updates the histograms and
// gauges; the node's own counters (Metrics), the core's, the BLS work and
// the transport's are exported as they are, read at scrape time or copied
// after each loop step, so each number has one source.
type PromMetrics struct {
	reg *prometheus.Registry // nil: NopMetrics, nothing exported

	// StoreSave is the duration of Store.Save: one fsynced transaction.
	StoreSave prometheus.Histogram
	// BatchFinality is the time from the leader's stamp on a batch to this
	// node seeing it final.
	BatchFinality prometheus.Histogram
	// RoundDuration is the time between consecutive advances of an app's
	// finalized index on this node: one finalize round in steady state.
	RoundDuration prometheus.Histogram

	View        prometheus.Gauge
	Leader      prometheus.Gauge // cluster index of the view's leader
	IsLeader    prometheus.Gauge
	Ready       prometheus.Gauge
	Finalized   *prometheus.GaugeVec // by app
	Sequenced   *prometheus.GaugeVec
	Locked      *prometheus.GaugeVec
	Pending     *prometheus.GaugeVec
	ViewChanges prometheus.Counter
	Disputes    prometheus.Counter
	Rounds      *prometheus.CounterVec // by kind: lock, finalize (as leader), shared_lock (as follower)
	Syncs       prometheus.Counter
	Resends     *prometheus.CounterVec // by kind: round, batch, push, sync, view_state, dispute

	// Loop only: the last copy of the core's counters (to add deltas),
	// each app's gauges (looked up once), and when each app's finalized
	// index last advanced.
	core       core.Metrics
	apps       map[string]appGauges
	lastFinal  map[string]uint64
	lastFinalT map[string]time.Time
}

type appGauges struct{ finalized, sequenced, locked, pending prometheus.Gauge }

// NopMetrics returns metrics that count but are exported nowhere.
func NopMetrics() *PromMetrics { return newMetrics(nil) }

// PrometheusMetrics returns metrics registered in reg (served on GET
// /metrics by the node's HTTP API).
func PrometheusMetrics(reg *prometheus.Registry) *PromMetrics { return newMetrics(reg) }

func newMetrics(reg *prometheus.Registry) *PromMetrics {
	f := promauto.With(metrics.Registerer(reg))
	counter := func(name, help string) prometheus.Counter {
		return f.NewCounter(prometheus.CounterOpts{Namespace: metrics.Namespace, Subsystem: "node", Name: name, Help: help})
	}
	gauge := func(name, help string) prometheus.Gauge {
		return f.NewGauge(prometheus.GaugeOpts{Namespace: metrics.Namespace, Subsystem: "node", Name: name, Help: help})
	}
	byApp := func(name, help string) *prometheus.GaugeVec {
		return f.NewGaugeVec(prometheus.GaugeOpts{Namespace: metrics.Namespace, Subsystem: "node", Name: name, Help: help}, []string{"app"})
	}
	hist := func(name, help string, b []float64) prometheus.Histogram {
		return f.NewHistogram(prometheus.HistogramOpts{Namespace: metrics.Namespace, Subsystem: "node", Name: name, Help: help, Buckets: b})
	}
	return &PromMetrics{
		reg:           reg,
		StoreSave:     hist("store_save_seconds", "Duration of one fsynced store transaction.", metrics.FastSeconds),
		BatchFinality: hist("batch_finality_seconds", "Time from a batch's leader timestamp to its finality on this node.", metrics.SlowSeconds),
		RoundDuration: hist("round_duration_seconds", "Time between consecutive advances of an app's finalized index (one finalize round).", metrics.FastSeconds),
		View:          gauge("view", "The node's current view."),
		Leader:        gauge("leader", "Cluster index of the current view's leader."),
		IsLeader:      gauge("is_leader", "1 when this node leads the current view."),
		Ready:         gauge("ready", "1 when the node follows an established leader (GET /node/ready)."),
		Finalized:     byApp("finalized_index", "Last finalized batch index, by app."),
		Sequenced:     byApp("sequenced_index", "Last batch index in this node's log, by app."),
		Locked:        byApp("locked_index", "Index of the highest lock certificate, by app."),
		Pending:       byApp("pending_batches", "Batches submitted here waiting to be sequenced, by app."),
		ViewChanges:   counter("view_changes_total", "Views entered."),
		Disputes:      counter("disputes_total", "Disputes this node signed (the leader failed it)."),
		Rounds: f.NewCounterVec(prometheus.CounterOpts{Namespace: metrics.Namespace, Subsystem: "node", Name: "rounds_total",
			Help: "Rounds completed (a quorum proof formed), by kind: lock and finalize as leader, shared_lock as a follower aggregating shared lock votes."}, []string{"kind"}),
		Syncs: counter("syncs_total", "Chain fetches started to catch up."),
		Resends: f.NewCounterVec(prometheus.CounterOpts{Namespace: metrics.Namespace, Subsystem: "node", Name: "resends_total",
			Help: "Requests sent again for want of an answer in time, by kind (round: per node asked again)."}, []string{"kind"}),
		apps:       map[string]appGauges{},
		lastFinal:  map[string]uint64{},
		lastFinalT: map[string]time.Time{},
	}
}

// Handler serves the registry (empty for NopMetrics).
func (m *PromMetrics) Handler() http.Handler {
	if m.reg == nil {
		return metrics.Handler(nil) // a nil *Registry is not a nil Gatherer
	}
	return metrics.Handler(m.reg)
}

// observeStatus copies the core's status and counters into the gauges and
// counters. Loop only (the core is not safe for concurrent use).
func (m *PromMetrics) observeStatus(s core.Status, c core.Metrics, now time.Time) {
	m.View.Set(float64(s.View))
	m.Leader.Set(float64(s.Leader))
	m.IsLeader.Set(b2f(s.Leader == s.Node))
	m.Ready.Set(b2f(s.Ready))
	for _, a := range s.Apps {
		g, ok := m.apps[a.App]
		if !ok {
			g = appGauges{m.Finalized.WithLabelValues(a.App), m.Sequenced.WithLabelValues(a.App),
				m.Locked.WithLabelValues(a.App), m.Pending.WithLabelValues(a.App)}
			m.apps[a.App] = g
		}
		g.finalized.Set(float64(a.Finalized))
		g.sequenced.Set(float64(a.Sequenced))
		g.locked.Set(float64(a.Locked))
		g.pending.Set(float64(a.Initialized))
		if last, seen := m.lastFinal[a.App]; !seen || a.Finalized > last {
			if t, ok := m.lastFinalT[a.App]; ok && seen {
				m.RoundDuration.Observe(now.Sub(t).Seconds())
			}
			m.lastFinal[a.App], m.lastFinalT[a.App] = a.Finalized, now
		}
	}
	prev := m.core
	m.core = c
	m.ViewChanges.Add(float64(c.ViewChanges - prev.ViewChanges))
	m.Disputes.Add(float64(c.DisputesSent - prev.DisputesSent))
	m.Rounds.WithLabelValues("lock").Add(float64(c.LockProofs - prev.LockProofs))
	m.Rounds.WithLabelValues("finalize").Add(float64(c.FinalizeProofs - prev.FinalizeProofs))
	m.Rounds.WithLabelValues("shared_lock").Add(float64(c.SharedLockProofs - prev.SharedLockProofs))
	m.Syncs.Add(float64(c.SyncsStarted - prev.SyncsStarted))
	m.Resends.WithLabelValues("round").Add(float64(c.RoundResends - prev.RoundResends))
	m.Resends.WithLabelValues("batch").Add(float64(c.BatchResends - prev.BatchResends))
	m.Resends.WithLabelValues("push").Add(float64(c.PushResends - prev.PushResends))
	m.Resends.WithLabelValues("sync").Add(float64(c.SyncResends - prev.SyncResends))
	m.Resends.WithLabelValues("view_state").Add(float64(c.ViewStateResends - prev.ViewStateResends))
	m.Resends.WithLabelValues("dispute").Add(float64(c.DisputeResends - prev.DisputeResends))
}

// registerSources exports counters kept elsewhere (the node's, the BLS
// work of its crypto, the transport's counters and peers), read at scrape
// time.
func (m *PromMetrics) registerSources(n *Node) {
	if m.reg == nil {
		return
	}
	crypto, tr := n.crypto, n.tr
	f := promauto.With(m.reg)
	// counterOf exports a uint64 counter kept elsewhere.
	counterOf := func(subsystem, name, help string, v func() uint64) {
		f.NewCounterFunc(prometheus.CounterOpts{Namespace: metrics.Namespace, Subsystem: subsystem, Name: name, Help: help},
			func() float64 { return float64(v()) })
	}
	nc := func(name, help string, v func() uint64) { counterOf("node", name, help, v) }
	nm := n.metrics
	nc("batches_accepted_total", "Batches PUT to this node and made durable.", nm.BatchesAccepted.Load)
	nc("batches_refused_total", "Batch PUTs refused (backlog full, bad app, queue full).", nm.BatchesRefused.Load)
	nc("batches_finalized_total", "Batches this node saw become final.", nm.BatchesFinalized.Load)
	nc("messages_stepped_total", "Peer messages handed to the protocol core.", nm.MessagesStepped.Load)
	nc("messages_invalid_total", "Peer messages dropped because they did not decode.", nm.MessagesInvalid.Load)
	nc("step_errors_total", "Peer messages the protocol core refused.", nm.StepErrors.Load)
	nc("readies_total", "Ready cycles (persist, send, advance) of the run loop.", nm.Readies.Load)
	nc("finalize_rounds_applied_total", "Finalize proofs this node applied (one per round that finalized something).", nm.Rounds.Load)
	bls := func(name, help string, read func(core.BLSWork) uint64) {
		nc(name, help, func() uint64 { return read(crypto.Work()) })
	}
	bls("bls_signs_total", "BLS signatures this node made.", func(w core.BLSWork) uint64 { return w.Signs })
	bls("bls_verifies_total", "Single BLS signatures checked.", func(w core.BLSWork) uint64 { return w.Verifies })
	bls("bls_aggregate_verifies_total", "Aggregate (quorum proof) BLS checks.", func(w core.BLSWork) uint64 { return w.AggregateVerifies })
	bls("bls_batch_verifies_total", "Multi-pairings that checked several signatures at once.", func(w core.BLSWork) uint64 { return w.BatchVerifies })
	bls("bls_aggregates_total", "BLS signature aggregations.", func(w core.BLSWork) uint64 { return w.Aggregates })
	if q, ok := tr.(interface{ Peers() []transport.PeerStatus }); ok {
		f.NewGaugeFunc(prometheus.GaugeOpts{Namespace: metrics.Namespace, Subsystem: "node", Name: "peers_connected",
			Help: "Peers with an authenticated QUIC connection up (ours to them or theirs to us)."},
			func() float64 {
				n := 0
				for _, p := range q.Peers() {
					if p.Outbound || p.Inbound {
						n++
					}
				}
				return float64(n)
			})
	}
	if q, ok := tr.(interface{ Metrics() *transport.Metrics }); ok {
		tm := q.Metrics()
		tc := func(name, help string, v func() uint64) { counterOf("transport", name, help, v) }
		tc("sent_messages_total", "Frames written to peers.", tm.SentMessages.Load)
		tc("sent_bytes_total", "Bytes written to peers.", tm.SentBytes.Load)
		tc("received_messages_total", "Frames received from peers.", tm.ReceivedMessages.Load)
		tc("received_bytes_total", "Bytes received from peers.", tm.ReceivedBytes.Load)
		tc("dropped_queue_full_total", "Frames dropped because a peer's queue was full.", tm.DroppedQueueFull.Load)
		tc("dropped_send_failed_total", "Frames dropped because sending failed.", tm.DroppedSendFailed.Load)
		tc("auth_rejected_total", "Connections refused at authentication.", tm.AuthRejected.Load)
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// observeFinality records, for each batch that became final, the time
// since its leader stamp.
func (m *PromMetrics) observeFinality(entries []core.Entry, now time.Time) {
	nowMs := now.UnixMilli()
	for _, e := range entries {
		if d := nowMs - int64(e.Timestamp); d >= 0 {
			m.BatchFinality.Observe(float64(d) / 1e3)
		}
	}
}

// metricsServer is the Backend side of GET /metrics (optional: test
// backends need not have it).
type metricsServer interface{ MetricsHandler() http.Handler }

// MetricsHandler serves the node's metrics (GET /metrics).
func (n *Node) MetricsHandler() http.Handler { return n.prom.Handler() }
