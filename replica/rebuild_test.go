package replica

import (
	"context"
	"errors"
	"math"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/seqbook/seqbook/client/bls"
	"github.com/seqbook/seqbook/client/eip712"
	"github.com/seqbook/seqbook/client/keys"
	"github.com/seqbook/seqbook/client/obapi"
)

// cutSequencer serves finalized batches up to its cut only, so a
// rebuild that reached the cut waits there and a test can look at the
// replica in the middle of it; while headDown it cannot tell its finalized
// head (a sequencer out of reach).
type cutSequencer struct {
	*MemSequencer
	headDown atomic.Bool
	mu       sync.Mutex
	cut      uint64
	opened   chan struct{}
}

func newCutSequencer(s *MemSequencer, cut uint64) *cutSequencer {
	return &cutSequencer{MemSequencer: s, cut: cut, opened: make(chan struct{})}
}

// release serves everything from now on (call once).
func (g *cutSequencer) release() {
	g.mu.Lock()
	g.cut = math.MaxUint64
	close(g.opened)
	g.mu.Unlock()
}

func (g *cutSequencer) FinalizedHead(ctx context.Context) (uint64, error) {
	if g.headDown.Load() {
		return 0, errors.New("no node answers")
	}
	return g.MemSequencer.FinalizedHead(ctx)
}

