package core_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/seqbook/seqbook/sequencer/core"
	"github.com/seqbook/seqbook/sequencer/wire"
)

// chainOf builds n entries of app with bodies of size bytes.
func chainOf(n int, size int) []core.Entry {
	var out []core.Entry
	prev := wire.Hash{}
	for i := 1; i <= n; i++ {
		body := []byte(fmt.Sprintf("%0*d", size, i))
		h := core.BatchHash(uint64(i), body)
		e := core.Entry{Batch: wire.Batch{Index: uint64(i), Timestamp: uint64(i), Seq: uint64(i), Body: body}, Hash: h, ChainingHash: core.ChainHash(prev, h)}
		prev = e.ChainingHash
		out = append(out, e)
	}
	return out
}

func fp(e core.Entry) wire.Proof {
	return wire.Proof{Kind: wire.KindFinalize, Index: e.Index, ChainingHash: e.ChainingHash, Signers: wire.NewBitmap(0, 1, 2)}
}

// storeWith holds 12 entries, final up to 10, with proofs at 3, 6, 10.
func storeWith(t *testing.T) (*core.MemoryStore, []core.Entry) {
	s := core.NewMemoryStore()
	es := chainOf(12, 100)
	last := fp(es[9])
	err := s.Save(&core.Persist{Apps: []core.AppPersist{{
		App: "ob", Entries: es, Proofs: []wire.Proof{fp(es[2]), fp(es[5]), last},
		Hard: &core.AppHardState{App: "ob", Finalized: &last, NextSeq: 1},
	}}})
	if err != nil {
		t.Fatal(err)
	}
	return s, es
}

func TestReadFinalizedPagesEndAtProofs(t *testing.T) {
	s, _ := storeWith(t)
	cases := []struct {
		after            uint64
		batches, bytes   int
		wantLen, wantEnd int
	}{
		{0, 100, 1 << 20, 10, 10}, // everything final, never the unfinalized 11–12
		{0, 5, 1 << 20, 3, 3},     // cut back to the proof at 3
		{0, 7, 1 << 20, 6, 6},
		{0, 100, 450, 3, 3},    // byte bound: 4 bodies fit, cut to 3
		{6, 2, 1 << 20, 4, 10}, // no proof within 2: run to the next one
		{3, 3, 1 << 20, 3, 6},
	}
	for _, c := range cases {
		p, err := core.ReadFinalized(s, "ob", c.after, c.batches, c.bytes)
		if err != nil {
			t.Fatalf("after %d: %v", c.after, err)
		}
		if len(p.Entries) != c.wantLen || p.Proof == nil || p.Proof.Index != uint64(c.wantEnd) {
			t.Errorf("after %d (max %d, %d bytes): %d entries ending at proof %+v, want %d ending at %d", c.after, c.batches, c.bytes, len(p.Entries), p.Proof, c.wantLen, c.wantEnd)
			continue
		}
		if p.Entries[0].Index != c.after+1 || p.Entries[len(p.Entries)-1].ChainingHash != p.Proof.ChainingHash {
			t.Errorf("after %d: page does not start after it or does not end at its proof", c.after)
		}
	}
	p, err := core.ReadFinalized(s, "ob", 10, 5, 1000)
	if err != nil || len(p.Entries) != 0 || p.Proof == nil || p.Proof.Index != 10 {
		t.Fatalf("past the end: %+v %v", p, err)
	}
	p, err = core.ReadFinalized(s, "other", 0, 5, 1000)
	if err != nil || len(p.Entries) != 0 || p.Proof != nil {
		t.Fatalf("unknown app: %+v %v", p, err)
	}
	last, err := core.LastFinalized(s, "ob")
	if err != nil || last.Index != 10 {
		t.Fatalf("last %+v %v", last, err)
	}
	if _, err := core.ReadFinalized(s, "ob", 0, 0, 1); err == nil {
		t.Fatal("accepted a zero page bound")
	}
}

func TestReadFinalizedRefusesUnboundedGap(t *testing.T) {
	s := core.NewMemoryStore()
	es := chainOf(wire.MaxBatchesPerMessage+2, 1)
	last := fp(es[len(es)-1])
	if err := s.Save(&core.Persist{Apps: []core.AppPersist{{App: "ob", Entries: es, Proofs: []wire.Proof{last}, Hard: &core.AppHardState{App: "ob", Finalized: &last}}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := core.ReadFinalized(s, "ob", 0, 10, 1000); !errors.Is(err, core.ErrNoProofInRange) {
		t.Fatalf("got %v, want ErrNoProofInRange", err)
	}
}

func TestMemoryStoreRefusesWithoutChanging(t *testing.T) {
	s, es := storeWith(t)
	more := chainOf(14, 100)
	bad := []core.Persist{
		{Apps: []core.AppPersist{{App: "ob", Entries: []core.Entry{more[13]}}}},              // gap after 12
		{Apps: []core.AppPersist{{App: "ob", Truncate: true, TruncateAfter: 9}}},             // below final 10
		{Apps: []core.AppPersist{{App: "bad app", Entries: es[:1]}}},                         // name
		{Apps: []core.AppPersist{{App: "ob", Entries: []core.Entry{more[12]}}, {App: "x/"}}}, // second app invalid
	}
	for i, p := range bad {
		if err := s.Save(&p); err == nil {
			t.Errorf("persist %d accepted", i)
		}
	}
	got, _ := s.Entries("ob", 1, 100, 1<<20)
	if len(got) != 12 {
		t.Fatalf("store changed by refused saves: %d entries", len(got))
	}
	// Truncate then rewrite in one Persist, finalizing further: allowed.
	fin := fp(more[11])
	if err := s.Save(&core.Persist{Apps: []core.AppPersist{{App: "ob", Truncate: true, TruncateAfter: 10, Entries: more[10:12], Hard: &core.AppHardState{App: "ob", Finalized: &fin}}}}); err != nil {
		t.Fatal(err)
	}
	snap, err := s.Load()
	if err != nil || len(snap.Apps) != 1 || len(snap.Apps[0].Entries) != 0 || snap.Apps[0].Hard.Finalized.Index != 12 {
		t.Fatalf("snapshot %+v %v", snap, err)
	}
}
