package replica

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"runtime/debug"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Buckets of the bbolt store.
var (
	bucketMeta        = []byte("meta")           // "snapshot" → ledger snapshot, "snapshot_index" → uint64be
	bucketLog         = []byte("log")            // uint64be(index) → sealed log record (integrity.go)
	bucketWithdrawals = []byte("withdrawals.v1") // id → crc32c(id ‖ record)(4) ‖ encoded WithdrawalRecord
	// bucketWithdrawalsLegacy holds records written before they carried a
	// checksum; they are still read.
	bucketWithdrawalsLegacy = []byte("withdrawals")
	bucketOutbox            = []byte("outbox") // id → expiry(8) ‖ acceptedMs(8) ‖ wire
)

var (
	keySnapshot      = []byte("snapshot")
	keySnapshotIndex = []byte("snapshot_index")
	keyRebuilding    = []byte("rebuilding") // why the state is being rebuilt (absent: it is not)
)

// BoltStore is the Store on disk: one bbolt file in the replica's data
// directory.
type BoltStore struct {
	db *bolt.DB
	// group runs every write (Commit, PutOutbox, DeleteOutbox) as group
	// commits: writes that arrive together share one transaction.
	group *groupCommitter
	path  string
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
	path := BoltPath(dir)
	db, err := openBolt(path, o)
	if err != nil {
		return nil, err
	}
	err = guardFaults(path, func() error { return checkBolt(db, path) })
	if err == nil {
		err = guardFaults(path, func() error { return db.Update(initBuckets) })
	}
	if err != nil {
		db.Close()
		if IsCorruption(err) {
			return nil, err
		}
		return nil, fmt.Errorf("initialising %s: %w", path, err)
	}
	return &BoltStore{db: db, group: newGroupCommitter(db), path: path}, nil
}

// openBolt opens the file, telling a damaged one (bbolt checks its meta
// pages) from one held by another process.
func openBolt(path string, o BoltOptions) (*bolt.DB, error) {
	if err := checkBoltLength(path); err != nil {
		return nil, err
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second, NoSync: o.NoSync, NoFreelistSync: true})
	switch {
	case err == nil:
		return db, nil
	case errors.Is(err, bolt.ErrTimeout):
		return nil, fmt.Errorf("opening %s: another process holds it (%w)", path, err)
	case errors.Is(err, bolt.ErrInvalid), errors.Is(err, bolt.ErrChecksum), errors.Is(err, bolt.ErrVersionMismatch):
		return nil, &CorruptionError{File: path, What: "bbolt header: " + err.Error()}
	}
	if fi, serr := os.Stat(path); serr == nil && fi.Size() > 0 && fi.Size() < 2*int64(os.Getpagesize()) {
		return nil, &CorruptionError{File: path, What: fmt.Sprintf("only %d bytes, less than bbolt's two meta pages", fi.Size())}
	}
	return nil, fmt.Errorf("opening %s: %w", path, err)
}

// checkBoltLength refuses a file shorter than the pages its meta pages
// count, before bbolt opens it: opening walks every page through a memory
// map (in goroutines of its own), and reading past the end of the file
// there is a fatal fault that no recover catches. The meta page layout is
// bbolt's (v1.4): a 16-byte page header, then magic(4) version(4)
// pageSize(4) flags(4) root(16) freelist(8) pgid(8), in native byte order
// (little-endian on every platform seqbook builds for).
func checkBoltLength(path string) error {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil // a new store
	}
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil || fi.Size() == 0 {
		return err
	}
	const magic = 0xED0CDAED
	need := int64(0)
	readMeta := func(off int64) (pageSize uint32, ok bool) {
		var m [64]byte
		if _, err := f.ReadAt(m[:], off); err != nil {
			return 0, false
		}
		if binary.LittleEndian.Uint32(m[16:]) != magic {
			return 0, false
		}
		pageSize = binary.LittleEndian.Uint32(m[24:])
		if pgid := binary.LittleEndian.Uint64(m[56:]); pageSize > 0 && pgid < 1<<40 {
			need = max(need, int64(pgid)*int64(pageSize))
		}
		return pageSize, true
	}
	ps, ok := readMeta(0)
	if !ok {
		ps = uint32(os.Getpagesize())
	}
	readMeta(int64(ps))
	if fi.Size() < need {
		return &CorruptionError{File: path, What: fmt.Sprintf("truncated: %d bytes, its pages need %d", fi.Size(), need)}
	}
	return nil
}

// checkBolt refuses a file shorter than the pages its meta page counts (a
// truncated file: reading the missing pages through the memory map would
// be a fatal fault, not an error), then runs bbolt's consistency check.
func checkBolt(db *bolt.DB, path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	return db.View(func(tx *bolt.Tx) error {
		if need := tx.Size(); fi.Size() < need {
			return &CorruptionError{File: path, What: fmt.Sprintf("truncated: %d bytes, its pages need %d", fi.Size(), need)}
		}
		for err := range tx.Check() {
			return &CorruptionError{File: path, What: "bbolt consistency check: " + err.Error()}
		}
		return nil
	})
}

