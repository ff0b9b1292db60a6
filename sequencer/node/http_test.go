package node

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"unicode/utf8"

	"github.com/seqbook/seqbook/client/seqapi"
	"github.com/seqbook/seqbook/sequencer/wire"
)

// recordingBackend is an in-memory Backend that records what it was given
// and answers with fixed pages, so the HTTP edge is tested on its own.
type recordingBackend struct {
	mu        sync.Mutex
	submitted []string
	submitErr error
	afters    []uint64
	ready     bool
}

func (b *recordingBackend) NodeID() string { return "node1" }
func (b *recordingBackend) Submit(_ context.Context, app string, body []byte) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.submitErr != nil {
		return b.submitErr
	}
	b.submitted = append(b.submitted, app+":"+string(body))
	return nil
}
func (b *recordingBackend) FinalizedAfter(app string, after uint64) (seqapi.FinalizedPage, error) {
	b.mu.Lock()
	b.afters = append(b.afters, after)
	b.mu.Unlock()
	return seqapi.FinalizedPage{Batches: []seqapi.Batch{{Index: after + 1, Timestamp: 5, Body: "b", Hash: "0x01", ChainingHash: "0x02"}},
		Finalized: &seqapi.FinalizedProof{Index: after + 1, ChainingHash: "0x02", View: 3, Signature: "0x03", Signers: []string{"node1", "node2", "node3"}}}, nil
}
func (b *recordingBackend) LastFinalized(app string) (seqapi.FinalizedPage, error) {
	return seqapi.FinalizedPage{Batches: []seqapi.Batch{}}, nil
}
func (b *recordingBackend) State() seqapi.NodeState {
	return seqapi.NodeState{Node: "node1", View: 7, Leader: "node4", Apps: map[string]seqapi.AppState{"orderbook": {Finalized: 2, Locked: 3, Sequenced: 4}}}
}
func (b *recordingBackend) Ready() bool                      { return b.ready }
func (b *recordingBackend) FinalizedSignal() <-chan struct{} { return nil }
func (b *recordingBackend) Stopping() <-chan struct{}        { return nil }

func do(t *testing.T, h http.Handler, method, path string, body []byte) (*httptest.ResponseRecorder, map[string]any) {
	t.Helper()
	req := httptest.NewRequest(method, path, bytes.NewReader(body))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	var out map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil {
		t.Fatalf("%s %s: answer is not a JSON object: %q", method, path, rec.Body.String())
	}
	return rec, out
}

func TestPutBatch(t *testing.T) {
	b := &recordingBackend{ready: true}
	h := NewHandler(b, DefaultHTTPConfig(), nil)

	rec, out := do(t, h, "PUT", "/node/orderbook/batches", []byte(`{"orders":[1]}`))
	if rec.Code != 200 || out["status"] != "accepted" {
		t.Fatalf("PUT: %d %v", rec.Code, out)
	}
	// Exactly 1 MiB passes; one byte more is 413 with a JSON error.
	rec, _ = do(t, h, "PUT", "/node/orderbook/batches", bytes.Repeat([]byte("a"), wire.MaxBatchBytes))
	if rec.Code != 200 {
		t.Fatalf("1 MiB batch: %d", rec.Code)
	}
	rec, out = do(t, h, "PUT", "/node/orderbook/batches", bytes.Repeat([]byte("a"), wire.MaxBatchBytes+1))
	if rec.Code != http.StatusRequestEntityTooLarge || !strings.Contains(out["error"].(string), "limit") {
		t.Fatalf("oversize: %d %v", rec.Code, out)
	}
	// Chunked (no Content-Length) oversize bodies are caught too.
	req := httptest.NewRequest("PUT", "/node/orderbook/batches", bytes.NewReader(bytes.Repeat([]byte("a"), wire.MaxBatchBytes+10)))
	req.ContentLength = -1
	rr := httptest.NewRecorder()
	h.ServeHTTP(rr, req)
	if rr.Code != http.StatusRequestEntityTooLarge {
		t.Fatalf("chunked oversize: %d", rr.Code)
	}
	rec, out = do(t, h, "PUT", "/node/orderbook/batches", []byte{0xff, 0xfe})
	if rec.Code != 400 || !strings.Contains(out["error"].(string), "UTF-8") {
		t.Fatalf("invalid UTF-8: %d %v", rec.Code, out)
	}
	rec, out = do(t, h, "PUT", "/node/bad%20app/batches", []byte("x"))
	if rec.Code != 400 || !strings.Contains(out["error"].(string), "app") {
		t.Fatalf("bad app: %d %v", rec.Code, out)
	}
	b.submitErr = ErrBacklogFull
	rec, out = do(t, h, "PUT", "/node/orderbook/batches", []byte("x"))
	if rec.Code != http.StatusTooManyRequests || out["error"] == nil {
		t.Fatalf("backlog full: %d %v", rec.Code, out)
	}
	b.submitErr = ErrNotRunning
	if rec, _ = do(t, h, "PUT", "/node/orderbook/batches", []byte("x")); rec.Code != http.StatusServiceUnavailable {
		t.Fatalf("not running: %d", rec.Code)
	}
	if len(b.submitted) != 2 || b.submitted[0] != `orderbook:{"orders":[1]}` {
		t.Fatalf("backend got %d batches: %.40q", len(b.submitted), b.submitted)
	}
	rec, _ = do(t, h, "POST", "/node/orderbook/batches", []byte("x"))
	if rec.Code != http.StatusMethodNotAllowed {
		t.Fatalf("POST: %d", rec.Code)
	}
}

