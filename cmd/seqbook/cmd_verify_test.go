package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ethereum/go-ethereum/common"

	"github.com/seqbook/seqbook/client"
	"github.com/seqbook/seqbook/client/amount"
	"github.com/seqbook/seqbook/client/bls"
	"github.com/seqbook/seqbook/client/cluster"
	"github.com/seqbook/seqbook/client/eip712"
	"github.com/seqbook/seqbook/client/obapi"
)

// clientTestNet is a cluster file on disk with the replicas' secret keys.
type clientTestNet struct {
	path        string
	c           *cluster.Cluster
	replicaKeys []*bls.SecretKey
}

func newClientTestNet(t *testing.T) *clientTestNet {
	t.Helper()
	f := cluster.File{ChainID: eip712.DefaultChainID, App: "orderbook", Aggregator: cluster.Aggregator{HTTP: "127.0.0.1:8001"}}
	tn := &clientTestNet{}
	for i := 0; i < 4+3; i++ {
		sk, err := bls.GenerateKey()
		if err != nil {
			t.Fatal(err)
		}
		m := cluster.Member{HTTP: fmt.Sprintf("127.0.0.1:%d", 6001+i), BLSPubkey: sk.PublicKey().Hex(), BLSPop: sk.ProvePossession().Hex()}
		if i < 4 {
			m.ID, m.QUIC = fmt.Sprintf("node%d", i+1), fmt.Sprintf("127.0.0.1:%d", 7001+i)
			f.Nodes = append(f.Nodes, m)
		} else {
			m.ID = fmt.Sprintf("replica%d", i-3)
			f.Replicas = append(f.Replicas, m)
			tn.replicaKeys = append(tn.replicaKeys, sk)
		}
	}
	b, _ := json.Marshal(f)
	tn.path = filepath.Join(t.TempDir(), "cluster.json")
	if err := os.WriteFile(tn.path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := cluster.Load(tn.path)
	if err != nil {
		t.Fatal(err)
	}
	tn.c = c
	return tn
}

func (tn *clientTestNet) sign(m eip712.Message, replicas ...int) (*bls.Signature, []string) {
	d := tn.c.Domain.Digest(m)
	var sigs []*bls.Signature
	var ids []string
	for _, i := range replicas {
		sigs = append(sigs, tn.replicaKeys[i].Sign(d))
		ids = append(ids, tn.c.Replicas[i].ID)
	}
	return bls.Aggregate(sigs), ids
}

func writeTemp(t *testing.T, v any) string {
	t.Helper()
	b, _ := json.Marshal(v)
	p := filepath.Join(t.TempDir(), "doc.json")
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func runCmd(main func(args []string, stdout, stderr io.Writer) int, args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	code := main(args, &out, &errb)
	return code, out.String(), errb.String()
}

func verifyCmd(stdin string) func(args []string, stdout, stderr io.Writer) int {
	return func(args []string, stdout, stderr io.Writer) int {
		return verifyMain(args, strings.NewReader(stdin), stdout, stderr)
	}
}

var buyer = common.HexToAddress("0xc66F8Fba940064B5bA8d437d6fF829E60134230E")

func TestVerifyCommand(t *testing.T) {
	tn := newClientTestNet(t)
	bal := eip712.Balance{App: "orderbook", Account: buyer, Token: "USDT", Balance: 1_000_000_000, Index: 17}
	sig, ids := tn.sign(&bal, 0, 1)
	proof := client.NewBalanceProof(tn.c, bal, sig, ids)

	code, out, errOut := runCmd(verifyCmd(""), "--cluster", tn.path, writeTemp(t, proof))
	want := "verified: balance 1000 USDT of 0xc66F8Fba940064B5bA8d437d6fF829E60134230E at index 17, signed by replica1,replica2 (threshold 2)\n"
	if code != 0 || out != want {
		t.Fatalf("exit %d, out %q, err %q", code, out, errOut)
	}

	// From stdin.
	doc, _ := json.Marshal(proof)
	if code, out, _ := runCmd(verifyCmd(string(doc)), "--cluster", tn.path); code != 0 || out != want {
		t.Fatalf("stdin: exit %d, %q", code, out)
	}

	// Tampered: exit 1 and the reason.
	bad := *proof
	bad.Balance, bad.BalanceUnits = "5000", "5000000000"
	code, out, errOut = runCmd(verifyCmd(""), "--cluster", tn.path, writeTemp(t, bad))
	if code != 1 || out != "" || !strings.Contains(errOut, "not verified") || !strings.Contains(errOut, "digest") {
		t.Fatalf("tampered: exit %d, out %q, err %q", code, out, errOut)
	}
	bad = *proof
	bad.Threshold = 1
	if code, _, errOut = runCmd(verifyCmd(""), "--cluster", tn.path, writeTemp(t, bad)); code != 1 || !strings.Contains(errOut, "threshold") {
		t.Fatalf("threshold: exit %d, err %q", code, errOut)
	}

	// A withdrawal proof is recognized as one.
	w := eip712.Withdrawal{App: "orderbook", ID: [32]byte{0xab}, Trader: buyer, Token: "ETH", Amount: 500_000, Recipient: buyer, Index: 40}
	sig, ids = tn.sign(&w, 0, 1, 2)
	code, out, errOut = runCmd(verifyCmd(""), "--cluster", tn.path, writeTemp(t, client.NewWithdrawalProof(tn.c, w, sig, ids)))
	if code != 0 || !strings.HasPrefix(out, "verified: withdrawal 0xab00") || !strings.Contains(out, "of 0.5 ETH") || !strings.Contains(out, "signed by replica1,replica2,replica3 (threshold 2)") {
		t.Fatalf("withdrawal: exit %d, out %q, err %q", code, out, errOut)
	}

	// A state proof (GET /aggregate_state) is recognized as one.
	st := eip712.State{App: "orderbook", Index: 400, StateDigest: [32]byte{0xcd}}
	sig, ids = tn.sign(&st, 1, 2)
	sp := client.NewStateProof(tn.c, st, sig, ids)
	code, out, errOut = runCmd(verifyCmd(""), "--cluster", tn.path, writeTemp(t, sp))
	if code != 0 || !strings.HasPrefix(out, "verified: state digest 0xcd00") || !strings.Contains(out, "at index 400, attested by replica2,replica3 (threshold 2)") {
		t.Fatalf("state: exit %d, out %q, err %q", code, out, errOut)
	}
	badState := *sp
	badState.Index = 401
	if code, _, errOut = runCmd(verifyCmd(""), "--cluster", tn.path, writeTemp(t, badState)); code != 1 || !strings.Contains(errOut, "digest") {
		t.Fatalf("tampered state proof: exit %d, err %q", code, errOut)
	}

	// One replica's /balance answer: its signature is checked and said to
	// be one signature, but it is not a quorum: exit 1 unless
	// --allow-single (a script's `verify && pay` must not pay on it).
	one, _ := tn.sign(&bal, 2)
	ans := obapi.Balance{Address: buyer.Hex(), Token: "USDT", Balance: "1000", BalanceUnits: "1000000000", Index: 17, Replica: "replica3", Signature: one.Hex()}
	code, out, errOut = runCmd(verifyCmd(""), "--cluster", tn.path, writeTemp(t, ans))
	if code != 1 || !strings.Contains(out, "signed by replica3 alone") || !strings.Contains(errOut, "not a quorum proof") {
		t.Fatalf("replica answer: exit %d, %q, %q", code, out, errOut)
	}
	code, out, _ = runCmd(verifyCmd(""), "--allow-single", "--cluster", tn.path, writeTemp(t, ans))
	if code != 0 || !strings.Contains(out, "signed by replica3 alone") {
		t.Fatalf("replica answer with --allow-single: exit %d, %q", code, out)
	}
	ans.Replica = "replica1"
	if code, _, _ = runCmd(verifyCmd(""), "--cluster", tn.path, writeTemp(t, ans)); code != 1 {
		t.Fatalf("answer relabelled to another replica verified")
	}

	// Usage mistakes.
	if code, _, errOut = runCmd(verifyCmd(""), writeTemp(t, proof)); code != 2 || !strings.Contains(errOut, "missing --cluster") {
		t.Fatalf("no cluster: exit %d, %q", code, errOut)
	}
	if code, _, errOut = runCmd(verifyCmd("not json"), "--cluster", tn.path); code != 1 || !strings.Contains(errOut, "not verified") {
		t.Fatalf("garbage: exit %d, %q", code, errOut)
	}
	if code, _, _ = runCmd(verifyCmd(""), "--cluster", tn.path, "a.json", "b.json"); code != 2 {
		t.Fatalf("two files: exit %d", code)
	}
}

// fakeReplicaForCLI answers POST /order with the id it computes and GET
// /balance with a replica-signed balance.
func fakeReplicaForCLI(t *testing.T, tn *clientTestNet) *httptest.Server {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /order", func(w http.ResponseWriter, r *http.Request) {
		var req obapi.OrderRequest
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			w.WriteHeader(400)
			return
		}
		u := func(n obapi.Number) uint64 { v, _ := amount.ParseUnits(string(n)); return v }
		m := eip712.Order{Trader: common.HexToAddress(req.Trader), Market: req.Market, Side: req.Side, OrderType: req.OrderType,
			Quantity: u(req.Quantity), Price: u(req.Price), Nonce: u(req.Nonce), Expiry: u(req.Expiry)}
		d := tn.c.Domain.Digest(&m)
		if req.Quantity != "1500000" || req.Price != "2000000000" {
			w.WriteHeader(400)
			_ = json.NewEncoder(w).Encode(obapi.Error{Error: "unexpected amounts " + string(req.Quantity) + " " + string(req.Price)})
			return
		}
		_ = json.NewEncoder(w).Encode(obapi.OrderAccepted{OrderID: "0x" + common.Bytes2Hex(d[:]), Status: "accepted"})
	})
	mux.HandleFunc("GET /balance", func(w http.ResponseWriter, r *http.Request) {
		acct := common.HexToAddress(r.URL.Query().Get("address"))
		m := eip712.Balance{App: "orderbook", Account: acct, Token: r.URL.Query().Get("token"), Balance: 5_000_000, Index: 3}
		sig, _ := tn.sign(&m, 0)
		_ = json.NewEncoder(w).Encode(obapi.Balance{Address: acct.Hex(), Token: m.Token, Balance: "5", BalanceUnits: "5000000", Index: 3, Replica: "replica1", Signature: sig.Hex()})
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}
