package aggregator

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/common"
	blst "github.com/supranational/blst/bindings/go"

	"github.com/seqbook/seqbook/client"
	"github.com/seqbook/seqbook/client/bls"
	"github.com/seqbook/seqbook/client/cluster"
	"github.com/seqbook/seqbook/client/eip712"
)

var (
	alice = common.HexToAddress("0xc66F8Fba940064B5bA8d437d6fF829E60134230E")
	bob   = common.HexToAddress("0x7F3b0b1530A0d0Ce3D721a6e976C7eA4296A0f5d")
)

// serve starts the aggregator's HTTP API.
func serve(t *testing.T, a *Aggregator) *httptest.Server {
	t.Helper()
	s := httptest.NewServer(a.Handler())
	t.Cleanup(s.Close)
	return s
}

// getJSON GETs path from s and decodes the answer into out; it returns the
// status.
func getJSON(t *testing.T, s *httptest.Server, path string, out any) int {
	t.Helper()
	resp, err := http.Get(s.URL + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Fatalf("GET %s: content type %q, body %s", path, ct, body)
	}
	if err := json.Unmarshal(body, out); err != nil {
		t.Fatalf("GET %s: %v: %s", path, err, body)
	}
	return resp.StatusCode
}

func balancePath(addr common.Address, token string) string {
	return "/aggregate_balance?" + url.Values{"address": {addr.Hex()}, "token": {token}}.Encode()
}

// mustBalanceProof asks for a proof over HTTP and checks it with both
// verifiers: the cluster's (herumi) and the independent one (go-ethereum's
// typed-data hasher + blst).
func mustBalanceProof(t *testing.T, tn *testNet, s *httptest.Server, addr common.Address, token string) *client.BalanceProof {
	t.Helper()
	var p client.BalanceProof
	if st := getJSON(t, s, balancePath(addr, token), &p); st != http.StatusOK {
		t.Fatalf("status %d: %+v", st, p)
	}
	checkBalanceProof(t, tn, &p)
	return &p
}

func checkBalanceProof(t *testing.T, tn *testNet, p *client.BalanceProof) {
	t.Helper()
	if err := indepVerifyBalance(tn.c, p); err != nil {
		t.Fatalf("independent verifier refuses the proof: %v\n%+v", err, p)
	}
	if err := client.VerifyBalanceProof(tn.c, p); err != nil {
		t.Fatalf("client SDK verifier refuses the proof: %v\n%+v", err, p)
	}
	sig, err := bls.SignatureFromHex(p.Signature)
	if err != nil {
		t.Fatal(err)
	}
	var digest [32]byte
	copy(digest[:], common.FromHex(p.Digest))
	if err := tn.c.VerifyReplicaQuorum(digest, sig, p.Signers); err != nil {
		t.Fatalf("cluster verifier refuses the proof: %v", err)
	}
	// Signers and non-signers partition the replicas, each in cluster order.
	all := append(slices.Clone(p.Signers), p.NonSigners...)
	slices.SortFunc(all, func(a, b string) int { i, _ := tn.c.ReplicaIndex(a); j, _ := tn.c.ReplicaIndex(b); return i - j })
	if len(all) != len(tn.c.Replicas) || slices.Compact(slices.Clone(all)) == nil {
		t.Fatalf("signers %v + non-signers %v do not cover the replicas", p.Signers, p.NonSigners)
	}
	for i, id := range all {
		if id != tn.c.Replicas[i].ID {
			t.Fatalf("signers %v + non-signers %v do not partition the replicas", p.Signers, p.NonSigners)
		}
	}
	for _, list := range [][]string{p.Signers, p.NonSigners} {
		if !slices.IsSortedFunc(list, func(a, b string) int { i, _ := tn.c.ReplicaIndex(a); j, _ := tn.c.ReplicaIndex(b); return i - j }) {
			t.Fatalf("%v is not in cluster order", list)
		}
	}
}

