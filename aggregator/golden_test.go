package aggregator

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/common/hexutil"
	"github.com/ethereum/go-ethereum/signer/core/apitypes"

	"github.com/seqbook/seqbook/client"
	"github.com/seqbook/seqbook/client/bls"
	"github.com/seqbook/seqbook/client/cluster"
	"github.com/seqbook/seqbook/client/eip712"
)

// The golden proof vectors: proofs the aggregator makes over three fake
// replicas with fixed keys (BLS signing is deterministic, so the bytes are
// reproducible), committed under testdata/vectors/ for other
// implementations to check against. testdata/proofcheck/check.mjs checks
// them with noble-curves and ethers and writes its verdict to
// proof_verdicts.json; this test makes sure that verdict is about the
// committed bytes and says "valid".
//
//	go test ./aggregator -run TestGoldenProofs -update   # rewrite the vectors
//	cd testdata/proofcheck && npm ci && node check.mjs   # rerun the JS check

var update = flag.Bool("update", false, "rewrite testdata/vectors/proof_*.json from the aggregator")

const vectorsDir = "../testdata/vectors"

// goldenPrefix labels the fixed keys of the vectors.
const goldenPrefix = "golden "

// goldenVector is one vector file.
type goldenVector struct {
	About    string `json:"about"`
	Scenario string `json:"scenario"`
	// Cluster is a complete cluster file (DESIGN §7): the replicas' keys
	// and proofs of possession a verifier needs.
	Cluster cluster.File `json:"cluster"`
	// ReplicaSecretKeys are the replicas' BLS secret keys: test keys,
	// published so other implementations can reproduce every signature.
	ReplicaSecretKeys map[string]string `json:"replica_secret_keys"`
	// TypedData is the signed message as eth_signTypedData_v4 JSON.
	TypedData eip712.TypedData `json:"typed_data"`
	// Proof is what the aggregator served.
	Proof json.RawMessage `json:"proof"`
}

// goldenCluster is the cluster file of the vectors: DESIGN §7's ports,
// four nodes and three replicas with fixed keys.
func goldenCluster(t testing.TB) cluster.File {
	f := cluster.File{ChainID: eip712.DefaultChainID, App: "orderbook", Aggregator: cluster.Aggregator{HTTP: "127.0.0.1:8001"}}
	for i := 1; i <= 4; i++ {
		m := member(fmt.Sprintf("node%d", i), fmt.Sprintf("127.0.0.1:%d", 6000+i), testKey(fmt.Sprintf("%snode%d", goldenPrefix, i)))
		m.QUIC = fmt.Sprintf("127.0.0.1:%d", 7000+i)
		f.Nodes = append(f.Nodes, m)
	}
	for i := 1; i <= 3; i++ {
		id := fmt.Sprintf("replica%d", i)
		f.Replicas = append(f.Replicas, member(id, fmt.Sprintf("127.0.0.1:%d", 5000+i), testKey(goldenPrefix+id)))
	}
	if _, err := cluster.New(f); err != nil {
		t.Fatal(err)
	}
	return f
}

func goldenSecrets() map[string]string {
	out := map[string]string{}
	for i := 1; i <= 3; i++ {
		id := fmt.Sprintf("replica%d", i)
		out[id] = testKey(goldenPrefix + id).Hex()
	}
	return out
}

func typedData(c *cluster.Cluster, primary string, msg map[string]any) eip712.TypedData {
	fd, _ := eip712.TypeFields("EIP712Domain")
	fm, ok := eip712.TypeFields(primary)
	if !ok {
		panic(primary)
	}
	return eip712.TypedData{
		Types:       map[string][]eip712.Field{"EIP712Domain": fd, primary: fm},
		PrimaryType: primary,
		Domain:      c.Domain.JSON(),
		Message:     msg,
	}
}

// checkVector writes (with -update) or compares one vector file.
func checkVector(t *testing.T, name string, v goldenVector) {
	t.Helper()
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		t.Fatal(err)
	}
	b := buf.Bytes()
	path := filepath.Join(vectorsDir, name)
	if *update {
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("wrote %s; now rerun testdata/proofcheck (node check.mjs) to refresh proof_verdicts.json", path)
		return
	}
	old, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./aggregator -run TestGoldenProofs -update)", err)
	}
	if !bytes.Equal(old, b) {
		t.Fatalf("%s differs from what the aggregator makes now; if the change is intended, rerun with -update and rerun testdata/proofcheck.\nnow:\n%s", path, b)
	}
}

