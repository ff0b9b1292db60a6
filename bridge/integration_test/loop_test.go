// Package integration_test runs the bridge's whole loop against a local
// network of real processes (4 sequencer nodes, 3 replicas, the
// aggregator) and go-ethereum's simulated chain under Prague rules: deposit
// on chain → relayed → credited on every replica → traded → withdrawn on
// the orderbook → quorum proof → withdraw on chain pays the trader; then a
// relayer restarted from an old state file credits nothing twice.
//
// Skipped under -short. It builds the seqbook binary once.
package integration_test

import (
	"context"
	"io"
	"log/slog"
	"math/big"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/crypto"

	"github.com/seqbook/seqbook/bridge"
	"github.com/seqbook/seqbook/client"
	"github.com/seqbook/seqbook/client/ethsig"
	"github.com/seqbook/seqbook/internal/bridgeloop"
	"github.com/seqbook/seqbook/internal/testproc"
)

var seqbookBin string

func TestMain(m *testing.M) {
	os.Exit(testproc.Main(m, "seqbook-bridge-integration-", &seqbookBin))
}

func TestBridgeLoopOnARealNetwork(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a whole network of processes")
	}
	n := testproc.StartNetwork(t, seqbookBin, 40, nil)
	bridgeKey, err := ethsig.LoadKey(n.BridgeKey)
	if err != nil {
		t.Fatal(err)
	}
	deployer, alice, bob, err := bridgeloop.Keys()
	if err != nil {
		t.Fatal(err)
	}
	chain, err := bridge.NewSimChain(bridge.SimConfig{ChainID: n.Cluster.ChainID,
		Funded: [][20]byte{bridge.Fund(deployer), bridge.Fund(alice), bridge.Fund(bob)}})
	if err != nil {
		t.Fatal(err)
	}
	defer chain.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	dir := t.TempDir()
	env := bridgeloop.Env{
		Chain: chain, Cluster: n.Cluster, ReplicaURLs: n.ReplicaURLs(), Aggregator: n.AggregatorURL(),
		BridgeKey: bridgeKey, Deployer: deployer, Alice: alice, Bob: bob, Dir: dir,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Step:   func(format string, a ...any) { t.Logf(format, a...) },
	}
	rep, err := bridgeloop.Run(ctx, env)
	if err != nil {
		t.Fatal(err)
	}

	// The recipients were paid exactly what was withdrawn, and the bridge
	// paid it out of what was locked.
	usdt200, eth1 := big.NewInt(200_000_000), new(big.Int).Exp(big.NewInt(10), big.NewInt(18), nil)
	if got := new(big.Int).Sub(rep.RecipientsAfter[0], rep.RecipientsBefore[0]); got.Cmp(usdt200) != 0 {
		t.Fatalf("Alice's recipient got %s USDT units, want %s", got, usdt200)
	}
	if got := new(big.Int).Sub(rep.RecipientsAfter[1], rep.RecipientsBefore[1]); got.Cmp(eth1) != 0 {
		t.Fatalf("Bob's recipient got %s wei, want %s", got, eth1)
	}
	if got := new(big.Int).Sub(rep.BridgeUS[0], rep.BridgeUS[1]); got.Cmp(usdt200) != 0 {
		t.Fatalf("the bridge paid %s USDT units", got)
	}
	if got := new(big.Int).Sub(rep.BridgeETH[0], rep.BridgeETH[1]); got.Cmp(eth1) != 0 {
		t.Fatalf("the bridge paid %s wei", got)
	}
	if rep.ReplayReason != "withdrawal already paid" {
		t.Fatalf("replayed claim: %q", rep.ReplayReason)
	}
	for _, cl := range rep.Claims {
		t.Logf("withdrawal %s: %d gas with signers %v", cl.Proof.ID[:10], cl.Receipt.GasUsed, cl.Proof.Signers)
		if cl.Receipt.GasUsed > 350_000 {
			t.Errorf("withdrawal used %d gas, the goal is 350000", cl.Receipt.GasUsed)
		}
	}

	// Exactly once: a relayer restarted from a state file that still lists
	// both deposits as pending (as after a crash right after sending)
	// resends the same operations; the replicas have applied them, so
	// nothing is credited again.
	books := make([]*client.Orderbook, 0, 3)
	for _, u := range n.ReplicaURLs() {
		ob, err := client.NewOrderbook(u, client.WithTimeout(10*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		books = append(books, ob)
	}
	stale := bridge.RelayState{Contract: rep.Bridge.Hex(), NextBlock: rep.DepositBlocks[0], Pending: []bridge.PendingDeposit{}}
	cfg := bridge.DefaultRelayConfig()
	cfg.Chain, cfg.Contract, cfg.Cluster, cfg.BridgeKey, cfg.Replica = chain.Client, rep.Bridge, n.Cluster, bridgeKey, books[1]
	cfg.StatePath, cfg.Confirmations, cfg.Logger = dir+"/stale-state.json", 2, env.Logger
	if err := bridge.WriteRelayState(cfg.StatePath, &stale); err != nil {
		t.Fatal(err)
	}
	r, err := bridge.NewRelayer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; ; i++ {
		if err := r.Step(ctx); err != nil {
			t.Logf("step: %v", err)
		}
		st := r.State()
		if st.LastDepositID == 2 && len(st.Pending) == 0 && st.Credited == 2 {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("restarted relayer state: %+v", st)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// Everything the test did has been applied on every replica: balances
	// are what one credit of each deposit gives (Alice: 2 - 1 ETH, Bob:
	// 500 - 200 USDT).
	a, b := crypto.PubkeyToAddress(alice.PublicKey), crypto.PubkeyToAddress(bob.PublicKey)
	for i, ob := range books {
		for _, want := range []struct {
			who   [20]byte
			token string
			units uint64
		}{{a, "ETH", 1_000_000}, {a, "USDT", 0}, {b, "USDT", 300_000_000}, {b, "ETH", 0}} {
			bal, err := ob.Balance(ctx, want.who, want.token, 0)
			if err != nil {
				t.Fatal(err)
			}
			if bal.BalanceUnits != strconv.FormatUint(want.units, 10) {
				t.Fatalf("replica%d: %x holds %s %s, want %d base units", i+1, want.who, bal.Balance, want.token, want.units)
			}
		}
	}
}
