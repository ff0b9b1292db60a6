package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/seqbook/seqbook/client/seqapi"
	"github.com/seqbook/seqbook/sequencer/wire"
)

// Errors a Backend returns that the API maps to status codes.
var (
	// ErrBacklogFull: the node holds as many pending batches as it may
	// (for this app or in total); the client should retry later (429).
	ErrBacklogFull = errors.New("backlog full, retry later")
	// ErrNotRunning: the node is starting or stopping (503).
	ErrNotRunning = errors.New("node is not running")
)

// Backend is what the HTTP API needs from the node. The node implements it;
// tests can drive the API with their own.
type Backend interface {
	// NodeID is this node's id in the cluster file.
	NodeID() string
	// Submit hands one batch (already checked: valid app, valid body) to
	// the protocol. It returns once the protocol took it or refused it.
	Submit(ctx context.Context, app string, body []byte) error
	// FinalizedAfter returns a page of finalized batches after index
	// `after` and the proof covering them (seqapi.FinalizedPage).
	FinalizedAfter(app string, after uint64) (seqapi.FinalizedPage, error)
	// LastFinalized returns the last finalized batch and its proof.
	LastFinalized(app string) (seqapi.FinalizedPage, error)
	// FinalizedSignal returns a channel closed the next time the node
	// stores a finalization (of any app): long-polls of
	// GET …/batches/finalized?wait_ms= wake on it.
	FinalizedSignal() <-chan struct{}
	// Stopping is closed when the node begins to stop, so long-polls
	// answer at once instead of holding the graceful shutdown.
	Stopping() <-chan struct{}
	// State is the node's view, leader and per-app indexes.
	State() seqapi.NodeState
	// Ready reports whether the node runs its protocol loop.
	Ready() bool
}

// HTTPConfig bounds the HTTP server.
type HTTPConfig struct {
	// BodyBytesMax is the largest PUT body; DESIGN §4 fixes 1 MiB.
	BodyBytesMax int64
	// SubmitTimeout bounds how long a PUT waits for the protocol loop to
	// take the batch before answering 503.
	SubmitTimeout time.Duration
	// ReadHeaderTimeout, ReadTimeout, WriteTimeout, IdleTimeout are the
	// net/http server's; they keep slow clients from holding connections.
	ReadHeaderTimeout time.Duration
	ReadTimeout       time.Duration
	WriteTimeout      time.Duration
	IdleTimeout       time.Duration
	// HeaderBytesMax bounds request headers.
	HeaderBytesMax int
	// FinalizedWaitMax caps ?wait_ms= of GET …/batches/finalized (a
	// larger value is lowered to it). It stays well below WriteTimeout,
	// so a held answer is always written.
	FinalizedWaitMax time.Duration
	// StreamMax bounds one stream of finalized pages (?stream=1): the
	// client then opens another, so no connection is held forever.
	StreamMax time.Duration
	// LongPollsMax bounds the finalized-batch requests held waiting at
	// once (each holds a connection and a goroutine); past it a request
	// is answered at once, as without wait_ms.
	LongPollsMax int
	// Sources bounds the batches each source may PUT (429 past them).
	Sources SourceLimits
	// Now is the limiter's clock (time.Now when nil); tests set it.
	Now func() time.Time
}

// DefaultHTTPConfig returns the production bounds.
func DefaultHTTPConfig() HTTPConfig {
	return HTTPConfig{
		BodyBytesMax:      wire.MaxBatchBytes,
		SubmitTimeout:     5 * time.Second,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       60 * time.Second,
		HeaderBytesMax:    64 << 10,
		FinalizedWaitMax:  10 * time.Second,
		StreamMax:         5 * time.Minute,
		LongPollsMax:      1024,
		Sources:           DefaultSourceLimits(),
	}
}

// ValidateBasic checks the bounds.
func (c *HTTPConfig) ValidateBasic() error {
	switch {
	case c.BodyBytesMax < 1 || c.BodyBytesMax > wire.MaxBatchBytes:
		return fmt.Errorf("http: BodyBytesMax %d outside 1..%d", c.BodyBytesMax, wire.MaxBatchBytes)
	case c.SubmitTimeout <= 0 || c.ReadHeaderTimeout <= 0 || c.ReadTimeout <= 0 || c.WriteTimeout <= 0 || c.IdleTimeout <= 0:
		return errors.New("http: timeouts must be positive")
	case c.HeaderBytesMax < 1024:
		return errors.New("http: HeaderBytesMax below 1 KiB")
	case c.FinalizedWaitMax < 0 || c.FinalizedWaitMax > c.WriteTimeout/2:
		return fmt.Errorf("http: FinalizedWaitMax %v must be in [0, WriteTimeout/2 = %v]", c.FinalizedWaitMax, c.WriteTimeout/2)
	case c.StreamMax <= 0:
		return errors.New("http: StreamMax must be positive")
	case c.LongPollsMax < 0:
		return errors.New("http: LongPollsMax is negative")
	}
	return c.Sources.ValidateBasic(c.BodyBytesMax)
}

