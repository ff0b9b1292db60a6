package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"
)

// Defaults of the options below.
const (
	// DefaultTimeout bounds one HTTP exchange. A wait=finalized order takes
	// a few sequencer rounds (tens of milliseconds each), far below it.
	DefaultTimeout = 15 * time.Second
	// DefaultAnswerBytesMax bounds what is read from one answer. The largest
	// answer is a page of finalized batches: about seqapi.PageBytesMax of
	// bodies (more only to reach a proof), which JSON escaping can grow a
	// few times. A page that needs more room than this is refused rather
	// than buffered without limit.
	DefaultAnswerBytesMax = 64 << 20
	// DefaultAttemptTimeout bounds one attempt on one sequencer node (a
	// batch PUT, a probe): a few round trips even at 200 ms RTT, and small
	// beside a replica's 5 s send budget, so a silent node leaves time to
	// try the others within the same call.
	DefaultAttemptTimeout = time.Second
	// DefaultHedgeAfter is how long a read waits on one node before it asks
	// the next one too. A page read is one round trip (two on a new
	// connection); at 100 ms one-way delay that is 400 ms.
	DefaultHedgeAfter = 500 * time.Millisecond
	// DefaultBenchTime is how long a sequencer node that failed or lied is
	// tried last after its first failure; each further failure doubles it,
	// up to DefaultBenchMax.
	DefaultBenchTime = 2 * time.Second
	DefaultBenchMax  = time.Minute
	// DefaultLeaderRefresh is how often a Sequencer with WithLeaderFirst
	// asks who leads (and at once after the leader failed).
	DefaultLeaderRefresh = 2 * time.Second
	// DefaultPollMin and DefaultPollMax bound the wait between two polls of
	// an empty page while following: it starts short (batches finalize every
	// few tens of milliseconds) and doubles while nothing comes.
	DefaultPollMin = 20 * time.Millisecond
	DefaultPollMax = time.Second
	// DefaultChainPagesMax is how many pages Finalized reads from one node to
	// reach the index of a finality proof that lies beyond the first page.
	DefaultChainPagesMax = 8
	// DefaultLongPoll is how long a follower (Follow, Batches) asks a node to
	// hold a request while nothing new is finalized: well below
	// DefaultTimeout and the node's 10 s cap.
	DefaultLongPoll = 5 * time.Second
	// idleConnsPerHost is how many idle keep-alive connections the default
	// HTTP client keeps per server. A replica has a few batch sends, a
	// long-poll and its followers' reads in flight to each node at once;
	// net/http's default of 2 makes every request past the second dial
	// again, a fresh TCP handshake each time.
	idleConnsPerHost = 32
)

// defaultTransport is the keep-alive transport shared by every client built
// without WithHTTPClient (one pool per process, as net/http's own).
var defaultTransport = func() *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConnsPerHost = idleConnsPerHost
	t.MaxIdleConns = 16 * idleConnsPerHost
	return t
}()

// Option configures a Sequencer, an Orderbook or an Aggregator. Options that
// do not concern a client are ignored by it.
type Option func(*options)

type options struct {
	httpClient     *http.Client
	timeout        time.Duration
	answerBytesMax int64
	logger         *slog.Logger
	benchTime      time.Duration
	benchMax       time.Duration
	attemptTimeout time.Duration
	hedgeAfter     time.Duration
	spread         int
	leaderFirst    bool
	leaderRefresh  time.Duration
	pollMin        time.Duration
	pollMax        time.Duration
	chainPagesMax  int
	longPoll       time.Duration
	stream         bool
	scheme         string
	chainID        uint64
	now            func() time.Time
	// component names the kind of server in errors ("replica",
	// "aggregator", "sequencer node"); set by each client's constructor.
	component string
}

func buildOptions(opts []Option) options {
	o := options{
		timeout:        DefaultTimeout,
		answerBytesMax: DefaultAnswerBytesMax,
		benchTime:      DefaultBenchTime,
		benchMax:       DefaultBenchMax,
		attemptTimeout: DefaultAttemptTimeout,
		hedgeAfter:     DefaultHedgeAfter,
		leaderRefresh:  DefaultLeaderRefresh,
		pollMin:        DefaultPollMin,
		pollMax:        DefaultPollMax,
		chainPagesMax:  DefaultChainPagesMax,
		longPoll:       DefaultLongPoll,
		stream:         true,
		scheme:         "http",
		now:            time.Now,
	}
	for _, opt := range opts {
		opt(&o)
	}
	if o.httpClient == nil {
		o.httpClient = &http.Client{Timeout: o.timeout, Transport: defaultTransport}
	}
	if o.logger == nil {
		// A library stays quiet unless its user asks for logs.
		o.logger = slog.New(slog.DiscardHandler)
	}
	if o.pollMax < o.pollMin {
		o.pollMax = o.pollMin
	}
	if o.benchMax < o.benchTime {
		o.benchMax = o.benchTime
	}
	if o.spread < 0 {
		o.spread = -o.spread
	}
	if o.chainPagesMax < 1 {
		o.chainPagesMax = 1
	}
	return o
}

