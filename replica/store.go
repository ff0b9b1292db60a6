package replica

import (
	"errors"
	"maps"
	"slices"
	"sync"
)

// Store is where a replica keeps what survives a restart (STYLE §3: a small
// port with two implementations, bbolt and memory).
//
// Persistence scheme: the ledger is snapshotted every few batches, and every
// applied batch is logged until the next snapshot covers it, so the state
// at the applied index is exactly "snapshot + logged batches replayed"
// without writing the whole state per batch. One Commit is one transaction:
// it never leaves a batch half persisted, and it is never per operation.
type Store interface {
	// Load returns the latest snapshot (nil when the store is new) and the
	// logged batches after it, in index order.
	Load() (snapshot []byte, logged []Batch, err error)
	// Commit persists the effects of applied batches atomically. It is
	// called from two goroutines: the apply loop (batches) and the
	// background snapshot writer (a Commit with only Snapshot set), so
	// implementations serialise commits themselves.
	Commit(c *Commit) error
	// Withdrawal returns a recorded withdrawal.
	Withdrawal(id [32]byte) (WithdrawalRecord, bool, error)
	// PutOutbox records operations this replica accepted before it sends
	// them, so a restart sends again those not applied yet.
	PutOutbox(entries []OutboxEntry) error
	// DeleteOutbox forgets outbox entries (applied or given up).
	DeleteOutbox(ids [][32]byte) error
	// Outbox returns every outbox entry.
	Outbox() ([]OutboxEntry, error)
	// Rebuilding returns why the state in the store is being rebuilt
	// from genesis ("": it is not); SetRebuilding records that durably
	// ("" when the rebuild ended), so a replica restarted in the middle
	// of a rebuild goes on signing nothing until it ends (rebuild.go).
	Rebuilding() (string, error)
	SetRebuilding(reason string) error
	Close() error
}

// Commit is what one transaction persists.
type Commit struct {
	// Batches are the batches applied since the last commit, in order.
	Batches []Batch
	// Withdrawals were recorded by those batches.
	Withdrawals []WithdrawalRecord
	// OutboxDone are ids of outbox operations those batches applied.
	OutboxDone [][32]byte
	// Snapshot, when set, is the ledger after the last of Batches (at
	// SnapshotIndex); logged batches up to it are dropped.
	Snapshot      []byte
	SnapshotIndex uint64
}

// OutboxEntry is an operation accepted by this replica and not yet seen
// applied.
type OutboxEntry struct {
	ID         [32]byte
	Wire       []byte // the batch encoding of the operation
	Expiry     uint64 // unix seconds; 0 for legacy orders
	AcceptedMs uint64 // wall clock when accepted
}

// ErrStoreClosed is returned after Close.
var ErrStoreClosed = errors.New("store closed")

// MemStore is the in-memory Store, for tests and simulations. It keeps
// copies, so callers may reuse their slices.
type MemStore struct {
	mu          sync.Mutex
	closed      bool
	rebuilding  string
	snapshot    []byte
	snapIndex   uint64
	log         []Batch
	withdrawals map[[32]byte]WithdrawalRecord
	outbox      map[[32]byte]OutboxEntry
	commits     int
}

var _ Store = (*MemStore)(nil)

// NewMemStore returns an empty MemStore.
func NewMemStore() *MemStore {
	return &MemStore{withdrawals: map[[32]byte]WithdrawalRecord{}, outbox: map[[32]byte]OutboxEntry{}}
}

// Reopen makes a closed MemStore usable again, as a restarted process
// reopens its data directory.
func (s *MemStore) Reopen() { s.mu.Lock(); s.closed = false; s.mu.Unlock() }

// Commits returns how many Commit calls succeeded.
func (s *MemStore) Commits() int { s.mu.Lock(); defer s.mu.Unlock(); return s.commits }

// Load implements Store.
func (s *MemStore) Load() ([]byte, []Batch, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, nil, ErrStoreClosed
	}
	return slices.Clone(s.snapshot), slices.Clone(s.log), nil
}

// Commit implements Store.
func (s *MemStore) Commit(c *Commit) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrStoreClosed
	}
	for _, b := range c.Batches {
		b.Body = slices.Clone(b.Body)
		s.log = append(s.log, b)
	}
	for _, w := range c.Withdrawals {
		s.withdrawals[w.ID] = w
	}
	for _, id := range c.OutboxDone {
		delete(s.outbox, id)
	}
	if c.Snapshot != nil {
		s.snapshot, s.snapIndex = slices.Clone(c.Snapshot), c.SnapshotIndex
		s.log = slices.DeleteFunc(s.log, func(b Batch) bool { return b.Index <= c.SnapshotIndex })
	}
	s.commits++
	return nil
}

// Withdrawal implements Store.
func (s *MemStore) Withdrawal(id [32]byte) (WithdrawalRecord, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	w, ok := s.withdrawals[id]
	return w, ok, nil
}

// PutOutbox implements Store.
func (s *MemStore) PutOutbox(entries []OutboxEntry) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrStoreClosed
	}
	for _, e := range entries {
		e.Wire = slices.Clone(e.Wire)
		s.outbox[e.ID] = e
	}
	return nil
}

// Rebuilding implements Store.
func (s *MemStore) Rebuilding() (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rebuilding, nil
}

// SetRebuilding implements Store.
func (s *MemStore) SetRebuilding(reason string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrStoreClosed
	}
	s.rebuilding = reason
	return nil
}

// DeleteOutbox implements Store.
func (s *MemStore) DeleteOutbox(ids [][32]byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, id := range ids {
		delete(s.outbox, id)
	}
	return nil
}

// Outbox implements Store.
func (s *MemStore) Outbox() ([]OutboxEntry, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := slices.Collect(maps.Values(s.outbox))
	slices.SortFunc(out, func(a, b OutboxEntry) int { return compare32(a.ID, b.ID) })
	return out, nil
}

// Close implements Store.
func (s *MemStore) Close() error { s.mu.Lock(); s.closed = true; s.mu.Unlock(); return nil }
