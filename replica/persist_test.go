package replica

import (
	"context"
	"crypto/ecdsa"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/seqbook/seqbook/client/obapi"
)

// randomBatches builds n batches of signed operations (orders crossing
// each other, cancels, withdrawals, deposits, some invalid), seeded.
func randomBatches(t testing.TB, seed uint64, n int) [][]byte {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 7))
	traders := []*struct {
		k     string
		nonce uint64
	}{{"alice", 0}, {"bob", 0}, {"carol", 0}}
	keyOf := map[string]*ecdsa.PrivateKey{"alice": alice, "bob": bob, "carol": carol}
	var placed []obapi.OrderRequest
	var out [][]byte
	for b := 0; b < n; b++ {
		var reqs []any
		for i := 0; i < 1+rng.IntN(6); i++ {
			tr := traders[rng.IntN(len(traders))]
			tr.nonce++
			key := keyOf[tr.k]
			switch x := rng.IntN(10); {
			case x < 7:
				side := []string{"buy", "sell"}[rng.IntN(2)]
				typ := "limit"
				if rng.IntN(6) == 0 {
					typ = "market"
				}
				o := signOrder(t, key, orderSpec{side: side, typ: typ, qty: uint64(1+rng.IntN(20)) * 100_000,
					price: uint64(1900+rng.IntN(200)) * 1_000_000, nonce: tr.nonce})
				placed = append(placed, o)
				reqs = append(reqs, o)
			case x < 8 && len(placed) > 0:
				o := placed[rng.IntN(len(placed))]
				reqs = append(reqs, signCancel(t, key, orderID(t, o), tr.nonce, 0)) // often not the owner: rejected
			case x < 9:
				reqs = append(reqs, signWithdraw(t, key, []string{"ETH", "USDT"}[rng.IntN(2)], uint64(1+rng.IntN(5))*1_000_000, addr(key), tr.nonce, 0))
			default:
				reqs = append(reqs, signDeposit(t, bridge, addr(key), []string{"ETH", "USDT"}[rng.IntN(2)], uint64(1+rng.IntN(5))*1_000_000, uint64(b*100+i+1), 0))
			}
		}
		out = append(out, batchOf(t, reqs...))
	}
	return out
}

// applyAll feeds bodies to a fresh ledger and returns it.
func applyAll(t testing.TB, bodies [][]byte, ts uint64) *Ledger {
	t.Helper()
	return applyAllWith(t, bodies, ts, func(*LedgerConfig) {})
}

// applyAllWith is applyAll with a configuration changed by edit.
func applyAllWith(t testing.TB, bodies [][]byte, ts uint64, edit func(*LedgerConfig)) *Ledger {
	t.Helper()
	cfg := DefaultLedgerConfig()
	edit(&cfg)
	l, err := NewLedger(cfg, testDomain(), testGenesis())
	if err != nil {
		t.Fatal(err)
	}
	var prev [32]byte
	for i, body := range bodies {
		b := Batch{Index: uint64(i + 1), Timestamp: ts, Body: body}
		b.ChainingHash = NextChainingHash(prev, BatchHash(ts, body))
		prev = b.ChainingHash
		p := prepareBatch(testDomain(), b, 0, nil)
		l.ApplyBatch(p.batch, p.ops, p.batchErr, p.sigErrs)
	}
	return l
}