func TestGoldenProofs(t *testing.T) {
	gc := goldenCluster(t)
	gcc, err := cluster.New(gc)
	if err != nil {
		t.Fatal(err)
	}
	user1 := common.HexToAddress("0xc66F8Fba940064B5bA8d437d6fF829E60134230E")
	user2 := common.HexToAddress("0x7F3b0b1530A0d0Ce3D721a6e976C7eA4296A0f5d")

	// Balance: every replica applied index 17; replica2 is down.
	tn := newTestNetKeyed(t, 3, goldenPrefix, func(i int, f *fakeReplica) bool {
		f.applied = 17
		return i == 1
	})
	tn.ledger.set(17, user1, "USDT", 1000_000000)
	var bp client.BalanceProof
	body := getRaw(t, serve(t, tn.aggregator(t, nil)), balancePath(user1, "USDT"), &bp)
	checkBalanceProof(t, tn, &bp)
	if !slices.Equal(bp.Signers, []string{"replica1", "replica3"}) {
		t.Fatalf("signers %v", bp.Signers)
	}
	checkVector(t, "proof_balance.json", goldenVector{
		About: "A balance quorum proof (DESIGN §6) made by seqbook's aggregator over three replicas with fixed test keys. " +
			"Verify: recompute the EIP-712 digest of Balance(string app,address account,string token,uint256 balance,uint64 index) " +
			"from the proof's fields under the domain {name seqbook, version 1, chainId}, sum the G1 keys of the signers, check the G2 " +
			"signature with BLS_SIG_BLS12381G2_XMD:SHA-256_SSWU_RO_POP_. See docs/verification.md. " +
			"Regenerate: go test ./aggregator -run TestGoldenProofs -update; JS check: cd testdata/proofcheck && npm ci && node check.mjs",
		Scenario:          "replicas 1-3 applied index 17; replica2 was down, so the proof has two signers (threshold 2 of 3)",
		Cluster:           gc,
		ReplicaSecretKeys: goldenSecrets(),
		TypedData: typedData(gcc, "Balance", map[string]any{
			"app": "orderbook", "account": user1.Hex(), "token": "USDT", "balance": bp.BalanceUnits, "index": fmt.Sprint(bp.Index),
		}),
		Proof: body,
	})

	// Withdrawal: recorded at index 12; replica3 signs a doubled amount.
	tw := newTestNetKeyed(t, 3, goldenPrefix, func(i int, f *fakeReplica) bool {
		f.applied = 20
		if i == 2 {
			f.tamper = func(u uint64) uint64 { return 2 * u }
		}
		return false
	})
	rec := &eip712.Withdrawal{App: "orderbook", ID: eip712.Keccak256([]byte("seqbook golden withdrawal 1")), Trader: user1,
		Token: "USDT", Amount: 250_500000, Recipient: user2, Index: 12}
	tw.ledger.record(rec)
	var wp client.WithdrawalProof
	wbody := getRaw(t, serve(t, tw.aggregator(t, nil)), "/aggregate_withdrawal?id="+hex32(rec.ID), &wp)
	if err := indepVerifyWithdrawal(tw.c, &wp); err != nil {
		t.Fatal(err)
	}
	if err := client.VerifyWithdrawalProof(gcc, &wp); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(wp.NonSigners, []string{"replica3"}) {
		t.Fatalf("non-signers %v", wp.NonSigners)
	}
	checkVector(t, "proof_withdrawal.json", goldenVector{
		About: "A withdrawal quorum proof (DESIGN §6) made by seqbook's aggregator over three replicas with fixed test keys: " +
			"what a bridge pays out on. Verify as proof_balance.json, with " +
			"Withdrawal(string app,bytes32 id,address trader,string token,uint256 amount,address recipient,uint64 index). " +
			"Regenerate: go test ./aggregator -run TestGoldenProofs -update; JS check: cd testdata/proofcheck && npm ci && node check.mjs",
		Scenario:          "withdrawal recorded at index 12; replica3 signed twice the amount (Byzantine), so it is a non-signer",
		Cluster:           gc,
		ReplicaSecretKeys: goldenSecrets(),
		TypedData: typedData(gcc, "Withdrawal", map[string]any{
			"app": "orderbook", "id": wp.ID, "trader": wp.Trader, "token": wp.Token, "amount": wp.AmountUnits,
			"recipient": wp.Recipient, "index": fmt.Sprint(wp.Index),
		}),
		Proof: wbody,
	})
}

