// Package intakebench measures what a replica's order intake costs per
// order when orders come one per request (POST /order) and when they come
// in batches (POST /orders): the `seqbook bench intake` command and the
// package's go test benchmarks.
//
// It runs one real replica (HTTP on loopback, bbolt-free in-memory store,
// in-memory sequencer that finalizes at once) in this process and a load
// generator beside it. Orders are signed before the clock starts. The clock
// stops when every order is answered and applied, so applying is counted
// too (it is the same work in both modes). CPU is this process's user +
// system time: replica and load generator together, since both pay the
// per-request HTTP cost that batching saves.
package intakebench

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/seqbook/seqbook/client/eip712"
	"github.com/seqbook/seqbook/client/ethsig"
	"github.com/seqbook/seqbook/client/keys"
	"github.com/seqbook/seqbook/client/obapi"
	"github.com/seqbook/seqbook/replica"
)

// Options is one measurement.
type Options struct {
	Orders int // orders placed
	// Batch is the orders per request: 0 or 1 sends each with POST
	// /order, more sends POST /orders of up to Batch (at most 100).
	Batch       int
	Concurrency int // requests in flight
	Traders     int // funded traders the orders are spread over
}

// DefaultOptions is a run of a few seconds on a busy two-core machine.
func DefaultOptions() Options {
	return Options{Orders: 6000, Batch: 100, Concurrency: 8, Traders: 32}
}

// Result is what a run measured.
type Result struct {
	Orders, Requests int
	Seconds          float64
	CPUSeconds       float64
}

// OrdersPerSecond is the wall-clock rate.
func (r Result) OrdersPerSecond() float64 { return float64(r.Orders) / r.Seconds }

// RequestsPerSecond is the HTTP request rate.
func (r Result) RequestsPerSecond() float64 { return float64(r.Requests) / r.Seconds }

// CPUMicrosPerOrder is the process CPU time per order, in microseconds.
func (r Result) CPUMicrosPerOrder() float64 { return r.CPUSeconds * 1e6 / float64(r.Orders) }

func (o Options) validate() error {
	switch {
	case o.Orders < 1 || o.Concurrency < 1 || o.Traders < 1:
		return errors.New("orders, concurrency and traders must be positive")
	case o.Batch < 0 || o.Batch > obapi.OrdersBatchMax:
		return fmt.Errorf("batch must be 0 to %d", obapi.OrdersBatchMax)
	case o.Orders > o.Traders*900:
		return fmt.Errorf("%d orders over %d traders exceed the replica's open orders per trader; add traders", o.Orders, o.Traders)
	}
	return nil
}

// Run measures one configuration.
func Run(ctx context.Context, o Options) (Result, error) {
	if err := o.validate(); err != nil {
		return Result{}, err
	}
	traders := make([]*ecdsa.PrivateKey, o.Traders)
	gen := &replica.Genesis{}
	for i := range traders {
		traders[i] = keys.DeterministicTrader(fmt.Sprintf("intakebench-%d", i))
		gen.Balances = append(gen.Balances, replica.GenesisBalance{Address: ethsig.Address(traders[i]).Hex(), Token: "USDT", Amount: "1000000000"})
	}
	dom := &replica.Domain{EIP712: eip712.NewDomain(eip712.DefaultChainID), App: "orderbook"}
	cfg := replica.DefaultConfig()
	cfg.ID, cfg.Domain, cfg.Genesis = "replica1", dom, gen
	cfg.Key = keys.DeterministicBLS("intakebench")
	cfg.PendingMax = max(cfg.PendingMax, o.Orders)
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	seq := replica.NewMemSequencer(func() uint64 { return uint64(time.Now().UnixMilli()) })
	r, err := replica.New(cfg, seq, replica.NewMemStore())
	if err != nil {
		return Result{}, err
	}
	rctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- r.Run(rctx) }()
	srv := httptest.NewServer(r.Handler())
	defer func() { stop(); <-done; srv.Close(); r.Close() }()

	bodies, err := signAll(dom.EIP712, traders, o)
	if err != nil {
		return Result{}, err
	}
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: o.Concurrency}, Timeout: time.Minute}
	var next atomic.Int64
	var firstErr error
	var errOnce sync.Once
	cpu0, t0 := processCPU(), time.Now()
	var wg sync.WaitGroup
	for range o.Concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= len(bodies) || ctx.Err() != nil {
					return
				}
				if err := post(ctx, hc, srv.URL, o.Batch, bodies[i]); err != nil {
					errOnce.Do(func() { firstErr = err })
					return
				}
			}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		return Result{}, firstErr
	}
	// Applied: nothing pending any more.
	for {
		var st obapi.State
		if err := getJSON(ctx, hc, srv.URL+"/state", &st); err != nil {
			return Result{}, err
		}
		if st.Pending == 0 && st.OpenOrders == o.Orders {
			break
		}
		if ctx.Err() != nil {
			return Result{}, ctx.Err()
		}
		time.Sleep(time.Millisecond)
	}
	return Result{Orders: o.Orders, Requests: len(bodies), Seconds: time.Since(t0).Seconds(),
		CPUSeconds: (processCPU() - cpu0).Seconds()}, nil
}