func (g *cutSequencer) Finalized(ctx context.Context, after uint64, prev [32]byte, wait time.Duration) ([]Batch, error) {
	g.mu.Lock()
	cut, opened := g.cut, g.opened
	g.mu.Unlock()
	if after >= cut {
		select {
		case <-opened:
			cut = math.MaxUint64
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	bs, err := g.MemSequencer.Finalized(ctx, after, prev, wait)
	for len(bs) > 0 && bs[len(bs)-1].Index > cut {
		bs = bs[:len(bs)-1]
	}
	return bs, err
}

// signedPaths are the routes that answer with a BLS signature.
func signedPaths(withdrawalID string, attestIndex uint64) []string {
	return []string{
		"/balance?address=" + addr(alice).Hex() + "&token=USDT",
		"/balance?address=" + addr(alice).Hex() + "&token=USDT&index=3",
		"/withdrawals/" + withdrawalID,
		"/attestation",
		"/attestation?index=" + u(attestIndex),
	}
}

// assertRefused checks that every signed route answers 503 with a JSON
// error holding each of words.
func assertRefused(t *testing.T, tr *testReplica, paths []string, words ...string) {
	t.Helper()
	for _, p := range paths {
		var e obapi.Error
		if code := tr.do(t, "GET", p, nil, &e); code != http.StatusServiceUnavailable {
			t.Fatalf("GET %s answered %d while rebuilding: %+v", p, code, e)
		}
		for _, w := range words {
			if !strings.Contains(e.Error, w) {
				t.Fatalf("GET %s: error %q does not say %q", p, e.Error, w)
			}
		}
	}
}

// TestRebuildingReplicaSignsNothingUntilRebuilt: a replica started from
// genesis to rebuild damaged state (Config.Rebuild, as the replica command
// does) answers every signed read with 503 and a JSON error saying it is
// rebuilding, and says so in GET /state: first while it cannot learn the
// sequencer's finalized head, then while it has applied part of the
// history. Once it applied the head it signs again, the true values.
func TestRebuildingReplicaSignsNothingUntilRebuilt(t *testing.T) {
	clock := newClock()
	mem := NewMemSequencer(clock.Ms)
	ts := uint64(testNowSec * 1000)
	for k := uint64(1); k <= 6; k++ {
		mem.Append(ts, batchOf(t, signOrder(t, alice, orderSpec{side: "buy", qty: 1_000_000, price: 1_000_000, nonce: k})))
		mem.Append(ts, batchOf(t, signOrder(t, bob, orderSpec{side: "sell", qty: 1_000_000, price: 1_000_000, nonce: k})))
	}
	w := signWithdraw(t, alice, "USDT", 1_000_000, addr(carol), 100, 0)
	wop, err := WithdrawOp(testDomain(), &w)
	if err != nil {
		t.Fatal(err)
	}
	head := mem.Append(ts, batchOf(t, w))
	every := TestConfig().AttestEvery
	paths := signedPaths(wop.IDHex(), every)

	ref := startReplica(t, testConfig("replica2", clock), mem, NewMemStore())
	ref.waitApplied(t, head)
	var want obapi.Balance
	if code := ref.do(t, "GET", paths[0], nil, &want); code != http.StatusOK {
		t.Fatalf("reference balance: %d", code)
	}

	const cut = 5
	seq := newCutSequencer(mem, cut)
	seq.headDown.Store(true)
	cfg := testConfig("replica1", clock)
	cfg.Rebuild = "replica.db is corrupt: a test"
	tr := startReplica(t, cfg, seq, NewMemStore())

	// The head is not known: the partial state is not signed.
	tr.waitApplied(t, cut)
	assertRefused(t, tr, paths, "rebuilding", "applied index 5; the sequencer's finalized head is not known yet")
	st := tr.state(t)
	if st.Rebuilding == nil || st.Rebuilding.Reason != cfg.Rebuild || st.Rebuilding.TargetIndex != 0 || st.AppliedIndex != cut {
		t.Fatalf("GET /state does not say the replica rebuilds: %+v", st)
	}
	if code := tr.do(t, "GET", "/depth?market=ETH/USDT", nil, nil); code != http.StatusOK {
		t.Fatalf("an unsigned read answered %d while rebuilding", code)
	}

	// The head is known, the history applied up to the cut only.
	seq.headDown.Store(false)
	waitFor(t, "the rebuild target", 10*time.Second, func() bool {
		s := tr.rebuildStatus()
		return s != nil && s.TargetIndex == head
	})
	assertRefused(t, tr, paths, "rebuilding", "applied index 5 of 13")
	if st := tr.state(t); st.Rebuilding == nil || st.Rebuilding.TargetIndex != head || st.Rebuilding.AttestIndex != 0 {
		t.Fatalf("GET /state: %+v", st.Rebuilding)
	}

	// The rest of the history: rebuilt, it signs the true values.
	seq.release()
	waitFor(t, "the end of the rebuild", 10*time.Second, func() bool { return tr.rebuildStatus() == nil })
	if st := tr.state(t); st.Rebuilding != nil || st.AppliedIndex < head {
		t.Fatalf("rebuilt, GET /state says %+v at %d", st.Rebuilding, st.AppliedIndex)
	}
	var got obapi.Balance
	if code := tr.do(t, "GET", paths[0], nil, &got); code != http.StatusOK {
		t.Fatalf("rebuilt, GET /balance answered %d", code)
	}
	sig, err := bls.SignatureFromHex(got.Signature)
	if err != nil {
		t.Fatal(err)
	}
	msg := testDomain().EIP712.Digest(&eip712.Balance{App: "orderbook", Account: addr(alice), Token: "USDT", Balance: mustUint(t, got.BalanceUnits), Index: got.Index})
	if got.BalanceUnits != want.BalanceUnits || got.Index < head || !sig.Verify(keys.DeterministicBLS("replica-test-replica1").PublicKey(), msg) {
		t.Fatalf("rebuilt, signs %+v; the reference replica signs %+v", got, want)
	}
	for _, p := range paths[1:] {
		if code := tr.do(t, "GET", p, nil, nil); code != http.StatusOK {
			t.Fatalf("rebuilt, GET %s answered %d", p, code)
		}
	}
}

func mustUint(t *testing.T, s string) uint64 {
	t.Helper()
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// TestRebuiltReplicaWaitsForAQuorumAttestation: a replica rebuilding with
// peers (as after its digest differed from a quorum's) has applied the
// whole history, but signs nothing until a quorum of replicas attested its
// state digest at the last attestation index of that history: a rebuild
// that leads to the same wrong state again is never signed.
func TestRebuiltReplicaWaitsForAQuorumAttestation(t *testing.T) {
	clock := newClock()
	mem := NewMemSequencer(clock.Ms)
	every := TestConfig().AttestEvery
	ts := uint64(testNowSec * 1000)
	var head uint64
	for k := uint64(1); k <= 2*every+1; k++ {
		head = mem.Append(ts, batchOf(t, signOrder(t, alice, orderSpec{side: "buy", qty: 1_000_000, price: 1_000_000, nonce: k})))
	}
	var peersAnswer atomic.Bool
	n := startAttestNet(t, attestNetOptions{clock: clock, seq: mem,
		configure: func(i int, cfg *Config) {
			if i == 2 {
				cfg.Rebuild = "state digest differs from a quorum of replicas"
			}
		},
		handler: func(i int, h http.Handler) http.Handler {
			if i == 2 {
				return h
			}
			return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
				if req.URL.Path == "/attestation" && !peersAnswer.Load() {
					http.Error(w, `{"error":"not now"}`, http.StatusServiceUnavailable)
					return
				}
				h.ServeHTTP(w, req)
			})
		},
	})
	r3 := &testReplica{Replica: n.reps[2], srv: n.srvs[2]}
	r3.waitApplied(t, head)
	waitFor(t, "the rebuild target", 10*time.Second, func() bool {
		s := r3.rebuildStatus()
		return s != nil && s.TargetIndex == head
	})
	st := r3.state(t)
	if st.Rebuilding == nil || st.Rebuilding.AttestIndex != 2*every {
		t.Fatalf("GET /state: %+v", st.Rebuilding)
	}
	assertRefused(t, r3, []string{"/balance?address=" + addr(alice).Hex() + "&token=USDT", "/attestation"},
		"rebuilding", "waiting for a quorum of replicas to attest the same state digest at index "+u(2*every))

	peersAnswer.Store(true)
	waitFor(t, "the end of the rebuild", 10*time.Second, func() bool { return r3.rebuildStatus() == nil })
	if code := n.get(2, "/balance?address="+addr(alice).Hex()+"&token=USDT", nil); code != http.StatusOK {
		t.Fatalf("rebuilt and attested, GET /balance answered %d", code)
	}
}

// TestRebuildOutlivesARestart: a replica restarted in the middle of a
// rebuild (its partial state passes every integrity check) goes on
// rebuilding, signing nothing, although the restart does not say so; once
// the rebuild ended, a restart signs at once.
func TestRebuildOutlivesARestart(t *testing.T) {
	clock := newClock()
	mem := NewMemSequencer(clock.Ms)
	ts := uint64(testNowSec * 1000)
	for k := uint64(1); k <= 4; k++ {
		mem.Append(ts, batchOf(t, signOrder(t, alice, orderSpec{side: "buy", qty: 1_000_000, price: 1_000_000, nonce: k})))
	}
	head := uint64(mem.Len())
	paths := signedPaths("0x"+strings.Repeat("ab", 32), TestConfig().AttestEvery)[:1]

	const cut = 2
	seq := newCutSequencer(mem, cut)
	store := NewMemStore()
	cfg := testConfig("replica1", clock)
	cfg.Rebuild = "replica.db is corrupt: a test"
	tr := startReplica(t, cfg, seq, store)
	tr.waitApplied(t, cut)
	tr.stop()

	// Restarted without being told: it rebuilds on.
	store.Reopen()
	cfg.Rebuild = ""
	tr = startReplica(t, cfg, seq, store)
	st := tr.rebuildStatus()
	if st == nil || !strings.Contains(st.Reason, "replica.db is corrupt: a test") || !strings.Contains(st.Reason, "restarted while rebuilding") {
		t.Fatalf("restarted in the middle of a rebuild: rebuilding %+v", st)
	}
	assertRefused(t, tr, paths, "rebuilding")

	seq.release()
	waitFor(t, "the end of the rebuild", 10*time.Second, func() bool { return tr.rebuildStatus() == nil })
	tr.waitApplied(t, head)
	tr.stop()
	if reason, err := store.Rebuilding(); err != nil || reason != "" {
		t.Fatalf("rebuilt, the store still says %q (%v)", reason, err)
	}
	store.Reopen()
	tr = startReplica(t, cfg, seq, store)
	if st := tr.rebuildStatus(); st != nil {
		t.Fatalf("restarted after the rebuild ended: rebuilding %+v", st)
	}
	if code := tr.do(t, "GET", paths[0], nil, nil); code != http.StatusOK {
		t.Fatalf("restarted after the rebuild ended: a signed read answered %d", code)
	}
}
