package replica

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestBoltStoreRefusesDamage: a real bbolt file truncated, or with a
// logged batch's byte flipped, is refused with a CorruptionError naming
// the file, never a runtime fault; an intact one loads.
func TestBoltStoreRefusesDamage(t *testing.T) {
	dir := t.TempDir()
	st, err := OpenBoltStore(dir, BoltOptions{})
	if err != nil {
		t.Fatal(err)
	}
	body := []byte(`[{"op":"order","marker":"flip-me-here"}]`)
	bs := []Batch{{Index: 1, Timestamp: 7, Body: body}}
	bs[0].ChainingHash = NextChainingHash([32]byte{}, BatchHash(7, body))
	big := make([]byte, 3<<20) // a snapshot of several sections
	for i := range big {
		big[i] = byte(i * 7)
	}
	if err := st.Commit(&Commit{Snapshot: sealSnapshot(0, [32]byte{1}, big), SnapshotIndex: 0}); err != nil {
		t.Fatal(err)
	}
	if err := st.Commit(&Commit{Batches: bs}); err != nil {
		t.Fatal(err)
	}
	st.Close()
	path := filepath.Join(dir, "replica.db")
	good, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	reopen := func() ([]byte, []Batch, error) {
		st, err := OpenBoltStore(dir, BoltOptions{})
		if err != nil {
			return nil, nil, err
		}
		defer st.Close()
		return st.Load()
	}
	snap, logged, err := reopen()
	if err != nil || len(logged) != 1 || string(logged[0].Body) != string(body) {
		t.Fatalf("intact store: %v %+v", err, logged)
	}
	if s, err := openSnapshot(snap); err != nil || s.Index != 0 || len(s.Payload) != len(big) {
		t.Fatalf("intact snapshot: %v", err)
	}

	for name, harm := range map[string]func([]byte) []byte{
		"truncated to half":   func(b []byte) []byte { return b[:len(b)/2] },
		"truncated to a page": func(b []byte) []byte { return b[:4096] },
		"a logged byte flipped": func(b []byte) []byte {
			i := strings.Index(string(b), "flip-me-here")
			b[i] ^= 1
			return b
		},
	} {
		if err := os.WriteFile(path, harm(append([]byte(nil), good...)), 0o600); err != nil {
			t.Fatal(err)
		}
		_, _, err := reopen()
		if !IsCorruption(err) || !strings.Contains(err.Error(), path) {
			t.Fatalf("%s: %v", name, err)
		}
		t.Logf("%s: %v", name, err)
	}
}

// TestSealedSnapshotNamesTheDamagedSection: every byte of a sealed
// snapshot is covered; the error says which section failed.
func TestSealedSnapshotNamesTheDamagedSection(t *testing.T) {
	payload := make([]byte, 2*snapshotSectionBytes+100)
	sealed := sealSnapshot(9, [32]byte{2}, payload)
	if s, err := openSnapshot(sealed); err != nil || s.Index != 9 || s.Digest != [32]byte{2} || s.Legacy {
		t.Fatalf("intact: %+v %v", s, err)
	}
	hdr := len(sealed) - len(payload)
	for _, c := range []struct {
		at   int
		want string
	}{
		{10, "header"},
		{hdr + 5, "section 1 of 3"},
		{hdr + 2*snapshotSectionBytes + 50, "section 3 of 3"},
	} {
		b := append([]byte(nil), sealed...)
		b[c.at] ^= 0x10
		if _, err := openSnapshot(b); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("byte %d flipped: %v, want %q", c.at, err, c.want)
		}
	}
	if _, err := openSnapshot(sealed[:len(sealed)-1]); err == nil || !strings.Contains(err.Error(), "section 3") {
		t.Errorf("one byte short: %v", err)
	}
}

// TestRestoreComparesTheRecordedDigest: a snapshot whose checksums pass but
// whose restored state does not have the digest recorded with it (a codec
// bug, or damage the checksums missed) is refused.
func TestRestoreComparesTheRecordedDigest(t *testing.T) {
	ts := uint64(testNowSec * 1000)
	l := applyAll(t, randomBatches(t, 3, 20), ts)
	raw, err := l.MarshalSnapshot()
	if err != nil {
		t.Fatal(err)
	}
	d, _ := l.Digest()
	cfg := testConfig("replica1", newClock())
	if _, err := restoreChecked(cfg, "replica.db", sealSnapshot(l.index, d, raw)); err != nil {
		t.Fatalf("intact: %v", err)
	}
	d[0] ^= 1
	_, err = restoreChecked(cfg, "replica.db", sealSnapshot(l.index, d, raw))
	if !IsCorruption(err) || !strings.Contains(err.Error(), "recorded") {
		t.Fatalf("wrong recorded digest: %v", err)
	}
	if _, err := restoreChecked(cfg, "replica.db", sealSnapshot(l.index+1, d, raw)); !IsCorruption(err) {
		t.Fatalf("wrong recorded index: %v", err)
	}
}

// TestBoltStoreKeepsTheRebuildMarker: the marker of a rebuild under way
// survives closing and reopening the file, and clearing it does too.
func TestBoltStoreKeepsTheRebuildMarker(t *testing.T) {
	dir := t.TempDir()
	reopen := func() *BoltStore {
		t.Helper()
		st, err := OpenBoltStore(dir, BoltOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	st := reopen()
	if reason, err := st.Rebuilding(); err != nil || reason != "" {
		t.Fatalf("a new store says rebuilding %q (%v)", reason, err)
	}
	if err := st.SetRebuilding("state digest differs from a quorum's"); err != nil {
		t.Fatal(err)
	}
	st.Close()
	st = reopen()
	if reason, err := st.Rebuilding(); err != nil || reason != "state digest differs from a quorum's" {
		t.Fatalf("reopened: rebuilding %q (%v)", reason, err)
	}
	if err := st.SetRebuilding(""); err != nil {
		t.Fatal(err)
	}
	st.Close()
	st = reopen()
	defer st.Close()
	if reason, err := st.Rebuilding(); err != nil || reason != "" {
		t.Fatalf("cleared and reopened: rebuilding %q (%v)", reason, err)
	}
}