// guardFaults runs f with memory faults turned into panics, and a panic
// into a CorruptionError: bbolt reads the file through a memory map, and a
// page damaged in a way its checks miss must stop the replica with an
// error naming the file, not crash it with a runtime fault dump.
func guardFaults(path string, f func() error) (err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if v := recover(); v != nil {
			err = &CorruptionError{File: path, What: fmt.Sprintf("reading it failed: %v", v)}
		}
	}()
	return f()
}

func initBuckets(tx *bolt.Tx) error {
	for _, b := range [][]byte{bucketMeta, bucketLog, bucketWithdrawals, bucketOutbox} {
		if _, err := tx.CreateBucketIfNotExists(b); err != nil {
			return err
		}
	}
	return nil
}

// Location names the database file in errors.
func (s *BoltStore) Location() string { return s.path }

func u64key(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }

// Load implements Store. Every logged batch is checked against its
// checksum (the snapshot is checked by the replica, which knows its
// format); damage is a *CorruptionError naming the file.
func (s *BoltStore) Load() (snap []byte, logged []Batch, err error) {
	err = guardFaults(s.path, func() error {
		return s.db.View(func(tx *bolt.Tx) error {
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
				if len(k) != 8 {
					return &CorruptionError{File: s.path, What: fmt.Sprintf("batch log key %x is not an index", k)}
				}
				b, err := openLogRecord(binary.BigEndian.Uint64(k), v)
				if err != nil {
					return &CorruptionError{File: s.path, What: err.Error()}
				}
				logged = append(logged, b)
			}
			return nil
		})
	})
	return snap, logged, err
}

// Commit implements Store.
func (s *BoltStore) Commit(c *Commit) error {
	return s.group.update(func(tx *bolt.Tx) error {
		log := tx.Bucket(bucketLog)
		for i := range c.Batches {
			b := &c.Batches[i]
			if err := log.Put(u64key(b.Index), sealLogRecord(b)); err != nil {
				return err
			}
		}
		wb := tx.Bucket(bucketWithdrawals)
		for _, w := range c.Withdrawals {
			rec := encodeWithdrawal(&w)
			v := binary.BigEndian.AppendUint32(make([]byte, 0, 4+len(rec)), withdrawalCRC(w.ID, rec))
			if err := wb.Put(w.ID[:], append(v, rec...)); err != nil {
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

// Withdrawal implements Store. A record that fails its checksum is a
// *CorruptionError: it is never signed.
func (s *BoltStore) Withdrawal(id [32]byte) (w WithdrawalRecord, ok bool, err error) {
	err = guardFaults(s.path, func() error {
		return s.db.View(func(tx *bolt.Tx) error {
			v := tx.Bucket(bucketWithdrawals).Get(id[:])
			if v != nil {
				if len(v) < 4 || withdrawalCRC(id, v[4:]) != binary.BigEndian.Uint32(v) {
					return &CorruptionError{File: s.path, What: fmt.Sprintf("withdrawal record %x fails its checksum", id)}
				}
				v = v[4:]
			} else if lb := tx.Bucket(bucketWithdrawalsLegacy); lb != nil {
				v = lb.Get(id[:])
			}
			if v == nil {
				return nil
			}
			var derr error
			if w, derr = decodeWithdrawal(id, v); derr != nil {
				return &CorruptionError{File: s.path, What: fmt.Sprintf("withdrawal record %x: %v", id, derr)}
			}
			ok = true
			return nil
		})
	})
	return w, ok, err
}

// outboxLinger is how long an outbox write waits for another write to
// share its transaction with. Its caller sends the batch meanwhile (a
// round trip to a node, itself waiting for the node's fsync), so the wait
// is hidden; shared, the outbox costs no fsync of its own.
const outboxLinger = 5 * time.Millisecond

func withdrawalCRC(id [32]byte, rec []byte) uint32 {
	return crc32.Update(crc32.Checksum(id[:], crcTable), crcTable, rec)
}

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

// Rebuilding implements Store.
func (s *BoltStore) Rebuilding() (reason string, err error) {
	err = s.db.View(func(tx *bolt.Tx) error {
		reason = string(tx.Bucket(bucketMeta).Get(keyRebuilding))
		return nil
	})
	return reason, err
}

// SetRebuilding implements Store.
func (s *BoltStore) SetRebuilding(reason string) error {
	return s.group.update(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		if reason == "" {
			return meta.Delete(keyRebuilding)
		}
		return meta.Put(keyRebuilding, []byte(reason))
	})
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

// BoltPath is the database file OpenBoltStore uses in dir.
func BoltPath(dir string) string {
	if abs, err := filepath.Abs(dir); err == nil {
		dir = abs
	}
	return filepath.Join(dir, "replica.db")
}