func TestBalanceProofAllHonest(t *testing.T) {
	tn := newTestNet(t, 3, nil)
	tn.ledger.set(1, alice, "USDT", 1000_000000)
	s := serve(t, tn.aggregator(t, nil))
	p := mustBalanceProof(t, tn, s, alice, "USDT")
	if p.Balance != "1000" || p.BalanceUnits != "1000000000" || p.Index != 1 || p.Threshold != 2 || p.App != "orderbook" {
		t.Fatalf("proof fields: %+v", p)
	}
	if !slices.Equal(p.Signers, []string{"replica1", "replica2", "replica3"}) || len(p.NonSigners) != 0 || p.NonSigners == nil {
		t.Fatalf("signers %v non-signers %v", p.Signers, p.NonSigners)
	}
	if p.Address != alice.Hex() {
		t.Fatalf("address %s, want checksummed %s", p.Address, alice.Hex())
	}

	// An address in lower case is the same account.
	var p2 client.BalanceProof
	if st := getJSON(t, s, "/aggregate_balance?address="+strings.ToLower(alice.Hex())+"&token=USDT", &p2); st != 200 || p2.Digest != p.Digest {
		t.Fatalf("lower-case address: %d %+v", st, p2)
	}
	// A zero balance is a balance too.
	z := mustBalanceProof(t, tn, s, bob, "USDT")
	if z.Balance != "0" || z.BalanceUnits != "0" {
		t.Fatalf("zero balance proof: %+v", z)
	}
}

func TestByzantineReplicaCannotJoinTheHonestProof(t *testing.T) {
	log := &syncBuffer{}
	tn := newTestNet(t, 3, func(i int, f *fakeReplica) bool {
		if i == 1 {
			f.tamper = func(u uint64) uint64 { return u + 1 } // signs a wrong balance with its real key
		}
		return false
	})
	tn.ledger.set(1, alice, "ETH", 5_000000)
	s := serve(t, tn.aggregator(t, log))
	p := mustBalanceProof(t, tn, s, alice, "ETH")
	if p.BalanceUnits != "5000000" {
		t.Fatalf("proof carries %s, the honest value is 5000000", p.BalanceUnits)
	}
	if !slices.Equal(p.Signers, []string{"replica1", "replica3"}) || !slices.Equal(p.NonSigners, []string{"replica2"}) {
		t.Fatalf("signers %v non-signers %v", p.Signers, p.NonSigners)
	}
	if l := log.String(); !strings.Contains(l, "replica=replica2") || !strings.Contains(l, "problem=disagrees") ||
		!strings.Contains(l, "5.000001") {
		t.Fatalf("the liar is not logged with its value:\n%s", l)
	}
	// The aggregate of the honest signers does not verify with the liar
	// added as a signer: the proof cannot be "extended" with it.
	sig, _ := bls.SignatureFromHex(p.Signature)
	var d [32]byte
	copy(d[:], common.FromHex(p.Digest))
	if tn.c.VerifyReplicaQuorum(d, sig, []string{"replica1", "replica2", "replica3"}) == nil {
		t.Fatal("aggregate verified with the liar listed as a signer")
	}
}

func TestByzantineReplicaCannotGetAProofForItsValue(t *testing.T) {
	// One liar, one honest, one down: the liar's value has one signature,
	// the honest one too; neither reaches the threshold of 2.
	tn := newTestNet(t, 3, func(i int, f *fakeReplica) bool {
		if i == 0 {
			f.tamper = func(u uint64) uint64 { return 1 << 40 }
		}
		return i == 2
	})
	tn.ledger.set(1, alice, "ETH", 5_000000)
	s := serve(t, tn.aggregator(t, nil))
	var e struct {
		Error    string          `json:"error"`
		Replicas []ReplicaReport `json:"replicas"`
	}
	if st := getJSON(t, s, balancePath(alice, "ETH"), &e); st != http.StatusFailedDependency {
		t.Fatalf("status %d, want 424: %+v", st, e)
	}
	if !strings.Contains(e.Error, "fewer than 2 of 3") || len(e.Replicas) != 3 {
		t.Fatalf("error answer: %+v", e)
	}
	if !strings.Contains(e.Replicas[0].Answer, "1099511.627776") || !strings.Contains(e.Replicas[1].Answer, "balance 5 at index 1") ||
		!strings.Contains(e.Replicas[2].Answer, "GET /balance") {
		t.Fatalf("who answered what: %+v", e.Replicas)
	}

	// Two colluding liars among five replicas (threshold 3) sign the same
	// wrong value: the proof is the honest majority's.
	tn5 := newTestNet(t, 5, func(i int, f *fakeReplica) bool {
		if i == 1 || i == 3 {
			f.tamper = func(u uint64) uint64 { return 0 }
		}
		return false
	})
	tn5.ledger.set(1, alice, "ETH", 5_000000)
	p := mustBalanceProof(t, tn5, serve(t, tn5.aggregator(t, nil)), alice, "ETH")
	if p.BalanceUnits != "5000000" || p.Threshold != 3 || !slices.Equal(p.NonSigners, []string{"replica2", "replica4"}) {
		t.Fatalf("proof: %+v", p)
	}
}

