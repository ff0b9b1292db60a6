package client

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"iter"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/seqbook/seqbook/client/cluster"
	"github.com/seqbook/seqbook/client/seqapi"
)

// Sequencer reads and writes an app's batches through the sequencer nodes
// of a cluster, trusting none of them: every batch it returns is checked
// against the cluster's node keys (see Finalized). It is safe for
// concurrent use.
//
// Which node it asks first: the leader, with WithLeaderFirst (it learns
// who leads from the nodes and refreshes that every few seconds); then the
// node that answered last (initially the one WithSpread names, so that
// clients spread over the nodes); then the others in cluster order. A node
// that fails, times out or serves something that does not verify is
// benched: tried only after the others, for WithBenchTime, doubled at each
// further failure; when the bench ends a probe must answer before the node
// is trusted again. So one bad node costs one failed attempt per bench,
// not one per call.
//
// Every attempt on one node has its own deadline (WithAttemptTimeout) well
// inside the caller's, so a node that silently drops packets costs one
// attempt, and the same call goes on with the next node. Reads are hedged:
// a node that has not answered within WithHedgeAfter is raced by the next.
type Sequencer struct {
	c   *cluster.Cluster
	o   options
	url []string // base URL per node, in cluster order
	h   *health
}

// NewSequencer returns a Sequencer for the nodes of c. Options:
// WithHTTPClient, WithTimeout, WithAttemptTimeout, WithHedgeAfter,
// WithAnswerBytesMax, WithLogger, WithBenchTime, WithSpread,
// WithLeaderFirst, WithPollInterval, WithLongPoll, WithChainPagesMax,
// WithScheme.
func NewSequencer(c *cluster.Cluster, opts ...Option) *Sequencer {
	o := buildOptions(opts)
	o.component = "sequencer node"
	s := &Sequencer{c: c, o: o, h: newHealth(len(c.Nodes), o.spread)}
	for _, n := range c.Nodes {
		s.url = append(s.url, baseURL(o.scheme, n.HTTP))
	}
	return s
}

// baseURL turns a cluster file address (host:port) into a base URL; an
// address that already names its scheme is kept.
func baseURL(scheme, addr string) string {
	if strings.Contains(addr, "://") {
		return strings.TrimRight(addr, "/")
	}
	return scheme + "://" + addr
}

// NodesFailedError says that no node could serve a request; Errs holds
// each node's reason, by node id.
type NodesFailedError struct {
	Op   string
	Errs map[string]error
	// order keeps the report in the order the nodes were tried.
	order []string
	// maybeTaken: some attempt of a Send ended without an answer from its
	// node (timeout, broken connection), so that node may hold the batch.
	maybeTaken bool
	// ctxErr is the caller's context error when the call ended with it.
	ctxErr error
}

func (e *NodesFailedError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: no sequencer node succeeded", e.Op)
	if e.ctxErr != nil {
		fmt.Fprintf(&b, " (%v)", e.ctxErr)
	}
	for _, id := range e.order {
		fmt.Fprintf(&b, "; %s: %v", id, e.Errs[id])
	}
	return b.String()
}

// Unwrap returns the nodes' errors (and the context's, when it ended).
func (e *NodesFailedError) Unwrap() []error {
	out := make([]error, 0, len(e.order)+1)
	if e.ctxErr != nil {
		out = append(out, e.ctxErr)
	}
	for _, id := range e.order {
		out = append(out, e.Errs[id])
	}
	return out
}

func (e *NodesFailedError) add(id string, err error) {
	if e.Errs == nil {
		e.Errs = map[string]error{}
	}
	e.Errs[id] = err
	e.order = append(e.order, id)
}

// ErrInvalidBatch wraps what Send refuses before asking any node.
var ErrInvalidBatch = errors.New("invalid batch")