// WithHTTPClient uses hc for every request (its own Timeout applies;
// WithTimeout is then ignored).
func WithHTTPClient(hc *http.Client) Option { return func(o *options) { o.httpClient = hc } }

// WithTimeout bounds one HTTP exchange (default DefaultTimeout).
func WithTimeout(d time.Duration) Option { return func(o *options) { o.timeout = d } }

// WithAnswerBytesMax bounds the size of one answer read from a server
// (default DefaultAnswerBytesMax).
func WithAnswerBytesMax(n int64) Option { return func(o *options) { o.answerBytesMax = n } }

// WithLogger logs skipped nodes and retries (default: no logs).
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.logger = l } }

// WithBenchTime sets how long a sequencer node that failed or lied is tried
// only after the others after its first failure (default DefaultBenchTime)
// and the most that repeated failures make it (default DefaultBenchMax).
func WithBenchTime(first, max time.Duration) Option {
	return func(o *options) { o.benchTime, o.benchMax = first, max }
}

// WithAttemptTimeout bounds one attempt on one sequencer node (default
// DefaultAttemptTimeout). Keep it several round trips long, and well below
// the deadline of a whole Send, so that a silent node leaves time for the
// others.
func WithAttemptTimeout(d time.Duration) Option { return func(o *options) { o.attemptTimeout = d } }

// WithHedgeAfter sets how long a read waits on one sequencer node before
// it asks the next one as well (default DefaultHedgeAfter).
func WithHedgeAfter(d time.Duration) Option { return func(o *options) { o.hedgeAfter = d } }

// WithSpread makes the Sequencer start with node k mod N (in cluster
// order) instead of the first node, so that several clients (replicas)
// spread their requests over the nodes. Replica k passes k.
func WithSpread(k int) Option { return func(o *options) { o.spread = k } }

// WithLeaderFirst makes the Sequencer send to and read from the current
// leader first: a batch the leader takes is sequenced without a follower's
// post to the leader, and the leader knows of a finalization before the
// followers do, which saves a network delay each way. It learns who leads
// from GET /node/state and asks again every DefaultLeaderRefresh and when
// the leader fails. Everything read is still verified: a node that lies
// about the leader costs time, not safety.
func WithLeaderFirst() Option { return func(o *options) { o.leaderFirst = true } }

// WithPollInterval bounds the wait between polls while following an app
// that has nothing new (defaults DefaultPollMin, DefaultPollMax).
func WithPollInterval(min, max time.Duration) Option {
	return func(o *options) { o.pollMin, o.pollMax = min, max }
}

// WithLongPoll sets how long a follower (Follow, Batches) asks a node to
// hold a request while nothing new is finalized (default DefaultLongPoll;
// 0 polls instead, with the WithPollInterval backoff). Keep it below the
// HTTP timeout.
func WithLongPoll(d time.Duration) Option { return func(o *options) { o.longPoll = max(0, d) } }

// WithStream sets whether a follower (Follow, Batches) with a long-poll
// reads a stream of finalized pages (GET …/batches/finalized?stream=1, on
// by default): the node sends each page as it finalizes it, and an empty
// page every long-poll time as a heartbeat; a stream silent past the
// long-poll time and HedgeAfter is left for another node. Off, it
// long-polls: a finalization that happens while the next poll is on its
// way then waits for it.
func WithStream(on bool) Option { return func(o *options) { o.stream = on } }

// WithChainPagesMax bounds how many pages Finalized reads from one node to
// reach a finality proof beyond the first page (default
// DefaultChainPagesMax). Memory use is at most this many answers.
func WithChainPagesMax(n int) Option { return func(o *options) { o.chainPagesMax = n } }

// WithScheme sets the URL scheme used for the host:port addresses of a
// cluster file (default "http").
func WithScheme(s string) Option { return func(o *options) { o.scheme = s } }