func TestGetFinalizedQuery(t *testing.T) {
	b := &recordingBackend{ready: true}
	h := NewHandler(b, DefaultHTTPConfig(), nil)
	rec, out := do(t, h, "GET", "/node/orderbook/batches/finalized?after=41", nil)
	if rec.Code != 200 {
		t.Fatalf("%d %v", rec.Code, out)
	}
	var page seqapi.FinalizedPage
	if err := json.Unmarshal(rec.Body.Bytes(), &page); err != nil || page.Finalized == nil || page.Batches[0].Index != 42 {
		t.Fatalf("page: %+v %v", page, err)
	}
	// The exact field names of DESIGN §4.
	for _, k := range []string{`"batches"`, `"index"`, `"timestamp"`, `"body"`, `"hash"`, `"chaining_hash"`, `"finalized"`, `"view"`, `"signature"`, `"signers"`} {
		if !strings.Contains(rec.Body.String(), k) {
			t.Errorf("answer lacks %s: %s", k, rec.Body.String())
		}
	}
	if rec, _ = do(t, h, "GET", "/node/orderbook/batches/finalized", nil); rec.Code != 200 || b.afters[1] != 0 {
		t.Fatalf("no after: %d %v", rec.Code, b.afters)
	}
	for _, q := range []string{"after=-1", "after=abc", "after=", "after=1.5", "after=18446744073709551616", "after=1&after=2"} {
		rec, out := do(t, h, "GET", "/node/orderbook/batches/finalized?"+q, nil)
		if rec.Code != 400 || !strings.Contains(out["error"].(string), "after") {
			t.Errorf("?%s: %d %v", q, rec.Code, out)
		}
	}
	if rec, _ = do(t, h, "GET", "/node/orderbook/batches/finalized/last", nil); rec.Code != 200 {
		t.Fatalf("last: %d", rec.Code)
	}
	if !strings.Contains(rec.Body.String(), `"batches":[]`) || !strings.Contains(rec.Body.String(), `"finalized":null`) {
		t.Fatalf("empty last: %s", rec.Body.String())
	}
}

func TestStateAndReady(t *testing.T) {
	b := &recordingBackend{}
	h := NewHandler(b, DefaultHTTPConfig(), nil)
	rec, out := do(t, h, "GET", "/node/state", nil)
	if rec.Code != 200 || out["view"].(float64) != 7 || out["leader"] != "node4" || out["apps"] == nil {
		t.Fatalf("state: %d %v", rec.Code, out)
	}
	if rec, out = do(t, h, "GET", "/node/ready", nil); rec.Code != 503 || out["ready"] != false {
		t.Fatalf("not ready: %d %v", rec.Code, out)
	}
	b.ready = true
	if rec, out = do(t, h, "GET", "/node/ready", nil); rec.Code != 200 || out["ready"] != true {
		t.Fatalf("ready: %d %v", rec.Code, out)
	}
	if rec, _ = do(t, h, "GET", "/nope", nil); rec.Code != 404 {
		t.Fatalf("unknown route: %d", rec.Code)
	}
}

// FuzzParseAfter: the ?after= decoder accepts exactly the decimal uint64s.
func FuzzParseAfter(f *testing.F) {
	for _, s := range []string{"0", "42", "-1", "", "1e3", "18446744073709551615", "18446744073709551616", " 1", "0x10"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := parseAfter(s, true)
		if err != nil {
			return
		}
		if s == "" || strings.TrimLeft(s, "0123456789+") != "" {
			t.Fatalf("accepted %q as %d", s, n)
		}
	})
}

// FuzzPutBatchBody: any body gets 200 (and reaches the backend unchanged)
// exactly when it is valid UTF-8 within the bound, else a 4xx JSON error.
func FuzzPutBatchBody(f *testing.F) {
	f.Add([]byte(`{"op":"order"}`))
	f.Add([]byte{0xc3, 0x28})
	f.Add([]byte{})
	f.Add([]byte("héllo"))
	cfg := DefaultHTTPConfig()
	cfg.BodyBytesMax = 64
	f.Fuzz(func(t *testing.T, body []byte) {
		b := &recordingBackend{ready: true}
		h := NewHandler(b, cfg, nil)
		rec, out := do(t, h, "PUT", "/node/app/batches", body)
		valid := utf8.Valid(body) && len(body) <= 64
		if valid != (rec.Code == 200) {
			t.Fatalf("body %q: status %d %v", body, rec.Code, out)
		}
		if valid && (len(b.submitted) != 1 || b.submitted[0] != "app:"+string(body)) {
			t.Fatalf("backend got %q", b.submitted)
		}
		if !valid && (rec.Code < 400 || rec.Code >= 500 || out["error"] == nil) {
			t.Fatalf("refusal without a 4xx JSON error: %d %v", rec.Code, out)
		}
	})
}
