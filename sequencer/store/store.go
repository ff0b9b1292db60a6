// Package store is the sequencer node's durable state on bbolt: the
// core.Store port (safety records, view, lock and finalize proofs, each
// app's log by index, pending batches).
//
// One core.Persist is one bbolt read-write transaction; bbolt's commit
// fsyncs before it returns, so when Save returns nil the change survives a
// crash or power loss, and when it returns an error nothing of it was
// applied. The node calls Save before sending the messages of the same
// Ready — that order is what makes the safety rules hold across restarts.
//
// Layout (bucket / key → value):
//
//	meta / "identity"   → chain id, node id, BLS public key (refuses a
//	                      data folder of another node or cluster)
//	meta / "hard"       → core.HardState (view, view-change certificate)
//	apps / <app> /
//	        "hard"      → core.AppHardState (signed-lock/finalize records,
//	                      highest lock proof, finalize proof, counters)
//	        log/   uint64be(index) → entry (hashes, timestamp, origin, seq, body)
//	        proofs/ uint64be(index) → finalize proof
//	        pending/ uint64be(seq)  → submission time, body
//
// Readers (the HTTP API through core.ReadFinalized) run in bbolt read
// transactions, concurrently with the node's writes.
package store

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/seqbook/seqbook/sequencer/core"
	"github.com/seqbook/seqbook/sequencer/wire"
)

var (
	bucketMeta    = []byte("meta")
	bucketApps    = []byte("apps")
	bucketLog     = []byte("log")
	bucketProofs  = []byte("proofs")
	bucketPending = []byte("pending")
	keyIdentity   = []byte("identity")
	keyHard       = []byte("hard")
)

// FileName is the database file inside a node's data folder.
const FileName = "sequencer.db"

// Identity names the node a data folder belongs to. Open writes it the
// first time and refuses the folder afterwards if it differs: replaying
// one node's safety records as another's, or against another cluster's
// keys, would be unsafe.
type Identity struct {
	ChainID uint64
	NodeID  string
	// PublicKey is the node's BLS public key, hex.
	PublicKey string
}

// Options for Open.
type Options struct {
	// Identity, when non-nil, is checked (or recorded on first open).
	Identity *Identity
	// LockTimeout bounds the wait for the file lock; another process
	// holding the database is an error, not a hang. Zero means 1 s.
	LockTimeout time.Duration
}

// Bolt is the bbolt Store. It is safe for concurrent use: bbolt
// serialises writers and lets readers run beside them.
type Bolt struct {
	db *bolt.DB
}

var _ core.Store = (*Bolt)(nil)

// Open opens (creating if needed) the database in dir/FileName.
func Open(dir string, opts Options) (*Bolt, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("store: data folder: %w", err)
	}
	timeout := opts.LockTimeout
	if timeout == 0 {
		timeout = time.Second
	}
	path := filepath.Join(dir, FileName)
	// Every Save is on the protocol's critical path (a vote leaves only
	// after its safety record is on disk), so each commit writes as little
	// as it can: the freelist is not written (bbolt rebuilds it by a scan
	// on open) and is kept as a map, whose updates do not grow with the
	// file.
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: timeout, NoFreelistSync: true, FreelistType: bolt.FreelistMapType})
	if err != nil {
		if errors.Is(err, bolt.ErrTimeout) {
			return nil, fmt.Errorf("store: %s is in use by another process", path)
		}
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	s := &Bolt{db: db}
	if err := db.Update(func(tx *bolt.Tx) error {
		meta, err := tx.CreateBucketIfNotExists(bucketMeta)
		if err != nil {
			return err
		}
		if _, err := tx.CreateBucketIfNotExists(bucketApps); err != nil {
			return err
		}
		if opts.Identity == nil {
			return nil
		}
		want := encodeIdentity(opts.Identity)
		have := meta.Get(keyIdentity)
		if have == nil {
			return meta.Put(keyIdentity, want)
		}
		if !bytes.Equal(have, want) {
			got, _ := decodeIdentity(have)
			return fmt.Errorf("store: %s belongs to node %q of chain %d (key %s), not to node %q of chain %d (key %s)",
				path, got.NodeID, got.ChainID, got.PublicKey, opts.Identity.NodeID, opts.Identity.ChainID, opts.Identity.PublicKey)
		}
		return nil
	}); err != nil {
		db.Close()
		return nil, err
	}
	return s, nil
}

// Close closes the database. Everything Save returned for is already on
// disk; Close only releases the file.
func (s *Bolt) Close() error { return s.db.Close() }

// Path is the database file.
func (s *Bolt) Path() string { return s.db.Path() }

