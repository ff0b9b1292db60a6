package replica

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/seqbook/seqbook/client/bls"
	"github.com/seqbook/seqbook/client/keys"
	"github.com/seqbook/seqbook/client/obapi"
)

// attestNet is three replicas on one MemSequencer, each a peer of the
// others over real HTTP.
type attestNet struct {
	t    *testing.T
	seq  *MemSequencer
	reps []*Replica
	srvs []*httptest.Server
	runs []chan error
	stop context.CancelFunc
}

// attestNetOptions adjust an attestNet (zero value: three fresh replicas
// on a new MemSequencer).
type attestNetOptions struct {
	clock *manualClock
	seq   *MemSequencer
	// configure adjusts replica i's config before it starts.
	configure func(i int, cfg *Config)
	// handler wraps replica i's HTTP API.
	handler func(i int, h http.Handler) http.Handler
}

func startAttestNet(t *testing.T, o attestNetOptions) *attestNet {
	clock := o.clock
	if clock == nil {
		clock = newClock()
	}
	n := &attestNet{t: t, seq: o.seq}
	if n.seq == nil {
		n.seq = NewMemSequencer(clock.Ms)
	}
	ids := []string{"replica1", "replica2", "replica3"}
	for range ids {
		s := httptest.NewUnstartedServer(nil)
		n.srvs = append(n.srvs, s)
	}
	ctx, cancel := context.WithCancel(context.Background())
	n.stop = cancel
	for i, id := range ids {
		cfg := testConfig(id, clock)
		for j, peer := range ids {
			if j != i {
				cfg.Peers = append(cfg.Peers, Peer{ID: peer, URL: "http://" + n.srvs[j].Listener.Addr().String(),
					Key: keys.DeterministicBLS("replica-test-" + peer).PublicKey()})
			}
		}
		if o.configure != nil {
			o.configure(i, &cfg)
		}
		r, err := New(cfg, n.seq, NewMemStore())
		if err != nil {
			t.Fatal(err)
		}
		n.reps = append(n.reps, r)
		n.srvs[i].Config.Handler = r.Handler()
		if o.handler != nil {
			n.srvs[i].Config.Handler = o.handler(i, r.Handler())
		}
		n.srvs[i].Start()
		done := make(chan error, 1)
		n.runs = append(n.runs, done)
		go func() { done <- r.Run(ctx) }()
	}
	t.Cleanup(func() {
		cancel()
		for i := range n.reps {
			<-n.runs[i]
			n.srvs[i].Close()
		}
	})
	return n
}

func (n *attestNet) get(i int, path string, out any) int {
	tr := &testReplica{Replica: n.reps[i], srv: n.srvs[i]}
	return tr.do(n.t, "GET", path, nil, out)
}

// TestAttestationsCatchADivergedReplica: every replica signs its state
// digest at each AttestEvery index, verifiable with its cluster key; when
// one replica's state is changed behind its back, the others' quorum
// attestations show it: it answers signed reads with 503, says so in
// GET /state, and Run returns ErrDiverged (its process then rebuilds it).
func TestAttestationsCatchADivergedReplica(t *testing.T) {
	n := startAttestNet(t, attestNetOptions{})
	every := TestConfig().AttestEvery
	ts := uint64(testNowSec * 1000)
	for k := uint64(1); k <= every; k++ {
		n.seq.Append(ts, batchOf(t, signOrder(t, alice, orderSpec{side: "buy", qty: 1_000_000, price: 1_000_000, nonce: k})))
	}
	var att obapi.Attestation
	waitFor(t, "replica1's attestation at the first attestation index", 10*time.Second, func() bool {
		return n.get(0, "/attestation?index="+u(every), &att) == http.StatusOK
	})
	d, err := parseHash32("state_digest", att.StateDigest)
	if err != nil {
		t.Fatal(err)
	}
	sig, err := bls.SignatureFromHex(att.Signature)
	if err != nil {
		t.Fatal(err)
	}
	msg := testDomain().EIP712.Digest(n.reps[0].stateMessage(every, d))
	if att.Index != every || att.Replica != "replica1" || !sig.Verify(keys.DeterministicBLS("replica-test-replica1").PublicKey(), msg) {
		t.Fatalf("attestation %+v does not verify", att)
	}
	// replica2 may still be applying the batches replica1 attested.
	waitFor(t, "replica2 at the first attestation index", 10*time.Second, func() bool {
		idx, _ := n.reps[1].StateDigest()
		return idx >= every
	})
	if idx, want := n.reps[1].StateDigest(); idx != every || hexID(want) != att.StateDigest {
		t.Fatalf("replica2's digest at %d %x, replica1 attested %s at %d", idx, want, att.StateDigest, every)
	}
	if st := n.get(0, "/attestation?index=3", nil); st != http.StatusBadRequest && every != 3 {
		t.Fatalf("an index that is no attestation index: %d", st)
	}

	// replica3's state changes behind its back (what a bug or damage that
	// no checksum saw would do): a deposit that was never sequenced.
	n.reps[2].mu.Lock()
	if err := n.reps[2].ledger.eng.Deposit(addr(bob).Hex(), "USDT", 1); err != nil {
		t.Fatal(err)
	}
	n.reps[2].mu.Unlock()
	for k := every + 1; k <= 2*every; k++ {
		n.seq.Append(ts, batchOf(t, signOrder(t, alice, orderSpec{side: "buy", qty: 1_000_000, price: 1_000_000, nonce: k})))
	}
	select {
	case err := <-n.runs[2]:
		n.runs[2] <- err // for the cleanup
		if err != ErrDiverged {
			t.Fatalf("replica3's Run returned %v, want ErrDiverged", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("replica3 did not notice it diverged")
	}
	var st obapi.State
	if n.get(2, "/state", &st) != http.StatusOK || st.Diverged == nil || st.Diverged.Index != 2*every || len(st.Diverged.Signers) != 2 {
		t.Fatalf("replica3's /state does not say it diverged: %+v", st)
	}
	var e obapi.Error
	if code := n.get(2, "/balance?address="+addr(alice).Hex()+"&token=USDT", &e); code != http.StatusServiceUnavailable {
		t.Fatalf("replica3 answered a signed balance with %d", code)
	}
	tr := &testReplica{Replica: n.reps[2], srv: n.srvs[2]}
	var body map[string]string
	tr.do(t, "GET", "/balance?address="+addr(alice).Hex()+"&token=USDT", nil, &body)
	if !strings.Contains(body["error"], "differs from the one a quorum of replicas attested") {
		t.Fatalf("503 without a clear error: %v", body)
	}
	// The healthy ones are unaffected.
	for i := 0; i < 2; i++ {
		if code := n.get(i, "/balance?address="+addr(alice).Hex()+"&token=USDT", nil); code != http.StatusOK {
			t.Fatalf("replica%d: balance %d", i+1, code)
		}
		var s obapi.State
		if n.get(i, "/state", &s); s.Diverged != nil {
			t.Fatalf("replica%d says it diverged: %+v", i+1, s.Diverged)
		}
	}
}
