package replica

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"
)

// laggingSequencer is a sequencer a replica cannot read from until it
// catches up (a replica that lags): its finalized head is the real one.
type laggingSequencer struct {
	*MemSequencer
	mu   sync.Mutex
	open bool
}

func (g *laggingSequencer) Finalized(ctx context.Context, after uint64, prev [32]byte, wait time.Duration) ([]Batch, error) {
	g.mu.Lock()
	open := g.open
	g.mu.Unlock()
	if !open {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(min(wait, 5*time.Millisecond)):
		}
		return nil, nil
	}
	return g.MemSequencer.Finalized(ctx, after, prev, wait)
}

func (g *laggingSequencer) catchUp() { g.mu.Lock(); g.open = true; g.mu.Unlock() }

// TestFundsRefusalWaitsForTheFinalizedHead: a withdrawal of funds a
// deposit brought, sent to a replica that has not applied that deposit
// yet, is not refused for funds the trader holds. The replica waits for
// the sequencer's finalized head and checks again; if it cannot get there
// in time it says it cannot tell yet (503), naming both indexes; a
// refusal it does give names the index it is final at.
func TestFundsRefusalWaitsForTheFinalizedHead(t *testing.T) {
	clock := newClock()
	mem := NewMemSequencer(clock.Ms)
	front := startReplica(t, testConfig("replica1", clock), mem, NewMemStore())
	lagSeq := &laggingSequencer{MemSequencer: mem}
	lagging := startReplica(t, testConfig("replica2", clock), lagSeq, NewMemStore())

	// Bob has no USDT at genesis; a deposit through the front replica
	// brings him 500.
	if code := front.do(t, "POST", "/deposit?wait=finalized", signDeposit(t, bridge, addr(bob), "USDT", 500_000_000, 1, 0), nil); code != 200 {
		t.Fatalf("deposit: %d", code)
	}
	if lagging.Applied() != 0 {
		t.Fatalf("the lagging replica applied %d, want 0", lagging.Applied())
	}

	// It cannot get to the head within LagWaitMax: it cannot tell yet.
	var e struct{ Error string }
	if code := lagging.do(t, "POST", "/withdraw", signWithdraw(t, bob, "USDT", 100_000_000, addr(bob), 2, 0), &e); code != 503 ||
		!strings.Contains(e.Error, "insufficient balance") || !strings.Contains(e.Error, "applied index 0") || !strings.Contains(e.Error, "finalized up to 1") {
		t.Fatalf("withdrawal at a replica stuck behind the head: %d %q, want 503 naming both indexes", code, e.Error)
	}

	// It gets there while the request waits: the withdrawal is taken.
	go func() {
		time.Sleep(20 * time.Millisecond)
		lagSeq.catchUp()
	}()
	if code := lagging.do(t, "POST", "/withdraw?wait=finalized", signWithdraw(t, bob, "USDT", 100_000_000, addr(bob), 3, 0), &e); code != 200 {
		t.Fatalf("withdrawal at a replica that catches up: %d %q, want 200", code, e.Error)
	}

	// A refusal it gives now is final as of the head, and says so.
	if code := lagging.do(t, "POST", "/withdraw", signWithdraw(t, bob, "USDT", 900_000_000, addr(bob), 4, 0), &e); code != 403 ||
		!strings.Contains(e.Error, "insufficient balance") || !strings.Contains(e.Error, "the sequencer's finalized head") {
		t.Fatalf("withdrawal beyond the funds: %d %q, want 403 as of the finalized head", code, e.Error)
	}
	// So does one in a batch placement.
	var res struct {
		Results []struct {
			Status, Error string
			Code          int
		}
	}
	big := signOrder(t, bob, orderSpec{side: "buy", qty: 1_000_000, price: 2000_000_000, nonce: 5})
	if code := lagging.do(t, "POST", "/orders", map[string]any{"orders": []any{big}}, &res); code != 200 || len(res.Results) != 1 ||
		res.Results[0].Code != 403 || !strings.Contains(res.Results[0].Error, "orders[0]: insufficient balance") ||
		!strings.Contains(res.Results[0].Error, "the sequencer's finalized head") {
		t.Fatalf("batch placement beyond the funds: %d %+v", code, res)
	}
}

// TestFundsRefusalWithoutWaiting: with LagWaitMax 0 a refusal for funds
// is given at once, and says which index it is true at.
func TestFundsRefusalWithoutWaiting(t *testing.T) {
	clock := newClock()
	cfg := testConfig("replica1", clock)
	cfg.LagWaitMax = 0
	r := startReplica(t, cfg, NewMemSequencer(clock.Ms), NewMemStore())
	var e struct{ Error string }
	if code := r.do(t, "POST", "/withdraw", signWithdraw(t, bob, "USDT", 1, addr(bob), 1, 0), &e); code != 403 ||
		!strings.Contains(e.Error, "insufficient balance") || !strings.Contains(e.Error, "as of this replica's applied index 0") {
		t.Fatalf("%d %q, want 403 as of this replica's index", code, e.Error)
	}
}