// NewHandler builds the node's HTTP API (DESIGN §4) over a backend.
func NewHandler(b Backend, cfg HTTPConfig, log *slog.Logger) http.Handler {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	r := gin.New()
	r.HandleMethodNotAllowed = true
	r.Use(gin.CustomRecovery(func(c *gin.Context, err any) {
		log.Error("http handler panicked", "path", c.Request.URL.Path, "panic", fmt.Sprint(err))
		jsonError(c, http.StatusInternalServerError, "internal error")
	}))
	h := &api{b: b, cfg: cfg, log: log, longPolls: make(chan struct{}, cfg.LongPollsMax),
		limiter: newSourceLimiter(cfg.Sources), now: cfg.Now}
	if h.now == nil {
		h.now = time.Now
	}
	r.PUT("/node/:app/batches", h.putBatch)
	r.GET("/node/:app/batches/finalized", h.getFinalized)
	r.GET("/node/:app/batches/finalized/last", h.getLast)
	r.GET("/node/state", h.getState)
	r.GET("/node/ready", h.getReady)
	if m, ok := b.(metricsServer); ok {
		r.GET("/metrics", gin.WrapH(m.MetricsHandler()))
	}
	r.NoRoute(func(c *gin.Context) {
		jsonError(c, http.StatusNotFound, "no such route: "+c.Request.Method+" "+c.Request.URL.Path)
	})
	r.NoMethod(func(c *gin.Context) {
		jsonError(c, http.StatusMethodNotAllowed, "method "+c.Request.Method+" not allowed on "+c.Request.URL.Path)
	})
	return r
}

// NewHTTPServer wraps the handler in a server with the configured bounds.
func NewHTTPServer(addr string, h http.Handler, cfg HTTPConfig) *http.Server {
	return &http.Server{
		Addr:              addr,
		Handler:           h,
		ReadHeaderTimeout: cfg.ReadHeaderTimeout,
		ReadTimeout:       cfg.ReadTimeout,
		WriteTimeout:      cfg.WriteTimeout,
		IdleTimeout:       cfg.IdleTimeout,
		MaxHeaderBytes:    cfg.HeaderBytesMax,
	}
}

func init() { gin.SetMode(gin.ReleaseMode) }

type api struct {
	b   Backend
	cfg HTTPConfig
	log *slog.Logger
	// longPolls holds one token per finalized-batch request waiting
	// (bound: cfg.LongPollsMax).
	longPolls chan struct{}
	limiter   *sourceLimiter
	now       func() time.Time
}

func jsonError(c *gin.Context, status int, msg string) {
	c.AbortWithStatusJSON(status, seqapi.Error{Error: msg})
}

// appParam reads and checks the {app} path segment.
func appParam(c *gin.Context) (string, bool) {
	app := c.Param("app")
	if err := wire.ValidateApp(app); err != nil {
		jsonError(c, http.StatusBadRequest, "app: "+err.Error())
		return "", false
	}
	return app, true
}

func (h *api) putBatch(c *gin.Context) {
	app, ok := appParam(c)
	if !ok {
		return
	}
	body, status, err := readBatchBody(c.Request, h.cfg.BodyBytesMax)
	if err != nil {
		jsonError(c, status, err.Error())
		return
	}
	// Charged after the body is read and checked, so the byte bucket
	// counts real bytes; a refused body costs nothing (it is bounded by
	// BodyBytesMax and the server's timeouts).
	src := sourceOf(c.Request.RemoteAddr)
	if ok, wait, why := h.limiter.allow(src, int64(len(body)), h.now()); !ok {
		c.Header("Retry-After", strconv.Itoa(int(max(1, (wait+time.Second-1)/time.Second))))
		jsonError(c, http.StatusTooManyRequests, fmt.Sprintf("rate limit for source %s: %s; retry in %s", src, why, wait))
		return
	}
	ctx, cancel := context.WithTimeout(c.Request.Context(), h.cfg.SubmitTimeout)
	defer cancel()
	switch err := h.b.Submit(ctx, app, body); {
	case err == nil:
		c.JSON(http.StatusOK, seqapi.Accepted{Status: "accepted"})
	case errors.Is(err, ErrBacklogFull):
		c.Header("Retry-After", "1")
		jsonError(c, http.StatusTooManyRequests, err.Error())
	case errors.Is(err, ErrNotRunning), errors.Is(err, context.DeadlineExceeded):
		jsonError(c, http.StatusServiceUnavailable, "node busy or not running: "+err.Error())
	case errors.Is(err, context.Canceled):
		// The client went away; nobody reads the answer.
		c.Abort()
	default:
		jsonError(c, http.StatusBadRequest, err.Error())
	}
}

