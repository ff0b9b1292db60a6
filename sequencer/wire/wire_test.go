package wire

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

func proof(kind ProofKind, view, index uint64) *Proof {
	p := &Proof{Kind: kind, View: view, Index: index, Signers: NewBitmap(0, 2, 3)}
	p.ChainingHash[0], p.ChainingHash[31] = 0xab, byte(index)
	p.Signature[0], p.Signature[95] = 0x8a, 0x01
	return p
}

// samples has at least one message of every type, with optional fields
// both present and absent.
func samples() []Message {
	cert := Certificate{View: 6, Signers: NewBitmap(1, 2), Signature: Signature{1, 2, 3}}
	return []Message{
		&Post{App: "orderbook", View: 3, Tip: Tip{Index: 10, ChainingHash: Hash{9}}, Finalized: 8,
			Batches: []PostedBatch{{Seq: 4, Body: []byte(`{"op":"order"}`)}, {Seq: 5, Body: []byte("é")}}},
		&Post{App: "a", View: 0},
		&PostReply{App: "orderbook", View: 3, After: 10, Batches: []Batch{
			{Index: 11, Timestamp: 1_700_000_000_000, Origin: 2, Seq: 4, Body: []byte("x")},
			{Index: 12, Timestamp: 1_700_000_000_001, Origin: 0, Seq: 1, Body: nil},
		}, Proofs: []Proof{*proof(KindFinalize, 3, 11), *proof(KindFinalize, 3, 12)}},
		&PostReply{App: "orderbook", View: 3, After: 4, Mismatch: true},
		&Round{App: "orderbook", View: 3, Lock: &LockTarget{Index: 14, ChainingHash: Hash{1}}, Finalize: proof(KindLock, 3, 12), Finalized: proof(KindFinalize, 2, 9)},
		&Round{App: "orderbook", View: 3, Finalized: proof(KindFinalize, 3, 12)},
		&Vote{App: "orderbook", View: 3, Lock: &SignedTarget{Index: 14, ChainingHash: Hash{1}, Signature: Signature{7}}, Finalize: &SignedTarget{Index: 12, Signature: Signature{8}}},
		&Vote{App: "orderbook", View: 3, Finalize: &SignedTarget{Index: 12}},
		&Dispute{View: 6, Reason: ReasonCensorship, Signature: Signature{5}},
		&ViewChange{Cert: cert},
		&ViewState{View: 7, Cert: &cert, Apps: []AppState{
			{App: "alt", Tip: Tip{Index: 3}, Lock: proof(KindLock, 5, 3)},
			{App: "orderbook", Tip: Tip{Index: 20, ChainingHash: Hash{4}}, Lock: proof(KindFinalize, 6, 18), Finalized: proof(KindFinalize, 6, 18)},
		}},
		&ViewState{View: 0},
		&NewView{App: "orderbook", View: 7, Lock: proof(KindLock, 5, 3), Finalized: proof(KindFinalize, 4, 2)},
		&NewView{App: "orderbook", View: 7},
		&SyncRequest{App: "orderbook", View: 7, After: 2, Target: LockTarget{Index: 9, ChainingHash: Hash{3}}, Have: Tip{Index: 5, ChainingHash: Hash{2}}},
		&SyncRequest{App: "orderbook", View: 7, After: 2},
		&SyncReply{App: "orderbook", View: 7, After: 2, Batches: []Batch{{Index: 3, Timestamp: 5, Seq: 1, Body: []byte("b")}}, Proofs: []Proof{*proof(KindFinalize, 1, 3)}},
		&Round{App: "orderbook", View: 3, Lock: &LockTarget{Index: 15, ChainingHash: Hash{2}}, ShareLock: true},
	}
}

func TestRoundTrip(t *testing.T) {
	seen := map[Type]bool{}
	for _, m := range samples() {
		if err := m.ValidateBasic(); err != nil {
			t.Fatalf("%s sample invalid: %v", m.Type(), err)
		}
		b := Encode(m)
		got, err := Decode(b)
		if err != nil {
			t.Fatalf("%s: decode: %v", m.Type(), err)
		}
		if !bytes.Equal(Encode(got), b) {
			t.Fatalf("%s: re-encoding differs", m.Type())
		}
		if !reflect.DeepEqual(normalize(got), normalize(m)) {
			t.Fatalf("%s: round trip changed the message:\n got %#v\nwant %#v", m.Type(), got, m)
		}
		seen[m.Type()] = true
	}
	for typ := TypePost; typ <= TypeSyncReply; typ++ {
		if !seen[typ] {
			t.Errorf("no sample of %s", typ)
		}
	}
}

// normalize maps empty slices to nil, in place (both encode the same).
func normalize(m Message) Message {
	var walk func(v reflect.Value)
	walk = func(v reflect.Value) {
		switch v.Kind() {
		case reflect.Pointer:
			if !v.IsNil() {
				walk(v.Elem())
			}
		case reflect.Struct:
			for i := 0; i < v.NumField(); i++ {
				walk(v.Field(i))
			}
		case reflect.Slice:
			if v.Len() == 0 {
				v.Set(reflect.Zero(v.Type()))
				return
			}
			for i := 0; i < v.Len(); i++ {
				walk(v.Index(i))
			}
		}
	}
	walk(reflect.ValueOf(m))
	return m
}

