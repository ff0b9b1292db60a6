package replica

import (
	"bytes"
	"cmp"
	"container/heap"
	"encoding/binary"
	"fmt"
	"slices"
	"sync"

	"github.com/ethereum/go-ethereum/common"

	"github.com/seqbook/seqbook/client/eip712"
)

// nonceKey is a (signer, nonce) pair, used at most once (DESIGN §3.1).
type nonceKey struct {
	Signer common.Address
	Nonce  uint64
}

// nonceSet remembers used (signer, nonce) pairs until their expiry.
//
// Why this bound holds: an operation is only applied when its expiry is at
// most one hour after the batch time, and a pair can only be replayed in a
// batch whose time is at most its expiry; once batch time passes a pair's
// expiry the pair can never apply again, so it is forgotten. The set thus
// holds at most the operations of the last hour of batch time (plus up to
// an hour ahead).
type nonceSet struct {
	used map[nonceKey]uint64 // → expiry (unix seconds)
	// byExpiry groups keys by expiry second; expiries is a min-heap of the
	// groups' seconds, so pruning touches only what it removes.
	byExpiry map[uint64][]nonceKey
	expiries uint64Heap

	// The canonical order is kept incrementally, so that a digest (every
	// GET /state after a new batch) merges what changed instead of sorting
	// tens of thousands of entries. mu guards these fields: sorted() runs
	// both under the replica's read lock (digests) and in the apply loop
	// (snapshots).
	mu sync.Mutex
	// sortedValid says cache and added describe the set: cache is the
	// set's entries at the last sorted() in canonical order (never
	// modified once built: snapshots may hold it), added the entries added
	// since, unordered.
	sortedValid bool
	cache       []nonceEntry
	added       []nonceEntry
	// prunedBelow is the highest nowSec prune ran with. Every entry with an
	// expiry below it that existed at that prune is gone, and while
	// sortedValid no entry with an expiry below it was added since (add
	// drops the cache then), so an entry of cache or added is still in the
	// set exactly when its expiry is at least prunedBelow.
	prunedBelow uint64
}

func newNonceSet() *nonceSet {
	return &nonceSet{used: map[nonceKey]uint64{}, byExpiry: map[uint64][]nonceKey{}}
}

func (s *nonceSet) has(k nonceKey) bool { _, ok := s.used[k]; return ok }

func (s *nonceSet) len() int { return len(s.used) }

// add records a pair. Invariant: the pair is not present.
func (s *nonceSet) add(k nonceKey, expiry uint64) {
	if _, dup := s.used[k]; dup {
		panic("replica: nonce added twice")
	}
	s.used[k] = expiry
	s.mu.Lock()
	if s.sortedValid {
		if expiry < s.prunedBelow {
			s.sortedValid, s.cache, s.added = false, nil, nil
		} else {
			s.added = append(s.added, nonceEntry{Signer: k.Signer, Nonce: k.Nonce, Expiry: expiry})
		}
	}
	s.mu.Unlock()
	g, ok := s.byExpiry[expiry]
	if !ok {
		heap.Push(&s.expiries, expiry)
	}
	s.byExpiry[expiry] = append(g, k)
}

// prune forgets every pair whose expiry is before nowSec.
func (s *nonceSet) prune(nowSec uint64) {
	s.mu.Lock()
	s.prunedBelow = max(s.prunedBelow, nowSec)
	s.mu.Unlock()
	for s.expiries.Len() > 0 && s.expiries[0] < nowSec {
		e := heap.Pop(&s.expiries).(uint64)
		for _, k := range s.byExpiry[e] {
			delete(s.used, k)
		}
		delete(s.byExpiry, e)
	}
}

// sorted returns the entries ordered by (signer, nonce): the canonical
// order for the digest and the snapshot. The result is shared: callers
// must not modify it.
func (s *nonceSet) sorted() []nonceEntry {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.sortedValid {
		out := make([]nonceEntry, 0, len(s.used))
		belowFloor := false
		for k, e := range s.used {
			out = append(out, nonceEntry{Signer: k.Signer, Nonce: k.Nonce, Expiry: e})
			belowFloor = belowFloor || e < s.prunedBelow
		}
		slices.SortFunc(out, compareNonceEntries)
		// An entry below the floor (added after the prune that set it)
		// would break the membership rule; the next prune removes it, and
		// the order is kept from then on.
		if !belowFloor {
			s.cache, s.added, s.sortedValid = out, nil, true
		}
		return out
	}
	if len(s.added) == 0 && (len(s.cache) == len(s.used)) {
		return s.cache // nothing added, nothing pruned
	}
	// Merge the kept cache entries with the kept additions, sorted.
	slices.SortFunc(s.added, compareNonceEntries)
	out := make([]nonceEntry, 0, len(s.used))
	c, a := s.cache, s.added
	for len(c) > 0 || len(a) > 0 {
		var e nonceEntry
		if len(a) == 0 || len(c) > 0 && compareNonceEntries(c[0], a[0]) < 0 {
			e, c = c[0], c[1:]
		} else {
			e, a = a[0], a[1:]
		}
		if e.Expiry >= s.prunedBelow {
			out = append(out, e)
		}
	}
	if len(out) != len(s.used) {
		panic(fmt.Sprintf("replica: nonce order holds %d entries, the set %d", len(out), len(s.used)))
	}
	s.cache, s.added = out, s.added[:0]
	return out
}

func compareNonceEntries(a, b nonceEntry) int {
	if c := bytes.Compare(a.Signer[:], b.Signer[:]); c != 0 {
		return c
	}
	return cmp.Compare(a.Nonce, b.Nonce)
}

// digest hashes the sorted entries: keccak256 of count ‖ (signer ‖ nonce ‖
// expiry)*, integers big-endian.
func (s *nonceSet) digest() [32]byte {
	es := s.sorted()
	b := make([]byte, 0, 8+36*len(es))
	b = binary.BigEndian.AppendUint64(b, uint64(len(es)))
	for _, e := range es {
		b = append(b, e.Signer[:]...)
		b = binary.BigEndian.AppendUint64(b, e.Nonce)
		b = binary.BigEndian.AppendUint64(b, e.Expiry)
	}
	return eip712.Keccak256(b)
}

// nonceEntry is one remembered pair, as snapshotted.
type nonceEntry struct {
	Signer common.Address
	Nonce  uint64
	Expiry uint64
}

type uint64Heap []uint64

func (h uint64Heap) Len() int           { return len(h) }
func (h uint64Heap) Less(i, j int) bool { return h[i] < h[j] }
func (h uint64Heap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *uint64Heap) Push(x any)        { *h = append(*h, x.(uint64)) }
func (h *uint64Heap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}
