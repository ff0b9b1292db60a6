package core

import (
	"fmt"
	"slices"
	"sort"
	"sync"

	"github.com/seqbook/seqbook/sequencer/wire"
)

// MemoryStore is the in-memory Store: what the simulator and tests use, and
// the reference the bbolt store is checked against. It is safe for
// concurrent use. Bodies are shared, not copied: nobody mutates a batch
// body after it was submitted.
type MemoryStore struct {
	mu   sync.Mutex
	hard HardState
	apps map[string]*memApp
}

type memApp struct {
	hard    AppHardState
	log     []Entry // log[i].Index == i+1
	proofs  []wire.Proof
	pending map[uint64]Pending
}

var _ Store = (*MemoryStore)(nil)

// NewMemoryStore returns an empty store.
func NewMemoryStore() *MemoryStore { return &MemoryStore{apps: map[string]*memApp{}} }

// Load implements Store.
func (s *MemoryStore) Load() (*Snapshot, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	snap := &Snapshot{Hard: cloneHard(s.hard)}
	names := make([]string, 0, len(s.apps))
	for name := range s.apps {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		a := s.apps[name]
		as := AppSnapshot{Hard: cloneAppHard(a.hard)}
		var fin uint64
		if a.hard.Finalized != nil {
			fin = a.hard.Finalized.Index
		}
		if fin < uint64(len(a.log)) {
			as.Entries = slices.Clone(a.log[fin:])
		}
		seqs := make([]uint64, 0, len(a.pending))
		for seq := range a.pending {
			seqs = append(seqs, seq)
		}
		slices.Sort(seqs)
		for _, seq := range seqs {
			as.Pending = append(as.Pending, a.pending[seq])
		}
		snap.Apps = append(snap.Apps, as)
	}
	return snap, nil
}

// Save implements Store. It checks every change first and applies nothing
// if one is invalid, so a failed Save leaves the store as it was.
func (s *MemoryStore) Save(p *Persist) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range p.Apps {
		if err := s.check(&p.Apps[i]); err != nil {
			return err
		}
	}
	if p.Hard != nil {
		s.hard = cloneHard(*p.Hard)
	}
	for i := range p.Apps {
		ap := &p.Apps[i]
		a := s.apps[ap.App]
		if a == nil {
			a = &memApp{pending: map[uint64]Pending{}}
			s.apps[ap.App] = a
		}
		if ap.Hard != nil {
			a.hard = cloneAppHard(*ap.Hard)
		}
		if ap.Truncate && ap.TruncateAfter < uint64(len(a.log)) {
			a.log = a.log[:ap.TruncateAfter:ap.TruncateAfter]
		}
		for _, e := range ap.Entries {
			if e.Index == uint64(len(a.log))+1 {
				a.log = append(a.log, e)
			} else {
				a.log[e.Index-1] = e
			}
		}
		for _, pr := range ap.Proofs {
			pr.Signers = slices.Clone(pr.Signers)
			k, found := slices.BinarySearchFunc(a.proofs, pr.Index, func(x wire.Proof, idx uint64) int { return cmpU64(x.Index, idx) })
			if found {
				a.proofs[k] = pr
			} else {
				a.proofs = slices.Insert(a.proofs, k, pr)
			}
		}
		for _, pd := range ap.PendingPut {
			a.pending[pd.Seq] = pd
		}
		for _, seq := range ap.PendingDelete {
			delete(a.pending, seq)
		}
	}
	return nil
}

// check refuses a change that would leave a gap in the log or truncate an
// entry the store already holds as final.
func (s *MemoryStore) check(ap *AppPersist) error {
	if err := wire.ValidateApp(ap.App); err != nil {
		return fmt.Errorf("memory store: %w", err)
	}
	var n, fin uint64
	if a := s.apps[ap.App]; a != nil {
		n = uint64(len(a.log))
		if a.hard.Finalized != nil {
			fin = a.hard.Finalized.Index
		}
	}
	if ap.Truncate {
		if ap.TruncateAfter < fin {
			return fmt.Errorf("memory store: %s: truncate after %d would drop finalized entries (finalized %d)", ap.App, ap.TruncateAfter, fin)
		}
		n = min(n, ap.TruncateAfter)
	}
	for _, e := range ap.Entries {
		if e.Index == 0 || e.Index > n+1 {
			return fmt.Errorf("memory store: %s: entry %d would leave a gap after %d", ap.App, e.Index, n)
		}
		if e.Index == n+1 {
			n++
		}
	}
	return nil
}

// Entries implements LogReader.
func (s *MemoryStore) Entries(app string, from uint64, count int, bytesMax int) ([]Entry, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.apps[app]
	if a == nil || from == 0 || from > uint64(len(a.log)) || count <= 0 {
		return nil, nil
	}
	var out []Entry
	size := 0
	for i := from - 1; i < uint64(len(a.log)) && len(out) < count; i++ {
		e := a.log[i]
		if len(out) > 0 && size+len(e.Body) > bytesMax {
			break
		}
		size += len(e.Body)
		out = append(out, e)
	}
	return out, nil
}

// Proofs implements LogReader.
func (s *MemoryStore) Proofs(app string, from, to uint64, limit int) ([]wire.Proof, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.apps[app]
	if a == nil || limit <= 0 {
		return nil, nil
	}
	k, _ := slices.BinarySearchFunc(a.proofs, from, func(x wire.Proof, idx uint64) int { return cmpU64(x.Index, idx) })
	var out []wire.Proof
	for ; k < len(a.proofs) && a.proofs[k].Index <= to && len(out) < limit; k++ {
		out = append(out, a.proofs[k])
	}
	return out, nil
}

// LastProof implements LogReader.
func (s *MemoryStore) LastProof(app string) (wire.Proof, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.apps[app]
	if a == nil || len(a.proofs) == 0 {
		return wire.Proof{}, false, nil
	}
	return a.proofs[len(a.proofs)-1], true, nil
}

func cmpU64(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func cloneProof(p *wire.Proof) *wire.Proof { return p.Clone() }

func cloneHard(h HardState) HardState {
	if h.Cert != nil {
		c := *h.Cert
		c.Signers = slices.Clone(h.Cert.Signers)
		h.Cert = &c
	}
	return h
}

func cloneAppHard(h AppHardState) AppHardState {
	h.Lock = cloneProof(h.Lock)
	h.Finalized = cloneProof(h.Finalized)
	h.OriginSeqs = slices.Clone(h.OriginSeqs)
	return h
}