// readBatchBody reads a PUT body of at most max bytes and checks it is a
// batch (DESIGN §4: valid UTF-8, ≤ 1 MiB). It returns the status to answer
// with when it refuses.
func readBatchBody(r *http.Request, max int64) ([]byte, int, error) {
	if r.ContentLength > max {
		return nil, http.StatusRequestEntityTooLarge, fmt.Errorf("batch of %d bytes exceeds the limit of %d bytes", r.ContentLength, max)
	}
	// Read one byte past the limit to tell "exactly max" from "more".
	body, err := io.ReadAll(io.LimitReader(r.Body, max+1))
	if err != nil {
		return nil, http.StatusBadRequest, fmt.Errorf("reading body: %v", err)
	}
	if int64(len(body)) > max {
		return nil, http.StatusRequestEntityTooLarge, fmt.Errorf("batch exceeds the limit of %d bytes", max)
	}
	if err := wire.ValidateBody(body); err != nil {
		return nil, http.StatusBadRequest, err
	}
	return body, 0, nil
}

// parseAfter reads the ?after= query: a decimal index, 0 when absent.
func parseAfter(q string, present bool) (uint64, error) {
	return parseUintQuery("after", q, present, "a batch index", "0 for the start")
}

// parseUintQuery reads a decimal uint64 query parameter (0 when absent);
// its errors name the parameter, what it holds and how to ask for zero.
func parseUintQuery(name, q string, present bool, what, zero string) (uint64, error) {
	if !present {
		return 0, nil
	}
	if q == "" {
		return 0, fmt.Errorf("%s: empty; give %s (%s)", name, what, zero)
	}
	n, err := strconv.ParseUint(q, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%s: %q is not %s (a decimal integer ≥ 0)", name, q, what)
	}
	return n, nil
}

func (h *api) getFinalized(c *gin.Context) {
	app, ok := appParam(c)
	if !ok {
		return
	}
	for _, name := range []string{"after", "wait_ms", "stream"} {
		if vals := c.QueryArray(name); len(vals) > 1 {
			jsonError(c, http.StatusBadRequest, name+": given more than once")
			return
		}
	}
	raw, present := c.GetQuery("after")
	after, err := parseAfter(raw, present)
	if err != nil {
		jsonError(c, http.StatusBadRequest, err.Error())
		return
	}
	raw, present = c.GetQuery("wait_ms")
	wait, err := parseWaitMs(raw, present, h.cfg.FinalizedWaitMax)
	if err != nil {
		jsonError(c, http.StatusBadRequest, err.Error())
		return
	}
	raw, present = c.GetQuery("stream")
	stream, err := parseStream(raw, present)
	if err != nil {
		jsonError(c, http.StatusBadRequest, err.Error())
		return
	}
	if stream {
		h.streamFinalized(c, app, after, wait)
		return
	}
	if wait > 0 {
		if release := h.holdSlot(); release != nil {
			defer release()
		} else {
			wait = 0 // too many held: answer at once, the client asks again
		}
	}
	held := false
	hold := func() {
		// The answer will wait: send the status and headers now, so the
		// client sees this node is alive and holding the request, and
		// does not race another node for it (a race's loser is cancelled,
		// which closes its connection: a new one for every poll).
		held = true
		c.Header("Content-Type", "application/json; charset=utf-8")
		c.Status(http.StatusOK)
		c.Writer.WriteHeaderNow()
		c.Writer.Flush()
	}
	page, err := h.finalizedWithin(c.Request.Context(), app, after, wait, hold)
	if err != nil {
		h.log.Error("reading finalized batches", "app", app, "after", after, "err", err)
		if held {
			// The status is sent: an empty body is what tells the client
			// this answer is no page (it asks another node).
			c.Abort()
			return
		}
		jsonError(c, http.StatusInternalServerError, "reading finalized batches failed")
		return
	}
	if page == nil {
		c.Abort() // the client went away; nobody reads the answer
		return
	}
	c.JSON(http.StatusOK, page)
}

// holdSlot takes one of the LongPollsMax slots of held finalized-batch
// requests (long-polls and streams) and returns its release; nil when all
// are taken.
func (h *api) holdSlot() (release func()) {
	select {
	case h.longPolls <- struct{}{}:
		return func() { <-h.longPolls }
	default:
		return nil
	}
}

