package replica

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Buckets of the bbolt store.
var (
	bucketMeta        = []byte("meta")        // "snapshot" → ledger snapshot, "snapshot_index" → uint64be
	bucketLog         = []byte("log")         // uint64be(index) → timestamp(8) ‖ chaining hash(32) ‖ body
	bucketWithdrawals = []byte("withdrawals") // id → encoded WithdrawalRecord
	bucketOutbox      = []byte("outbox")      // id → expiry(8) ‖ acceptedMs(8) ‖ wire
)

var (
	keySnapshot      = []byte("snapshot")
	keySnapshotIndex = []byte("snapshot_index")
)

// BoltStore is the Store on disk: one bbolt file in the replica's data
// directory.
type BoltStore struct {
	db *bolt.DB
	// group runs every write (Commit, PutOutbox, DeleteOutbox) as group
	// commits: writes that arrive together share one transaction.
	group *groupCommitter
}

var _ Store = (*BoltStore)(nil)

// BoltOptions tunes the bbolt store.
type BoltOptions struct {
	// NoSync skips fsync on commit. A replica can afford it (whatever it
	// loses is finalized and fetched again from the sequencer, and the
	// outbox is only a retry aid) but it risks a torn file on power loss,
	// so it is off by default.
	NoSync bool
}

// OpenBoltStore opens (or creates) dir/replica.db. It fails at once if
// another process holds the file.
func OpenBoltStore(dir string, o BoltOptions) (*BoltStore, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("data directory: %w", err)
	}
	path := filepath.Join(dir, "replica.db")
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second, NoSync: o.NoSync, NoFreelistSync: true})
	if err != nil {
		return nil, fmt.Errorf("opening %s: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketMeta, bucketLog, bucketWithdrawals, bucketOutbox} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("initialising %s: %w", path, err)
	}
	return &BoltStore{db: db, group: newGroupCommitter(db)}, nil
}

func u64key(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }

// Load implements Store.
func (s *BoltStore) Load() (snap []byte, logged []Batch, err error) {
	err = s.db.View(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		if v := meta.Get(keySnapshot); v != nil {
			snap = append([]byte(nil), v...)
		}
		var from uint64
		if v := meta.Get(keySnapshotIndex); len(v) == 8 {
			from = binary.BigEndian.Uint64(v)
		}
		c := tx.Bucket(bucketLog).Cursor()
		for k, v := c.Seek(u64key(from + 1)); k != nil; k, v = c.Next() {
			if len(k) != 8 || len(v) < 40 {
				return fmt.Errorf("corrupt log entry %x", k)
			}
			logged = append(logged, Batch{
				Index:        binary.BigEndian.Uint64(k),
				Timestamp:    binary.BigEndian.Uint64(v[:8]),
				ChainingHash: [32]byte(v[8:40]),
				Body:         append([]byte(nil), v[40:]...),
			})
		}
		return nil
	})
	return snap, logged, err
}

// Commit implements Store.
func (s *BoltStore) Commit(c *Commit) error {
	return s.group.update(func(tx *bolt.Tx) error {
		log := tx.Bucket(bucketLog)
		for _, b := range c.Batches {
			v := make([]byte, 0, 40+len(b.Body))
			v = binary.BigEndian.AppendUint64(v, b.Timestamp)
			v = append(v, b.ChainingHash[:]...)
			v = append(v, b.Body...)
			if err := log.Put(u64key(b.Index), v); err != nil {
				return err
			}
		}
		wb := tx.Bucket(bucketWithdrawals)
		for _, w := range c.Withdrawals {
			if err := wb.Put(w.ID[:], encodeWithdrawal(&w)); err != nil {
				return err
			}
		}
		ob := tx.Bucket(bucketOutbox)
		for _, id := range c.OutboxDone {
			if err := ob.Delete(id[:]); err != nil {
				return err
			}
		}
		if c.Snapshot != nil {
			meta := tx.Bucket(bucketMeta)
			if err := meta.Put(keySnapshot, c.Snapshot); err != nil {
				return err
			}
			if err := meta.Put(keySnapshotIndex, u64key(c.SnapshotIndex)); err != nil {
				return err
			}
			// Drop the log the snapshot covers.
			cur := log.Cursor()
			for k, _ := cur.First(); k != nil && binary.BigEndian.Uint64(k) <= c.SnapshotIndex; k, _ = cur.First() {
				if err := cur.Delete(); err != nil {
					return err
				}
			}
		}
		return nil
	})
}