func TestForgedSignaturesAreLeftOut(t *testing.T) {
	other := testKey("not a cluster member")
	for _, tc := range []struct {
		name  string
		setup func(f *fakeReplica)
		kind  string
	}{
		{"signed with another key", func(f *fakeReplica) { f.signWith = other }, "bad_signature"},
		{"another replica's signature", func(f *fakeReplica) { f.signWith = testKey("replica1") }, "bad_signature"},
		{"garbage signature", func(f *fakeReplica) { f.badSigHex = "0x" + strings.Repeat("ab", 96) }, "malformed"},
		{"signature of the point at infinity", func(f *fakeReplica) { f.badSigHex = "0xc0" + strings.Repeat("00", 95) }, "bad_signature"},
		{"short signature", func(f *fakeReplica) { f.badSigHex = "0x1234" }, "malformed"},
		{"answers as another replica", func(f *fakeReplica) { f.answerAs = "replica1" }, "malformed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			log := &syncBuffer{}
			tn := newTestNet(t, 3, func(i int, f *fakeReplica) bool {
				if i == 2 {
					tc.setup(f)
				}
				return false
			})
			tn.ledger.set(1, alice, "USDT", 42)
			p := mustBalanceProof(t, tn, serve(t, tn.aggregator(t, log)), alice, "USDT")
			if !slices.Equal(p.NonSigners, []string{"replica3"}) || p.BalanceUnits != "42" {
				t.Fatalf("proof %+v", p)
			}
			if l := log.String(); !strings.Contains(l, "replica=replica3 problem="+tc.kind) {
				t.Fatalf("want problem=%s for replica3 in the log:\n%s", tc.kind, l)
			}
		})
	}
}

func TestSlowAndDownReplicasAreNonSigners(t *testing.T) {
	log := &syncBuffer{}
	tn := newTestNet(t, 3, func(i int, f *fakeReplica) bool {
		f.hang = i == 1
		return i == 2
	})
	tn.ledger.set(1, alice, "USDT", 7)
	// Threshold 2 of 3 with one hanging and one down: no proof, after the
	// round's timeout.
	s := serve(t, tn.aggregatorWith(t, log, TestConfig()))
	var e struct {
		Error    string          `json:"error"`
		Replicas []ReplicaReport `json:"replicas"`
	}
	if st := getJSON(t, s, balancePath(alice, "USDT"), &e); st != http.StatusFailedDependency {
		t.Fatalf("status %d: %+v", st, e)
	}
	if !strings.Contains(e.Replicas[1].Answer, "no answer within") || !strings.Contains(e.Replicas[2].Answer, "GET /balance") {
		t.Fatalf("reasons: %+v", e.Replicas)
	}

	// Two of three down: the first round (applied indexes) fails. The
	// replica that answered says what it reported, not a bare "signed ".
	tnDown := newTestNet(t, 3, func(i int, f *fakeReplica) bool { return i != 0 })
	tnDown.ledger.set(1, alice, "USDT", 7)
	sDown := serve(t, tnDown.aggregatorWith(t, &syncBuffer{}, TestConfig()))
	if st := getJSON(t, sDown, balancePath(alice, "USDT"), &e); st != http.StatusFailedDependency {
		t.Fatalf("status %d: %+v", st, e)
	}
	if a := e.Replicas[0].Answer; !strings.HasPrefix(a, "reported its applied index 1; not asked to sign") {
		t.Fatalf("the answering replica's report: %q", a)
	}

	// With five replicas (threshold 3) the same two failures leave a
	// quorum. The round settles once the three honest replicas agree, so
	// the hanging one costs the straggler wait, not the timeout.
	tn5 := newTestNet(t, 5, func(i int, f *fakeReplica) bool {
		f.hang = i == 1
		return i == 2
	})
	tn5.ledger.set(1, alice, "USDT", 7)
	log5 := &syncBuffer{}
	cfg := TestConfig()
	cfg.Timeout = 20 * time.Second
	p := mustBalanceProof(t, tn5, serve(t, tn5.aggregatorWith(t, log5, cfg)), alice, "USDT")
	if !slices.Equal(p.Signers, []string{"replica1", "replica4", "replica5"}) || !slices.Equal(p.NonSigners, []string{"replica2", "replica3"}) {
		t.Fatalf("signers %v non-signers %v", p.Signers, p.NonSigners)
	}
	l := log5.String()
	if !strings.Contains(l, "replica=replica2 problem=unreachable") || !strings.Contains(l, "before the quorum settled") ||
		!strings.Contains(l, "replica=replica3 problem=unreachable") {
		t.Fatalf("log:\n%s", l)
	}
}

