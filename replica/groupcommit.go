package replica

import (
	"sync"
	"sync/atomic"
	"time"

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
	// linger is how long this write may wait for company: a group made
	// only of such writes waits up to the shortest linger among them for
	// another write before it commits (0: commit at once).
	linger time.Duration
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
	return g.updateLinger(fn, 0)
}

// updateLinger is update for a write that may wait up to linger for
// another write to share its transaction (and its fsync) with. A caller
// uses it when it waits for something slower meanwhile anyway.
func (g *groupCommitter) updateLinger(fn func(*bolt.Tx) error, linger time.Duration) error {
	w := &groupWrite{fn: fn, err: make(chan error, 1), linger: linger}
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
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for w := range g.writes {
		group = append(group[:0], w)
		linger := w.linger
		open := g.drain(&group, &linger)
		if open && linger > 0 && len(group) < groupWritesMax {
			// Every write so far may wait: give another one (the apply
			// loop's commit, another batch's entries) the chance to join.
			timer.Reset(linger)
			select {
			case w, ok := <-g.writes:
				if ok {
					group = append(group, w)
					g.drain(&group, &linger)
				}
			case <-timer.C:
			}
			if !timer.Stop() {
				select {
				case <-timer.C:
				default:
				}
			}
		}
		g.commit(group)
	}
}

// drain adds to group what is queued, up to groupWritesMax, keeping in
// linger the shortest linger of the group; it reports whether the queue
// is still open.
func (g *groupCommitter) drain(group *[]*groupWrite, linger *time.Duration) bool {
	for len(*group) < groupWritesMax {
		select {
		case w, ok := <-g.writes:
			if !ok {
				return false
			}
			*group = append(*group, w)
			*linger = min(*linger, w.linger)
		default:
			return true
		}
	}
	return true
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
