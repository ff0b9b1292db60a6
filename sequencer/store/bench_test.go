package store

import (
	"testing"

	"github.com/seqbook/seqbook/sequencer/core"
	"github.com/seqbook/seqbook/sequencer/wire"
)

// BenchmarkSave measures one durable Save of what a node persists per
// round under load: a few 1 KiB batches, the app's hard state (its signed
// lock and finalize records) and a finalize proof. Its time is mostly the
// fsyncs, which sit on the protocol's critical path.
func BenchmarkSave(b *testing.B) {
	s, err := Open(b.TempDir(), Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	prev := wire.Hash{}
	next := uint64(1)
	for i := 0; i < b.N; i++ {
		ents := chain(prev, next, next+7, "bench")
		for j := range ents {
			ents[j].Body = append(ents[j].Body, make([]byte, 1024)...)
			ents[j].Hash = core.BatchHash(ents[j].Timestamp, ents[j].Body)
			ents[j].ChainingHash = core.ChainHash(prev, ents[j].Hash)
			prev = ents[j].ChainingHash
		}
		last := ents[len(ents)-1]
		hard := core.AppHardState{App: "ob", OriginSeqs: make([]uint64, 4), NextSeq: next,
			SignedLock: core.Signed{Index: last.Index, ChainingHash: last.ChainingHash}}
		p := &core.Persist{Apps: []core.AppPersist{{App: "ob", Hard: &hard, Entries: ents,
			Proofs: []wire.Proof{proofAt(wire.KindFinalize, 0, last.Index, last.ChainingHash)}}}}
		if err := s.Save(p); err != nil {
			b.Fatal(err)
		}
		next += 8
	}
}
