package main

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/common"

	"github.com/seqbook/seqbook/client"
	"github.com/seqbook/seqbook/client/amount"
	"github.com/seqbook/seqbook/client/bls"
	"github.com/seqbook/seqbook/client/cluster"
	"github.com/seqbook/seqbook/client/eip712"
	"github.com/seqbook/seqbook/client/keys"
	"github.com/seqbook/seqbook/client/legacy"
	"github.com/seqbook/seqbook/client/obapi"
	"github.com/seqbook/seqbook/sequencer/node"
	"github.com/seqbook/seqbook/sequencer/node/testnet"
	"github.com/seqbook/seqbook/sequencer/transport"
	"github.com/seqbook/seqbook/tutorial/internal/replicated"
)

// sequencerCluster runs four sequencer nodes in this process (in-memory
// transport between them, real HTTP APIs on the cluster file's loopback
// addresses) and returns the checked cluster.
func sequencerCluster(t *testing.T) *cluster.Cluster {
	t.Helper()
	tn, err := testnet.New(4)
	if err != nil {
		t.Fatal(err)
	}
	mem := transport.NewMemNetwork(4, 4096)
	for i := range tn.File.Nodes {
		cfg := node.TestConfig()
		cfg.Cluster, cfg.NodeID, cfg.Key, cfg.DataDir = tn.Cluster, tn.File.Nodes[i].ID, tn.Keys[i], t.TempDir()
		nd, err := node.New(cfg, node.Deps{Transport: mem.Endpoint(i)})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- nd.Run(ctx) }()
		t.Cleanup(func() { cancel(); <-done })
	}
	return tn.Cluster
}

// step4 is a running instance behind an HTTP server that can be shut.
type step4 struct {
	inst *instance
	srv  *httptest.Server
	url  string
}

// startInstance starts an instance on a fixed loopback address (so the
// aggregator can still name it after it is stopped).
func startInstance(t *testing.T, c *cluster.Cluster, name string) *step4 {
	t.Helper()
	s, err := newInstance(c, defaultApp, name, keys.DeterministicBLS("step4 test "+name), genesis(), noLog)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.follow(ctx) }()
	srv := httptest.NewServer(s.routes())
	t.Cleanup(func() { srv.Close(); cancel(); <-done })
	return &step4{inst: s, srv: srv, url: srv.URL}
}

var noLog = slog.New(slog.DiscardHandler)

func getJSON(t *testing.T, u string, out any) int {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(b, out); err != nil {
		t.Fatalf("GET %s: %v: %s", u, err, b)
	}
	return resp.StatusCode
}

