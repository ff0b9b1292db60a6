package replica

import (
	"context"
	"sync"
	"testing"
	"time"
)

// gatedSequencer is a MemSequencer whose Send waits at a gate while it is
// closed, and which records how many operations each batch held.
type gatedSequencer struct {
	*MemSequencer
	mu      sync.Mutex
	open    chan struct{} // closed while the gate is open
	sizes   []int
	waiting int
}

func newGatedSequencer(clockMs func() uint64) *gatedSequencer {
	g := &gatedSequencer{MemSequencer: NewMemSequencer(clockMs), open: make(chan struct{})}
	close(g.open)
	return g
}

func (g *gatedSequencer) closeGate() { g.mu.Lock(); g.open = make(chan struct{}); g.mu.Unlock() }
func (g *gatedSequencer) openGate()  { g.mu.Lock(); close(g.open); g.mu.Unlock() }

func (g *gatedSequencer) Send(ctx context.Context, body []byte) error {
	ops, err := DecodeBatch(testDomain(), body)
	if err != nil {
		return err
	}
	g.mu.Lock()
	g.sizes = append(g.sizes, len(ops))
	open := g.open
	g.waiting++
	g.mu.Unlock()
	defer func() { g.mu.Lock(); g.waiting--; g.mu.Unlock() }()
	select {
	case <-open:
	case <-ctx.Done():
		return ctx.Err()
	}
	return g.MemSequencer.Send(ctx, body)
}

func (g *gatedSequencer) batchSizes() []int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]int(nil), g.sizes...)
}

func (g *gatedSequencer) sendsWaiting() int { g.mu.Lock(); defer g.mu.Unlock(); return g.waiting }

// postOrders posts n orders of alice (nonces from, from+1, …) in the
// background and returns a channel that yields each answer's status.
func postOrders(t *testing.T, r *testReplica, from, n uint64) <-chan int {
	codes := make(chan int, n)
	for i := range n {
		o := signOrder(t, alice, orderSpec{side: "buy", qty: 1_000_000, price: 1000_000_000, nonce: from + i})
		go func() { codes <- r.do(t, "POST", "/order", o, nil) }()
	}
	return codes
}

func expectCodes(t *testing.T, codes <-chan int, n int) {
	t.Helper()
	for range n {
		if c := <-codes; c != 200 {
			t.Fatalf("POST /order: %d", c)
		}
	}
}

// TestBatchesLeaveBySizeAndByTime: after a quiet gap the first operation
// leaves alone at once; while the sequencer holds the one send slot,
// operations gather, and once it answers they leave in batches of at most
// BatchOpsMax, the remainder when its time is up.
func TestBatchesLeaveBySizeAndByTime(t *testing.T) {
	clock := newClock()
	seq := newGatedSequencer(clock.Ms)
	cfg := testConfig("replica1", clock)
	cfg.SendsInFlightMax = 1
	cfg.BatchOpsMax = 5
	r := startReplica(t, cfg, seq, NewMemStore())

	seq.closeGate()
	first := postOrders(t, r, 1, 1)
	waitFor(t, "the first batch to reach the sequencer", 10*time.Second, func() bool { return seq.sendsWaiting() == 1 })
	later := postOrders(t, r, 2, 12)
	waitFor(t, "12 operations to queue behind it", 10*time.Second, func() bool { return r.in.queued() == 12 })
	if got := seq.batchSizes(); len(got) != 1 || got[0] != 1 {
		t.Fatalf("batches while the slot is busy: %v, want [1]", got)
	}
	seq.openGate()
	expectCodes(t, first, 1)
	expectCodes(t, later, 12)
	r.waitApplied(t, 4)
	if got := seq.batchSizes(); len(got) != 4 || got[1] != 5 || got[2] != 5 || got[3] != 2 {
		t.Fatalf("batch sizes %v, want [1 5 5 2]", got)
	}
}

// TestBatchGapFollowsTheSequencer: the gap between batches under load is
// the smoothed answer time of sends, within its bounds.
func TestBatchGapFollowsTheSequencer(t *testing.T) {
	clock := newClock()
	cfg := testConfig("replica1", clock)
	cfg.BatchInterval, cfg.BatchIntervalMax = 10*time.Millisecond, 30*time.Millisecond
	r, err := New(cfg, NewMemSequencer(clock.Ms), NewMemStore())
	if err != nil {
		t.Fatal(err)
	}
	if g := r.batchGap(); g != 10*time.Millisecond {
		t.Fatalf("gap before any send: %v", g)
	}
	r.noteSendTime(2 * time.Millisecond) // a fast sequencer: the floor holds
	if g := r.batchGap(); g != 10*time.Millisecond {
		t.Fatalf("gap after a 2 ms answer: %v", g)
	}
	for range 20 {
		r.noteSendTime(20 * time.Millisecond)
	}
	if g := r.batchGap(); g < 19*time.Millisecond || g > 20*time.Millisecond {
		t.Fatalf("gap after 20 ms answers: %v", g)
	}
	for range 20 {
		r.noteSendTime(time.Second) // a stalled sequencer: the ceiling holds
	}
	if g := r.batchGap(); g != 30*time.Millisecond {
		t.Fatalf("gap after 1 s answers: %v", g)
	}
	cfg.BatchIntervalMax = 5 * time.Millisecond
	if err := cfg.ValidateBasic(); err == nil {
		t.Fatal("BatchIntervalMax below BatchInterval passed")
	}
	cfg.BatchIntervalMax, cfg.BatchOpsMax = 30*time.Millisecond, 0
	if err := cfg.ValidateBasic(); err == nil {
		t.Fatal("BatchOpsMax 0 passed")
	}
}
