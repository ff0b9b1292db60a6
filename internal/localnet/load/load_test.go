package load

import (
	"context"
	"crypto/ecdsa"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/ethereum/go-ethereum/common"

	"github.com/seqbook/seqbook/client/eip712"
	"github.com/seqbook/seqbook/client/ethsig"
	"github.com/seqbook/seqbook/client/obapi"
	"github.com/seqbook/seqbook/internal/localnet"
)

func TestSignProducesVerifiableCrossingOrders(t *testing.T) {
	traders := []*ecdsa.PrivateKey{localnet.TraderKey(0), localnet.TraderKey(1), localnet.TraderKey(2)}
	orders, err := Sign(Plan{ChainID: 31337, Traders: traders, Count: 50, NonceBase: 1000, Expiry: 2_000_000_000})
	if err != nil {
		t.Fatal(err)
	}
	domain := eip712.NewDomain(31337)
	ids := map[string]bool{}
	for k, s := range orders {
		var req obapi.OrderRequest
		if err := json.Unmarshal(s.Body, &req); err != nil {
			t.Fatal(err)
		}
		if ids[s.ID] {
			t.Fatalf("order %d repeats id %s", k, s.ID)
		}
		ids[s.ID] = true
		wantSide := map[bool]string{true: "sell", false: "buy"}[k%2 == 0]
		if req.Side != wantSide || req.Market != Market || req.OrderType != "limit" || string(req.Nonce) != fmt.Sprint(1000+k) {
			t.Fatalf("order %d: %+v", k, req)
		}
		o := eip712.Order{Trader: common.HexToAddress(req.Trader), Market: req.Market, Side: req.Side, OrderType: req.OrderType,
			Quantity: OrderQuantity, Price: OrderPrice, Nonce: uint64(1000 + k), Expiry: 2_000_000_000}
		d := domain.Digest(&o)
		if fmt.Sprintf("0x%x", d) != s.ID {
			t.Fatalf("order %d: id is not the digest", k)
		}
		sig, err := ethsig.ParseHex(req.Signature)
		if err != nil {
			t.Fatal(err)
		}
		if err := ethsig.Verify(d, sig, ethsig.Address(traders[k%3])); err != nil {
			t.Fatalf("order %d: %v", k, err)
		}
	}
	if _, err := Sign(Plan{Traders: traders[:1], Count: 1}); err == nil {
		t.Fatal("one trader accepted")
	}
}

// fakeReplicas serves GET /state and GET /depth with a settable applied
// index per replica.
type fakeReplica struct {
	index   atomic.Uint64
	digest  atomic.Value
	pending atomic.Int64
	states  atomic.Int64 // GET /state answered
	srv     *httptest.Server
}

func newFakeReplica(t *testing.T, name string) *fakeReplica {
	f := &fakeReplica{}
	f.digest.Store("0xaa")
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/depth" && r.URL.Query().Get("market") == Market {
			json.NewEncoder(w).Encode(obapi.Depth{Market: Market, Index: f.index.Load()})
			return
		}
		if r.URL.Path == "/ws" {
			f.serveFinality(w, r)
			return
		}
		if r.URL.Path != "/state" {
			http.NotFound(w, r)
			return
		}
		f.states.Add(1)
		json.NewEncoder(w).Encode(obapi.State{Replica: name, AppliedIndex: f.index.Load(), StateDigest: f.digest.Load().(string), Pending: int(f.pending.Load())})
	}))
	t.Cleanup(f.srv.Close)
	return f
}

// serveFinality is the live feed's finality channel as a replica serves
// it: where the replica stands first, then one message per applied batch
// (the fake notices index changes every millisecond).
func (f *fakeReplica) serveFinality(w http.ResponseWriter, r *http.Request) {
	c, err := websocket.Accept(w, r, nil)
	if err != nil {
		return
	}
	defer c.CloseNow()
	ctx := r.Context()
	var req obapi.WSRequest
	if _, b, err := c.Read(ctx); err != nil || json.Unmarshal(b, &req) != nil || req.Channel != obapi.ChannelFinality {
		return
	}
	send := func(i uint64) error {
		data, _ := json.Marshal(obapi.WSFinality{Index: i})
		b, _ := json.Marshal(obapi.WSMessage{Channel: obapi.ChannelFinality, Index: i, Data: data})
		return c.Write(ctx, websocket.MessageText, b)
	}
	sent := f.index.Load()
	if send(sent) != nil {
		return
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Millisecond):
		}
		for now := f.index.Load(); sent < now; {
			sent++
			if send(sent) != nil {
				return
			}
		}
	}
}

