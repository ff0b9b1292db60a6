package replica

import (
	"bytes"
	"encoding/gob"
	"reflect"
	"slices"
	"testing"
)

// The hand-written bulk layout lists every field of these types; a field
// added to one of them must be added to snapshot_codec.go too, or restarts
// would silently lose it.
func TestSnapshotCodecCoversEveryField(t *testing.T) {
	for _, c := range []struct {
		typ    reflect.Type
		fields int
	}{
		{reflect.TypeFor[record](), 21},
		{reflect.TypeFor[fill](), 7},
		{reflect.TypeFor[trade](), 12},
		{reflect.TypeFor[nonceEntry](), 3},
	} {
		if n := c.typ.NumField(); n != c.fields {
			t.Errorf("%s has %d fields, snapshot_codec.go writes %d: update the codec and this test", c.typ, n, c.fields)
		}
	}
}

// Read models and replay protection come back exactly from a version 3
// snapshot, and version 1 snapshots (bulk in gob fields) still restore.
func TestSnapshotBulkRoundTripAndVersion1(t *testing.T) {
	ts := uint64(testNowSec * 1000)
	l := applyAll(t, randomBatches(t, 4, 60), ts)
	if len(l.records) == 0 || len(l.trades) == 0 || l.nonces.len() == 0 {
		t.Fatal("the stream left no records, trades or nonces; the test would prove little")
	}
	want, err := l.MarshalSnapshot()
	if err != nil {
		t.Fatal(err)
	}
	capture, err := l.captureSnapshot()
	if err != nil {
		t.Fatal(err)
	}
	capture.Version = 1
	// Version 1 had rejections in the closed queue, as encode writes them.
	capture.ClosedQueue = slices.Concat(capture.ClosedQueue, capture.rejectedQueue)
	var v1 bytes.Buffer
	if err := gob.NewEncoder(&v1).Encode(capture); err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string][]byte{"version 3": want, "version 1": v1.Bytes()} {
		r, err := RestoreLedger(DefaultLedgerConfig(), testDomain(), data)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		got, err := r.MarshalSnapshot()
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("%s: the restored ledger snapshots differently", name)
		}
		for id, rec := range l.records {
			if !reflect.DeepEqual(normalized(rec), normalized(r.records[id])) {
				t.Fatalf("%s: record %x: %+v, want %+v", name, id, r.records[id], rec)
			}
		}
		if !reflect.DeepEqual(r.trades, l.trades) || !reflect.DeepEqual(r.closedQueue, l.closedQueue[l.closedHead:]) {
			t.Fatalf("%s: trades or closed queue differ", name)
		}
		if d1, _ := r.Digest(); d1 != func() [32]byte { d, _ := l.Digest(); return d }() {
			t.Fatalf("%s: digest differs", name)
		}
	}
}

func normalized(r *record) record {
	if r == nil {
		return record{}
	}
	c := *r
	if len(c.Fills) == 0 {
		c.Fills = nil
	}
	return c
}

// A truncated or padded bulk section is an error, never a panic or a
// silently shorter state.
func TestSnapshotBulkRejectsCorruption(t *testing.T) {
	l := applyAll(t, randomBatches(t, 5, 20), uint64(testNowSec*1000))
	s, err := l.captureSnapshot()
	if err != nil {
		t.Fatal(err)
	}
	bulk := appendBulk(nil, s)
	for n := 0; n < len(bulk); n++ {
		if err := readBulk(bulk[:n], &ledgerSnapshot{Version: ledgerSnapshotVersion}); err == nil {
			t.Fatalf("a bulk cut at %d of %d bytes decoded", n, len(bulk))
		}
	}
	if err := readBulk(append(bulk, 0), &ledgerSnapshot{Version: ledgerSnapshotVersion}); err == nil {
		t.Fatal("a bulk with a trailing byte decoded")
	}
	if err := readBulk(bulk, &ledgerSnapshot{Version: ledgerSnapshotVersion}); err != nil {
		t.Fatal(err)
	}
}