// MaybeTaken reports whether a batch whose Send returned err may still
// have been taken by a node, so that it may yet be sequenced. It is false
// only when the outcome is known: the batch was refused before any node
// saw it, or every node tried answered with a refusal (an HTTP error
// status). A timeout or a broken connection leaves the outcome unknown
// (the node may have stored the batch and lost only its answer), and so
// does any error MaybeTaken does not know.
func MaybeTaken(err error) bool {
	if err == nil {
		return true
	}
	var nf *NodesFailedError
	if errors.As(err, &nf) {
		return nf.maybeTaken
	}
	var ae *APIError
	if errors.As(err, &ae) || errors.Is(err, ErrInvalidBatch) {
		return false
	}
	return true
}

func checkApp(app string) error {
	if app == "" || len(app) > 64 || strings.ContainsAny(app, "/?#%") || !utf8.ValidString(app) {
		return fmt.Errorf("%w: invalid app name %q", ErrInvalidBatch, app)
	}
	return nil
}

// Send submits one batch for app to a node. A node that refuses the batch
// itself (4xx: too large, not UTF-8, unknown app) gives the final answer,
// returned as *APIError; a node that is down, failing (5xx, 408, 429) or
// silent past WithAttemptTimeout makes Send try the next one, within the
// same call, until one takes the batch or ctx ends. The batch is only
// accepted, not yet sequenced: follow the app (or use SendAndWait) to see
// it final. On failure, MaybeTaken(err) tells whether a node may hold the
// batch anyway.
func (s *Sequencer) Send(ctx context.Context, app string, body []byte) error {
	if err := checkApp(app); err != nil {
		return err
	}
	switch {
	case len(body) == 0:
		return fmt.Errorf("%w: empty batch", ErrInvalidBatch)
	case len(body) > seqapi.BatchBytesMax:
		return fmt.Errorf("%w: batch of %d bytes exceeds %d", ErrInvalidBatch, len(body), seqapi.BatchBytesMax)
	case !utf8.Valid(body):
		return fmt.Errorf("%w: batch is not valid UTF-8", ErrInvalidBatch)
	}
	fails := &NodesFailedError{Op: "send"}
	for _, i := range s.nodeOrder() {
		id := s.c.Nodes[i].ID
		u := s.url[i] + "/node/" + url.PathEscape(app) + "/batches"
		actx, cancel := context.WithTimeout(ctx, s.o.attemptTimeout)
		_, err := exchange(actx, &s.o, id, http.MethodPut, u, body, "application/octet-stream")
		cancel()
		if err == nil {
			s.nodeWorked(i)
			return nil
		}
		var ae *APIError
		answered := errors.As(err, &ae)
		if !answered {
			fails.maybeTaken = true
		}
		if ctx.Err() != nil {
			fails.add(id, err)
			fails.ctxErr = ctx.Err()
			return fails
		}
		if isFinal(err) {
			return err
		}
		s.nodeFailed(i, "send", err)
		fails.add(id, err)
	}
	return fails
}

