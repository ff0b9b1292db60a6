package store

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/seqbook/seqbook/sequencer/core"
	"github.com/seqbook/seqbook/sequencer/wire"
)

func openTemp(t *testing.T, dir string) *Bolt {
	t.Helper()
	s, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func proofAt(kind wire.ProofKind, view, index uint64, ch wire.Hash) wire.Proof {
	p := wire.Proof{Kind: kind, View: view, Index: index, ChainingHash: ch, Signers: wire.NewBitmap(0, 1, 2)}
	p.Signature[0] = byte(index)
	p.Signature[95] = byte(view)
	return p
}

// chain builds entries from..to of an app's log on top of prev.
func chain(prev wire.Hash, from, to uint64, tag string) []core.Entry {
	var out []core.Entry
	for i := from; i <= to; i++ {
		body := []byte(fmt.Sprintf("%s-batch-%d", tag, i))
		e := core.Entry{Batch: wire.Batch{Index: i, Timestamp: 1000 + i, Origin: uint16(i % 4), Seq: i, Body: body}}
		e.Hash = core.BatchHash(e.Timestamp, body)
		e.ChainingHash = core.ChainHash(prev, e.Hash)
		prev = e.ChainingHash
		out = append(out, e)
	}
	return out
}

func TestSaveReopenLoad(t *testing.T) {
	dir := t.TempDir()
	s := openTemp(t, dir)
	entries := chain(wire.Hash{}, 1, 10, "a")
	fin := proofAt(wire.KindFinalize, 2, 6, entries[5].ChainingHash)
	lock := proofAt(wire.KindLock, 2, 8, entries[7].ChainingHash)
	cert := &wire.Certificate{View: 1, Signers: wire.NewBitmap(1, 3)}
	p := &core.Persist{
		Hard: &core.HardState{View: 2, Cert: cert},
		Apps: []core.AppPersist{{
			App: "orderbook",
			Hard: &core.AppHardState{
				App:            "orderbook",
				SignedLock:     core.Signed{View: 2, Index: 8, ChainingHash: entries[7].ChainingHash},
				SignedFinalize: core.Signed{View: 2, Index: 6, ChainingHash: entries[5].ChainingHash},
				Lock:           &lock, Finalized: &fin,
				OriginSeqs: []uint64{3, 0, 7, 1}, NextSeq: 12,
			},
			Entries:    entries,
			Proofs:     []wire.Proof{proofAt(wire.KindFinalize, 1, 3, entries[2].ChainingHash), fin},
			PendingPut: []core.Pending{{Seq: 11, Body: []byte("p11"), SubmittedMs: 5}, {Seq: 12, Body: []byte("p12"), SubmittedMs: 1700000000123}},
		}},
	}
	if err := s.Save(p); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = openTemp(t, dir)
	defer s.Close()
	snap, err := s.Load()
	if err != nil {
		t.Fatal(err)
	}
	if snap.Hard.View != 2 || snap.Hard.Cert == nil || snap.Hard.Cert.View != 1 || !bytes.Equal(snap.Hard.Cert.Signers, cert.Signers) {
		t.Fatalf("hard state: %+v", snap.Hard)
	}
	if len(snap.Apps) != 1 {
		t.Fatalf("apps: %d", len(snap.Apps))
	}
	a := snap.Apps[0]
	if !reflect.DeepEqual(a.Hard, *p.Apps[0].Hard) {
		t.Fatalf("app hard state:\n got %+v\nwant %+v", a.Hard, *p.Apps[0].Hard)
	}
	// Load returns the log after the finalized index only.
	if len(a.Entries) != 4 || a.Entries[0].Index != 7 || !reflect.DeepEqual(a.Entries, entries[6:]) {
		t.Fatalf("entries after finalized: %d, first %d", len(a.Entries), a.Entries[0].Index)
	}
	if len(a.Pending) != 2 || !reflect.DeepEqual(a.Pending, p.Apps[0].PendingPut) {
		t.Fatalf("pending: %+v", a.Pending)
	}
	// Reads for the HTTP API.
	got, err := s.Entries("orderbook", 2, 3, 1<<20)
	if err != nil || len(got) != 3 || got[0].Index != 2 || !reflect.DeepEqual(got, entries[1:4]) {
		t.Fatalf("Entries: %d %v", len(got), err)
	}
	if got, _ = s.Entries("orderbook", 1, 100, len(entries[0].Body)+1); len(got) != 1 {
		t.Fatalf("byte bound: %d entries", len(got))
	}
	if got, _ = s.Entries("orderbook", 1, 100, 1); len(got) != 1 {
		t.Fatalf("at least one entry even past the byte bound: %d", len(got))
	}
	proofs, err := s.Proofs("orderbook", 1, 100, 10)
	if err != nil || len(proofs) != 2 || proofs[0].Index != 3 || !reflect.DeepEqual(proofs[1], fin) {
		t.Fatalf("Proofs: %+v %v", proofs, err)
	}
	last, ok, err := s.LastProof("orderbook")
	if err != nil || !ok || !reflect.DeepEqual(last, fin) {
		t.Fatalf("LastProof: %+v %v %v", last, ok, err)
	}
	if _, ok, _ := s.LastProof("other"); ok {
		t.Fatal("LastProof of an unknown app")
	}
	page, err := core.ReadFinalized(s, "orderbook", 0, 100, 1<<20)
	if err != nil || len(page.Entries) != 6 || page.Proof.Index != 6 {
		t.Fatalf("ReadFinalized: %+v %v", page, err)
	}
}

func TestSaveRefusesAndAppliesNothing(t *testing.T) {
	s := openTemp(t, t.TempDir())
	defer s.Close()
	entries := chain(wire.Hash{}, 1, 5, "a")
	fin := proofAt(wire.KindFinalize, 0, 3, entries[2].ChainingHash)
	if err := s.Save(&core.Persist{Apps: []core.AppPersist{{App: "x", Hard: &core.AppHardState{App: "x", Finalized: &fin}, Entries: entries, Proofs: []wire.Proof{fin}}}}); err != nil {
		t.Fatal(err)
	}
	bad := []core.Persist{
		{Hard: &core.HardState{View: 9}, Apps: []core.AppPersist{{App: "x", Entries: chain(wire.Hash{}, 7, 7, "gap")}}},
		{Hard: &core.HardState{View: 9}, Apps: []core.AppPersist{{App: "x", Truncate: true, TruncateAfter: 2}}},
		{Apps: []core.AppPersist{{App: "bad app", Entries: chain(wire.Hash{}, 1, 1, "a")}}},
		{Apps: []core.AppPersist{{App: "x", Proofs: []wire.Proof{proofAt(wire.KindLock, 0, 4, wire.Hash{})}}}},
		{Apps: []core.AppPersist{{App: "x", PendingPut: []core.Pending{{Seq: 1, Body: []byte("p")}}}, {App: "y", Entries: chain(wire.Hash{}, 2, 2, "gap")}}},
	}
	for i := range bad {
		if err := s.Save(&bad[i]); err == nil {
			t.Fatalf("bad persist %d accepted", i)
		}
	}
	snap, err := s.Load()
	if err != nil {
		t.Fatal(err)
	}
	if snap.Hard.View != 0 || len(snap.Apps) != 1 || len(snap.Apps[0].Entries) != 2 || len(snap.Apps[0].Pending) != 0 {
		t.Fatalf("a refused persist changed the store: %+v", snap)
	}
	// A legal truncation of unfinalized entries, then re-append.
	if err := s.Save(&core.Persist{Apps: []core.AppPersist{{App: "x", Truncate: true, TruncateAfter: 3, Entries: chain(entries[2].ChainingHash, 4, 4, "b")}}}); err != nil {
		t.Fatal(err)
	}
	got, _ := s.Entries("x", 1, 100, 1<<20)
	if len(got) != 4 || string(got[3].Body) != "b-batch-4" {
		t.Fatalf("after truncate: %d entries", len(got))
	}
	// A sync truncates to the old finalized index and finalizes further in
	// the same Persist: the bound is what was final before it.
	synced := chain(entries[2].ChainingHash, 4, 6, "c")
	fin6 := proofAt(wire.KindFinalize, 1, 6, synced[2].ChainingHash)
	if err := s.Save(&core.Persist{Apps: []core.AppPersist{{App: "x", Truncate: true, TruncateAfter: 3, Entries: synced,
		Proofs: []wire.Proof{fin6}, Hard: &core.AppHardState{App: "x", Finalized: &fin6}}}}); err != nil {
		t.Fatal(err)
	}
	if err := s.Save(&core.Persist{Apps: []core.AppPersist{{App: "x", Truncate: true, TruncateAfter: 5}}}); err == nil {
		t.Fatal("truncation below the new finalized index accepted")
	}
}

func TestIdentityAndLock(t *testing.T) {
	dir := t.TempDir()
	id := &Identity{ChainID: 1, NodeID: "node1", PublicKey: "0xaa"}
	s, err := Open(dir, Options{Identity: id})
	if err != nil {
		t.Fatal(err)
	}
	// A second open while the first holds the file fails fast.
	if _, err := Open(dir, Options{LockTimeout: 50 * time.Millisecond}); err == nil || !strings.Contains(err.Error(), "in use") {
		t.Fatalf("second open: %v", err)
	}
	s.Close()
	if _, err := Open(dir, Options{Identity: &Identity{ChainID: 1, NodeID: "node2", PublicKey: "0xaa"}}); err == nil || !strings.Contains(err.Error(), "belongs to node") {
		t.Fatalf("other node's folder: %v", err)
	}
	s, err = Open(dir, Options{Identity: id})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
}

// TestConformsToMemoryStore drives the bbolt store and the core's memory
// store (the reference) with the same random persists, legal and not, and
// requires the same answers.
func TestConformsToMemoryStore(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("STORE_SEED"); s != "" {
		fmt.Sscan(s, &seed)
	}
	rng := rand.New(rand.NewPCG(seed, 7))
	b := openTemp(t, t.TempDir())
	defer b.Close()
	m := core.NewMemoryStore()
	apps := []string{"a", "b"}
	type appModel struct {
		last, fin uint64
		tip       wire.Hash
		hashes    map[uint64]wire.Hash
		view      uint64
	}
	model := map[string]*appModel{}
	for _, a := range apps {
		model[a] = &appModel{hashes: map[uint64]wire.Hash{}}
	}
	steps := 300
	if testing.Short() {
		steps = 100
	}
	for step := 0; step < steps; step++ {
		app := apps[rng.IntN(len(apps))]
		am := model[app]
		ap := core.AppPersist{App: app}
		p := &core.Persist{}
		valid := true
		switch op := rng.IntN(7); op {
		case 0, 1: // append
			k := uint64(1 + rng.IntN(4))
			ap.Entries = chain(am.tip, am.last+1, am.last+k, fmt.Sprint(step))
		case 2: // overwrite an unfinalized entry in place
			if am.last > am.fin {
				i := am.fin + 1 + rng.Uint64N(am.last-am.fin)
				ap.Entries = chain(am.hashes[i-1], i, i, fmt.Sprint("re", step))
			}
		case 3: // truncate, sometimes illegally below the finalized index
			t := am.fin + rng.Uint64N(am.last-am.fin+1)
			if am.fin > 0 && rng.IntN(4) == 0 {
				t = rng.Uint64N(am.fin)
				valid = false
			}
			ap.Truncate, ap.TruncateAfter = true, t
		case 4: // finalize up to some index
			if am.last > am.fin {
				f := am.fin + 1 + rng.Uint64N(am.last-am.fin)
				pr := proofAt(wire.KindFinalize, am.view, f, am.hashes[f])
				ap.Hard = &core.AppHardState{App: app, Finalized: &pr, NextSeq: uint64(step), OriginSeqs: []uint64{uint64(step)}}
				ap.Proofs = []wire.Proof{pr}
			}
		case 5: // pending batches come and go
			ap.PendingPut = []core.Pending{{Seq: uint64(rng.IntN(10)), Body: []byte(fmt.Sprint("p", step)), SubmittedMs: rng.Uint64()}}
			ap.PendingDelete = []uint64{uint64(rng.IntN(10))}
		case 6: // a gap: always refused
			ap.Entries = chain(am.tip, am.last+2, am.last+2, "gap")
			valid = false
			p.Hard = &core.HardState{View: uint64(step)}
		}
		if rng.IntN(5) == 0 && valid {
			am.view++
			p.Hard = &core.HardState{View: am.view}
		}
		p.Apps = []core.AppPersist{ap}
		errB, errM := b.Save(p), m.Save(p)
		if (errB == nil) != (errM == nil) || (errB == nil) != valid {
			t.Fatalf("SEED=%d step %d: bolt err %v, memory err %v, valid %v", seed, step, errB, errM, valid)
		}
		if errB == nil {
			if ap.Truncate {
				am.last = min(am.last, ap.TruncateAfter)
			}
			for _, e := range ap.Entries {
				am.hashes[e.Index] = e.ChainingHash
				am.last = max(am.last, e.Index)
			}
			am.tip = am.hashes[am.last]
			if ap.Hard != nil {
				am.fin = ap.Hard.Finalized.Index
			}
		}
		compareStores(t, seed, step, b, m, apps)
	}
}

func compareStores(t *testing.T, seed uint64, step int, b *Bolt, m *core.MemoryStore, apps []string) {
	t.Helper()
	sb, err := b.Load()
	if err != nil {
		t.Fatalf("SEED=%d step %d: %v", seed, step, err)
	}
	sm, _ := m.Load()
	if !reflect.DeepEqual(normalize(sb), normalize(sm)) {
		t.Fatalf("SEED=%d step %d: snapshots differ:\nbolt   %+v\nmemory %+v", seed, step, normalize(sb), normalize(sm))
	}
	for _, app := range apps {
		eb, err := b.Entries(app, 1, 1<<20, 1<<30)
		if err != nil {
			t.Fatal(err)
		}
		em, _ := m.Entries(app, 1, 1<<20, 1<<30)
		if !reflect.DeepEqual(normEntries(eb), normEntries(em)) {
			t.Fatalf("SEED=%d step %d: logs of %s differ: %d vs %d entries", seed, step, app, len(eb), len(em))
		}
		pb, _ := b.Proofs(app, 0, 1<<62, 1<<20)
		pm, _ := m.Proofs(app, 0, 1<<62, 1<<20)
		if !reflect.DeepEqual(pb, pm) {
			t.Fatalf("SEED=%d step %d: proofs of %s differ", seed, step, app)
		}
	}
}

func normEntries(es []core.Entry) []core.Entry {
	if len(es) == 0 {
		return nil
	}
	out := make([]core.Entry, len(es))
	for i, e := range es {
		if len(e.Body) == 0 {
			e.Body = nil
		}
		out[i] = e
	}
	return out
}

// normalize makes two snapshots with the same content DeepEqual: nil and
// empty slices alike, and the app name filled in (the memory store leaves
// it empty for an app saved without a hard state).
func normalize(s *core.Snapshot) *core.Snapshot {
	out := &core.Snapshot{Hard: s.Hard}
	for _, a := range s.Apps {
		a.Hard.App = ""
		if len(a.Hard.OriginSeqs) == 0 {
			a.Hard.OriginSeqs = nil
		}
		a.Entries = normEntries(a.Entries)
		if len(a.Pending) == 0 {
			a.Pending = nil
		}
		for i := range a.Pending {
			if len(a.Pending[i].Body) == 0 {
				a.Pending[i].Body = nil
			}
		}
		out.Apps = append(out.Apps, a)
	}
	return out
}

// TestSurvivesKill saves from a child process that is then killed with
// SIGKILL (no Close, no shutdown): what Save returned for must be there.
func TestSurvivesKill(t *testing.T) {
	if dir := os.Getenv("STORE_CRASH_CHILD_DIR"); dir != "" {
		crashChild(dir)
		return
	}
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestSurvivesKill$")
	cmd.Env = append(os.Environ(), "STORE_CRASH_CHILD_DIR="+dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Wait for the child to say how many saves returned, then kill it
	// while it keeps saving.
	buf := make([]byte, 64)
	var saved uint64
	var line string
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(line, "\n") {
		n, err := out.Read(buf)
		if err != nil || time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatalf("child: %v (output %q)", err, line)
		}
		line += string(buf[:n])
	}
	fmt.Sscanf(line, "saved %d", &saved)
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	s := openTemp(t, dir)
	defer s.Close()
	got, err := s.Entries("app", 1, 1<<20, 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	if uint64(len(got)) < saved {
		t.Fatalf("child reported %d saved entries, %d survived the kill", saved, len(got))
	}
	// Whatever survived is a consistent chain.
	prev := wire.Hash{}
	for _, e := range got {
		if e.ChainingHash != core.ChainHash(prev, e.Hash) {
			t.Fatalf("entry %d breaks the chain after the kill", e.Index)
		}
		prev = e.ChainingHash
	}
}

func crashChild(dir string) {
	s, err := Open(dir, Options{})
	if err != nil {
		fmt.Println("open:", err)
		os.Exit(1)
	}
	prev := wire.Hash{}
	for i := uint64(1); ; i++ {
		e := chain(prev, i, i, "crash")
		prev = e[0].ChainingHash
		if err := s.Save(&core.Persist{Apps: []core.AppPersist{{App: "app", Entries: e}}}); err != nil {
			fmt.Println("save:", err)
			os.Exit(1)
		}
		if i == 20 {
			fmt.Printf("saved %d\n", i) // the parent kills us after reading this
		}
	}
}

// FuzzDecodeRecord: every record decoder refuses or accepts without
// panicking, and what it accepts re-encodes to the same bytes. The first
// byte picks the decoder.
func FuzzDecodeRecord(f *testing.F) {
	e := chain(wire.Hash{}, 1, 1, "f")[0]
	pr := proofAt(wire.KindFinalize, 1, 1, e.ChainingHash)
	f.Add(append([]byte{0}, encodeEntry(&e)...))
	f.Add(append([]byte{1}, encodeProof(&pr)...))
	f.Add(append([]byte{2}, encodeHard(&core.HardState{View: 3, Cert: &wire.Certificate{View: 2, Signers: wire.NewBitmap(1)}})...))
	f.Add(append([]byte{3}, encodeAppHard(&core.AppHardState{App: "x", Finalized: &pr, OriginSeqs: []uint64{1, 2}, NextSeq: 3})...))
	f.Add(append([]byte{4}, encodeIdentity(&Identity{ChainID: 1, NodeID: "n", PublicKey: "k"})...))
	f.Add(append([]byte{5}, encodePending(&core.Pending{Seq: 9, SubmittedMs: 77, Body: []byte("b")})...))
	f.Add([]byte{3, 1, 0, 0, 0, 200})
	f.Fuzz(func(t *testing.T, in []byte) {
		if len(in) == 0 {
			return
		}
		b := in[1:]
		var re []byte
		switch in[0] % 6 {
		case 0:
			e, err := decodeEntry(5, b)
			if err != nil {
				return
			}
			re = encodeEntry(&e)
		case 1:
			p, err := decodeProof(b)
			if err != nil {
				return
			}
			re = encodeProof(&p)
		case 2:
			h, err := decodeHard(b)
			if err != nil {
				return
			}
			re = encodeHard(&h)
		case 3:
			h, err := decodeAppHard(b)
			if err != nil {
				return
			}
			re = encodeAppHard(&h)
		case 4:
			id, err := decodeIdentity(b)
			if err != nil {
				return
			}
			re = encodeIdentity(&id)
		case 5:
			p, err := decodePending(9, b)
			if err != nil {
				return
			}
			re = encodePending(&p)
		}
		if !bytes.Equal(re, b) {
			t.Fatalf("decoder %d accepted %x but re-encodes to %x", in[0]%6, b, re)
		}
	})
}
