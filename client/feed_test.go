package client_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/seqbook/seqbook/client"
	"github.com/seqbook/seqbook/client/amount"
	"github.com/seqbook/seqbook/client/eip712"
	"github.com/seqbook/seqbook/client/keys"
	"github.com/seqbook/seqbook/client/obapi"
	"github.com/seqbook/seqbook/replica"
)

// A real replica (in-memory sequencer and store) behind an HTTP server
// whose connections the test can cut.
func startFeedReplica(t *testing.T) (*httptest.Server, *cutListener) {
	t.Helper()
	cfg := replica.TestConfig()
	cfg.ID = "r1"
	cfg.Domain = &replica.Domain{EIP712: eip712.NewDomain(eip712.DefaultChainID), App: "orderbook", Bridge: keys.TutorialUser2Address}
	cfg.Key = keys.DeterministicBLS("feed-test")
	cfg.Genesis = &replica.Genesis{Balances: []replica.GenesisBalance{
		{Address: keys.TutorialUser1Address.Hex(), Token: "USDT", Amount: "100000"},
		{Address: keys.TutorialUser2Address.Hex(), Token: "ETH", Amount: "100"},
	}}
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	seq := replica.NewMemSequencer(func() uint64 { return uint64(time.Now().UnixMilli()) })
	r, err := replica.New(cfg, seq, replica.NewMemStore())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = r.Run(ctx) }()
	srv := httptest.NewUnstartedServer(r.Handler())
	cut := &cutListener{Listener: srv.Listener}
	srv.Listener = cut
	srv.Start()
	t.Cleanup(func() { cut.cutAll(); srv.Close(); cancel(); <-done; r.Close() })
	return srv, cut
}

// cutListener remembers its connections so a test can cut them all,
// WebSocket ones included (the HTTP server forgets hijacked ones).
type cutListener struct {
	net.Listener
	mu    sync.Mutex
	conns []net.Conn
}

func (l *cutListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.mu.Lock()
		l.conns = append(l.conns, c)
		l.mu.Unlock()
	}
	return c, err
}

func (l *cutListener) cutAll() {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, c := range l.conns {
		c.Close()
	}
	l.conns = nil
}

func TestSubscribeReconnectsAndResumes(t *testing.T) {
	srv, cut := startFeedReplica(t)
	ob, err := client.NewOrderbook(srv.URL, client.WithChainID(eip712.DefaultChainID))
	if err != nil {
		t.Fatal(err)
	}
	// Orders go on fresh connections: cutting the feed's must not cut them.
	trader, _ := client.NewOrderbook(srv.URL, client.WithChainID(eip712.DefaultChainID),
		client.WithHTTPClient(&http.Client{Transport: &http.Transport{DisableKeepAlives: true}}))
	trade := func() {
		t.Helper()
		ctx := context.Background()
		if _, err := trader.PlaceOrder(ctx, keys.TutorialUser2(), client.OrderParams{Market: "ETH/USDT", Side: "sell", Quantity: amount.Scale, Price: 10 * amount.Scale}, true); err != nil {
			t.Fatal(err)
		}
		if _, err := trader.PlaceOrder(ctx, keys.TutorialUser1(), client.OrderParams{Market: "ETH/USDT", Side: "buy", Quantity: amount.Scale, Price: 10 * amount.Scale}, true); err != nil {
			t.Fatal(err)
		}
	}
	var mu sync.Mutex
	var seqs []uint64
	resumed, snapshots := 0, 0
	events := make(chan struct{}, 100)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	errc := make(chan error, 1)
	go func() {
		errc <- ob.Subscribe(ctx, []obapi.WSRequest{{Channel: "trades", Market: "ETH/USDT"}, {Channel: "book", Market: "ETH/USDT"}}, func(e client.FeedEvent) error {
			mu.Lock()
			defer mu.Unlock()
			if e.Resumed {
				resumed++
			}
			if e.Channel == "trades" {
				tr, err := e.Trades()
				if err != nil {
					return err
				}
				for _, x := range tr.Trades {
					seqs = append(seqs, x.Seq)
				}
			} else if b, err := e.Book(); err == nil && b.Snapshot {
				snapshots++
			}
			events <- struct{}{}
			return nil
		})
	}()
	count := func() (int, int, int) { mu.Lock(); defer mu.Unlock(); return len(seqs), resumed, snapshots }
	wait := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.After(20 * time.Second)
		for !cond() {
			select {
			case <-events:
			case <-deadline:
				n, r, s := count()
				t.Fatalf("%s: trades %d, resumed %d, snapshots %d", what, n, r, s)
			}
		}
	}
	wait("first snapshots", func() bool { _, _, s := count(); return s == 1 })
	trade()
	wait("first trade", func() bool { n, _, _ := count(); return n == 1 })
	// Cut the connection; a trade happens while the client is away.
	cut.cutAll()
	trade()
	wait("the trade made while away, after the reconnection", func() bool { n, r, _ := count(); return n == 2 && r >= 2 })
	trade()
	wait("a live trade after the reconnection", func() bool { n, _, _ := count(); return n == 3 })
	mu.Lock()
	if seqs[0] != 1 || seqs[1] != 2 || seqs[2] != 3 || snapshots != 2 {
		t.Fatalf("trade sequence %v (each exactly once, in order), book snapshots %d", seqs, snapshots)
	}
	mu.Unlock()
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("Subscribe returned %v", err)
	}
}

func TestSubscribeRefused(t *testing.T) {
	srv, _ := startFeedReplica(t)
	ob, _ := client.NewOrderbook(srv.URL)
	err := ob.Subscribe(context.Background(), []obapi.WSRequest{{Channel: "book", Market: "nope"}}, func(client.FeedEvent) error { return nil })
	if !errors.Is(err, client.ErrFeedRefused) {
		t.Fatalf("got %v, want ErrFeedRefused", err)
	}
}