func TestDecodeRejects(t *testing.T) {
	good := Encode(samples()[0])
	cases := map[string][]byte{
		"empty":          nil,
		"version":        append([]byte{9}, good[1:]...),
		"type":           {Version, 99},
		"truncated":      good[:len(good)-1],
		"trailing":       append(append([]byte{}, good...), 0),
		"bad bool":       append(Encode(&NewView{App: "a", View: 1})[:len(Encode(&NewView{App: "a", View: 1}))-1], 2),
		"huge list":      append(append([]byte{Version, byte(TypePostReply)}, Encode(&PostReply{App: "a"})[2:2+4+1+8+8]...), 0xff, 0xff, 0xff, 0xff),
		"app charset":    Encode(&Post{App: "a/b"}),
		"empty app":      Encode(&Post{App: ""}),
		"not utf8":       Encode(&Post{App: "a", Batches: []PostedBatch{{Seq: 1, Body: []byte{0xff}}}}),
		"seq order":      Encode(&Post{App: "a", Batches: []PostedBatch{{Seq: 2}, {Seq: 2}}}),
		"index gap":      Encode(&PostReply{App: "a", After: 1, Batches: []Batch{{Index: 3, Seq: 1}}}),
		"proof kind":     Encode(&Round{App: "a", View: 3, Finalize: proof(KindFinalize, 3, 2)}),
		"proof view":     Encode(&Round{App: "a", View: 3, Finalize: proof(KindLock, 2, 2)}),
		"empty round":    Encode(&Round{App: "a"}),
		"share no lock":  Encode(&Round{App: "a", Finalized: proof(KindFinalize, 3, 2), ShareLock: true}),
		"empty vote":     Encode(&Vote{App: "a"}),
		"no signers":     Encode(&ViewChange{Cert: Certificate{View: 1}}),
		"trailing zero":  Encode(&ViewChange{Cert: Certificate{View: 1, Signers: Bitmap{1, 0}}}),
		"no cert":        Encode(&ViewState{View: 3}),
		"cert view":      Encode(&ViewState{View: 3, Cert: &Certificate{View: 1, Signers: NewBitmap(0)}}),
		"apps order":     Encode(&ViewState{View: 0, Apps: []AppState{{App: "b"}, {App: "a"}}}),
		"reason":         Encode(&Dispute{View: 1, Reason: 9}),
		"target":         Encode(&SyncRequest{App: "a", After: 5, Target: LockTarget{Index: 5}}),
		"have":           Encode(&SyncRequest{App: "a", After: 5, Target: LockTarget{Index: 9}, Have: Tip{Index: 9}}),
		"proof range":    Encode(&SyncReply{App: "a", After: 1, Batches: []Batch{{Index: 2, Seq: 1}}, Proofs: []Proof{*proof(KindFinalize, 1, 3)}}),
		"proof index 0":  Encode(&NewView{App: "a", View: 1, Finalized: proof(KindFinalize, 1, 0)}),
		"lock as final":  Encode(&NewView{App: "a", View: 1, Finalized: proof(KindLock, 1, 1)}),
		"oversized body": Encode(&Post{App: "a", Batches: []PostedBatch{{Seq: 1, Body: bytes.Repeat([]byte("a"), MaxBatchBytes+1)}}}),
	}
	for name, b := range cases {
		if m, err := Decode(b); err == nil {
			t.Errorf("%s: decoded %#v, want an error", name, m)
		}
	}
}

func TestBitmap(t *testing.T) {
	b := NewBitmap(9, 0, 3)
	if got := b.Nodes(); !reflect.DeepEqual(got, []int{0, 3, 9}) || b.Count() != 3 || b.Max() != 9 || !b.Has(3) || b.Has(4) || b.Has(-1) || b.Has(100) {
		t.Fatalf("bitmap %v: nodes %v count %d max %d", b, got, b.Count(), b.Max())
	}
	if err := b.validate(); err != nil {
		t.Fatal(err)
	}
	if (Bitmap(nil)).Max() != -1 {
		t.Fatal("empty bitmap max")
	}
}

// FuzzDecode: Decode never panics, and whatever it accepts is canonical
// (re-encodes to the same bytes) and valid.
func FuzzDecode(f *testing.F) {
	for _, m := range samples() {
		f.Add(Encode(m))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := Decode(b)
		if err != nil {
			return
		}
		if err := m.ValidateBasic(); err != nil {
			t.Fatalf("Decode returned an invalid message: %v", err)
		}
		if !bytes.Equal(Encode(m), b) {
			t.Fatalf("accepted a non-canonical encoding of %s", m.Type())
		}
	})
}

// TestWriteFuzzCorpus regenerates testdata/fuzz/FuzzDecode from samples()
// when run with SEQBOOK_WRITE_CORPUS=1; otherwise it checks the committed
// corpus has a file per sample.
func TestWriteFuzzCorpus(t *testing.T) {
	dir := filepath.Join("testdata", "fuzz", "FuzzDecode")
	for i, m := range samples() {
		name := filepath.Join(dir, fmt.Sprintf("%02d_%s", i, m.Type()))
		content := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", Encode(m))
		if os.Getenv("SEQBOOK_WRITE_CORPUS") == "1" {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(name, []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		got, err := os.ReadFile(name)
		if err != nil {
			t.Fatalf("seed corpus missing %s (run with SEQBOOK_WRITE_CORPUS=1): %v", name, err)
		}
		if string(got) != content {
			t.Errorf("seed corpus %s is stale (run with SEQBOOK_WRITE_CORPUS=1)", name)
		}
	}
}
