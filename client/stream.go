package client

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"sync/atomic"
	"time"
)

// Following over a stream.
//
// A long-poll delivers a finalization that happens while the next poll is
// on its way only when that poll arrives: under a steady load nearly every
// batch waits for it, on average one network delay more. A follower
// (Follow, Batches, Pages) therefore reads GET …/batches/finalized?stream=1
// instead when WithStream is on (the default with a long-poll): the node
// writes each page as it finalizes it, one JSON object per line, and an
// empty page (its last proof) when nothing came for the long-poll time, a
// heartbeat that says it is still there. Every page is checked exactly as
// Finalized checks one (one pairing per page). A stream that stays silent
// past the long-poll time and HedgeAfter, breaks or serves a page that
// fails a check benches its node and the follower opens a stream at the
// next one, from the last checked batch; a stream's node that is no longer
// the one the Sequencer would ask first (the leader changed) is left at
// its next heartbeat for that one.

// followPos is where a follower is: the last checked batch.
type followPos struct {
	after   uint64
	prev    [32]byte
	lastTS  uint64
	checkTS bool
}

// advance moves pos past page, which holds at least one batch.
func (pos *followPos) advance(page Page) {
	last := page.Batches[len(page.Batches)-1]
	pos.after, pos.prev, pos.lastTS, pos.checkTS = last.Index, last.ChainingHash, last.Timestamp, true
}

// verifier checks the pages that follow pos.
func (pos *followPos) verifier(s *Sequencer, app string) *chainVerifier {
	return newChainVerifier(s.c, app, pos.after, pos.prev, pos.lastTS, pos.checkTS)
}

// errStreamSilent: a stream sent no line within its silence bound.
var errStreamSilent = errors.New("the finalized-batch stream went silent")

// errYieldStopped: the consumer of the batches stopped.
var errYieldStopped = errors.New("the consumer stopped")

// streamClient is the HTTP client of streams: the configured transport
// without the whole-exchange timeout (a stream lasts minutes; the silence
// bound is what detects a dead one).
func (s *Sequencer) streamClient() *http.Client {
	return &http.Client{Transport: s.o.httpClient.Transport, CheckRedirect: s.o.httpClient.CheckRedirect, Jar: s.o.httpClient.Jar}
}

// streamFrom reads node i's stream of finalized pages from pos, checking
// each page and handing its batches to yield; pos follows. It returns
// whether any batch came, and nil when the stream ended cleanly or was
// left for another node (open the next one), errYieldStopped when yield
// asked to stop, ctx's error, or the node's fault.
func (s *Sequencer) streamFrom(ctx context.Context, i int, app string, pos *followPos, yield func(Page) bool) (bool, error) {
	id := s.c.Nodes[i].ID
	heartbeat := s.o.longPoll
	silence := heartbeat + s.o.hedgeAfter
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	u := s.url[i] + "/node/" + url.PathEscape(app) + "/batches/finalized?stream=1&after=" +
		strconv.FormatUint(pos.after, 10) + "&wait_ms=" + strconv.FormatInt(max(1, heartbeat.Milliseconds()), 10)
	req, err := http.NewRequestWithContext(sctx, http.MethodGet, u, nil)
	if err != nil {
		return false, err
	}
	req.Header.Set("Accept", "application/x-ndjson")
	// The watchdog cancels the request when no line came within silence.
	var silent atomic.Bool
	watchdog := time.AfterFunc(silence, func() { silent.Store(true); cancel() })
	defer watchdog.Stop()
	resp, err := s.streamClient().Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return false, ctx.Err()
		}
		if silent.Load() {
			return false, errStreamSilent
		}
		return false, &UnreachableError{Component: "sequencer node", Server: id, Err: err}
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		data, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		return false, errorFromAnswer(id, resp.StatusCode, data)
	}
	br := bufio.NewReaderSize(resp.Body, 64<<10)
	progressed := false
	v := pos.verifier(s, app)
	lines := 0
	for {
		line, err := readLine(br, s.o.answerBytesMax)
		if err != nil {
			switch {
			case ctx.Err() != nil:
				return progressed, ctx.Err()
			case silent.Load():
				return progressed, errStreamSilent
			case err == io.EOF && lines == 0 && len(v.batches) == 0:
				return progressed, nil // the stream ended (its time is up, or the node stops)
			case err == io.EOF:
				return progressed, fmt.Errorf("%s: the stream ended inside a page chain", id)
			}
			return progressed, fmt.Errorf("reading the stream of %s: %w", id, err)
		}
		watchdog.Reset(silence)
		p, err := decodePage(line)
		if err != nil {
			return progressed, err
		}
		if err := v.add(p); err != nil {
			return progressed, err
		}
		page, done, err := v.result(id)
		if err != nil {
			return progressed, err
		}
		if !done {
			// The proof lies beyond this page: the next lines bring it.
			if lines++; lines >= s.o.chainPagesMax {
				return progressed, fmt.Errorf("the finality proof lies more than %d pages beyond index %d", s.o.chainPagesMax, pos.after)
			}
			continue
		}
		lines = 0
		if len(page.Batches) == 0 {
			// A heartbeat. Leave for the node the Sequencer now asks
			// first (the leader changed), if another.
			s.nodeWorked(i)
			if order := s.nodeOrder(); len(order) > 0 && order[0] != i {
				return progressed, nil
			}
		}
		if len(page.Batches) > 0 {
			if !yield(page) {
				return true, errYieldStopped
			}
			pos.advance(page)
			progressed = true
		}
		v = pos.verifier(s, app)
	}
}