func TestIndexIsTheHighestAQuorumApplied(t *testing.T) {
	tn := newTestNet(t, 3, func(i int, f *fakeReplica) bool {
		f.applied = []uint64{5, 9, 7}[i]
		return false
	})
	for idx := uint64(1); idx <= 9; idx++ {
		tn.ledger.set(idx, alice, "ETH", 100*idx)
	}
	p := mustBalanceProof(t, tn, serve(t, tn.aggregator(t, nil)), alice, "ETH")
	if p.Index != 7 || p.BalanceUnits != "700" {
		t.Fatalf("proof at index %d with %s, want index 7 (second highest of 5, 9, 7) with 700", p.Index, p.BalanceUnits)
	}
	if !slices.Equal(p.Signers, []string{"replica2", "replica3"}) || !slices.Equal(p.NonSigners, []string{"replica1"}) {
		t.Fatalf("signers %v non-signers %v", p.Signers, p.NonSigners)
	}
}

func TestReplayedProofIsOlderByIndex(t *testing.T) {
	tn := newTestNet(t, 3, nil)
	tn.ledger.set(1, alice, "USDT", 1000_000000)
	s := serve(t, tn.aggregator(t, nil))
	old := mustBalanceProof(t, tn, s, alice, "USDT")

	// Alice spends; the replicas apply index 2.
	tn.ledger.set(2, alice, "USDT", 10_000000)
	for _, f := range tn.replicas {
		f.applied = 2
	}
	cur := mustBalanceProof(t, tn, s, alice, "USDT")
	if cur.Index != 2 || cur.Balance != "10" {
		t.Fatalf("current proof %+v", cur)
	}
	// The old proof still verifies (it was true at index 1): a verifier
	// tells it apart only by its index, which it must compare with the
	// last index it accepted.
	if err := indepVerifyBalance(tn.c, old); err != nil || old.Index >= cur.Index {
		t.Fatalf("old proof: %v, index %d vs %d", err, old.Index, cur.Index)
	}
	// Relabelling the old proof with the new index breaks it.
	forged := *old
	forged.Index = cur.Index
	forged.Digest = hex32(tn.c.Domain.Digest(&eip712.Balance{App: "orderbook", Account: alice, Token: "USDT", Balance: 1000_000000, Index: cur.Index}))
	if indepVerifyBalance(tn.c, &forged) == nil {
		t.Fatal("an old proof relabelled with a newer index verified")
	}
}