// getRaw GETs a proof, decodes it into out and returns it re-indented
// for the vector file (the aggregator serves compact JSON).
func getRaw(t *testing.T, s *httptest.Server, path string, out any) json.RawMessage {
	t.Helper()
	resp, err := http.Get(s.URL + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %v %s", path, resp.StatusCode, err, body)
	}
	if err := json.Unmarshal(body, out); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := json.Indent(&buf, body, "  ", "  "); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// verdicts is what testdata/proofcheck/check.mjs writes.
type verdicts struct {
	Checker   string            `json:"checker"`
	Libraries map[string]string `json:"libraries"`
	Results   []struct {
		Vector    string `json:"vector"`
		Kind      string `json:"kind"`
		Digest    string `json:"digest"`
		Signature string `json:"signature"`
		Valid     bool   `json:"valid"`
		Reason    string `json:"reason"`
		Worked    struct {
			DomainSeparator string `json:"domain_separator"`
			StructHash      string `json:"struct_hash"`
			SignersKey      string `json:"signers_aggregate_public_key"`
		} `json:"worked"`
		Tampered []struct {
			Case     string `json:"case"`
			Rejected bool   `json:"rejected"`
			Reason   string `json:"reason"`
		} `json:"tampered"`
	} `json:"results"`
}

// TestGoldenVectorsVerify checks the committed vector files as a bridge
// would, with the client SDK (herumi) and the independent verifier
// (go-ethereum + blst), and that the JS checker's recorded verdict is
// about these exact proofs and accepts them.
func TestGoldenVectorsVerify(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(vectorsDir, "proof_verdicts.json"))
	if err != nil {
		t.Fatalf("%v: run cd testdata/proofcheck && npm ci && node check.mjs", err)
	}
	var v verdicts
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatal(err)
	}
	if v.Libraries["@noble/curves"] == "" || v.Libraries["ethers"] == "" {
		t.Fatalf("verdict does not name the JS libraries: %+v", v.Libraries)
	}
	for _, name := range []string{"proof_balance.json", "proof_withdrawal.json"} {
		b, err := os.ReadFile(filepath.Join(vectorsDir, name))
		if err != nil {
			t.Fatal(err)
		}
		var g goldenVector
		if err := json.Unmarshal(b, &g); err != nil {
			t.Fatal(err)
		}
		cf, _ := json.Marshal(g.Cluster)
		c, err := cluster.Parse(cf)
		if err != nil {
			t.Fatalf("%s: cluster: %v", name, err)
		}
		kind, bp, wp, err := client.ParseProof(g.Proof)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		var digest, sig string
		var structHash [32]byte
		var signers []string
		switch kind {
		case client.KindBalance:
			m, err := bp.Message()
			if err != nil {
				t.Fatal(err)
			}
			structHash, signers = m.StructHash(), bp.Signers
			if err := client.VerifyBalanceProof(c, bp); err != nil {
				t.Fatalf("%s: client verifier: %v", name, err)
			}
			if err := indepVerifyBalance(c, bp); err != nil {
				t.Fatalf("%s: independent verifier: %v", name, err)
			}
			digest, sig = bp.Digest, bp.Signature
		case client.KindWithdrawal:
			m, err := wp.Message()
			if err != nil {
				t.Fatal(err)
			}
			structHash, signers = m.StructHash(), wp.Signers
			if err := client.VerifyWithdrawalProof(c, wp); err != nil {
				t.Fatalf("%s: client verifier: %v", name, err)
			}
			if err := indepVerifyWithdrawal(c, wp); err != nil {
				t.Fatalf("%s: independent verifier: %v", name, err)
			}
			digest, sig = wp.Digest, wp.Signature
		}
		// The typed data JSON hashes to the proof's digest (go-ethereum).
		tdJSON, _ := json.Marshal(g.TypedData)
		var td apitypes.TypedData
		if err := json.Unmarshal(tdJSON, &td); err != nil {
			t.Fatal(err)
		}
		d, _, err := apitypes.TypedDataAndHash(td)
		if err != nil || hexutil.Encode(d) != digest {
			t.Fatalf("%s: typed_data hashes to %x (%v), proof digest %s", name, d, err, digest)
		}
		found := false
		for _, r := range v.Results {
			if r.Vector != name {
				continue
			}
			found = true
			if r.Digest != digest || r.Signature != sig {
				t.Fatalf("%s: the JS verdict is about another proof (digest %s); rerun testdata/proofcheck", name, r.Digest)
			}
			if !r.Valid {
				t.Fatalf("%s: the JS checker refused it: %s", name, r.Reason)
			}
			// The worked example's intermediate values (docs/verification.md)
			// agree between ethers/noble and our packages.
			var keys []*bls.PublicKey
			for _, id := range signers {
				i, _ := c.ReplicaIndex(id)
				keys = append(keys, c.ReplicaKey(i))
			}
			if r.Worked.DomainSeparator != hex32(c.Domain.Separator()) || r.Worked.StructHash != hex32(structHash) ||
				r.Worked.SignersKey != bls.AggregatePublicKeys(keys).Hex() {
				t.Fatalf("%s: worked values differ: JS %+v, Go %s %s %s", name, r.Worked,
					hex32(c.Domain.Separator()), hex32(structHash), bls.AggregatePublicKeys(keys).Hex())
			}
			if len(r.Tampered) < 3 {
				t.Fatalf("%s: the JS checker tried only %d tampered copies", name, len(r.Tampered))
			}
			for _, tc := range r.Tampered {
				if !tc.Rejected {
					t.Fatalf("%s: the JS checker accepted a tampered copy (%s)", name, tc.Case)
				}
			}
		}
		if !found {
			t.Fatalf("%s: no JS verdict; rerun testdata/proofcheck", name)
		}
	}
}