// firstOf asks the nodes in nodeOrder for one read: each attempt gets
// hedgeAfter to answer before the next node is asked as well (a silent
// node then delays the read by HedgeAfter, not by a timeout); a failed
// attempt starts the next at once. The first success wins and the others
// are cancelled. Reads are idempotent, so racing them is safe.
//
// An attempt may call its holding function to say its node answered that
// it holds the request (a long-poll's status came before its page): that
// node is not silent, so the next one is asked as well only if the attempt
// fails or its page has not come heldMax after the status (a node that
// holds a long-poll answers within its wait; one cut off while holding
// never does, and the read must not wait for the network to heal).
// Racing every held long-poll would cost a request and, for the loser
// cancelled, a connection per poll.
func firstOf[T any](ctx context.Context, s *Sequencer, op string, benchLosers bool, heldMax time.Duration, fn func(ctx context.Context, i int, holding func()) (T, error)) (T, error) {
	hedgeAfter := s.o.hedgeAfter
	var zero T
	order := s.nodeOrder()
	actx, cancel := context.WithCancel(ctx)
	defer cancel()
	type result struct {
		i   int
		v   T
		err error
	}
	results := make(chan result, len(order))
	held := make(chan int, len(order))     // attempts whose node holds the request
	done := make(map[int]bool, len(order)) // attempts that ended
	next, running := 0, 0
	start := func() {
		i := order[next]
		next++
		running++
		var once sync.Once
		holding := func() { once.Do(func() { held <- i }) }
		go func() {
			v, err := fn(actx, i, holding)
			results <- result{i, v, err}
		}()
	}
	start()
	hedge := time.NewTimer(hedgeAfter)
	defer hedge.Stop()
	fails := &NodesFailedError{Op: op}
	for running > 0 {
		select {
		case r := <-results:
			running--
			if r.err == nil {
				s.nodeWorked(r.i)
				// Nodes asked before the winner that have not answered
				// were raced for being silent past hedgeAfter: bench them,
				// or every read would wait on them again.
				for _, j := range order[:next] {
					if j == r.i || !benchLosers {
						break
					}
					if !done[j] {
						s.nodeFailed(j, op, fmt.Errorf("no answer within %v while another node answered", hedgeAfter))
					}
				}
				return r.v, nil
			}
			done[r.i] = true
			if ctx.Err() != nil {
				return zero, ctx.Err()
			}
			s.nodeFailed(r.i, op, r.err)
			fails.add(s.c.Nodes[r.i].ID, r.err)
			if next < len(order) {
				start()
				hedge.Reset(hedgeAfter)
			}
		case i := <-held:
			if i == order[next-1] && !done[i] {
				hedge.Reset(heldMax) // the newest attempt's node is alive and holding it
			}
		case <-hedge.C:
			if next < len(order) {
				start()
				hedge.Reset(hedgeAfter)
			}
		case <-ctx.Done():
			return zero, ctx.Err()
		}
	}
	return zero, fails
}

// Finalized returns the verified finalized batches of app after index
// `after`, where prev is the chaining hash at `after` (32 zero bytes for
// 0). It asks one node (racing a second one when the first is slow, see
// Sequencer) and checks everything before returning a batch:
//
//   - the batches are contiguous from after+1;
//   - each hash is keccak256(uint64be(timestamp) || body);
//   - each chaining hash is keccak256(previous || hash), starting from prev;
//   - timestamps never decrease;
//   - the page's last index and chaining hash are those of a finality
//     proof whose signers are distinct cluster nodes, at least a quorum,
//     and whose aggregate BLS signature verifies over the EIP-712 digest of
//     Finalize(app, view, index, chainingHash).
//
// A node that fails any check, errors or times out is skipped for the next
// one. When the proof a node offers lies beyond its page, Finalized reads
// up to WithChainPagesMax pages from that node to reach it. An empty Page
// (no error) means nothing after `after` is finalized yet. Batches past
// the proof are never returned.
func (s *Sequencer) Finalized(ctx context.Context, app string, after uint64, prev [32]byte) (Page, error) {
	return s.finalized(ctx, app, after, prev, 0, false, 0)
}

// FinalizedWait is Finalized as a long-poll: when nothing after `after` is
// finalized yet, the node holds the answer until it finalizes a batch or
// wait passes (the node caps wait, at 10 s by default), so a follower gets
// each batch as soon as it is final without polling. An empty Page means
// nothing came within wait. Keep wait below the HTTP timeout
// (WithTimeout, default DefaultTimeout).
func (s *Sequencer) FinalizedWait(ctx context.Context, app string, after uint64, prev [32]byte, wait time.Duration) (Page, error) {
	return s.finalized(ctx, app, after, prev, 0, false, wait)
}