func TestTamperedProofsFailVerification(t *testing.T) {
	tn := newTestNet(t, 3, nil)
	tn.ledger.set(1, alice, "USDT", 1000_000000)
	p := mustBalanceProof(t, tn, serve(t, tn.aggregator(t, nil)), alice, "USDT")
	for name, edit := range map[string]func(q *client.BalanceProof){
		"balance":           func(q *client.BalanceProof) { q.BalanceUnits = "1000000001" },
		"address":           func(q *client.BalanceProof) { q.Address = bob.Hex() },
		"token":             func(q *client.BalanceProof) { q.Token = "ETH" },
		"app":               func(q *client.BalanceProof) { q.App = "other" },
		"one signer less":   func(q *client.BalanceProof) { q.Signers = q.Signers[:2] },
		"signer swapped":    func(q *client.BalanceProof) { q.Signers = []string{"replica1", "replica2", "replica2"} },
		"threshold lowered": func(q *client.BalanceProof) { q.Signers, q.Threshold = q.Signers[:1], 1 },
		"signature":         func(q *client.BalanceProof) { q.Signature = tn.keys[0].Sign([32]byte{}).Hex() },
	} {
		q := *p
		q.Signers = slices.Clone(p.Signers)
		edit(&q)
		if err := indepVerifyBalance(tn.c, &q); err == nil {
			t.Errorf("tampered %s: the independent verifier accepts it", name)
		}
		if err := client.VerifyBalanceProof(tn.c, &q); err == nil {
			t.Errorf("tampered %s: the client SDK verifier accepts it", name)
		}
	}
}

func TestWithdrawalProof(t *testing.T) {
	tn := newTestNet(t, 3, func(i int, f *fakeReplica) bool {
		f.applied = 10
		if i == 0 {
			f.tamper = func(u uint64) uint64 { return u * 2 }
		}
		return false
	})
	rec := &eip712.Withdrawal{App: "orderbook", ID: eip712.Keccak256([]byte("w1")), Trader: alice, Token: "USDT",
		Amount: 250_500000, Recipient: bob, Index: 9}
	tn.ledger.record(rec)
	s := serve(t, tn.aggregator(t, nil))
	var p client.WithdrawalProof
	if st := getJSON(t, s, "/aggregate_withdrawal?id="+hex32(rec.ID), &p); st != 200 {
		t.Fatalf("status %d %+v", st, p)
	}
	if err := indepVerifyWithdrawal(tn.c, &p); err != nil {
		t.Fatal(err)
	}
	if err := client.VerifyWithdrawalProof(tn.c, &p); err != nil {
		t.Fatal(err)
	}
	if p.Amount != "250.5" || p.AmountUnits != "250500000" || p.Index != 9 || p.Trader != alice.Hex() || p.Recipient != bob.Hex() ||
		!slices.Equal(p.NonSigners, []string{"replica1"}) {
		t.Fatalf("proof %+v", p)
	}

	var e struct {
		Error    string          `json:"error"`
		Replicas []ReplicaReport `json:"replicas"`
	}
	if st := getJSON(t, s, "/aggregate_withdrawal?id="+hex32([32]byte{1}), &e); st != http.StatusNotFound || len(e.Replicas) != 3 {
		t.Fatalf("unknown id: %d %+v", st, e)
	}
}

func TestWithdrawalKnownByTooFewIsNotFound(t *testing.T) {
	// Recorded at index 9; only replica3 has applied it.
	tn := newTestNet(t, 3, func(i int, f *fakeReplica) bool {
		f.applied = []uint64{8, 8, 9}[i]
		return false
	})
	rec := &eip712.Withdrawal{App: "orderbook", ID: eip712.Keccak256([]byte("w2")), Trader: alice, Token: "ETH", Amount: 1, Recipient: alice, Index: 9}
	tn.ledger.record(rec)
	a := tn.aggregator(t, nil)
	_, err := a.Withdrawal(context.Background(), rec.ID)
	var qe *QuorumError
	if !errors.As(err, &qe) || !qe.NotFound || !strings.Contains(qe.Reason, "2 of 3 do not") {
		t.Fatalf("err %v", err)
	}
	// Once a second replica catches up, the proof forms.
	tn.replicas[0].applied = 9
	p, err := a.Withdrawal(context.Background(), rec.ID)
	if err != nil {
		t.Fatal(err)
	}
	if err := indepVerifyWithdrawal(tn.c, p); err != nil || !slices.Equal(p.Signers, []string{"replica1", "replica3"}) {
		t.Fatalf("%v %+v", err, p)
	}
}