func encodeIdentity(id *Identity) []byte {
	w := &enc{}
	w.u8(recordFormat)
	w.u64(id.ChainID)
	w.bytes([]byte(id.NodeID))
	w.bytes([]byte(id.PublicKey))
	return w.b
}

func decodeIdentity(b []byte) (Identity, error) {
	d := &dec{b: b}
	d.format("identity")
	id := Identity{ChainID: d.u64(), NodeID: string(d.bytes(1024)), PublicKey: string(d.bytes(1024))}
	return id, d.finish("identity")
}

// Load implements core.Store.
func (s *Bolt) Load() (*core.Snapshot, error) {
	snap := &core.Snapshot{}
	err := s.db.View(func(tx *bolt.Tx) error {
		if b := tx.Bucket(bucketMeta).Get(keyHard); b != nil {
			h, err := decodeHard(b)
			if err != nil {
				return err
			}
			snap.Hard = h
		}
		// Nested buckets iterate in byte order of their names, which is
		// the name order the core wants.
		return tx.Bucket(bucketApps).ForEachBucket(func(name []byte) error {
			ab := tx.Bucket(bucketApps).Bucket(name)
			as := core.AppSnapshot{}
			if b := ab.Get(keyHard); b != nil {
				h, err := decodeAppHard(b)
				if err != nil {
					return fmt.Errorf("app %s: %w", name, err)
				}
				as.Hard = h
			}
			as.Hard.App = string(name)
			var fin uint64
			if as.Hard.Finalized != nil {
				fin = as.Hard.Finalized.Index
			}
			c := ab.Bucket(bucketLog).Cursor()
			next := fin + 1
			for k, v := c.Seek(key64(fin + 1)); k != nil; k, v = c.Next() {
				idx, err := parseKey64(k)
				if err != nil {
					return err
				}
				if idx != next {
					return fmt.Errorf("store: app %s: log jumps from %d to %d", name, next-1, idx)
				}
				e, err := decodeEntry(idx, v)
				if err != nil {
					return err
				}
				as.Entries = append(as.Entries, e)
				next++
			}
			err := ab.Bucket(bucketPending).ForEach(func(k, v []byte) error {
				seq, err := parseKey64(k)
				if err != nil {
					return err
				}
				pd, err := decodePending(seq, v)
				if err != nil {
					return err
				}
				as.Pending = append(as.Pending, pd)
				return nil
			})
			if err != nil {
				return err
			}
			snap.Apps = append(snap.Apps, as)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("store: load: %w", err)
	}
	return snap, nil
}

// Save implements core.Store: one transaction, fsynced on commit. It
// checks every change first (no gap in a log, no truncation of finalized
// entries) and applies nothing if one is refused.
func (s *Bolt) Save(p *core.Persist) error {
	if p.IsEmpty() {
		return nil
	}
	err := s.db.Update(func(tx *bolt.Tx) error {
		if p.Hard != nil {
			if err := tx.Bucket(bucketMeta).Put(keyHard, encodeHard(p.Hard)); err != nil {
				return err
			}
		}
		for i := range p.Apps {
			if err := saveApp(tx, &p.Apps[i]); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("store: save: %w", err)
	}
	return nil
}

func saveApp(tx *bolt.Tx, ap *core.AppPersist) error {
	if err := wire.ValidateApp(ap.App); err != nil {
		return err
	}
	ab, err := tx.Bucket(bucketApps).CreateBucketIfNotExists([]byte(ap.App))
	if err != nil {
		return err
	}
	logB, err := ab.CreateBucketIfNotExists(bucketLog)
	if err != nil {
		return err
	}
	proofB, err := ab.CreateBucketIfNotExists(bucketProofs)
	if err != nil {
		return err
	}
	pendB, err := ab.CreateBucketIfNotExists(bucketPending)
	if err != nil {
		return err
	}
	// What the log looks like before this change: its last index and the
	// finalized index, which no truncation may go below. (A sync may
	// truncate and finalize further in the same Persist: the bound is what
	// the store held as final before it, as the core's contract says.)
	// The parts are applied in the core's order: Truncate, Entries,
	// Proofs, Hard, PendingPut, PendingDelete.
	var last, fin uint64
	if k, _ := logB.Cursor().Last(); k != nil {
		if last, err = parseKey64(k); err != nil {
			return err
		}
	}
	if b := ab.Get(keyHard); b != nil {
		h, err := decodeAppHard(b)
		if err != nil {
			return fmt.Errorf("app %s: %w", ap.App, err)
		}
		if h.Finalized != nil {
			fin = h.Finalized.Index
		}
	}
	if ap.Truncate {
		if ap.TruncateAfter < fin {
			return fmt.Errorf("app %s: truncate after %d would drop finalized entries (finalized %d)", ap.App, ap.TruncateAfter, fin)
		}
		c := logB.Cursor()
		for k, _ := c.Seek(key64(ap.TruncateAfter + 1)); k != nil; k, _ = c.Seek(key64(ap.TruncateAfter + 1)) {
			if err := c.Delete(); err != nil {
				return err
			}
		}
		last = min(last, ap.TruncateAfter)
	}
	for i := range ap.Entries {
		e := &ap.Entries[i]
		if e.Index == 0 || e.Index > last+1 {
			return fmt.Errorf("app %s: entry %d would leave a gap after %d", ap.App, e.Index, last)
		}
		if err := logB.Put(key64(e.Index), encodeEntry(e)); err != nil {
			return err
		}
		if e.Index == last+1 {
			last++
		}
	}
	for i := range ap.Proofs {
		pr := &ap.Proofs[i]
		if pr.Kind != wire.KindFinalize {
			return fmt.Errorf("app %s: proof %d is not a finalize proof", ap.App, pr.Index)
		}
		if err := proofB.Put(key64(pr.Index), encodeProof(pr)); err != nil {
			return err
		}
	}
	if ap.Hard != nil {
		if ap.Hard.App != "" && ap.Hard.App != ap.App {
			return fmt.Errorf("app %s: hard state names app %q", ap.App, ap.Hard.App)
		}
		if err := ab.Put(keyHard, encodeAppHard(ap.Hard)); err != nil {
			return err
		}
	}
	for _, pd := range ap.PendingPut {
		if err := pendB.Put(key64(pd.Seq), encodePending(&pd)); err != nil {
			return err
		}
	}
	for _, seq := range ap.PendingDelete {
		if err := pendB.Delete(key64(seq)); err != nil {
			return err
		}
	}
	return nil
}

// appBucket returns an app's bucket in a read transaction, nil if the app
// is unknown.
func appBucket(tx *bolt.Tx, app string) *bolt.Bucket {
	return tx.Bucket(bucketApps).Bucket([]byte(app))
}

// Entries implements core.LogReader.
func (s *Bolt) Entries(app string, from uint64, count int, bytesMax int) ([]core.Entry, error) {
	if from == 0 || count <= 0 {
		return nil, nil
	}
	var out []core.Entry
	err := s.db.View(func(tx *bolt.Tx) error {
		ab := appBucket(tx, app)
		if ab == nil {
			return nil
		}
		c := ab.Bucket(bucketLog).Cursor()
		size := 0
		next := from
		for k, v := c.Seek(key64(from)); k != nil && len(out) < count; k, v = c.Next() {
			idx, err := parseKey64(k)
			if err != nil {
				return err
			}
			if idx != next {
				break // a gap would be a bug elsewhere; return the run so far
			}
			e, err := decodeEntry(next, v)
			if err != nil {
				return err
			}
			if len(out) > 0 && size+len(e.Body) > bytesMax {
				break
			}
			size += len(e.Body)
			out = append(out, e)
			next++
		}
		return nil
	})
	return out, err
}

// Proofs implements core.LogReader.
func (s *Bolt) Proofs(app string, from, to uint64, limit int) ([]wire.Proof, error) {
	if limit <= 0 || to < from {
		return nil, nil
	}
	var out []wire.Proof
	err := s.db.View(func(tx *bolt.Tx) error {
		ab := appBucket(tx, app)
		if ab == nil {
			return nil
		}
		c := ab.Bucket(bucketProofs).Cursor()
		for k, v := c.Seek(key64(from)); k != nil && len(out) < limit; k, v = c.Next() {
			idx, err := parseKey64(k)
			if err != nil {
				return err
			}
			if idx > to {
				break
			}
			p, err := decodeProof(v)
			if err != nil {
				return err
			}
			out = append(out, p)
		}
		return nil
	})
	return out, err
}

// LastProof implements core.LogReader.
func (s *Bolt) LastProof(app string) (wire.Proof, bool, error) {
	var (
		p     wire.Proof
		found bool
	)
	err := s.db.View(func(tx *bolt.Tx) error {
		ab := appBucket(tx, app)
		if ab == nil {
			return nil
		}
		_, v := ab.Bucket(bucketProofs).Cursor().Last()
		if v == nil {
			return nil
		}
		var err error
		p, err = decodeProof(v)
		found = err == nil
		return err
	})
	return p, found, err
}