// TestTrackerFollowsLiveFeeds: Follow records each index when the
// replica's feed says it was applied, not at a later poll.
func TestTrackerFollowsLiveFeeds(t *testing.T) {
	a, b := newFakeReplica(t, "r1"), newFakeReplica(t, "r2")
	a.index.Store(2)
	b.index.Store(3)
	tr := NewTracker(NewHTTP(time.Second), []string{a.srv.URL, b.srv.URL})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- tr.Follow(ctx) }()
	waitFor := func(what string, ok func() bool) {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); !ok(); time.Sleep(time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%s: not within 5s", what)
			}
		}
	}
	waitFor("both feeds answered", tr.Answered)
	if tr.MinApplied() != 2 {
		t.Fatalf("min applied %d, want 2", tr.MinApplied())
	}
	before := time.Now()
	a.index.Store(5)
	waitFor("r1 seen at 5", func() bool { _, ok := tr.AppliedAt(0, 5); return ok })
	at4, _ := tr.AppliedAt(0, 4)
	if at4.Before(before) {
		t.Fatalf("index 4 recorded at %v, before it was applied (%v)", at4, before)
	}
	if _, ok := tr.AppliedEverywhere(5); ok {
		t.Fatal("index 5 applied everywhere while r2 is at 3")
	}
	b.index.Store(6)
	waitFor("applied everywhere at 5", func() bool { _, ok := tr.AppliedEverywhere(5); return ok })
	if at, _ := tr.AppliedEverywhere(5); at.Before(before) {
		t.Fatalf("applied everywhere at %v, before %v", at, before)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Follow after its context ended: %v", err)
	}
}

func TestTrackerAndConvergence(t *testing.T) {
	a, b := newFakeReplica(t, "r1"), newFakeReplica(t, "r2")
	h := NewHTTP(time.Second)
	tr := NewTracker(h, []string{a.srv.URL, b.srv.URL})
	ctx := context.Background()
	a.index.Store(5)
	b.index.Store(3)
	tr.Poll(ctx, 0)
	tr.Poll(ctx, 1)
	if _, ok := tr.AppliedEverywhere(4); ok {
		t.Fatal("index 4 applied everywhere while r2 is at 3")
	}
	if _, ok := tr.AppliedAt(0, 4); !ok {
		t.Fatal("r1 at 5 has not applied 4")
	}
	b.index.Store(7)
	tr.Poll(ctx, 1)
	at1, _ := tr.AppliedAt(1, 4)
	all, ok := tr.AppliedEverywhere(4)
	if !ok || !all.Equal(at1) {
		t.Fatalf("applied everywhere at %v (%v), want r2's time %v", all, ok, at1)
	}
	if tr.MinApplied() != 5 {
		t.Fatalf("min applied %d", tr.MinApplied())
	}

	// Convergence needs equal index, equal digest, nothing pending.
	short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	if _, err := WaitConverged(short, h, []string{a.srv.URL, b.srv.URL}, 0); err == nil || !strings.Contains(err.Error(), "did not converge") {
		t.Fatalf("converged at different indexes: %v", err)
	}
	a.index.Store(7)
	b.digest.Store("0xbb")
	short2, cancel2 := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel2()
	if _, err := WaitConverged(short2, h, []string{a.srv.URL, b.srv.URL}, 0); err == nil {
		t.Fatal("converged with different digests")
	}
	b.digest.Store("0xaa")
	c, err := WaitConverged(ctx, h, []string{a.srv.URL, b.srv.URL}, 7)
	if err != nil || c.Index != 7 || c.Digest != "0xaa" {
		t.Fatalf("%+v %v", c, err)
	}
}

func TestPercentile(t *testing.T) {
	var ds []time.Duration
	for i := 1; i <= 100; i++ {
		ds = append(ds, time.Duration(i)*time.Millisecond)
	}
	for _, c := range []struct {
		p    float64
		want time.Duration
	}{{50, 50 * time.Millisecond}, {90, 90 * time.Millisecond}, {99, 99 * time.Millisecond}, {100, 100 * time.Millisecond}, {0, time.Millisecond}} {
		if got := Percentile(ds, c.p); got != c.want {
			t.Errorf("p%v = %v, want %v", c.p, got, c.want)
		}
	}
	if Percentile(nil, 50) != 0 {
		t.Error("empty")
	}
}

// While the replicas' applied indexes differ or still move, WaitConverged
// reads only the cheap index, not the state with its digest.
func TestWaitConvergedAsksForStatesOnlyWhenSettled(t *testing.T) {
	a, b := newFakeReplica(t, "r1"), newFakeReplica(t, "r2")
	h := NewHTTP(time.Second)
	urls := []string{a.srv.URL, b.srv.URL}
	a.index.Store(5)
	b.index.Store(3)
	short, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if _, err := WaitConverged(short, h, urls, 0); err == nil {
		t.Fatal("converged at different indexes")
	}
	if n := a.states.Load() + b.states.Load(); n != 0 {
		t.Fatalf("%d GET /state while the indexes differed", n)
	}
	b.index.Store(5)
	c, err := WaitConverged(context.Background(), h, urls, 5)
	if err != nil || c.Index != 5 || c.Digest != "0xaa" {
		t.Fatalf("%+v %v", c, err)
	}
	if a.states.Load() != 1 || b.states.Load() != 1 {
		t.Fatalf("GET /state %d and %d times once settled, want once each", a.states.Load(), b.states.Load())
	}
}
