package node

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestSourceOf(t *testing.T) {
	for addr, want := range map[string]string{
		"10.1.2.3:5000":              "10.1.2.3/32",
		"[::ffff:10.1.2.3]:5000":     "10.1.2.3/32",
		"[2001:db8:1:2:3:4:5:6]:443": "2001:db8:1:2::/64",
		"[2001:db8:1:2:ffff::1]:443": "2001:db8:1:2::/64",
		"not an address":             "invalid Prefix",
	} {
		if got := sourceOf(addr).String(); got != want {
			t.Errorf("sourceOf(%q) = %s, want %s", addr, got, want)
		}
	}
}

// TestSourceLimiterBuckets drives the buckets with a fake clock: a burst,
// then refusals with a wait, refills at the configured rate, and a bound
// on tracked sources that forgets only refilled ones.
func TestSourceLimiterBuckets(t *testing.T) {
	lim := SourceLimits{BatchesPerSecond: 10, BatchesBurst: 3, BytesPerSecond: 1000, BytesBurst: 2000, SourcesMax: 2}
	s := newSourceLimiter(lim)
	t0 := time.Unix(1_700_000_000, 0)
	a, b, c := sourceOf("10.0.0.1:1"), sourceOf("10.0.0.2:1"), sourceOf("10.0.0.3:1")
	for i := 0; i < 3; i++ {
		if ok, _, why := s.allow(a, 10, t0); !ok {
			t.Fatalf("batch %d of the burst refused: %s", i+1, why)
		}
	}
	ok, wait, why := s.allow(a, 10, t0)
	if ok || wait != 100*time.Millisecond || !strings.Contains(why, "batches per second") {
		t.Fatalf("past the burst: ok=%v wait=%s why=%q", ok, wait, why)
	}
	if ok, _, _ := s.allow(b, 10, t0); !ok {
		t.Fatal("another source was refused for the first one's batches")
	}
	if ok, _, _ := s.allow(a, 10, t0.Add(100*time.Millisecond)); !ok {
		t.Fatal("not refilled after 1/rate")
	}
	// Bytes: b has 1990 left; a 1991-byte batch waits 1 ms.
	if ok, wait, why := s.allow(b, 1991, t0); ok || wait != time.Millisecond || !strings.Contains(why, "bytes") {
		t.Fatalf("bytes past the burst: ok=%v wait=%s why=%q", ok, wait, why)
	}
	// Two sources tracked, neither refilled: a third is refused...
	if ok, _, why := s.allow(c, 10, t0); ok || !strings.Contains(why, "sources") {
		t.Fatalf("third source while full: ok=%v why=%q", ok, why)
	}
	// ...until they refill, when they are forgotten.
	if ok, _, why := s.allow(c, 10, t0.Add(10*time.Second)); !ok {
		t.Fatalf("third source after the others refilled: %s", why)
	}
	if len(s.src) > lim.SourcesMax {
		t.Fatalf("%d sources tracked, bound %d", len(s.src), lim.SourcesMax)
	}
}

// TestPutBatchRateLimited: past its source's bound a PUT gets 429 with a
// JSON error naming the source and a Retry-After header, and is not
// submitted; another source is unaffected.
func TestPutBatchRateLimited(t *testing.T) {
	b := &recordingBackend{ready: true}
	cfg := DefaultHTTPConfig()
	cfg.Sources.BatchesBurst, cfg.Sources.BatchesPerSecond = 2, 1
	frozen := time.Unix(1_700_000_000, 0)
	cfg.Now = func() time.Time { return frozen }
	h := NewHandler(b, cfg, nil)
	put := func(remote string) (*httptest.ResponseRecorder, map[string]any) {
		req := httptest.NewRequest("PUT", "/node/orderbook/batches", bytes.NewReader([]byte("x")))
		req.RemoteAddr = remote
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		var out map[string]any
		if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil {
			t.Fatalf("answer is not JSON: %q", rec.Body.String())
		}
		return rec, out
	}
	for i := 0; i < 2; i++ {
		if rec, out := put("192.0.2.7:4000"); rec.Code != 200 {
			t.Fatalf("PUT %d: %d %v", i+1, rec.Code, out)
		}
	}
	rec, out := put("192.0.2.7:4001")
	msg, _ := out["error"].(string)
	if rec.Code != http.StatusTooManyRequests || !strings.Contains(msg, "192.0.2.7/32") || rec.Header().Get("Retry-After") != "1" {
		t.Fatalf("PUT past the bound: %d %v Retry-After=%q", rec.Code, out, rec.Header().Get("Retry-After"))
	}
	if rec, out := put("198.51.100.1:4000"); rec.Code != 200 {
		t.Fatalf("another source: %d %v", rec.Code, out)
	}
	if len(b.submitted) != 3 {
		t.Fatalf("%d batches submitted, want 3 (the refused one must not be)", len(b.submitted))
	}
	bad := cfg
	bad.Sources.BytesBurst = cfg.BodyBytesMax - 1
	if err := bad.ValidateBasic(); err == nil {
		t.Fatal("a byte burst smaller than the largest batch passed ValidateBasic")
	}
}