func TestLedgerIsDeterministicAndSnapshotsExactly(t *testing.T) {
	ts := uint64(testNowSec * 1000)
	bodies := randomBatches(t, 1, 40)
	a, b := applyAll(t, bodies, ts), applyAll(t, bodies, ts)
	da, _ := a.Digest()
	db, _ := b.Digest()
	if da != db {
		t.Fatal("same batches, different digests")
	}
	if err := a.eng.CheckInvariants(); err != nil {
		t.Fatal(err)
	}
	if _, ts := a.eng.Counters(); ts == 0 {
		t.Fatal("the random stream made no trade; the test would prove little")
	}
	// A snapshot restores the same digest, and both continue alike.
	snap, err := a.MarshalSnapshot()
	if err != nil {
		t.Fatal(err)
	}
	c, err := RestoreLedger(DefaultLedgerConfig(), testDomain(), snap)
	if err != nil {
		t.Fatal(err)
	}
	if dc, _ := c.Digest(); dc != da {
		t.Fatal("restored ledger has another digest")
	}
	snap2, _ := c.MarshalSnapshot()
	if string(snap) != string(snap2) {
		t.Fatal("snapshot of a restored ledger differs")
	}
	// Differing batches give differing digests (the digest is not blind).
	d := applyAll(t, bodies[:39], ts)
	if dd, _ := d.Digest(); dd == da {
		t.Fatal("digest did not change with the last batch")
	}
}

func TestPersistenceSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	clock := newClock()
	seq := NewMemSequencer(clock.Ms)
	seq.SetPageMax(1) // one batch per page: snapshots at 4 and 8, 9 and 10 logged
	for _, body := range randomBatches(t, 2, 10) {
		seq.Append(clock.Ms(), body)
	}
	cfg := testConfig("replica1", clock)
	cfg.SnapshotEvery = 4
	store, err := OpenBoltStore(dir, BoltOptions{})
	if err != nil {
		t.Fatal(err)
	}
	r := startReplica(t, cfg, seq, store)
	r.waitApplied(t, 10)
	want := r.state(t)
	var trades obapi.Trades
	r.do(t, "GET", "/trades", nil, &trades)
	r.stop()

	store, err = OpenBoltStore(dir, BoltOptions{})
	if err != nil {
		t.Fatal(err)
	}
	snap, logged, err := store.Load()
	if err != nil || snap == nil {
		t.Fatalf("load: %v", err)
	}
	if len(logged) != 2 || logged[0].Index != 9 {
		t.Fatalf("restart from a snapshot at 8 and 2 logged batches expected, got %d logged", len(logged))
	}
	// Restored before running: the same index and digest, from disk alone.
	r2, err := New(cfg, NewMemSequencer(clock.Ms), store)
	if err != nil {
		t.Fatal(err)
	}
	idx, dig := r2.StateDigest()
	if idx != 10 || hexID(dig) != want.StateDigest {
		t.Fatalf("after reopen: index %d digest %s, want 10 %s", idx, hexID(dig), want.StateDigest)
	}
	r2.Close()

	// Reopened and running: it catches up with more batches and keeps
	// its read models.
	for _, body := range randomBatches(t, 3, 5) {
		seq.Append(clock.Ms(), body)
	}
	store, err = OpenBoltStore(dir, BoltOptions{})
	if err != nil {
		t.Fatal(err)
	}
	r3 := startReplica(t, cfg, seq, store)
	r3.waitApplied(t, 15)
	var trades3 obapi.Trades
	r3.do(t, "GET", "/trades", nil, &trades3)
	if len(trades3.Trades) < len(trades.Trades) || (len(trades.Trades) > 0 && trades3.Trades[0] != trades.Trades[0]) {
		t.Fatalf("trades lost across the restart: %d then %d", len(trades.Trades), len(trades3.Trades))
	}
	// A fresh replica syncing from index 0 agrees.
	fresh := startReplica(t, testConfig("replica2", clock), seq, NewMemStore())
	fresh.waitApplied(t, 15)
	if a, b := r3.state(t).StateDigest, fresh.state(t).StateDigest; a != b {
		t.Fatalf("restarted %s vs fresh %s", a, b)
	}
}