// readLine reads one line (without its newline) of at most limit bytes.
func readLine(br *bufio.Reader, limit int64) ([]byte, error) {
	var buf []byte
	for {
		chunk, err := br.ReadSlice('\n')
		n := len(buf) + len(chunk)
		if err == nil {
			n-- // the newline
		}
		if int64(n) > limit {
			return nil, fmt.Errorf("a stream line exceeds %d bytes", limit)
		}
		switch {
		case err == nil:
			if buf == nil {
				return bytes.TrimSuffix(chunk, []byte("\n")), nil
			}
			return bytes.TrimSuffix(append(buf, chunk...), []byte("\n")), nil
		case errors.Is(err, bufio.ErrBufferFull):
			buf = append(buf, chunk...)
		case err == io.EOF && len(buf)+len(chunk) > 0:
			// A last line without its newline (a node that answered one
			// page, not a stream): the next read says EOF.
			return append(buf, chunk...), nil
		default:
			return nil, err
		}
	}
}

// followStreams is Pages over streams (see the top of this file).
func (s *Sequencer) followStreams(ctx context.Context, app string, pos followPos, yield func(Page, error) bool) {
	wait := s.o.pollMin
	for {
		order := s.nodeOrder()
		i := order[0]
		start := s.o.now()
		progressed, err := s.streamFrom(ctx, i, app, &pos, func(p Page) bool { return yield(p, nil) })
		switch {
		case errors.Is(err, errYieldStopped):
			return
		case ctx.Err() != nil:
			yield(Page{}, ctx.Err())
			return
		case err != nil:
			s.nodeFailed(i, "finalized stream", err)
		}
		if progressed || (err == nil && s.o.now().Sub(start) >= s.o.longPoll) {
			wait = s.o.pollMin
			continue // the stream served: the next one at once
		}
		// A failure, or a stream that ended at once without serving (a
		// node out of stream slots ends it after its first page): back
		// off.
		if !s.backOff(ctx, &wait) {
			yield(Page{}, ctx.Err())
			return
		}
	}
}

// backOff waits *wait, then doubles it up to the poll maximum; false when
// ctx ended first.
func (s *Sequencer) backOff(ctx context.Context, wait *time.Duration) bool {
	t := time.NewTimer(*wait)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
	}
	*wait = min(2**wait, s.o.pollMax)
	return true
}
