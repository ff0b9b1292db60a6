package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/seqbook/seqbook/client"
	"github.com/seqbook/seqbook/client/amount"
	"github.com/seqbook/seqbook/client/keys"
	"github.com/seqbook/seqbook/client/legacy"
	"github.com/seqbook/seqbook/internal/localnet"
	"github.com/seqbook/seqbook/tutorial/internal/replicated"
	"github.com/seqbook/seqbook/tutorial/internal/tut"
)

// memSequencer sequences every Send at once, for unit tests.
type memSequencer struct {
	mu      sync.Mutex
	batches []client.Batch
	wake    chan struct{}
}

func newMemSequencer() *memSequencer { return &memSequencer{wake: make(chan struct{})} }

func (m *memSequencer) Send(_ context.Context, _ string, body []byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.batches = append(m.batches, client.Batch{Index: uint64(len(m.batches) + 1), Body: append([]byte(nil), body...)})
	close(m.wake)
	m.wake = make(chan struct{})
	return nil
}

func (m *memSequencer) Follow(ctx context.Context, _ string, after uint64, _ [32]byte, fn func(client.Batch) error) error {
	for {
		m.mu.Lock()
		var next []client.Batch
		if int(after) < len(m.batches) {
			next = append(next, m.batches[after:]...)
		}
		wake := m.wake
		m.mu.Unlock()
		for _, b := range next {
			if err := fn(b); err != nil {
				return err
			}
			after = b.Index
		}
		if len(next) == 0 {
			select {
			case <-wake:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	}
}

func signed(t *testing.T, k *ecdsa.PrivateKey, side, qty, price string) map[string]any {
	t.Helper()
	q, err := amount.Parse(qty)
	if err != nil {
		t.Fatal(err)
	}
	p, err := amount.Parse(price)
	if err != nil {
		t.Fatal(err)
	}
	sig, err := legacy.Sign(k, legacy.Message(side, q, p, "ETH", "USDT"))
	if err != nil {
		t.Fatal(err)
	}
	return map[string]any{"sender": keys.Address(k).Hex(), "order_type": side, "base_token": "ETH", "quote_token": "USDT",
		"quantity": json.Number(qty), "price": json.Number(price), "signature": fmt.Sprintf("0x%x", sig)}
}

func post(t *testing.T, base string, body any) (int, map[string]any) {
	t.Helper()
	b, _ := json.Marshal(body)
	resp, err := http.Post(base+"/order", "application/json", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	raw, _ := io.ReadAll(resp.Body)
	_ = json.Unmarshal(raw, &out)
	return resp.StatusCode, out
}

func get(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return strings.TrimSpace(string(raw))
}

func waitUntil(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestInstancesApplyTheSameSequence(t *testing.T) {
	seq := newMemSequencer()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	var urls []string
	var servers []*server
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })
	for i := 0; i < 2; i++ {
		s, err := newServer(seq, "tutorial-orderbook", quiet)
		if err != nil {
			t.Fatal(err)
		}
		srv := httptest.NewServer(s.routes())
		t.Cleanup(srv.Close)
		wg.Add(1)
		go func() { defer wg.Done(); _ = s.run(ctx) }()
		urls = append(urls, srv.URL)
		servers = append(servers, s)
	}
	u1, u2 := keys.TutorialUser1(), keys.TutorialUser2()

	// Sent, not applied: the answer is the tutorial's.
	code, out := post(t, urls[0], signed(t, u1, "buy", "1", "200"))
	if code != 200 || out["message"] != replicated.SentMessage {
		t.Fatalf("buy: %d %v", code, out)
	}
	code, out = post(t, urls[1], signed(t, u2, "sell", "0.5", "190"))
	if code != 200 {
		t.Fatalf("sell: %d %v", code, out)
	}
	// A batch some other program put in the app is skipped, not fatal.
	_ = seq.Send(ctx, "", []byte(`{"not":"a list"}`))
	forged := signed(t, u2, "sell", "1", "100")
	forged["sender"] = keys.TutorialUser1Address.Hex()
	_ = seq.Send(ctx, "", mustJSON(t, []any{map[string]any{"id": "0x00", "user": forged["sender"], "order_type": "sell",
		"base_token": "ETH", "quote_token": "USDT", "quantity": 1, "price": 100, "signature": forged["signature"]}}))

	for _, s := range servers {
		waitUntil(t, "both orders applied", 5*time.Second, func() bool { applied, _ := s.ledger.State(); return applied >= 4 })
	}
	for _, u := range urls {
		if b := balanceOf(t, get(t, u+"/balance?address="+keys.TutorialUser2Address.Hex()+"&token=USDT")); b != "100" {
			t.Errorf("%s: user2 USDT = %s, want 100 (0.5 ETH sold at the maker's price, 200)", u, b)
		}
		if b := balanceOf(t, get(t, u+"/balance?address="+keys.TutorialUser1Address.Hex()+"&token=ETH")); b != "0.5" {
			t.Errorf("%s: user1 ETH = %s, want 0.5", u, b)
		}
	}
	if a, b := get(t, urls[0]+"/orders"), get(t, urls[1]+"/orders"); a != b || !strings.Contains(a, `"filled":0.5`) {
		t.Fatalf("open orders differ or wrong:\n%s\n%s", a, b)
	}
	// Checks at the door: a bad signature, a replay, too little balance.
	bad := signed(t, u1, "buy", "1", "200")
	bad["price"] = json.Number("201")
	if code, out := post(t, urls[0], bad); code != 401 {
		t.Fatalf("forged: %d %v", code, out)
	}
	if code, out := post(t, urls[1], signed(t, u1, "buy", "1", "200")); code != 409 {
		t.Fatalf("replay: %d %v", code, out)
	}
	if code, out := post(t, urls[1], signed(t, u1, "buy", "100", "200")); code != 403 {
		t.Fatalf("insufficient: %d %v", code, out)
	}
	if code, out := post(t, urls[1], map[string]any{"sender": "0x12"}); code != 400 {
		t.Fatalf("malformed: %d %v", code, out)
	}
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestAgainstARealSequencer runs 4 `seqbook sequencer` processes and two
// step-3 instances, and checks the instances agree (skipped under -short).
func TestAgainstARealSequencer(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real processes; skipped under -short")
	}
	dir := t.TempDir()
	seqbookBin, step3Bin := filepath.Join(dir, "seqbook"), filepath.Join(dir, "step3")
	for bin, pkg := range map[string]string{seqbookBin: "github.com/seqbook/seqbook/cmd/seqbook", step3Bin: "github.com/seqbook/seqbook/tutorial/step3-replicated"} {
		build := exec.Command("go", "build", "-o", bin, pkg)
		build.Stderr = os.Stderr
		if err := build.Run(); err != nil {
			t.Fatalf("building %s: %v", pkg, err)
		}
	}
	cfg, err := localnet.TestConfig(filepath.Join(dir, "net"), seqbookBin)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Kinds = []string{localnet.KindSequencer}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	n, err := localnet.Start(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(n.Stop)

	var urls []string
	for i := 0; i < 2; i++ {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := ln.Addr().(*net.TCPAddr).Port
		ln.Close()
		logPath := filepath.Join(dir, fmt.Sprintf("step3-%d.log", i))
		logf, err := os.Create(logPath)
		if err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(step3Bin, "--cluster", n.ClusterPath, "--port", fmt.Sprint(port))
		cmd.Stdout, cmd.Stderr = logf, logf
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			cmd.Process.Kill()
			cmd.Wait()
			logf.Close()
			if t.Failed() {
				b, _ := os.ReadFile(logPath)
				t.Logf("step3 instance %d log:\n%s", i, b)
			}
		})
		u := fmt.Sprintf("http://127.0.0.1:%d", port)
		waitUntil(t, "instance up", 30*time.Second, func() bool {
			resp, err := http.Get(u + "/state")
			if err == nil {
				resp.Body.Close()
			}
			return err == nil && resp.StatusCode == 200
		})
		urls = append(urls, u)
	}
	u1, u2 := keys.TutorialUser1(), keys.TutorialUser2()
	if code, out := post(t, urls[0], signed(t, u1, "buy", "2", "200")); code != 200 {
		t.Fatalf("buy: %d %v", code, out)
	}
	if code, out := post(t, urls[1], signed(t, u2, "sell", "1.5", "199")); code != 200 {
		t.Fatalf("sell: %d %v", code, out)
	}
	for _, u := range urls {
		waitUntil(t, u+" to apply both orders", 60*time.Second, func() bool {
			b, _ := tut.DecodeBalance([]byte(get(t, u+"/balance?address="+keys.TutorialUser1Address.Hex()+"&token=ETH")))
			return b == "1.5"
		})
	}
	if a, b := get(t, urls[0]+"/orders"), get(t, urls[1]+"/orders"); a != b {
		t.Fatalf("instances differ:\n%s\n%s", a, b)
	}
	if a, b := balanceOf(t, get(t, urls[0]+"/balance?address="+keys.TutorialUser2Address.Hex()+"&token=USDT")), "300"; a != b {
		t.Fatalf("user2 USDT %s, want %s", a, b)
	}
}

// balanceOf reads a GET /balance answer's balance.
func balanceOf(t *testing.T, body string) string {
	t.Helper()
	b, err := tut.DecodeBalance([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	return b
}