// Withdrawal implements Store.
func (s *BoltStore) Withdrawal(id [32]byte) (w WithdrawalRecord, ok bool, err error) {
	err = s.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketWithdrawals).Get(id[:])
		if v == nil {
			return nil
		}
		var derr error
		w, derr = decodeWithdrawal(id, v)
		ok = derr == nil
		return derr
	})
	return w, ok, err
}

// outboxLinger is how long an outbox write waits for another write to
// share its transaction with. Its caller sends the batch meanwhile (a
// round trip to a node, itself waiting for the node's fsync), so the wait
// is hidden; shared, the outbox costs no fsync of its own.
const outboxLinger = 5 * time.Millisecond

// PutOutbox implements Store.
func (s *BoltStore) PutOutbox(entries []OutboxEntry) error {
	return s.group.updateLinger(func(tx *bolt.Tx) error {
		ob := tx.Bucket(bucketOutbox)
		for _, e := range entries {
			v := make([]byte, 0, 16+len(e.Wire))
			v = binary.BigEndian.AppendUint64(v, e.Expiry)
			v = binary.BigEndian.AppendUint64(v, e.AcceptedMs)
			v = append(v, e.Wire...)
			if err := ob.Put(e.ID[:], v); err != nil {
				return err
			}
		}
		return nil
	}, outboxLinger)
}

// DeleteOutbox implements Store.
func (s *BoltStore) DeleteOutbox(ids [][32]byte) error {
	return s.group.update(func(tx *bolt.Tx) error {
		ob := tx.Bucket(bucketOutbox)
		for _, id := range ids {
			if err := ob.Delete(id[:]); err != nil {
				return err
			}
		}
		return nil
	})
}

// Outbox implements Store.
func (s *BoltStore) Outbox() (out []OutboxEntry, err error) {
	err = s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketOutbox).ForEach(func(k, v []byte) error {
			if len(k) != 32 || len(v) < 16 {
				return fmt.Errorf("corrupt outbox entry %x", k)
			}
			out = append(out, OutboxEntry{
				ID: [32]byte(k), Expiry: binary.BigEndian.Uint64(v[:8]), AcceptedMs: binary.BigEndian.Uint64(v[8:16]),
				Wire: append([]byte(nil), v[16:]...),
			})
			return nil
		})
	})
	return out, err
}

// Transactions returns how many write transactions (fsyncs, unless
// NoSync) the store committed and how many writes they carried.
func (s *BoltStore) Transactions() (txs, writes uint64) {
	return s.group.txs.Load(), s.group.writesDone.Load()
}

// Close implements Store: queued writes finish first.
func (s *BoltStore) Close() error {
	s.group.close()
	return s.db.Close()
}

// encodeWithdrawal: trader(20) recipient(20) amount(8) index(8) ts(8) token.
func encodeWithdrawal(w *WithdrawalRecord) []byte {
	v := make([]byte, 0, 64+len(w.Token))
	v = append(v, w.Trader[:]...)
	v = append(v, w.Recipient[:]...)
	v = binary.BigEndian.AppendUint64(v, w.Amount)
	v = binary.BigEndian.AppendUint64(v, w.Index)
	v = binary.BigEndian.AppendUint64(v, w.Timestamp)
	return append(v, w.Token...)
}

func decodeWithdrawal(id [32]byte, v []byte) (WithdrawalRecord, error) {
	if len(v) < 64 {
		return WithdrawalRecord{}, errors.New("corrupt withdrawal record")
	}
	return WithdrawalRecord{
		ID: id, Trader: [20]byte(v[:20]), Recipient: [20]byte(v[20:40]),
		Amount: binary.BigEndian.Uint64(v[40:48]), Index: binary.BigEndian.Uint64(v[48:56]),
		Timestamp: binary.BigEndian.Uint64(v[56:64]), Token: string(v[64:]),
	}, nil
}