func TestRestartWithAnotherGenesisIsRefused(t *testing.T) {
	clock := newClock()
	store := NewMemStore()
	cfg := testConfig("replica1", clock)
	r, err := New(cfg, NewMemSequencer(clock.Ms), store)
	if err != nil {
		t.Fatal(err)
	}
	r.Close()
	store.Reopen()
	cfg.Genesis = &Genesis{Balances: cfg.Genesis.Balances[:1]}
	if _, err := New(cfg, NewMemSequencer(clock.Ms), store); err == nil || !strings.Contains(err.Error(), "genesis") {
		t.Fatalf("another genesis: %v", err)
	}
	// The same balances in the other file layout are the same genesis.
	g, err := ParseGenesis([]byte(fmt.Sprintf(`{"balances":{%q:{"ETH":"50","USDT":100000},%q:{"USDT":"100000"},%q:{"ETH":50}}}`,
		addr(carol).Hex(), addr(alice).Hex(), strings.ToLower(addr(bob).Hex()))))
	if err != nil {
		t.Fatal(err)
	}
	cfg.Genesis = g
	if _, err := New(cfg, NewMemSequencer(clock.Ms), store); err != nil {
		t.Fatalf("same genesis, other layout: %v", err)
	}
}

// The balance history answers, for every index in its window, what a
// ledger replayed up to that index holds.
func TestBalanceHistoryMatchesReplay(t *testing.T) {
	ts := uint64(testNowSec * 1000)
	bodies := randomBatches(t, 4, 30)
	cfg := DefaultLedgerConfig()
	cfg.HistoryIndexes = 20
	l, err := NewLedger(cfg, testDomain(), testGenesis())
	if err != nil {
		t.Fatal(err)
	}
	var prev [32]byte
	type key struct{ acct, tok string }
	truth := map[uint64]map[key]uint64{}
	accounts := []string{addr(alice).Hex(), addr(bob).Hex(), addr(carol).Hex()}
	record := func(n uint64) {
		truth[n] = map[key]uint64{}
		for _, a := range accounts {
			for _, tok := range []string{"ETH", "USDT"} {
				truth[n][key{a, tok}] = l.eng.Balance(a, tok).Total()
			}
		}
	}
	record(0)
	for i, body := range bodies {
		b := Batch{Index: uint64(i + 1), Timestamp: ts, Body: body}
		b.ChainingHash = NextChainingHash(prev, BatchHash(ts, body))
		prev = b.ChainingHash
		p := prepareBatch(testDomain(), b, 1, nil)
		l.ApplyBatch(p.batch, p.ops, p.batchErr, p.sigErrs)
		record(b.Index)
	}
	changed := false
	for n := uint64(0); n <= 30; n++ {
		for k, want := range truth[n] {
			got, err := l.BalanceAt(k.acct, k.tok, n)
			if n < 10 {
				if err == nil || !strings.Contains(err.Error(), "older than") {
					t.Fatalf("index %d outside the window: %v", n, err)
				}
				continue
			}
			if err != nil || got != want {
				t.Fatalf("%s %s at %d: %d (%v), want %d", k.acct[:8], k.tok, n, got, err, want)
			}
			if want != truth[30][k] {
				changed = true
			}
		}
	}
	if !changed {
		t.Fatal("no balance changed inside the window; the test would prove little")
	}
	if _, err := l.BalanceAt(accounts[0], "ETH", 31); err == nil {
		t.Fatal("a read ahead of the applied index succeeded")
	}
}

// The replica keeps applying whatever order its pages come in, and its
// store commits once per page, never per operation.
func TestOneCommitPerPage(t *testing.T) {
	clock := newClock()
	seq := NewMemSequencer(clock.Ms)
	for _, body := range randomBatches(t, 5, 12) {
		seq.Append(clock.Ms(), body)
	}
	store := NewMemStore()
	cfg := testConfig("replica1", clock)
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	cfg.SnapshotEvery = 100 // no snapshot, which is stored in its own commit
	r := startReplica(t, cfg, seq, store)
	r.waitApplied(t, 12)
	// One commit for genesis, then one per page (12 batches fit one page).
	waitFor(t, "the commit", 5e9, func() bool { return store.Commits() >= 2 })
	if c := store.Commits(); c != 2 {
		t.Fatalf("%d commits for one page of 12 batches", c)
	}
}