func TestBadQueries(t *testing.T) {
	tn := newTestNet(t, 3, nil)
	s := serve(t, tn.aggregator(t, nil))
	for _, path := range []string{
		"/aggregate_balance",
		"/aggregate_balance?token=USDT",
		"/aggregate_balance?address=0x1234&token=USDT",
		"/aggregate_balance?address=c66F8Fba940064B5bA8d437d6fF829E60134230E&token=USDT",
		"/aggregate_balance?address=0xc66F8Fba940064B5bA8d437d6fF829E60134230G&token=USDT",
		"/aggregate_balance?address=" + alice.Hex(),
		"/aggregate_balance?address=" + alice.Hex() + "&token=",
		"/aggregate_balance?address=" + alice.Hex() + "&token=ETH/USDT",
		"/aggregate_balance?address=" + alice.Hex() + "&token=%00",
		"/aggregate_balance?address=" + alice.Hex() + "&token=" + strings.Repeat("X", 33),
		"/aggregate_balance?address=" + alice.Hex() + "&token=%ff",
		// Names the replicas refuse with 400 (obapi.CheckTokenName):
		// answered 400 here too, not 424 after asking them.
		"/aggregate_balance?address=" + alice.Hex() + "&token=ETH%20X",
		"/aggregate_balance?address=" + alice.Hex() + "&token=%EF%BF%BD",
		"/aggregate_balance?address=" + alice.Hex() + "&token=%7f",
		"/aggregate_balance?address=" + alice.Hex() + "&token=A&token=B",
		"/aggregate_withdrawal",
		"/aggregate_withdrawal?id=0x12",
		"/aggregate_withdrawal?id=" + strings.Repeat("ab", 32),
		"/aggregate_withdrawal?id=0x" + strings.Repeat("zz", 32),
	} {
		var e struct {
			Error string `json:"error"`
		}
		if st := getJSON(t, s, path, &e); st != http.StatusBadRequest || e.Error == "" {
			t.Errorf("%s: status %d error %q, want 400 with a message", path, st, e.Error)
		}
	}
	var e struct {
		Error string `json:"error"`
	}
	if st := getJSON(t, s, "/nope", &e); st != 404 || e.Error == "" {
		t.Errorf("unknown route: %d %q", st, e.Error)
	}
	for _, f := range tn.replicas {
		if f.balanceQ != 0 {
			t.Fatal("a bad query reached a replica")
		}
	}
}

func TestGatherStopsAfterStragglerWait(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	as, end := gather(context.Background(), 3, TestConfig().Timeout*100, 0,
		func(ctx context.Context, i int) (int, error) {
			if i == 2 {
				select {
				case <-ctx.Done():
					return 0, ctx.Err()
				case <-release:
				}
			}
			return i, nil
		},
		func(as []answer[int]) bool { return countOK(as) >= 2 })
	if end != endSettled || !as[0].done || !as[1].done || as[2].done {
		t.Fatalf("end %v answers %+v", end, as)
	}
}

func TestPickIndex(t *testing.T) {
	for _, tc := range []struct {
		applied []uint64
		need    int
		want    uint64
		ok      bool
	}{
		{[]uint64{5, 9, 7}, 2, 7, true},
		{[]uint64{5, 9, 7}, 3, 5, true},
		{[]uint64{5, 9, 7}, 1, 9, true},
		{[]uint64{5}, 2, 0, false},
		{nil, 1, 0, false},
		{[]uint64{0, 0, 3}, 2, 0, true},
	} {
		got, ok := pickIndex(tc.applied, tc.need)
		if got != tc.want || ok != tc.ok {
			t.Errorf("pickIndex(%v, %d) = %d %v, want %d %v", tc.applied, tc.need, got, ok, tc.want, tc.ok)
		}
	}
}