func (s *Sequencer) finalized(ctx context.Context, app string, after uint64, prev [32]byte, prevTS uint64, checkTS bool, wait time.Duration) (Page, error) {
	if err := checkApp(app); err != nil {
		return Page{}, err
	}
	// A long-poll is raced like any read (a silent node must not hold it
	// for the whole wait), but a node that holds it is not known to be
	// silent: it may be waiting for the next finalization like the one
	// that won, so the losers of a long-poll race are not benched. A node
	// that holds it owes its page within the wait.
	return firstOf(ctx, s, "finalized", wait == 0, wait+s.o.hedgeAfter, func(ctx context.Context, i int, holding func()) (Page, error) {
		if wait > 0 {
			// A node that holds the long-poll sends its status first.
			ctx = httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{GotFirstResponseByte: holding})
		}
		return s.finalizedFrom(ctx, i, app, after, prev, prevTS, checkTS, wait)
	})
}

// finalizedFrom reads and verifies pages from node i until a proof covers
// what it served. Only the first page may wait (wait > 0): later ones are
// known to exist.
func (s *Sequencer) finalizedFrom(ctx context.Context, i int, app string, after uint64, prev [32]byte, prevTS uint64, checkTS bool, wait time.Duration) (Page, error) {
	id := s.c.Nodes[i].ID
	v := newChainVerifier(s.c, app, after, prev, prevTS, checkTS)
	for pages := 0; pages < s.o.chainPagesMax; pages++ {
		u := s.url[i] + "/node/" + url.PathEscape(app) + "/batches/finalized?after=" + strconv.FormatUint(v.tipIndex(), 10)
		if pages == 0 && wait > 0 {
			u += "&wait_ms=" + strconv.FormatInt(max(1, wait.Milliseconds()), 10)
		}
		raw, err := exchange(ctx, &s.o, id, http.MethodGet, u, nil, "")
		if err != nil {
			return Page{}, err
		}
		p, err := decodePage(raw)
		if err != nil {
			return Page{}, err
		}
		if err := v.add(p); err != nil {
			return Page{}, err
		}
		page, done, err := v.result(id)
		if err != nil || done {
			return page, err
		}
	}
	return Page{}, fmt.Errorf("the finality proof lies more than %d pages beyond index %d", s.o.chainPagesMax, after)
}

// LastFinalized returns the verified finality proof of app's highest
// finalized index that a node knows, or nil when nothing is finalized yet.
// Only the proof is checked (a quorum signed it); the batch that comes with
// it is not returned, since its link to the chain before it cannot be
// checked alone.
func (s *Sequencer) LastFinalized(ctx context.Context, app string) (*FinalityProof, error) {
	if err := checkApp(app); err != nil {
		return nil, err
	}
	return firstOf(ctx, s, "last finalized", true, 0, func(ctx context.Context, i int, _ func()) (*FinalityProof, error) {
		return s.lastFrom(ctx, i, app)
	})
}

func (s *Sequencer) lastFrom(ctx context.Context, i int, app string) (*FinalityProof, error) {
	id := s.c.Nodes[i].ID
	raw, err := exchange(ctx, &s.o, id, http.MethodGet, s.url[i]+"/node/"+url.PathEscape(app)+"/batches/finalized/last", nil, "")
	if err != nil {
		return nil, err
	}
	p, err := decodePage(raw)
	if err != nil {
		return nil, err
	}
	if p.Finalized == nil {
		if len(p.Batches) > 0 {
			return nil, ErrNoProof
		}
		return nil, nil
	}
	v := newChainVerifier(s.c, app, 0, [32]byte{}, 0, false)
	proof, err := v.decodeProof(p.Finalized)
	if err != nil {
		return nil, err
	}
	if err := proof.Verify(s.c); err != nil {
		return nil, err
	}
	return proof, nil
}