// placeLegacy signs and posts a tutorial order and waits until the
// instance applied it.
func placeLegacy(t *testing.T, base string, key string, side string, qty, price uint64) replicated.Outcome {
	t.Helper()
	k := keys.TutorialUser1()
	if key == "user2" {
		k = keys.TutorialUser2()
	}
	text := legacy.Message(side, qty, price, "ETH", "USDT")
	sig, err := legacy.Sign(k, text)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := json.Marshal(map[string]any{"sender": keys.Address(k).Hex(), "order_type": side, "base_token": "ETH", "quote_token": "USDT",
		"quantity": json.Number(legacy.FormatAmount(qty)), "price": json.Number(legacy.FormatAmount(price)), "signature": "0x" + hex.EncodeToString(sig)})
	resp, err := http.Post(base+"/order?wait=applied", "application/json", strings.NewReader(string(body)))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		OrderID string             `json:"order_id"`
		Outcome replicated.Outcome `json:"outcome"`
		Error   string             `json:"error"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != 200 {
		t.Fatalf("POST /order: %d %v %+v", resp.StatusCode, err, out)
	}
	return out.Outcome
}

func TestStep4SignedBalancesAndAggregatedProofs(t *testing.T) {
	c := sequencerCluster(t)
	a := startInstance(t, c, "step4-a")
	b := startInstance(t, c, "step4-b")
	d := startInstance(t, c, "step4-c")

	// The tutorial trade, submitted through two different instances.
	if o := placeLegacy(t, a.url, "user2", "sell", amount.Scale, 200*amount.Scale); o.Status != "open" {
		t.Fatalf("sell: %+v", o)
	}
	if o := placeLegacy(t, b.url, "user1", "buy", amount.Scale, 200*amount.Scale); o.Status != "filled" {
		t.Fatalf("buy: %+v", o)
	}

	// A signed balance from the third instance, once it applied the trade.
	var sb obapi.Balance
	deadline := time.Now().Add(30 * time.Second)
	for {
		q := url.Values{"address": {user1}, "token": {"USDT"}}
		if st := getJSON(t, d.url+"/balance?"+q.Encode(), &sb); st != 200 {
			t.Fatalf("balance: %d %+v", st, sb)
		}
		if sb.BalanceUnits == "800000000" || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond) // polling a condition
	}
	if sb.Balance != "800" || sb.Replica != "step4-c" {
		t.Fatalf("signed balance %+v", sb)
	}
	sig, err := bls.SignatureFromHex(sb.Signature)
	if err != nil {
		t.Fatal(err)
	}
	digest := c.Domain.Digest(&eip712.Balance{App: defaultApp, Account: common.HexToAddress(user1), Token: "USDT", Balance: 800 * amount.Scale, Index: sb.Index})
	if !sig.Verify(d.inst.key.PublicKey(), digest) {
		t.Fatal("the instance's balance signature does not verify with its key")
	}
	// The same index asked from another instance gives the same balance.
	var sa obapi.Balance
	getJSON(t, a.url+"/balance?address="+user1+"&token=USDT&index="+itoa(sb.Index), &sa)
	if sa.BalanceUnits != sb.BalanceUnits || sa.Index != sb.Index {
		t.Fatalf("instances disagree at index %d: %+v vs %+v", sb.Index, sa, sb)
	}

	// The aggregation step over the three instances.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	m, err := members(ctx, c, []string{a.url, b.url, d.url})
	if err != nil {
		t.Fatal(err)
	}
	h, err := aggregatorHandler(m, noLog)
	if err != nil {
		t.Fatal(err)
	}
	agg := httptest.NewServer(h)
	defer agg.Close()
	var mf cluster.File
	getJSON(t, agg.URL+"/members", &mf)
	mc, err := cluster.New(mf) // what a client saves and verifies with
	if err != nil {
		t.Fatal(err)
	}
	var p client.BalanceProof
	if st := getJSON(t, agg.URL+"/aggregate_balance?address="+user1+"&token=USDT", &p); st != 200 {
		t.Fatalf("aggregate: %d %+v", st, p)
	}
	if err := client.VerifyBalanceProof(mc, &p); err != nil {
		t.Fatalf("proof does not verify: %v %+v", err, p)
	}
	if p.Balance != "800" || len(p.Signers) != 3 || p.App != defaultApp {
		t.Fatalf("proof %+v", p)
	}
	tampered := p
	tampered.BalanceUnits, tampered.Balance = "900000000", "900"
	if client.VerifyBalanceProof(mc, &tampered) == nil {
		t.Fatal("a tampered proof verifies")
	}

	// One instance down: a proof from the other two, the third a
	// non-signer.
	d.srv.Close()
	if st := getJSON(t, agg.URL+"/aggregate_balance?address="+user1+"&token=USDT", &p); st != 200 {
		t.Fatalf("aggregate with one instance down: %d %+v", st, p)
	}
	if err := client.VerifyBalanceProof(mc, &p); err != nil || !slices.Equal(p.NonSigners, []string{"step4-c"}) {
		t.Fatalf("proof with one down: %v %+v", err, p)
	}
	// Two down: no quorum.
	b.srv.Close()
	var e struct {
		Error string `json:"error"`
	}
	if st := getJSON(t, agg.URL+"/aggregate_balance?address="+user1+"&token=USDT", &e); st != http.StatusFailedDependency {
		t.Fatalf("with two instances down: %d %+v", st, e)
	}
}

func TestMembersRefusesKeyWithoutPossession(t *testing.T) {
	c := sequencerClusterFile(t)
	honest := keys.DeterministicBLS("honest")
	liar := keys.DeterministicBLS("liar")
	serve := func(id identity) string {
		s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			json.NewEncoder(w).Encode(id)
		}))
		t.Cleanup(s.Close)
		return s.URL
	}
	good := serve(identity{ID: "a", App: defaultApp, ChainID: c.ChainID, BLSPubkey: honest.PublicKey().Hex(), BLSPop: honest.ProvePossession().Hex()})
	// Claims the honest key's proof for its own key.
	rogue := serve(identity{ID: "b", App: defaultApp, ChainID: c.ChainID, BLSPubkey: liar.PublicKey().Hex(), BLSPop: honest.ProvePossession().Hex()})
	if _, err := members(context.Background(), c, []string{good, rogue}); err == nil || !strings.Contains(err.Error(), "proof of possession") {
		t.Fatalf("members with a rogue key: %v", err)
	}
	other := serve(identity{ID: "c", App: defaultApp, ChainID: c.ChainID + 1, BLSPubkey: liar.PublicKey().Hex(), BLSPop: liar.ProvePossession().Hex()})
	if _, err := members(context.Background(), c, []string{good, other}); err == nil || !strings.Contains(err.Error(), "chain") {
		t.Fatalf("members with another chain: %v", err)
	}
	if _, err := members(context.Background(), c, []string{good, good}); err == nil {
		t.Fatal("the same instance twice was accepted")
	}
}

// sequencerClusterFile is a cluster file with nodes that do not run.
func sequencerClusterFile(t *testing.T) *cluster.Cluster {
	tn, err := testnet.New(1)
	if err != nil {
		t.Fatal(err)
	}
	return tn.Cluster
}

func itoa(v uint64) string { return strconv.FormatUint(v, 10) }
