package node

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/seqbook/seqbook/sequencer/core"
	"github.com/seqbook/seqbook/sequencer/transport"
	"github.com/seqbook/seqbook/sequencer/wire"
)

// slowStore is a memory store whose saves take a while (a slow disk) and
// which records whether a save is under way and how many PUTs one save
// made durable at most.
type slowStore struct {
	*core.MemoryStore
	inSave     atomic.Bool
	putsMax    atomic.Int32
	saveFor    time.Duration
	violations *atomic.Int32
}

func (s *slowStore) Save(p *core.Persist) error {
	s.inSave.Store(true)
	defer s.inSave.Store(false)
	puts := 0
	for _, ap := range p.Apps {
		puts += len(ap.PendingPut)
	}
	if int32(puts) > s.putsMax.Load() {
		s.putsMax.Store(int32(puts))
	}
	time.Sleep(s.saveFor) // the slow disk, not a wait for the protocol
	return s.MemoryStore.Save(p)
}

func (s *slowStore) Close() error { return nil }

// watchedTransport counts messages sent while the node's store is saving,
// and votes sent before the store holds their safety records.
type watchedTransport struct {
	transport.Transport
	st *slowStore
}

func (w watchedTransport) Send(to int, data []byte) {
	if w.st.inSave.Load() {
		w.st.violations.Add(1)
	}
	if m, err := wire.Decode(data); err == nil {
		if v, ok := m.(*wire.Vote); ok && !holdsRecords(w.st.MemoryStore, v) {
			w.st.violations.Add(1)
		}
	}
	w.Transport.Send(to, data)
}

// holdsRecords reports whether the store already holds the safety records
// of every signature in v (persist before send).
func holdsRecords(s *core.MemoryStore, v *wire.Vote) bool {
	snap, err := s.Load()
	if err != nil {
		return false
	}
	for _, a := range snap.Apps {
		if a.Hard.App != v.App {
			continue
		}
		covers := func(rec core.Signed, t *wire.SignedTarget) bool {
			return t == nil || (rec.View == v.View && rec.Index >= t.Index)
		}
		return covers(a.Hard.SignedLock, v.Lock) && covers(a.Hard.SignedFinalize, v.Finalize)
	}
	return false
}

// TestGroupCommit: with a slow disk, a node keeps taking PUTs and
// messages while it saves, and one save makes many PUTs durable (group
// commit); yet no message leaves while a save runs (a Ready's messages
// leave after its save, and the next save starts after them), and no vote
// leaves before its safety record is in the store.
func TestGroupCommit(t *testing.T) {
	violations := &atomic.Int32{}
	stores := make([]*slowStore, 4)
	c := startInProcessWith(t, 4, func(i int, _ *Config, d Deps) Deps {
		stores[i] = &slowStore{MemoryStore: core.NewMemoryStore(), saveFor: 10 * time.Millisecond, violations: violations}
		d.Store = stores[i]
		d.Transport = watchedTransport{Transport: d.Transport, st: stores[i]}
		return d
	})
	const puts = 40
	var wg sync.WaitGroup
	for k := 0; k < puts; k++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.put(1, fmt.Sprintf("gc-%d", k))
		}()
	}
	wg.Wait()
	c.waitSameFinalized([]int{0, 1, 2, 3}, puts, 30*time.Second)
	if v := violations.Load(); v != 0 {
		t.Fatalf("%d messages sent while a save was under way", v)
	}
	if m := stores[1].putsMax.Load(); m < 2 {
		t.Fatalf("%d concurrent PUTs to one node never shared a save (most in one: %d)", puts, m)
	}
	w := c.state(1).Work
	if w == nil || w.Rounds == 0 || w.StoreSaves == 0 {
		t.Fatalf("work counters without rounds or saves: %+v", w)
	}
	t.Logf("node2: %d saves, %d rounds, most PUTs in one save %d", w.StoreSaves, w.Rounds, stores[1].putsMax.Load())
}
