package load

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/seqbook/seqbook/client/amount"
	"github.com/seqbook/seqbook/client/obapi"
)

// CheckExactlyOnce reads every accepted order from every replica: each
// must exist in a final state (not pending, not rejected) with the same
// status, fill and batch index everywhere, and filled + remaining equal to
// its quantity. It returns how many passed.
func CheckExactlyOnce(ctx context.Context, h *HTTP, urls []string, ids []string) (int, []string) {
	var failures []string
	applied := 0
	for _, id := range ids {
		var first obapi.Order
		ok := true
		for r, u := range urls {
			o, err := h.Order(ctx, u, id)
			switch {
			case err != nil:
				failures = append(failures, fmt.Sprintf("accepted order %s: %s: %v", id, u, err))
				ok = false
			case o.Status == obapi.StatusPending || o.Status == obapi.StatusRejected || o.Status == "":
				failures = append(failures, fmt.Sprintf("accepted order %s is %q on %s %s", id, o.Status, u, o.Reason))
				ok = false
			case r > 0 && (o.Status != first.Status || o.Filled != first.Filled || o.Index != first.Index):
				failures = append(failures, fmt.Sprintf("order %s differs: %s says %s/%s@%d, %s says %s/%s@%d",
					id, urls[0], first.Status, first.Filled, first.Index, u, o.Status, o.Filled, o.Index))
				ok = false
			}
			if r == 0 {
				first = o
			}
			if !ok {
				break
			}
		}
		if ok {
			applied++
		}
		if len(failures) > 20 {
			failures = append(failures, "… (more failures not checked)")
			break
		}
	}
	return applied, failures
}

// CheckTradesMatchFills reads the whole trade log of one replica (all
// agree: same digest) and checks that the quantity each of our orders
// traded equals the fill its record shows and never exceeds its quantity:
// an order applied twice would trade twice.
func CheckTradesMatchFills(ctx context.Context, h *HTTP, url string, ids []string) (int, []string) {
	ours := make(map[string]uint64, len(ids))
	for _, id := range ids {
		ours[id] = 0
	}
	trades := 0
	var after uint64
	for {
		var page obapi.Trades
		if err := h.GetJSON(ctx, fmt.Sprintf("%s/trades?market=%s&after=%d&limit=%d", url, "ETH%2FUSDT", after, obapi.TradesPageMax), &page); err != nil {
			return trades, []string{fmt.Sprintf("reading trades: %v", err)}
		}
		for _, t := range page.Trades {
			q, err := amount.Parse(t.Quantity)
			if err != nil {
				return trades, []string{fmt.Sprintf("trade %d quantity %q: %v", t.Seq, t.Quantity, err)}
			}
			for _, id := range []string{t.MakerOrder, t.TakerOrder} {
				if _, mine := ours[id]; mine {
					ours[id] += q
				}
			}
			trades++
		}
		if len(page.Trades) == 0 || page.Next <= after {
			break
		}
		after = page.Next
	}
	var failures []string
	keys := make([]string, 0, len(ours))
	for id := range ours {
		keys = append(keys, id)
	}
	sort.Strings(keys)
	for _, id := range keys {
		traded := ours[id]
		if traded > OrderQuantity {
			failures = append(failures, fmt.Sprintf("order %s traded %d base units, more than its quantity %d", id, traded, OrderQuantity))
			continue
		}
		o, err := h.Order(ctx, url, id)
		if err != nil {
			failures = append(failures, fmt.Sprintf("order %s: %v", id, err))
			continue
		}
		filled, err := amount.Parse(o.Filled)
		if err != nil || filled != traded {
			failures = append(failures, fmt.Sprintf("order %s shows %s filled but traded %d base units", id, o.Filled, traded))
		}
		if len(failures) > 20 {
			break
		}
	}
	return trades, failures
}

// FinalityMonitor follows the highest finalized index reported by any
// node and the longest time it stood still.
type FinalityMonitor struct {
	h     *HTTP
	nodes []string
	app   string

	mu        sync.Mutex
	top       uint64
	since     time.Time // when top last rose
	gap       time.Duration
	gapAt     time.Time
	viewsSeen map[uint64]bool
}

// NewFinalityMonitor watches the nodes at these base URLs for app.
func NewFinalityMonitor(h *HTTP, nodes []string, app string) *FinalityMonitor {
	return &FinalityMonitor{h: h, nodes: nodes, app: app, viewsSeen: map[uint64]bool{}}
}

// Run polls every node each interval until ctx ends.
func (m *FinalityMonitor) Run(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		for _, u := range m.nodes {
			qctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
			s, err := m.h.NodeState(qctx, u)
			cancel()
			if err != nil {
				continue
			}
			now := time.Now()
			m.mu.Lock()
			m.viewsSeen[s.View] = true
			f := s.Apps[m.app].Finalized
			if f > m.top {
				if !m.since.IsZero() {
					if g := now.Sub(m.since); g > m.gap {
						m.gap, m.gapAt = g, now
					}
				}
				m.top, m.since = f, now
			}
			m.mu.Unlock()
		}
		select {
		case <-ctx.Done():
			// The time since the last rise counts too: finality that
			// stopped for good is the worst gap.
			m.mu.Lock()
			if !m.since.IsZero() {
				if g := time.Since(m.since); g > m.gap {
					m.gap, m.gapAt = g, time.Now()
				}
			}
			m.mu.Unlock()
			return
		case <-t.C:
		}
	}
}

// MaxGap is the longest time the finalized index stood still.
func (m *FinalityMonitor) MaxGap() time.Duration { m.mu.Lock(); defer m.mu.Unlock(); return m.gap }

// MaxGapAt is when that gap ended.
func (m *FinalityMonitor) MaxGapAt() time.Time { m.mu.Lock(); defer m.mu.Unlock(); return m.gapAt }

// Highest is the highest finalized index seen.
func (m *FinalityMonitor) Highest() uint64 { m.mu.Lock(); defer m.mu.Unlock(); return m.top }

// Views lists the views the nodes reported, in order.
func (m *FinalityMonitor) Views() []uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	vs := make([]uint64, 0, len(m.viewsSeen))
	for v := range m.viewsSeen {
		vs = append(vs, v)
	}
	sort.Slice(vs, func(i, j int) bool { return vs[i] < vs[j] })
	return vs
}

// ResetGap forgets the longest gap so far, to measure the next phase of a
// run alone; a gap under way counts from its start.
func (m *FinalityMonitor) ResetGap() {
	m.mu.Lock()
	m.gap, m.gapAt = 0, time.Time{}
	m.mu.Unlock()
}
