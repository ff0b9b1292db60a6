package node

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/seqbook/seqbook/client/seqapi"
)

// pollBackend finalizes one batch per finalize call and wakes long-polls
// the way the node does (broadcast after the batch is readable).
type pollBackend struct {
	recordingBackend
	tipMu    sync.Mutex
	tip      uint64
	reads    int
	readErr  error // returned by reads once set
	signal   broadcast
	stopping chan struct{}
}

func newPollBackend() *pollBackend { return &pollBackend{stopping: make(chan struct{})} }

func (b *pollBackend) FinalizedAfter(app string, after uint64) (seqapi.FinalizedPage, error) {
	b.tipMu.Lock()
	defer b.tipMu.Unlock()
	b.reads++
	if b.readErr != nil {
		return seqapi.FinalizedPage{}, b.readErr
	}
	page := seqapi.FinalizedPage{Batches: []seqapi.Batch{}}
	for i := after + 1; i <= b.tip; i++ {
		page.Batches = append(page.Batches, seqapi.Batch{Index: i, Body: "b"})
	}
	return page, nil
}

func (b *pollBackend) FinalizedSignal() <-chan struct{} { return b.signal.wait() }
func (b *pollBackend) Stopping() <-chan struct{}        { return b.stopping }

func (b *pollBackend) finalize() {
	b.tipMu.Lock()
	b.tip++
	b.tipMu.Unlock()
	b.signal.fire()
}

func (b *pollBackend) readCount() int { b.tipMu.Lock(); defer b.tipMu.Unlock(); return b.reads }

type pollAnswer struct {
	code  int
	page  seqapi.FinalizedPage
	took  time.Duration
	error string
}

// startGet runs a request in the background and returns its answer channel.
func startGet(h http.Handler, path string) <-chan pollAnswer {
	out := make(chan pollAnswer, 1)
	go func() {
		start := time.Now()
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
		a := pollAnswer{code: rec.Code, took: time.Since(start)}
		_ = json.Unmarshal(rec.Body.Bytes(), &a.page)
		var e seqapi.Error
		_ = json.Unmarshal(rec.Body.Bytes(), &e)
		a.error = e.Error
		out <- a
	}()
	return out
}

func waitAnswer(t *testing.T, ch <-chan pollAnswer) pollAnswer {
	t.Helper()
	select {
	case a := <-ch:
		return a
	case <-time.After(30 * time.Second):
		t.Fatal("no answer within 30 s")
		return pollAnswer{}
	}
}