// signAll signs every order (resting limit buys at distinct prices, so
// nothing trades: each mode applies exactly the same work) and encodes the
// request bodies.
func signAll(d eip712.Domain, traders []*ecdsa.PrivateKey, o Options) ([][]byte, error) {
	exp := uint64(time.Now().Add(30 * time.Minute).Unix())
	reqs := make([]obapi.OrderRequest, o.Orders)
	for i := range reqs {
		k := traders[i%len(traders)]
		m := eip712.Order{Trader: ethsig.Address(k), Market: "ETH/USDT", Side: "buy", OrderType: "limit",
			Quantity: 1_000_000, Price: uint64(1+i%1000) * 1_000_000, Nonce: uint64(i + 1), Expiry: exp}
		sig, err := ethsig.Sign(k, d.Digest(&m))
		if err != nil {
			return nil, err
		}
		reqs[i] = obapi.OrderRequest{Trader: m.Trader.Hex(), Market: m.Market, Side: m.Side, OrderType: m.OrderType,
			Quantity: obapi.Uint(m.Quantity), Price: obapi.Uint(m.Price), Nonce: obapi.Uint(m.Nonce), Expiry: obapi.Uint(exp),
			Signature: "0x" + fmt.Sprintf("%x", sig)}
	}
	per := max(1, o.Batch)
	var bodies [][]byte
	for s := 0; s < len(reqs); s += per {
		e := min(s+per, len(reqs))
		var v any = reqs[s]
		if o.Batch > 1 {
			v = struct {
				Orders []obapi.OrderRequest `json:"orders"`
			}{reqs[s:e]}
		}
		b, err := json.Marshal(v)
		if err != nil {
			return nil, err
		}
		bodies = append(bodies, b)
	}
	return bodies, nil
}

func post(ctx context.Context, hc *http.Client, base string, batch int, body []byte) error {
	path := "/order"
	if batch > 1 {
		path = "/orders"
	}
	req, err := http.NewRequestWithContext(ctx, "POST", base+path, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != 200 {
		return fmt.Errorf("POST %s: %d %s", path, resp.StatusCode, raw)
	}
	if batch > 1 {
		var res obapi.OrdersBatchResult
		if err := json.Unmarshal(raw, &res); err != nil {
			return err
		}
		for _, x := range res.Results {
			if x.Error != "" {
				return fmt.Errorf("POST /orders: an order was refused: %s", x.Error)
			}
		}
	}
	return nil
}

func getJSON(ctx context.Context, hc *http.Client, url string, out any) error {
	req, err := http.NewRequestWithContext(ctx, "GET", url, nil)
	if err != nil {
		return err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	return json.NewDecoder(resp.Body).Decode(out)
}

// processCPU is this process's CPU time so far (user + system).
func processCPU() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
