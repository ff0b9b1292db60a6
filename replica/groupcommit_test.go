package replica

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// TestGroupCommitSharesOneTransaction: writes queued while a transaction
// runs (the apply loop's commit, outbox entries, an outbox delete) go out
// together in the next one, and every one of them is on disk after a
// reopen.
func TestGroupCommitSharesOneTransaction(t *testing.T) {
	dir := t.TempDir()
	s, err := OpenBoltStore(dir, BoltOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.PutOutbox([]OutboxEntry{{ID: [32]byte{0xee}, Wire: []byte("x")}}); err != nil {
		t.Fatal(err)
	}
	// Stop the committer in its next group (the first write below) so
	// the writes after it queue up.
	formed := make(chan int, 16)
	release := make(chan struct{})
	s.group.beforeCommit = func(n int) { formed <- n; <-release }
	first := make(chan error, 1)
	go func() { first <- s.PutOutbox([]OutboxEntry{{ID: [32]byte{0xff}, Wire: []byte("w")}}) }()
	if n := <-formed; n != 1 {
		t.Fatalf("first group of %d", n)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 12)
	for i := range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- s.PutOutbox([]OutboxEntry{{ID: [32]byte{byte(i + 1)}, Wire: []byte(fmt.Sprint("op", i)), Expiry: 9, AcceptedMs: 7}})
		}()
	}
	wg.Add(2)
	go func() {
		defer wg.Done()
		errs <- s.Commit(&Commit{Batches: []Batch{{Index: 1, Timestamp: 5, Body: []byte("[]")}}, OutboxDone: [][32]byte{{0xff}}})
	}()
	go func() { defer wg.Done(); errs <- s.DeleteOutbox([][32]byte{{0xee}}) }()
	waitFor(t, "12 writes to queue", 10*time.Second, func() bool { return len(s.group.writes) == 12 })
	close(release)
	wg.Wait()
	if n := <-formed; n != 12 {
		t.Fatalf("the queued writes went out in a group of %d, want 12", n)
	}
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	txs, writes := s.Transactions()
	if txs != 3 || writes != 14 {
		t.Fatalf("%d transactions for %d writes, want 3 (the setup, the first write, then the 12 queued together)", txs, writes)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.PutOutbox(nil); !errors.Is(err, ErrStoreClosed) {
		t.Fatalf("write after close: %v", err)
	}

	s, err = OpenBoltStore(dir, BoltOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ob, err := s.Outbox()
	if err != nil {
		t.Fatal(err)
	}
	// The 10 put; 0xee deleted and 0xff done in the same group.
	if len(ob) != 10 {
		t.Fatalf("outbox after reopen holds %d entries", len(ob))
	}
	for _, e := range ob {
		if e.ID[0] < 1 || e.ID[0] > 10 || e.Expiry != 9 || e.AcceptedMs != 7 {
			t.Fatalf("outbox entry %x: %+v", e.ID[:1], e)
		}
	}
	_, logged, err := s.Load()
	if err != nil || len(logged) != 1 || logged[0].Index != 1 {
		t.Fatalf("log after reopen: %v %+v", err, logged)
	}
}

// TestGroupCommitIsolatesAFailingWrite: a write that fails does not fail
// the writes grouped with it.
func TestGroupCommitIsolatesAFailingWrite(t *testing.T) {
	s, err := OpenBoltStore(t.TempDir(), BoltOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	boom := errors.New("boom")
	good := func(key string) func(*bolt.Tx) error {
		return func(tx *bolt.Tx) error { return tx.Bucket(bucketMeta).Put([]byte(key), []byte("v")) }
	}
	results := make([]chan error, 3)
	group := []*groupWrite{
		{fn: good("a"), err: make(chan error, 1)},
		{fn: func(*bolt.Tx) error { return boom }, err: make(chan error, 1)},
		{fn: good("b"), err: make(chan error, 1)},
	}
	for i, w := range group {
		results[i] = w.err
	}
	s.group.commit(group)
	if e0, e1, e2 := <-results[0], <-results[1], <-results[2]; e0 != nil || !errors.Is(e1, boom) || e2 != nil {
		t.Fatalf("results: %v %v %v", e0, e1, e2)
	}
	err = s.db.View(func(tx *bolt.Tx) error {
		if tx.Bucket(bucketMeta).Get([]byte("a")) == nil || tx.Bucket(bucketMeta).Get([]byte("b")) == nil {
			return errors.New("a good write of the failed group is missing")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestSnapshotsByOperationsAndBytes: with the batch count far away, a
// snapshot is still taken once enough operations, or enough bytes of
// batch bodies, were applied since the last one.
func TestSnapshotsByOperationsAndBytes(t *testing.T) {
	bodies := randomBatches(t, 11, 12)
	var ops, bytes uint64
	for _, b := range bodies {
		dec, err := DecodeBatch(testDomain(), b)
		if err != nil {
			t.Fatal(err)
		}
		ops += uint64(len(dec))
		bytes += uint64(len(b))
	}
	for _, tc := range []struct {
		name       string
		ops, bytes uint64
	}{
		{"by operations", ops / 2, 1 << 40},
		{"by bytes", 1 << 40, bytes / 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clock := newClock()
			seq := NewMemSequencer(clock.Ms)
			for _, body := range bodies {
				seq.Append(clock.Ms(), body)
			}
			store := NewMemStore()
			cfg := testConfig("replica1", clock)
			cfg.SnapshotEvery, cfg.SnapshotOps, cfg.SnapshotLogBytes = 1000, tc.ops, tc.bytes
			r := startReplica(t, cfg, seq, store)
			r.waitApplied(t, uint64(len(bodies)))
			waitFor(t, "a snapshot", 10*time.Second, func() bool {
				store.mu.Lock()
				defer store.mu.Unlock()
				return store.snapIndex > 0
			})
		})
	}
}

// TestGroupCommitLingerJoinsTheNextWrite: a write that may linger waits
// for the next one and shares its transaction; alone, it still commits.
func TestGroupCommitLingerJoinsTheNextWrite(t *testing.T) {
	s, err := OpenBoltStore(t.TempDir(), BoltOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	put := func(key string) func(*bolt.Tx) error {
		return func(tx *bolt.Tx) error { return tx.Bucket(bucketMeta).Put([]byte(key), []byte("v")) }
	}
	// Alone, with a short linger: committed once it runs out.
	if err := s.group.updateLinger(put("alone"), time.Millisecond); err != nil {
		t.Fatal(err)
	}
	txs0, _ := s.Transactions()
	// With a linger far longer than the wait below, the lingering write can only
	// commit because the second one joins it.
	// Queued by hand so the test knows when the committer holds it.
	w := &groupWrite{fn: put("outbox"), err: make(chan error, 1), linger: time.Minute}
	s.group.writes <- w
	lingering := w.err
	waitFor(t, "the committer to hold the lingering write", 10*time.Second, func() bool { return len(s.group.writes) == 0 })
	if err := s.group.update(put("apply")); err != nil {
		t.Fatal(err)
	}
	if err := <-lingering; err != nil {
		t.Fatal(err)
	}
	if txs, writes := s.Transactions(); txs != txs0+1 || writes != 3 {
		t.Fatalf("%d transactions (%d before) for %d writes: the two did not share one", txs, txs0, writes)
	}
}
