package transport

import "sync"

// outQueue is one peer's bounded outbound queue. Push never blocks: when
// the queue holds messagesMax messages or bytesMax bytes it evicts the
// oldest ones, because for a consensus protocol a newer message supersedes
// an older one far more often than the reverse, and a peer that is down
// should cost a bounded amount of memory, not an unbounded backlog.
type outQueue struct {
	mu          sync.Mutex
	items       [][]byte
	bytes       int
	messagesMax int
	bytesMax    int
	// ready has room for one token: a push signals it so a single
	// consumer waiting in select wakes up.
	ready chan struct{}
}

func newOutQueue(messagesMax, bytesMax int) *outQueue {
	return &outQueue{messagesMax: messagesMax, bytesMax: bytesMax, ready: make(chan struct{}, 1)}
}

// push queues data and returns how many older messages it evicted.
func (q *outQueue) push(data []byte) (evicted int) {
	q.mu.Lock()
	for len(q.items) > 0 && (len(q.items)+1 > q.messagesMax || q.bytes+len(data) > q.bytesMax) {
		q.bytes -= len(q.items[0])
		q.items[0] = nil
		q.items = q.items[1:]
		evicted++
	}
	q.items = append(q.items, data)
	q.bytes += len(data)
	q.mu.Unlock()
	select {
	case q.ready <- struct{}{}:
	default:
	}
	return evicted
}

// pop takes the oldest message, or returns false when empty.
func (q *outQueue) pop() ([]byte, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.items) == 0 {
		return nil, false
	}
	data := q.items[0]
	q.items[0] = nil
	q.items = q.items[1:]
	q.bytes -= len(data)
	if len(q.items) == 0 {
		q.items = nil // let the backing array go
	}
	return data, true
}

// len reports the number of queued messages.
func (q *outQueue) len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.items)
}
