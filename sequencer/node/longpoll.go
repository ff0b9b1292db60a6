package node

import (
	"sync"
	"time"
)

// broadcast wakes every goroutine waiting for the next event: wait returns
// a channel that fire closes. The zero value is ready to use.
type broadcast struct {
	mu sync.Mutex
	ch chan struct{}
}

// wait returns a channel closed at the next fire. Take it before checking
// the state the event changes, so an event in between is not missed.
func (b *broadcast) wait() <-chan struct{} {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.ch == nil {
		b.ch = make(chan struct{})
	}
	return b.ch
}

// fire wakes the current waiters.
func (b *broadcast) fire() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.ch != nil {
		close(b.ch)
		b.ch = nil
	}
}

// parseWaitMs reads the ?wait_ms= query of a finalized-batches request: how
// long the answer may wait for a batch after N to be finalized, in
// milliseconds. Absent means 0 (answer at once, as DESIGN §4 describes);
// values above max are lowered to max (the documented cap).
func parseWaitMs(q string, present bool, max time.Duration) (time.Duration, error) {
	n, err := parseUintQuery("wait_ms", q, present, "a number of milliseconds", "0 to answer at once")
	if err != nil {
		return 0, err
	}
	if n >= uint64(max/time.Millisecond) {
		return max, nil
	}
	return time.Duration(n) * time.Millisecond, nil
}