// Follow calls fn with every finalized batch of app after index `after`
// (whose chaining hash is prev), in order, each verified as Finalized
// describes, long-polling when nothing new is final (WithLongPoll; or
// polling with a short backoff when it is 0). It
// returns fn's error, or ctx's when ctx ends. When no node can serve a
// verified page it waits and tries again: a follower outlives node
// outages.
func (s *Sequencer) Follow(ctx context.Context, app string, after uint64, prev [32]byte, fn func(Batch) error) error {
	for b, err := range s.Batches(ctx, app, after, prev) {
		if err != nil {
			return err
		}
		if err := fn(b); err != nil {
			return err
		}
	}
	return ctx.Err()
}

// Batches is Follow as an iterator: it yields verified batches in order
// and ends after yielding ctx's error (the only error it yields; node
// failures are retried).
//
//	for b, err := range seq.Batches(ctx, "orderbook", 0, [32]byte{}) {
//		if err != nil { return err }
//		...
//	}
func (s *Sequencer) Batches(ctx context.Context, app string, after uint64, prev [32]byte) iter.Seq2[Batch, error] {
	return func(yield func(Batch, error) bool) {
		for page, err := range s.Pages(ctx, app, after, prev) {
			if err != nil {
				yield(Batch{}, err)
				return
			}
			for _, b := range page.Batches {
				if !yield(b, nil) {
					return
				}
			}
		}
	}
}

// Pages is Batches a page at a time: each page holds consecutive batches
// and the finality proof that covers the last one, all verified as
// Finalized describes; no page is empty. It reads a stream of pages from
// one node at a time (WithStream, the default with a long-poll), or
// long-polls, or polls (WithLongPoll(0)), and ends after yielding ctx's
// error (the only error it yields; node failures are retried).
func (s *Sequencer) Pages(ctx context.Context, app string, after uint64, prev [32]byte) iter.Seq2[Page, error] {
	return func(yield func(Page, error) bool) {
		if err := checkApp(app); err != nil {
			yield(Page{}, err)
			return
		}
		pos := followPos{after: after, prev: prev}
		if s.o.stream && s.o.longPoll > 0 {
			s.followStreams(ctx, app, pos, yield)
			return
		}
		wait := s.o.pollMin
		for {
			start := s.o.now()
			page, err := s.finalized(ctx, app, pos.after, pos.prev, pos.lastTS, pos.checkTS, s.o.longPoll)
			if ctx.Err() != nil {
				yield(Page{}, ctx.Err())
				return
			}
			if err != nil {
				s.o.logger.Warn("no node served a verified page; retrying", "app", app, "after", pos.after, "err", err)
			}
			if err == nil && len(page.Batches) > 0 {
				wait = s.o.pollMin
				if !yield(page, nil) {
					return
				}
				pos.advance(page)
				continue
			}
			if err == nil && s.o.longPoll > 0 && s.o.now().Sub(start) >= s.o.pollMin {
				continue // the node held the request: ask again at once
			}
			// An error, no long-poll, or a node that answered an empty page
			// at once (one that ignores wait_ms): back off.
			if !s.backOff(ctx, &wait) {
				yield(Page{}, ctx.Err())
				return
			}
		}
	}
}

// SendAndWait sends body as a batch of app and follows the app until a
// finalized batch with exactly that body appears, which it returns. It
// starts following at the finalized head it reads before sending, so the
// batch cannot be missed. If the same body is sent twice, the first
// finalized copy after that head is returned. Bound the wait with ctx.
func (s *Sequencer) SendAndWait(ctx context.Context, app string, body []byte) (Batch, error) {
	head, err := s.LastFinalized(ctx, app)
	if err != nil {
		return Batch{}, fmt.Errorf("reading the finalized head: %w", err)
	}
	var after uint64
	var prev [32]byte
	if head != nil {
		after, prev = head.Index, head.ChainingHash
	}
	if err := s.Send(ctx, app, body); err != nil {
		return Batch{}, err
	}
	for b, err := range s.Batches(ctx, app, after, prev) {
		if err != nil {
			return Batch{}, err
		}
		if bytes.Equal(b.Body, body) {
			return b, nil
		}
	}
	return Batch{}, ctx.Err()
}