// WithChainID makes an Orderbook sign under the EIP-712 domain of this
// chain id instead of asking the replica's GET /eip712 for it. A bridge or
// wallet that knows its chain should pass it: then a replica cannot make it
// sign for another chain.
func WithChainID(id uint64) Option { return func(o *options) { o.chainID = id } }

// withClock replaces the wall clock (tests).
func withClock(now func() time.Time) Option { return func(o *options) { o.now = now } }

// APIError is an answer with an HTTP error status from a node, replica or
// aggregator. Message is the server's {"error": "..."} text (or the raw
// body when it had no such field).
type APIError struct {
	// Server is the base URL (or node id) of the server that answered.
	Server string
	// Status is the HTTP status code.
	Status int
	// Message is what the server said was wrong.
	Message string
}

func (e *APIError) Error() string {
	return fmt.Sprintf("%s answered %d %s: %s", e.Server, e.Status, http.StatusText(e.Status), e.Message)
}

// UnreachableError is a server that could not be reached at all (refused,
// no route, unknown host, no answer before the timeout): nothing was
// decided, and the message names what was being asked.
type UnreachableError struct {
	// Component is the kind of server: "replica", "aggregator" or
	// "sequencer node".
	Component string
	// Server is its base URL.
	Server string
	// Err is the transport error.
	Err error
}

func (e *UnreachableError) Error() string {
	return fmt.Sprintf("the %s at %s is not reachable (%s)", e.Component, e.Server, transportCause(e.Err))
}

func (e *UnreachableError) Unwrap() error { return e.Err }

// transportCause is the end of a transport error, the part a person
// acts on ("connection refused"), without Go's "Post \"url\": dial tcp"
// prefix.
func transportCause(err error) string {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return "no answer in time"
	}
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Err != nil {
		return oe.Err.Error()
	}
	return err.Error()
}

// errorFromAnswer builds an APIError from a non-2xx answer body.
func errorFromAnswer(server string, status int, body []byte) *APIError {
	var e struct {
		Error string `json:"error"`
	}
	msg := strings.TrimSpace(string(body))
	if json.Unmarshal(body, &e) == nil && e.Error != "" {
		msg = e.Error
	}
	const messageMax = 512 // a message is for a human; a huge body is not
	if len(msg) > messageMax {
		msg = msg[:messageMax] + "…"
	}
	if msg == "" {
		msg = "(no message)"
	}
	return &APIError{Server: server, Status: status, Message: msg}
}

// exchange does one HTTP request and returns the body of a 2xx answer, an
// *APIError for any other status, or the transport error. The body read is
// bounded by answerBytesMax.
func exchange(ctx context.Context, o *options, server, method, url string, body []byte, contentType string) ([]byte, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", contentType)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := o.httpClient.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, err // the caller gave up or was interrupted
		}
		component := o.component
		if component == "" {
			component = "server"
		}
		return nil, &UnreachableError{Component: component, Server: server, Err: err}
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, o.answerBytesMax+1))
	if err != nil {
		return nil, fmt.Errorf("reading answer of %s: %w", server, err)
	}
	if int64(len(data)) > o.answerBytesMax {
		return nil, fmt.Errorf("answer of %s exceeds %d bytes", server, o.answerBytesMax)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return nil, errorFromAnswer(server, resp.StatusCode, data)
	}
	return data, nil
}

// getJSON GETs url and decodes a 2xx answer into out.
func getJSON(ctx context.Context, o *options, server, url string, out any) error {
	data, err := exchange(ctx, o, server, http.MethodGet, url, nil, "")
	if err != nil {
		return err
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("%s: malformed answer: %w", server, err)
	}
	return nil
}

// postJSON POSTs in as JSON and returns the raw 2xx answer.
func postJSON(ctx context.Context, o *options, server, url string, in any) ([]byte, error) {
	body, err := json.Marshal(in)
	if err != nil {
		return nil, err
	}
	return exchange(ctx, o, server, http.MethodPost, url, body, "application/json")
}

// isFinal reports whether an error from one server should stop a client
// from asking another: the request itself was refused (4xx), so another
// honest server would refuse it too. 408 and 429 are about the server's
// state, not the request, so another server may take it.
func isFinal(err error) bool {
	var ae *APIError
	if !errors.As(err, &ae) {
		return false
	}
	return ae.Status >= 400 && ae.Status < 500 && ae.Status != http.StatusRequestTimeout && ae.Status != http.StatusTooManyRequests
}