func TestOpenRefusesKeysWithoutValidPossessionProof(t *testing.T) {
	tn := newTestNet(t, 3, nil)
	good := tn.c.File
	write := func(f any) string {
		b, err := json.Marshal(f)
		if err != nil {
			t.Fatal(err)
		}
		p := t.TempDir() + "/cluster.json"
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	if _, err := Open(write(good), TestConfig(), nil); err != nil {
		t.Fatalf("a good cluster file is refused: %v", err)
	}
	for name, edit := range map[string]func(f *cluster.File){
		// A rogue key: chosen as pk_evil - pk_1 - pk_2 it would let its
		// owner forge "everyone signed"; it cannot come with a valid PoP.
		"another key's proof": func(f *cluster.File) { f.Replicas[1].BLSPop = f.Replicas[0].BLSPop },
		"a plain signature as proof": func(f *cluster.File) {
			f.Replicas[2].BLSPop = testKey("replica3").Sign([32]byte{}).Hex()
		},
		"no proof": func(f *cluster.File) { f.Replicas[0].BLSPop = "" },
	} {
		f := good
		f.Replicas = slices.Clone(good.Replicas)
		edit(&f)
		_, err := Open(write(f), TestConfig(), nil)
		if err == nil || !strings.Contains(err.Error(), "proof of possession") {
			t.Errorf("%s: Open returned %v, want a proof-of-possession error", name, err)
		}
	}
}

// Two colluding replicas can send σ1+X and σ2−X: each invalid, their sum
// valid. A check of the plain aggregate would pass them; the randomized
// batch check must not, and each share must be found invalid on its own.
func TestBatchCheckCatchesCancellingForgeries(t *testing.T) {
	tn := newTestNet(t, 3, nil)
	v := newVerifier(tn.c)
	d := tn.c.Domain.Digest(&eip712.Balance{App: "orderbook", Account: alice, Token: "USDT", Balance: 9, Index: 1})
	x := new(blst.P2)
	x.FromAffine(new(blst.P2Affine).Uncompress(testKey("offset").Sign([32]byte{9}).Bytes()))
	shift := func(s *bls.Signature, add bool) *bls.Signature {
		p := new(blst.P2)
		p.FromAffine(new(blst.P2Affine).Uncompress(s.Bytes()))
		if add {
			p.AddAssign(x)
		} else {
			p.SubAssign(x)
		}
		out, err := bls.SignatureFromBytes(p.ToAffine().Compress())
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	honest := tn.keys[0].Sign(d)
	forged1, forged2 := shift(tn.keys[1].Sign(d), true), shift(tn.keys[2].Sign(d), false)
	if !bls.Aggregate([]*bls.Signature{honest, forged1, forged2}).VerifyAggregate(
		[]*bls.PublicKey{tn.c.ReplicaKey(0), tn.c.ReplicaKey(1), tn.c.ReplicaKey(2)}, d) {
		t.Fatal("test setup: the forged pair should cancel out in a plain aggregate")
	}
	shares := []share{
		{replica: 0, digest: d, sig: honest, value: "v"},
		{replica: 1, digest: d, sig: forged1, value: "v"},
		{replica: 2, digest: d, sig: forged2, value: "v"},
	}
	if v.batchValid(d, shares, []int{0, 1, 2}) {
		t.Fatal("the batch check passed two cancelling forgeries")
	}
	if !v.batchValid(d, shares, []int{0}) {
		t.Fatal("the batch check refused an honest share")
	}
	dec := decide(tn.c, v, shares)
	if dec.ok || shares[1].kind != kindBadSig || shares[2].kind != kindBadSig || shares[0].kind != kindMinority {
		t.Fatalf("decision %v, kinds %q %q %q", dec.ok, shares[0].kind, shares[1].kind, shares[2].kind)
	}
}

// The aggregator's own check of a proof before serving it refuses every
// inconsistency a bridge would.
func TestCheckProofBeforeServing(t *testing.T) {
	tn := newTestNet(t, 3, nil)
	tn.ledger.set(1, alice, "USDT", 5)
	p, err := tn.aggregator(t, nil).Balance(context.Background(), alice, "USDT")
	if err != nil {
		t.Fatal(err)
	}
	v := newVerifier(tn.c)
	check := func(q *client.BalanceProof) error {
		m, err := q.Message()
		if err != nil {
			return err
		}
		return v.checkProof(&m, q.Digest, q.Signature, q.Signers, q.NonSigners, q.Threshold)
	}
	if err := check(p); err != nil {
		t.Fatalf("a good proof: %v", err)
	}
	for name, edit := range map[string]func(q *client.BalanceProof){
		"value":               func(q *client.BalanceProof) { q.BalanceUnits, q.Balance = "6", "0.000006" },
		"digest":              func(q *client.BalanceProof) { q.Digest = hex32([32]byte{1}) },
		"signer missing":      func(q *client.BalanceProof) { q.Signers, q.NonSigners = q.Signers[:2], q.Signers[2:] },
		"signer twice":        func(q *client.BalanceProof) { q.Signers = []string{"replica1", "replica1", "replica2"} },
		"non-signer dropped":  func(q *client.BalanceProof) { q.Signers = q.Signers[:2] },
		"unknown signer":      func(q *client.BalanceProof) { q.Signers = []string{"replica1", "replica2", "replica9"} },
		"threshold":           func(q *client.BalanceProof) { q.Threshold = 1 },
		"signature":           func(q *client.BalanceProof) { q.Signature = tn.keys[0].Sign([32]byte{}).Hex() },
		"signature not hex":   func(q *client.BalanceProof) { q.Signature = "0xzz" },
		"signature not point": func(q *client.BalanceProof) { q.Signature = "0x" + strings.Repeat("ab", 96) },
	} {
		q := *p
		edit(&q)
		if err := check(&q); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// Proofs in progress are bounded: past InFlightMax a request is refused at
// once with 503 instead of queueing goroutines and connections.
func TestInFlightBound(t *testing.T) {
	tn := newTestNet(t, 3, func(i int, f *fakeReplica) bool {
		f.hang = true // every /balance waits until its request is cancelled
		return false
	})
	cfg := TestConfig()
	cfg.InFlightMax, cfg.Timeout = 1, 20*time.Second
	s := serve(t, tn.aggregatorWith(t, nil, cfg))
	firstDone := make(chan int, 1)
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.URL+balancePath(alice, "USDT"), nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			firstDone <- 0
			return
		}
		resp.Body.Close()
		firstDone <- resp.StatusCode
	}()
	// Wait until the first proof is in progress (its questions reached the
	// replicas), then ask for a second.
	deadline := time.Now().Add(10 * time.Second)
	for {
		tn.replicas[0].mu.Lock()
		n := tn.replicas[0].balanceQ
		tn.replicas[0].mu.Unlock()
		if n > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the first proof never reached the replicas")
		}
		time.Sleep(5 * time.Millisecond) // polling a condition
	}
	var e struct {
		Error string `json:"error"`
	}
	if st := getJSON(t, s, balancePath(alice, "USDT"), &e); st != http.StatusServiceUnavailable || !strings.Contains(e.Error, "busy") {
		t.Fatalf("second request while one is in flight: %d %q", st, e.Error)
	}
	cancel()
	<-firstDone
	// Other methods are refused by name.
	resp, err := http.Post(s.URL+"/aggregate_balance", "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("POST: %d, want 405", resp.StatusCode)
	}
}

// A caller that leaves ends the attempt without blaming the replicas.
func TestCallerCancelIsNotAReplicaFailure(t *testing.T) {
	log := &syncBuffer{}
	tn := newTestNet(t, 3, func(i int, f *fakeReplica) bool { f.hang = true; return false })
	tn.ledger.set(1, alice, "USDT", 1)
	a := tn.aggregator(t, log)
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		for { // cancel once the questions reached the replicas
			tn.replicas[2].mu.Lock()
			n := tn.replicas[2].balanceQ
			tn.replicas[2].mu.Unlock()
			if n > 0 {
				cancel()
				return
			}
			time.Sleep(2 * time.Millisecond) // polling a condition
		}
	}()
	if _, err := a.Balance(ctx, alice, "USDT"); !errors.Is(err, context.Canceled) {
		t.Fatalf("err %v, want context.Canceled", err)
	}
	if strings.Contains(log.String(), "left out") {
		t.Fatalf("replicas blamed for the caller leaving:\n%s", log.String())
	}
}
