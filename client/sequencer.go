package client

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"iter"
	"net/http"
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
// It prefers the node that answered last; a node that fails, times out or
// serves something that does not verify is tried only after the others
// for a while (WithBenchTime), so one bad node costs one failed request,
// not one per call.
type Sequencer struct {
	c   *cluster.Cluster
	o   options
	url []string // base URL per node, in cluster order

	mu           sync.Mutex
	preferred    int
	benchedUntil []time.Time
}

// NewSequencer returns a Sequencer for the nodes of c. Options:
// WithHTTPClient, WithTimeout, WithAnswerBytesMax, WithLogger,
// WithBenchTime, WithPollInterval, WithLongPoll, WithChainPagesMax,
// WithScheme.
func NewSequencer(c *cluster.Cluster, opts ...Option) *Sequencer {
	o := buildOptions(opts)
	o.component = "sequencer node"
	s := &Sequencer{c: c, o: o, benchedUntil: make([]time.Time, len(c.Nodes))}
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

// nodeOrder lists node indexes to try: the preferred node first, then the
// others in cluster order after it; benched nodes go last (they are still
// tried: when every node was benched, one of them may have recovered).
func (s *Sequencer) nodeOrder() []int {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.o.now()
	n := len(s.url)
	good := make([]int, 0, n)
	var benched []int
	for k := 0; k < n; k++ {
		i := (s.preferred + k) % n
		if now.Before(s.benchedUntil[i]) {
			benched = append(benched, i)
		} else {
			good = append(good, i)
		}
	}
	return append(good, benched...)
}

func (s *Sequencer) nodeWorked(i int) {
	s.mu.Lock()
	s.preferred = i
	s.benchedUntil[i] = time.Time{}
	s.mu.Unlock()
}

func (s *Sequencer) nodeFailed(i int, op string, err error) {
	s.mu.Lock()
	s.benchedUntil[i] = s.o.now().Add(s.o.benchTime)
	if s.preferred == i {
		s.preferred = (i + 1) % len(s.url)
	}
	s.mu.Unlock()
	s.o.logger.Warn("sequencer node skipped", "node", s.c.Nodes[i].ID, "op", op, "err", err)
}

// NodesFailedError says that no node could serve a request; Errs holds
// each node's reason, by node id.
type NodesFailedError struct {
	Op   string
	Errs map[string]error
	// order keeps the report in the order the nodes were tried.
	order []string
}

func (e *NodesFailedError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: no sequencer node succeeded", e.Op)
	for _, id := range e.order {
		fmt.Fprintf(&b, "; %s: %v", id, e.Errs[id])
	}
	return b.String()
}

// Unwrap returns the nodes' errors.
func (e *NodesFailedError) Unwrap() []error {
	out := make([]error, 0, len(e.order))
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

func checkApp(app string) error {
	if app == "" || len(app) > 64 || strings.ContainsAny(app, "/?#%") || !utf8.ValidString(app) {
		return fmt.Errorf("invalid app name %q", app)
	}
	return nil
}

// Send submits one batch for app to a node. A node that refuses the batch
// itself (4xx: too large, not UTF-8, unknown app) gives the final answer,
// returned as *APIError; a node that is down or failing (network error,
// 5xx, 408, 429) makes Send try the next one. The batch is only accepted,
// not yet sequenced: follow the app (or use SendAndWait) to see it final.
func (s *Sequencer) Send(ctx context.Context, app string, body []byte) error {
	if err := checkApp(app); err != nil {
		return err
	}
	switch {
	case len(body) == 0:
		return errors.New("empty batch")
	case len(body) > seqapi.BatchBytesMax:
		return fmt.Errorf("batch of %d bytes exceeds %d", len(body), seqapi.BatchBytesMax)
	case !utf8.Valid(body):
		return errors.New("batch is not valid UTF-8")
	}
	fails := &NodesFailedError{Op: "send"}
	for _, i := range s.nodeOrder() {
		id := s.c.Nodes[i].ID
		u := s.url[i] + "/node/" + url.PathEscape(app) + "/batches"
		_, err := exchange(ctx, &s.o, id, http.MethodPut, u, body, "application/octet-stream")
		if err == nil {
			s.nodeWorked(i)
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if isFinal(err) {
			return err
		}
		s.nodeFailed(i, "send", err)
		fails.add(id, err)
	}
	return fails
}

// Finalized returns the verified finalized batches of app after index
// `after`, where prev is the chaining hash at `after` (32 zero bytes for
// 0). It asks one node and checks everything before returning a batch:
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
	fails := &NodesFailedError{Op: "finalized"}
	for _, i := range s.nodeOrder() {
		page, err := s.finalizedFrom(ctx, i, app, after, prev, prevTS, checkTS, wait)
		if err == nil {
			s.nodeWorked(i)
			return page, nil
		}
		if ctx.Err() != nil {
			return Page{}, ctx.Err()
		}
		s.nodeFailed(i, "finalized", err)
		fails.add(s.c.Nodes[i].ID, err)
	}
	return Page{}, fails
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
	fails := &NodesFailedError{Op: "last finalized"}
	for _, i := range s.nodeOrder() {
		id := s.c.Nodes[i].ID
		proof, err := s.lastFrom(ctx, i, app)
		if err == nil {
			s.nodeWorked(i)
			return proof, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		s.nodeFailed(i, "last finalized", err)
		fails.add(id, err)
	}
	return nil, fails
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
		if err := checkApp(app); err != nil {
			yield(Batch{}, err)
			return
		}
		var lastTS uint64
		checkTS := false
		wait := s.o.pollMin
		for {
			start := s.o.now()
			page, err := s.finalized(ctx, app, after, prev, lastTS, checkTS, s.o.longPoll)
			if ctx.Err() != nil {
				yield(Batch{}, ctx.Err())
				return
			}
			if err != nil {
				s.o.logger.Warn("no node served a verified page; retrying", "app", app, "after", after, "err", err)
			}
			if err == nil && len(page.Batches) > 0 {
				wait = s.o.pollMin
				for _, b := range page.Batches {
					if !yield(b, nil) {
						return
					}
				}
				last := page.Batches[len(page.Batches)-1]
				after, prev, lastTS, checkTS = last.Index, last.ChainingHash, last.Timestamp, true
				continue
			}
			if err == nil && s.o.longPoll > 0 && s.o.now().Sub(start) >= s.o.pollMin {
				continue // the node held the request: ask again at once
			}
			// An error, no long-poll, or a node that answered an empty page
			// at once (one that ignores wait_ms): back off.
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				yield(Batch{}, ctx.Err())
				return
			case <-t.C:
			}
			wait = min(2*wait, s.o.pollMax)
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