// A snapshot captured at one index encodes that index's state exactly even
// when the ledger applies more batches before the encoding runs (the
// replica encodes in the background): dropping old fills, compacting the
// trades and evicting closed records must not reach into the capture.
func TestSnapshotCaptureIsUnaffectedByLaterBatches(t *testing.T) {
	cfg := DefaultLedgerConfig()
	cfg.TradesMax, cfg.RecordsMax = 16, 10
	ts := uint64(testNowSec * 1000)
	nonce := uint64(0)
	buys := func(n int) []any {
		var reqs []any
		for i := 0; i < n; i++ {
			nonce++
			reqs = append(reqs, signOrder(t, alice, orderSpec{side: "buy", qty: 10_000, price: 2000_000_000, nonce: nonce}))
		}
		return reqs
	}
	bodies := [][]byte{
		batchOf(t, signOrder(t, bob, orderSpec{side: "sell", qty: 10_000_000, price: 2000_000_000, nonce: 1})),
		batchOf(t, buys(70)...),
		batchOf(t, buys(70)...), // the maker's fills pass FillsPerOrderMax
		batchOf(t, buys(5)...),
	}
	apply := func(l *Ledger, from, to int) {
		prev := l.chain
		for i := from; i < to; i++ {
			b := Batch{Index: uint64(i + 1), Timestamp: ts, Body: bodies[i]}
			b.ChainingHash = NextChainingHash(prev, BatchHash(ts, bodies[i]))
			prev = b.ChainingHash
			p := prepareBatch(testDomain(), b, 0, nil)
			l.ApplyBatch(p.batch, p.ops, p.batchErr, p.sigErrs)
		}
	}
	newLedger := func() *Ledger {
		l, err := NewLedger(cfg, testDomain(), testGenesis())
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	l := newLedger()
	apply(l, 0, 2)
	capture, err := l.captureSnapshot()
	if err != nil {
		t.Fatal(err)
	}
	apply(l, 2, len(bodies))
	got, err := capture.encode()
	if err != nil {
		t.Fatal(err)
	}
	ref := newLedger()
	apply(ref, 0, 2)
	want, err := ref.MarshalSnapshot()
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != string(want) {
		t.Fatal("a capture encoded after later batches differs from the snapshot at its index")
	}
	if m := l.records[[32]byte(mustHash(t, orderID(t, signOrder(t, bob, orderSpec{side: "sell", qty: 10_000_000, price: 2000_000_000, nonce: 1}))))]; m == nil || m.FillsDropped == 0 {
		t.Fatal("the maker dropped no fill; the test would prove little")
	}
	if len(l.trades) >= 140 {
		t.Fatal("no trade was evicted; the test would prove little")
	}
}

func mustHash(t *testing.T, s string) [32]byte {
	t.Helper()
	h, err := parseHash32("id", s)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// A store that fails stops the replica: Run returns the error (the
// follower that fetches ahead is stopped with it) instead of applying
// batches it cannot persist.
func TestStoreFailureStopsTheReplica(t *testing.T) {
	clock := newClock()
	seq := NewMemSequencer(clock.Ms)
	store := NewMemStore()
	r, err := New(testConfig("replica1", clock), seq, store)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- r.Run(context.Background()) }()
	seq.Append(clock.Ms(), batchOf(t, signOrder(t, alice, orderSpec{side: "buy", qty: 1_000_000, price: 2000_000_000, nonce: 1})))
	waitFor(t, "the first batch", 5*time.Second, func() bool { return r.Applied() == 1 })
	store.Close()
	for i := 0; i < 3; i++ {
		seq.Append(clock.Ms(), batchOf(t, signOrder(t, alice, orderSpec{side: "buy", qty: 1_000_000, price: 2000_000_000, nonce: uint64(2 + i)})))
	}
	select {
	case err := <-done:
		if !errors.Is(err, ErrStoreClosed) {
			t.Fatalf("Run returned %v, want the store's error", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after the store failed")
	}
}
