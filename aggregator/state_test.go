package aggregator

import (
	"net/http"
	"strings"
	"testing"

	"github.com/seqbook/seqbook/client"
)

// TestAggregateState: GET /aggregate_state?index=N aggregates the
// replicas' attestations of the same state digest into a proof the SDK
// verifies like a balance proof; a replica attesting another digest is
// left out and named; without a quorum the answer is 424 (404 when the
// replicas have no attestation there), and a bad index is 400.
func TestAggregateState(t *testing.T) {
	tn := newTestNet(t, 3, func(i int, f *fakeReplica) bool {
		f.applied = 8
		if i == 2 {
			f.tamper = func(u uint64) uint64 { return u + 1 }
		}
		return false
	})
	s := serve(t, tn.aggregator(t, nil))
	var p client.StateProof
	if st := getJSON(t, s, "/aggregate_state?index=8", &p); st != http.StatusOK {
		t.Fatalf("status %d", st)
	}
	if err := client.VerifyStateProof(tn.c, &p); err != nil {
		t.Fatalf("the proof does not verify: %v", err)
	}
	if p.Index != 8 || strings.Join(p.Signers, ",") != "replica1,replica2" || strings.Join(p.NonSigners, ",") != "replica3" {
		t.Fatalf("proof %+v", p)
	}
	// A proof whose digest field is changed fails verification.
	bad := p
	bad.StateDigest = "0x" + strings.Repeat("00", 32)
	if err := client.VerifyStateProof(tn.c, &bad); err == nil {
		t.Fatal("a changed state digest verified")
	}

	var e struct {
		Error string `json:"error"`
	}
	if st := getJSON(t, s, "/aggregate_state?index=9", &e); st != http.StatusNotFound || e.Error == "" {
		t.Fatalf("index not applied: %d %q", st, e.Error)
	}
	for _, q := range []string{"", "?index=0", "?index=x", "?index=-1", "?index=1&index=2"} {
		if st := getJSON(t, s, "/aggregate_state"+q, &e); st != http.StatusBadRequest || e.Error == "" {
			t.Errorf("%q: %d %q", q, st, e.Error)
		}
	}

	split := newTestNet(t, 3, func(i int, f *fakeReplica) bool {
		f.applied = 8
		if i > 0 {
			f.tamper = func(u uint64) uint64 { return u + uint64(i) }
		}
		return i == 2
	})
	s2 := serve(t, split.aggregator(t, nil))
	if st := getJSON(t, s2, "/aggregate_state?index=8", &e); st != http.StatusFailedDependency {
		t.Fatalf("no quorum: %d %q", st, e.Error)
	}
}
