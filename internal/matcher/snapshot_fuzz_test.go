package matcher_test

import (
	"crypto/sha256"
	"testing"

	"github.com/seqbook/seqbook/internal/matcher"
	"github.com/seqbook/seqbook/internal/matcher/benchload"
)

// snapshotSeeds returns encodings of a few real states: empty, balances only,
// and books with partial fills on two markets.
func snapshotSeeds(t testing.TB) [][]byte {
	var out [][]byte
	e := matcher.New(matcher.DefaultConfig())
	add := func() {
		b, err := e.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b)
	}
	add()
	for _, a := range []string{"alice", "bob"} {
		for _, tok := range []string{"ETH", "USDT", "BTC"} {
			if err := e.Deposit(a, tok, u("1000")); err != nil {
				t.Fatal(err)
			}
		}
	}
	add()
	for _, o := range []matcher.Order{
		order("a1", "alice", "sell", "limit", "1", "100"),
		order("a2", "alice", "sell", "limit", "2", "101"),
		order("b1", "bob", "buy", "limit", "1.5", "99"),
		order("b2", "bob", "buy", "limit", "0.4", "100"),
		{ID: "c1", Account: "alice", Market: "BTC/USDT", Side: matcher.Buy, Type: matcher.Limit, Quantity: u("0.3"), Price: u("0.333333")},
	} {
		if _, err := e.Place(o); err != nil {
			t.Fatal(err)
		}
	}
	add()
	return out
}

// FuzzUnmarshalBinary: the snapshot decoder never panics, and whatever it
// accepts is a consistent state whose canonical encoding is exactly the
// input (so one state never has two snapshots or two digests).
func FuzzUnmarshalBinary(f *testing.F) {
	for _, s := range snapshotSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		e := matcher.New(matcher.DefaultConfig())
		if err := e.UnmarshalBinary(data); err != nil {
			return
		}
		if err := e.CheckInvariants(); err != nil {
			t.Fatalf("accepted an inconsistent state: %v", err)
		}
		back, _ := e.MarshalBinary()
		if string(back) != string(data) {
			t.Fatalf("accepted a non-canonical encoding:\n in  %x\n out %x", data, back)
		}
	})
}

// TestDigestIsHashOfSnapshot: Digest streams the encoding through SHA-256 in
// chunks; it must equal the hash of MarshalBinary's bytes, also for states
// far larger than one chunk, and survive a round trip.
func TestDigestIsHashOfSnapshot(t *testing.T) {
	cfg := benchload.DefaultConfig()
	cfg.Resting, cfg.Accounts = 3000, 300
	e, err := benchload.New(cfg).Setup()
	if err != nil {
		t.Fatal(err)
	}
	snap, _ := e.MarshalBinary()
	if len(snap) < 100<<10 {
		t.Fatalf("state too small to span chunks: %d bytes", len(snap))
	}
	if e.Digest() != sha256.Sum256(snap) {
		t.Fatal("Digest differs from sha256(MarshalBinary)")
	}
	r := matcher.New(matcher.DefaultConfig())
	if err := r.UnmarshalBinary(snap); err != nil {
		t.Fatal(err)
	}
	if r.Digest() != e.Digest() {
		t.Fatal("digest changed by the round trip")
	}
}
