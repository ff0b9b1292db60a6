// Package benchload is the matcher's benchmark workload, shared by the
// `go test -bench` functions and `seqbook bench matcher` so both measure the
// same thing: a book pre-filled with resting orders, then a stream of limit
// orders, half buys and half sells, priced uniformly over 101 ticks of 0.01
// from 99.50 to 100.50, for 1 to 10 whole base tokens each, from many funded
// accounts, with balances and reservations on as in production.
//
// Orders (with realistic 66-byte ids and 42-byte accounts) are generated in
// chunks outside the timed sections, so the figure is the matcher's cost per
// order, not the generator's.
package benchload

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"time"

	"github.com/seqbook/seqbook/client/amount"
	"github.com/seqbook/seqbook/internal/matcher"
)

// Config sizes the workload.
type Config struct {
	Resting  int    // orders placed first, not crossing, not timed
	Orders   int    // orders timed
	Accounts int    // traders the orders are spread over
	Seed     uint64 // the random stream; same seed, same orders
	Matcher  matcher.Config
}

// DefaultConfig is the README's benchmark: 10K resting, then 1M orders.
func DefaultConfig() Config {
	return Config{Resting: 10_000, Orders: 1_000_000, Accounts: 1_000, Seed: 1, Matcher: matcher.DefaultConfig()}
}

// Market is the one market the workload trades.
const Market = "ETH/USDT"

const (
	tickLow  = 99_500_000 // 99.50
	tickSize = 10_000     // 0.01
	ticks    = 101        // 99.50 .. 100.50
	midTick  = 50         // 100.00
	// fundQuote and fundBase are every account's deposits: far more than
	// the stream can spend (a trader places ~Orders/Accounts orders of at
	// most 10 × 100.5 USDT), so no order is refused for balance.
	fundQuote = 1_000_000_000 * amount.Scale
	fundBase  = 10_000_000 * amount.Scale
)

// Workload generates the orders and sets up the engine.
type Workload struct {
	cfg      Config
	rng      *rand.Rand
	accounts []string
	nextID   uint64
}

// New returns a workload; it panics on a config with no accounts.
func New(cfg Config) *Workload {
	if cfg.Accounts < 1 {
		panic("benchload: at least one account")
	}
	w := &Workload{cfg: cfg, rng: rand.New(rand.NewPCG(cfg.Seed, 0x5eb00c))}
	for i := range cfg.Accounts {
		// Distinct, address-shaped, deterministic.
		w.accounts = append(w.accounts, fmt.Sprintf("0x%040x", uint64(i+1)*0x9e3779b97f4a7c15))
	}
	return w
}

// Setup returns an engine with every account funded and cfg.Resting orders
// resting: bids on the 50 ticks below 100, asks on the 50 above.
func (w *Workload) Setup() (*matcher.Engine, error) {
	e := matcher.New(w.cfg.Matcher)
	for _, a := range w.accounts {
		if err := e.Deposit(a, "USDT", fundQuote); err != nil {
			return nil, err
		}
		if err := e.Deposit(a, "ETH", fundBase); err != nil {
			return nil, err
		}
	}
	var res matcher.PlaceResult
	for i := range w.cfg.Resting {
		o := w.order()
		if i%2 == 0 {
			o.Side, o.Price = matcher.Buy, tickLow+uint64(w.rng.IntN(midTick))*tickSize
		} else {
			o.Side, o.Price = matcher.Sell, tickLow+uint64(midTick+1+w.rng.IntN(midTick))*tickSize
		}
		if err := e.PlaceInto(o, &res); err != nil {
			return nil, fmt.Errorf("resting order %d: %w", i, err)
		}
	}
	return e, nil
}

// order returns a new order with id, account, quantity; side and price are
// the caller's.
func (w *Workload) order() matcher.Order {
	w.nextID++
	return matcher.Order{
		ID:       fmt.Sprintf("0x%064x", w.nextID),
		Account:  w.accounts[w.rng.IntN(len(w.accounts))],
		Market:   Market,
		Type:     matcher.Limit,
		Quantity: uint64(1+w.rng.IntN(10)) * amount.Scale,
	}
}

// Next appends n stream orders to dst.
func (w *Workload) Next(dst []matcher.Order, n int) []matcher.Order {
	for range n {
		o := w.order()
		o.Side = matcher.Buy
		if w.rng.IntN(2) == 1 {
			o.Side = matcher.Sell
		}
		o.Price = tickLow + uint64(w.rng.IntN(ticks))*tickSize
		dst = append(dst, o)
	}
	return dst
}

// Result is one run's measurement.
type Result struct {
	Orders  int
	Seconds float64 // wall time spent inside the matcher only
	// CPUSeconds is the CPU time of the matcher's thread over the timed
	// sections (Linux; -1 elsewhere). On a busy machine it is the steadier
	// figure, as it leaves out time spent waiting for a core; it also
	// leaves out garbage-collector work done on other threads.
	CPUSeconds float64
	Trades     int
	Rejected   int // orders refused (e.g. the per-account open-order bound)
	OpenOrders int // resting at the end
}

// OrdersPerSecond is Orders / Seconds.
func (r Result) OrdersPerSecond() float64 {
	if r.Seconds <= 0 {
		return 0
	}
	return float64(r.Orders) / r.Seconds
}

// OrdersPerCPUSecond is Orders / CPUSeconds, or 0 when unknown.
func (r Result) OrdersPerCPUSecond() float64 {
	if r.CPUSeconds <= 0 {
		return 0
	}
	return float64(r.Orders) / r.CPUSeconds
}

// ChunkOrders is how many orders are generated between timed sections.
const ChunkOrders = 1 << 16

// Run sets up the book, then times cfg.Orders orders. Every order's events
// are produced as in production (PlaceInto with a reused result).
func Run(cfg Config) (Result, error) {
	w := New(cfg)
	e, err := w.Setup()
	if err != nil {
		return Result{}, err
	}
	runtime.GC()           // start the timed part without the setup's garbage
	runtime.LockOSThread() // so threadCPU measures the matcher's thread
	defer runtime.UnlockOSThread()
	var (
		r      = Result{Orders: cfg.Orders}
		res    matcher.PlaceResult
		orders = make([]matcher.Order, 0, ChunkOrders)
		spent  time.Duration
		cpu    float64
	)
	for done := 0; done < cfg.Orders; {
		orders = w.Next(orders[:0], min(ChunkOrders, cfg.Orders-done))
		cpu0, start := threadCPU(), time.Now()
		for i := range orders {
			if err := e.PlaceInto(orders[i], &res); err != nil {
				r.Rejected++
				continue
			}
			r.Trades += len(res.Trades)
		}
		spent += time.Since(start)
		if cpu >= 0 {
			if c := threadCPU(); c >= 0 && cpu0 >= 0 {
				cpu += c - cpu0
			} else {
				cpu = -1
			}
		}
		done += len(orders)
	}
	r.Seconds, r.CPUSeconds = spent.Seconds(), cpu
	r.OpenOrders = e.OpenOrderCount()
	if err := e.CheckInvariants(); err != nil {
		return r, fmt.Errorf("benchload: state broken after the run: %w", err)
	}
	return r, nil
}