// parseStream reads the ?stream= query: 1 (or true) asks for a stream of
// pages, 0 (or false, or absent) for one page.
func parseStream(q string, present bool) (bool, error) {
	if !present {
		return false, nil
	}
	switch q {
	case "1", "true":
		return true, nil
	case "0", "false":
		return false, nil
	}
	return false, fmt.Errorf("stream: %q is neither 1 nor 0 (1 streams pages as they are finalized)", q)
}

// streamFinalized answers GET …/batches/finalized?stream=1: a stream of
// pages, one JSON object per line, each the answer a plain request with
// the stream's position as `after` would get. The first page goes at
// once (empty when nothing after `after` is final: it then carries the
// last proof, and says the node is alive); then a page every time the node
// finalizes more, and an empty page whenever nothing came for heartbeat
// (wait_ms, at most FinalizedWaitMax; the cap when 0), which tells the
// client the node is still there. A follower so learns each finalization
// one network delay after it, not a long-poll's round trip later. The
// stream ends after StreamMax, when the node stops or the client goes; the
// client opens another from where it is. A stream holds a long-poll slot;
// without a free one it ends after its first page.
func (h *api) streamFinalized(c *gin.Context, app string, after uint64, heartbeat time.Duration) {
	if heartbeat <= 0 {
		heartbeat = h.cfg.FinalizedWaitMax
	}
	release := h.holdSlot()
	slot := release != nil
	if slot {
		defer release()
	}
	rc := http.NewResponseController(c.Writer)
	c.Header("Content-Type", "application/x-ndjson")
	c.Status(http.StatusOK)
	ctx := c.Request.Context()
	end := time.NewTimer(h.cfg.StreamMax)
	defer end.Stop()
	enc := json.NewEncoder(c.Writer)
	wait := time.Duration(0) // the first page goes at once
	for {
		page, err := h.finalizedWithin(ctx, app, after, wait, nil)
		if err != nil {
			// The status is sent: ending the stream is what tells the
			// client (it opens another, here or at another node).
			h.log.Error("reading finalized batches", "app", app, "after", after, "err", err)
			return
		}
		if page == nil {
			return // the client went away
		}
		_ = rc.SetWriteDeadline(time.Now().Add(h.cfg.WriteTimeout))
		if err := enc.Encode(page); err != nil {
			return
		}
		if err := rc.Flush(); err != nil {
			return
		}
		if n := len(page.Batches); n > 0 {
			after = page.Batches[n-1].Index
		}
		if !slot {
			return
		}
		select {
		case <-end.C:
			return
		case <-h.b.Stopping():
			return
		default:
		}
		wait = heartbeat
	}
}

// finalizedWithin reads the page after `after`; while it is empty it waits,
// up to wait, for the node to finalize more, then answers what it has (an
// empty page when nothing came). hold is called once, before the first
// wait. A nil page means ctx ended.
func (h *api) finalizedWithin(ctx context.Context, app string, after uint64, wait time.Duration, hold func()) (*seqapi.FinalizedPage, error) {
	var deadline <-chan time.Time
	if wait > 0 {
		t := time.NewTimer(wait)
		defer t.Stop()
		deadline = t.C
	}
	for {
		// The signal is taken before the read: a finalization stored
		// between the two still wakes this request.
		next := h.b.FinalizedSignal()
		page, err := h.b.FinalizedAfter(app, after)
		if err != nil || len(page.Batches) > 0 || deadline == nil {
			return &page, err
		}
		if hold != nil {
			hold()
			hold = nil
		}
		select {
		case <-next:
		case <-deadline:
			deadline = nil // one last read, then answer
		case <-h.b.Stopping():
			deadline = nil
		case <-ctx.Done():
			return nil, nil
		}
	}
}

func (h *api) getLast(c *gin.Context) {
	app, ok := appParam(c)
	if !ok {
		return
	}
	page, err := h.b.LastFinalized(app)
	if err != nil {
		h.log.Error("reading last finalized batch", "app", app, "err", err)
		jsonError(c, http.StatusInternalServerError, "reading the last finalized batch failed")
		return
	}
	c.JSON(http.StatusOK, page)
}

func (h *api) getState(c *gin.Context) {
	c.JSON(http.StatusOK, h.b.State())
}

func (h *api) getReady(c *gin.Context) {
	r := seqapi.Ready{Ready: h.b.Ready(), Node: h.b.NodeID()}
	status := http.StatusOK
	if !r.Ready {
		status = http.StatusServiceUnavailable
	}
	c.JSON(status, r)
}