// waitReads waits until the backend was read n times (the request is then
// parked on the signal).
func waitReads(t *testing.T, b *pollBackend, n int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for b.readCount() < n {
		if time.Now().After(deadline) {
			t.Fatalf("backend read %d times, want %d", b.readCount(), n)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestLongPollWakesOnFinalization(t *testing.T) {
	b := newPollBackend()
	h := NewHandler(b, DefaultHTTPConfig(), nil)
	ans := startGet(h, "/node/orderbook/batches/finalized?after=0&wait_ms=60000")
	waitReads(t, b, 1)
	select {
	case a := <-ans:
		t.Fatalf("answered before anything was finalized: %+v", a)
	default:
	}
	b.finalize()
	a := waitAnswer(t, ans)
	if a.code != 200 || len(a.page.Batches) != 1 || a.page.Batches[0].Index != 1 {
		t.Fatalf("woken answer: %+v", a)
	}
	// Something already finalized is answered at once, without waiting.
	a = waitAnswer(t, startGet(h, "/node/orderbook/batches/finalized?after=0&wait_ms=60000"))
	if a.code != 200 || len(a.page.Batches) != 1 {
		t.Fatalf("ready answer: %+v", a)
	}
}

// TestLongPollSendsHeadersWhileHolding: a held long-poll sends its status
// and headers at once (the client sees the node alive and does not race
// another one), then the page when a batch is finalized; a read that
// fails after that ends the answer with an empty body, which no client
// takes for a page.
func TestLongPollSendsHeadersWhileHolding(t *testing.T) {
	b := newPollBackend()
	srv := httptest.NewServer(NewHandler(b, DefaultHTTPConfig(), nil))
	defer srv.Close()
	get := func(path string) *http.Response {
		t.Helper()
		type result struct {
			resp *http.Response
			err  error
		}
		got := make(chan result, 1)
		go func() {
			resp, err := http.Get(srv.URL + path)
			got <- result{resp, err}
		}()
		select {
		case r := <-got:
			if r.err != nil {
				t.Fatal(r.err)
			}
			return r.resp
		case <-time.After(30 * time.Second):
			t.Fatal("no status within 30 s while the answer is held (nothing is finalized yet)")
			return nil
		}
	}
	resp := get("/node/orderbook/batches/finalized?after=0&wait_ms=60000")
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		t.Fatalf("held answer: status %d, content type %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	b.finalize()
	var page seqapi.FinalizedPage
	if err := json.NewDecoder(resp.Body).Decode(&page); err != nil || len(page.Batches) != 1 || page.Batches[0].Index != 1 {
		t.Fatalf("page after the held status: %+v, %v", page, err)
	}
	resp.Body.Close()

	resp = get("/node/orderbook/batches/finalized?after=1&wait_ms=60000")
	b.tipMu.Lock()
	b.readErr = errors.New("disk gone")
	b.tipMu.Unlock()
	b.finalize()
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err == nil && len(body) != 0 {
		t.Fatalf("a read that failed after the status was sent answered %q", body)
	}
}

func TestLongPollHonoursTheCap(t *testing.T) {
	b := newPollBackend()
	cfg := DefaultHTTPConfig()
	cfg.FinalizedWaitMax = 50 * time.Millisecond
	h := NewHandler(b, cfg, nil)
	// Asking for ten minutes waits only the cap, then answers an empty page.
	a := waitAnswer(t, startGet(h, "/node/orderbook/batches/finalized?after=0&wait_ms=600000"))
	if a.code != 200 || a.page.Batches == nil || len(a.page.Batches) != 0 || a.took < cfg.FinalizedWaitMax {
		t.Fatalf("capped wait: %+v", a)
	}
	// Without wait_ms the route answers at once, as DESIGN §4 says.
	reads := b.readCount()
	a = waitAnswer(t, startGet(h, "/node/orderbook/batches/finalized?after=0"))
	if a.code != 200 || len(a.page.Batches) != 0 || b.readCount() != reads+1 {
		t.Fatalf("no wait: %+v, %d reads", a, b.readCount()-reads)
	}
}

func TestLongPollStopsWithTheNode(t *testing.T) {
	b := newPollBackend()
	h := NewHandler(b, DefaultHTTPConfig(), nil)
	ans := startGet(h, "/node/orderbook/batches/finalized?after=0&wait_ms=60000")
	waitReads(t, b, 1)
	close(b.stopping)
	if a := waitAnswer(t, ans); a.code != 200 || len(a.page.Batches) != 0 {
		t.Fatalf("answer at stop: %+v", a)
	}
}

func TestLongPollBound(t *testing.T) {
	b := newPollBackend()
	cfg := DefaultHTTPConfig()
	cfg.LongPollsMax = 1
	h := NewHandler(b, cfg, nil)
	held := startGet(h, "/node/orderbook/batches/finalized?after=0&wait_ms=60000")
	waitReads(t, b, 1)
	// The second request finds the one slot taken and answers at once.
	if a := waitAnswer(t, startGet(h, "/node/orderbook/batches/finalized?after=0&wait_ms=60000")); a.code != 200 || len(a.page.Batches) != 0 {
		t.Fatalf("over the bound: %+v", a)
	}
	b.finalize()
	if a := waitAnswer(t, held); len(a.page.Batches) != 1 {
		t.Fatalf("held: %+v", a)
	}
}

func TestLongPollClientLeaves(t *testing.T) {
	b := newPollBackend()
	h := NewHandler(b, DefaultHTTPConfig(), nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	go func() {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", "/node/orderbook/batches/finalized?wait_ms=60000", nil).WithContext(ctx))
		done <- rec.Body.Len()
	}()
	waitReads(t, b, 1)
	cancel()
	select {
	case n := <-done:
		if n != 0 {
			t.Fatalf("wrote %d bytes to a client that left", n)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("handler kept waiting after the client left")
	}
}

func TestLongPollBadParameters(t *testing.T) {
	b := newPollBackend()
	h := NewHandler(b, DefaultHTTPConfig(), nil)
	for _, q := range []string{"wait_ms=-1", "wait_ms=abc", "wait_ms=", "wait_ms=1.5", "wait_ms=1e3",
		"wait_ms=99999999999999999999", "wait_ms=1&wait_ms=2", "after=x&wait_ms=10",
		"stream=yes", "stream=", "stream=1&stream=1", "stream=2&wait_ms=10"} {
		rec, out := do(t, h, "GET", "/node/orderbook/batches/finalized?"+q, nil)
		field := "wait_ms"
		if strings.HasPrefix(q, "after") {
			field = "after"
		}
		if strings.HasPrefix(q, "stream") {
			field = "stream"
		}
		if rec.Code != 400 || !strings.Contains(out["error"].(string), field) {
			t.Errorf("?%s: %d %v", q, rec.Code, out)
		}
	}
	if n := b.readCount(); n != 0 {
		t.Fatalf("bad requests read the store %d times", n)
	}
}

func TestHTTPConfigWaitBound(t *testing.T) {
	cfg := DefaultHTTPConfig()
	cfg.FinalizedWaitMax = cfg.WriteTimeout
	if err := cfg.ValidateBasic(); err == nil || !strings.Contains(err.Error(), "FinalizedWaitMax") {
		t.Fatalf("a wait cap reaching the write timeout passed: %v", err)
	}
}

// FuzzParseWaitMs: wait_ms accepts exactly decimal integers and never
// returns more than the cap.
func FuzzParseWaitMs(f *testing.F) {
	for _, s := range []string{"0", "250", "-1", "", "1e3", "99999999999999999999", " 5", "0x10"} {
		f.Add(s)
	}
	const max = 10 * time.Second
	f.Fuzz(func(t *testing.T, s string) {
		d, err := parseWaitMs(s, true, max)
		if err != nil {
			return
		}
		if s == "" || strings.TrimLeft(s, "0123456789+") != "" || d < 0 || d > max {
			t.Fatalf("accepted %q as %v", s, d)
		}
	})
}

// TestStreamSendsPagesAsTheyFinalize: ?stream=1 answers a line at once
// (an empty page when nothing is final), then a page per finalization as
// it happens, and an empty page whenever nothing came for wait_ms (the
// heartbeat); it ends when the node stops.
func TestStreamSendsPagesAsTheyFinalize(t *testing.T) {
	b := newPollBackend()
	srv := httptest.NewServer(NewHandler(b, DefaultHTTPConfig(), nil))
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/node/orderbook/batches/finalized?after=0&stream=1&wait_ms=100")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); resp.StatusCode != 200 || ct != "application/x-ndjson" {
		t.Fatalf("stream answered %d %q", resp.StatusCode, ct)
	}
	lines := make(chan seqapi.FinalizedPage, 64)
	go func() {
		defer close(lines)
		dec := json.NewDecoder(resp.Body)
		for {
			var p seqapi.FinalizedPage
			if dec.Decode(&p) != nil {
				return
			}
			lines <- p
		}
	}()
	next := func(what string) seqapi.FinalizedPage {
		t.Helper()
		select {
		case p, ok := <-lines:
			if !ok {
				t.Fatalf("%s: the stream ended", what)
			}
			return p
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: no line within 10 s", what)
			return seqapi.FinalizedPage{}
		}
	}
	if p := next("first line"); len(p.Batches) != 0 {
		t.Fatalf("first line: %d batches, nothing is final", len(p.Batches))
	}
	for i := uint64(1); i <= 3; i++ {
		b.finalize()
		p := next("a finalization")
		for len(p.Batches) == 0 { // a heartbeat in between
			p = next("a finalization")
		}
		if len(p.Batches) != 1 || p.Batches[0].Index != i {
			t.Fatalf("after finalizing %d: page %+v", i, p.Batches)
		}
	}
	start := time.Now()
	if p := next("a heartbeat"); len(p.Batches) != 0 {
		t.Fatalf("heartbeat with %d batches", len(p.Batches))
	}
	if took := time.Since(start); took < 50*time.Millisecond {
		t.Fatalf("heartbeat after %v, before its wait_ms", took)
	}
	close(b.stopping)
	for range lines { // the stream ends
	}
}

// TestStreamWithoutSlot: without a free long-poll slot a stream ends after
// its first line (the client opens another later).
func TestStreamWithoutSlot(t *testing.T) {
	b := newPollBackend()
	cfg := DefaultHTTPConfig()
	cfg.LongPollsMax = 0
	h := NewHandler(b, cfg, nil)
	b.finalize()
	a := waitAnswer(t, startGet(h, "/node/orderbook/batches/finalized?after=0&stream=1&wait_ms=60000"))
	if a.code != 200 || len(a.page.Batches) != 1 {
		t.Fatalf("slotless stream: %+v", a)
	}
}

// TestStreamOutlivesTheReadTimeout: a stream runs past the server's
// ReadTimeout and WriteTimeout (they bound requests, not a stream that
// keeps writing: each line gets its own write deadline).
func TestStreamOutlivesTheReadTimeout(t *testing.T) {
	b := newPollBackend()
	cfg := DefaultHTTPConfig()
	cfg.ReadTimeout, cfg.WriteTimeout = 300*time.Millisecond, 300*time.Millisecond
	srv := httptest.NewUnstartedServer(NewHandler(b, cfg, nil))
	srv.Config.ReadTimeout, srv.Config.WriteTimeout = cfg.ReadTimeout, cfg.WriteTimeout
	srv.Start()
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/node/orderbook/batches/finalized?after=0&stream=1&wait_ms=50")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	dec := json.NewDecoder(resp.Body)
	start := time.Now()
	lines := 0
	for time.Since(start) < time.Second {
		var p seqapi.FinalizedPage
		if err := dec.Decode(&p); err != nil {
			t.Fatalf("the stream ended after %v (%d lines): %v", time.Since(start), lines, err)
		}
		lines++
	}
}
