package replica

import (
	"net/http"
	"sync/atomic"
	"time"

	"github.com/gin-gonic/gin"
)

// liveState is what GET /ready reads beside the apply loop.
type liveState struct {
	running  atomic.Bool  // Run is running
	polledOK atomic.Int64 // unix ns of the follower's last successful fetch
}

// ReadyPollAgeMax is how old the follower's last successful fetch may be
// for the replica to call itself ready: well past the longest poll
// backoff, so one slow fetch does not flap the answer.
const ReadyPollAgeMax = 10 * time.Second

// initLive wires the metrics and the live feed (end of New, once the
// ledger is restored, before the replica is shared).
func (r *Replica) initLive() {
	r.prom = r.cfg.Metrics
	if r.prom == nil {
		r.prom = NopMetrics()
	}
	r.prom.registerSources(r)
	_, tradeSeq := r.ledger.eng.Counters()
	r.feed = newFeed(r.cfg.Feed, r.prom, tradeSeq)
}

// afterApply runs on the apply loop once a page is committed and its
// waiters are told. It never waits for a consumer: it records metrics and
// queues the live feed's messages.
func (r *Replica) afterApply(preps []prepared, applied []*Applied) {
	r.prom.observeApplied(preps, applied, time.Now())
	if len(applied) > 0 {
		r.publish(preps, applied)
	}
}

// liveRoutes adds the operator and live routes: GET /metrics, GET /ready,
// the live feed GET /ws and the web explorer (GET / and /explorer/).
func (r *Replica) liveRoutes(g *gin.Engine) {
	g.GET("/metrics", gin.WrapH(r.prom.Handler()))
	g.GET("/ready", r.getReady)
	g.GET("/ws", r.serveWS)
	r.explorerRoutes(g)
}

// Ready is GET /ready's answer.
type Ready struct {
	Ready   bool   `json:"ready"`
	Replica string `json:"replica"`
	Applied uint64 `json:"applied_index"`
	// Reason says why the replica is not ready (empty when it is).
	Reason string `json:"reason,omitempty"`
}

// readiness reports whether the replica follows the sequencer: its loops
// run and its follower fetched a verified page (or learned there was
// none) within ReadyPollAgeMax.
func (r *Replica) readiness(now time.Time) Ready {
	out := Ready{Replica: r.cfg.ID, Applied: r.Applied()}
	switch last := r.live.polledOK.Load(); {
	case !r.live.running.Load():
		out.Reason = "the replica is not running its apply loop"
	case last == 0:
		out.Reason = "no finalized batches fetched from the sequencer yet"
	case now.Sub(time.Unix(0, last)) > ReadyPollAgeMax:
		out.Reason = "the sequencer has not answered for " + now.Sub(time.Unix(0, last)).Round(time.Second).String()
	default:
		out.Ready = true
	}
	return out
}

func (r *Replica) getReady(c *gin.Context) {
	out := r.readiness(time.Now())
	status := http.StatusOK
	if !out.Ready {
		status = http.StatusServiceUnavailable
	}
	c.JSON(status, out)
}
