package replica

import (
	"sync"
	"sync/atomic"

	bolt "go.etcd.io/bbolt"
)

// groupCommitter runs the writes of a bbolt store as group commits: one
// goroutine takes every write queued while the previous transaction was
// committing and runs them all in one transaction, so writers that arrive
// together (the apply loop's commit, batch senders' outbox entries, the
// snapshot writer) share one fsync instead of paying one each.
//
// Each write is atomic and durable when update returns, exactly as with
// its own transaction: a group is one transaction, and if it fails its
// writes are run again one transaction each, so one write's error never
// fails the others.
type groupCommitter struct {
	db *bolt.DB
	// mu guards closed and the send on writes (Close waits for senders).
	mu     sync.RWMutex
	closed bool
	writes chan *groupWrite
	done   chan struct{}
	// txs counts committed transactions; writesDone the writes in them.
	txs        atomic.Uint64
	writesDone atomic.Uint64
	// beforeCommit, when set (tests), is called with each group's size
	// before its transaction starts.
	beforeCommit func(n int)
}

type groupWrite struct {
	fn  func(*bolt.Tx) error
	err chan error // buffered 1
}

// groupWritesMax bounds one group: a transaction's size (and the time its
// writers wait) stays bounded whatever the queue holds.
const groupWritesMax = 256

func newGroupCommitter(db *bolt.DB) *groupCommitter {
	g := &groupCommitter{db: db, writes: make(chan *groupWrite, groupWritesMax), done: make(chan struct{})}
	go g.run()
	return g
}

// update runs fn in a read-write transaction, shared with whatever other
// writes are queued, and returns once that transaction is committed.
func (g *groupCommitter) update(fn func(*bolt.Tx) error) error {
	w := &groupWrite{fn: fn, err: make(chan error, 1)}
	g.mu.RLock()
	if g.closed {
		g.mu.RUnlock()
		return ErrStoreClosed
	}
	g.writes <- w
	g.mu.RUnlock()
	return <-w.err
}

func (g *groupCommitter) run() {
	defer close(g.done)
	group := make([]*groupWrite, 0, groupWritesMax)
	for w := range g.writes {
		group = append(group[:0], w)
	drain:
		for len(group) < groupWritesMax {
			select {
			case w, ok := <-g.writes:
				if !ok {
					break drain
				}
				group = append(group, w)
			default:
				break drain
			}
		}
		g.commit(group)
	}
}

func (g *groupCommitter) commit(group []*groupWrite) {
	if g.beforeCommit != nil {
		g.beforeCommit(len(group))
	}
	err := g.db.Update(func(tx *bolt.Tx) error {
		for _, w := range group {
			if err := w.fn(tx); err != nil {
				return err
			}
		}
		return nil
	})
	if err == nil {
		g.txs.Add(1)
		g.writesDone.Add(uint64(len(group)))
		for _, w := range group {
			w.err <- nil
		}
		return
	}
	if len(group) == 1 {
		group[0].err <- err
		return
	}
	// Find whose write failed: each alone, in order.
	for _, w := range group {
		g.commit([]*groupWrite{w})
	}
}

// close lets queued writes finish and stops the goroutine; later updates
// get ErrStoreClosed.
func (g *groupCommitter) close() {
	g.mu.Lock()
	if g.closed {
		g.mu.Unlock()
		return
	}
	g.closed = true
	close(g.writes)
	g.mu.Unlock()
	<-g.done
}
