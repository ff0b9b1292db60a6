// Package integration_test runs a whole local network as real processes
// (4 sequencer nodes, 3 replicas, the aggregator: `seqbook localnet`'s
// layout on free ports) and checks quorum proofs from the outside: they
// verify with the client SDK, follow trades and withdrawals, survive one
// replica down, fail with 424 with two down, leave a Byzantine replica out,
// and a tampered proof does not verify.
//
// Skipped under -short. It builds the seqbook binary once.
package integration_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/common"

	"github.com/seqbook/seqbook/client"
	"github.com/seqbook/seqbook/client/amount"
	"github.com/seqbook/seqbook/client/eip712"
	"github.com/seqbook/seqbook/client/keys"
	"github.com/seqbook/seqbook/client/obapi"
	"github.com/seqbook/seqbook/internal/localnet"
	"github.com/seqbook/seqbook/internal/testproc"
)

var seqbookBin string

func TestMain(m *testing.M) {
	os.Exit(testproc.Main(m, "seqbook-aggregator-integration-", &seqbookBin))
}

func startNetwork(t *testing.T) *localnet.Network {
	t.Helper()
	return testproc.StartNetwork(t, seqbookBin, 30, func(cfg *localnet.Config) {
		// Every index is attested, so the few batches of the test have
		// state proofs.
		cfg.ReplicaArgs = []string{"--attest-every", "1"}
	})
}

func TestQuorumProofsOnARealNetwork(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a whole network of processes")
	}
	n := startNetwork(t)
	c := n.Cluster
	ctx := context.Background()
	agg, err := client.NewAggregator(n.AggregatorURL(), client.WithTimeout(10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	user1, user2 := keys.TutorialUser1Address, keys.TutorialUser2Address
	proofOf := func(addr common.Address, token string) (*client.BalanceProof, error) {
		p, err := agg.BalanceProof(ctx, addr, token)
		if err != nil {
			return nil, err
		}
		if err := client.VerifyBalanceProof(c, p); err != nil {
			t.Fatalf("the aggregator served a proof that does not verify: %v\n%+v", err, p)
		}
		return p, nil
	}
	// waitProof waits for a verified proof with a given balance and signers.
	waitProof := func(what string, addr common.Address, token, units string, signers []string) *client.BalanceProof {
		t.Helper()
		var p *client.BalanceProof
		testproc.WaitFor(t, what, 60*time.Second, func() (bool, string) {
			var err error
			p, err = proofOf(addr, token)
			if err != nil {
				return false, err.Error()
			}
			return p.BalanceUnits == units && slices.Equal(p.Signers, signers), fmt.Sprintf("%+v", *p)
		})
		t.Logf("%s: %s %s of %s at index %d, signers %v, non-signers %v", what, p.Balance, p.Token, p.Address, p.Index, p.Signers, p.NonSigners)
		return p
	}
	all := []string{"replica1", "replica2", "replica3"}

	// 1. Genesis: user1 holds 1000 USDT, proven by all three replicas.
	genesis := waitProof("genesis proof", user1, "USDT", "1000000000", all)
	if genesis.Balance != "1000" || genesis.Threshold != 2 || len(genesis.NonSigners) != 0 {
		t.Fatalf("genesis proof %+v", genesis)
	}

	// 1b. A token name every replica refuses with 400 is refused with
	// 400 by the aggregator too (it used to ask them and answer 424).
	for _, tok := range []string{"ETH%20X", "%EF%BF%BD", "%7f"} {
		q := "address=" + user1.Hex() + "&token=" + tok
		for _, u := range []string{"http://" + c.Replicas[0].HTTP + "/balance?" + q, n.AggregatorURL() + "/aggregate_balance?" + q} {
			resp, err := http.Get(u)
			if err != nil {
				t.Fatal(err)
			}
			var e obapi.Error
			json.NewDecoder(resp.Body).Decode(&e)
			resp.Body.Close()
			if resp.StatusCode != http.StatusBadRequest || !strings.Contains(e.Error, "token") {
				t.Errorf("%s: %d %q, want 400 naming the token", u, resp.StatusCode, e.Error)
			}
		}
	}

	// 2. The tutorial trade through two replicas: user1 buys 1 ETH at 200
	// USDT from user2. The proof follows, at a higher index.
	ob1, _ := client.NewOrderbook("http://"+c.Replicas[0].HTTP, client.WithChainID(c.ChainID))
	ob2, _ := client.NewOrderbook("http://"+c.Replicas[1].HTTP, client.WithChainID(c.ChainID))
	if _, err := ob1.PlaceOrder(ctx, keys.TutorialUser2(), client.OrderParams{Market: "ETH/USDT", Side: "sell", Quantity: amount.Scale, Price: 200 * amount.Scale}, true); err != nil {
		t.Fatal(err)
	}
	if _, err := ob2.PlaceOrder(ctx, keys.TutorialUser1(), client.OrderParams{Market: "ETH/USDT", Side: "buy", Quantity: amount.Scale, Price: 200 * amount.Scale}, true); err != nil {
		t.Fatal(err)
	}
	after := waitProof("proof after the trade", user1, "USDT", "800000000", all)
	eth := waitProof("user2's ETH after the trade", user2, "ETH", "4000000", all)
	// The genesis proof still verifies: only its lower index tells a
	// verifier it is stale.
	if after.Index <= genesis.Index || eth.Index < after.Index || client.VerifyBalanceProof(c, genesis) != nil {
		t.Fatalf("indexes: genesis %d, after %d, eth %d", genesis.Index, after.Index, eth.Index)
	}
	replayed := *genesis
	replayed.Index = after.Index
	if client.VerifyBalanceProof(c, &replayed) == nil {
		t.Fatal("the genesis proof relabelled with a newer index verifies")
	}

	// 3. A withdrawal: user1 sends 10 USDT out to user2; the bridge's
	// proof of the record.
	w, err := ob1.Withdraw(ctx, keys.TutorialUser1(), client.WithdrawParams{Token: "USDT", Amount: 10 * amount.Scale, Recipient: user2}, true)
	if err != nil {
		t.Fatal(err)
	}
	id := w.ID
	var wp *client.WithdrawalProof
	testproc.WaitFor(t, "withdrawal proof", 60*time.Second, func() (bool, string) {
		wp, err = agg.WithdrawalProof(ctx, id)
		if err != nil {
			return false, err.Error()
		}
		return len(wp.Signers) == 3, fmt.Sprintf("%+v", *wp)
	})
	if err := client.VerifyWithdrawalProof(c, wp); err != nil || wp.Amount != "10" || wp.Trader != user1.Hex() || wp.Recipient != user2.Hex() {
		t.Fatalf("withdrawal proof %+v: %v", wp, err)
	}
	afterW := waitProof("proof after the withdrawal", user1, "USDT", "790000000", all)

	// A state proof at that index: every replica attested the same state
	// digest, the one GET /state reports there.
	var sp *client.StateProof
	testproc.WaitFor(t, "state proof", 60*time.Second, func() (bool, string) {
		sp, err = agg.StateProof(ctx, afterW.Index)
		if err != nil {
			return false, err.Error()
		}
		return len(sp.Signers) == 3, fmt.Sprintf("%+v", *sp)
	})
	if err := client.VerifyStateProof(c, sp); err != nil || sp.Index != afterW.Index {
		t.Fatalf("state proof %+v: %v", sp, err)
	}
	t.Logf("state proof: digest %s at index %d, signers %v", sp.StateDigest, sp.Index, sp.Signers)

	// 4. replica3 stopped: the proof still forms, replica3 a non-signer.
	if err := n.StopComponent("replica3"); err != nil {
		t.Fatal(err)
	}
	p := waitProof("proof with replica3 down", user1, "USDT", "790000000", all[:2])
	if !slices.Equal(p.NonSigners, []string{"replica3"}) {
		t.Fatalf("non-signers %v", p.NonSigners)
	}

	// 5. replica2 stopped too: one of three cannot make a proof: 424.
	if err := n.StopComponent("replica2"); err != nil {
		t.Fatal(err)
	}
	_, err = agg.BalanceProof(ctx, user1, "USDT")
	var ae *client.APIError
	if !errors.As(err, &ae) || ae.Status != http.StatusFailedDependency || !strings.Contains(ae.Message, "replicas") {
		t.Fatalf("with two replicas down: %v, want HTTP 424", err)
	}

	// 6. Both back: all three sign again once they caught up.
	for _, id := range []string{"replica2", "replica3"} {
		if err := n.StartComponent(context.Background(), id); err != nil {
			t.Fatal(err)
		}
	}
	waitProof("proof after the restarts", user1, "USDT", "790000000", all)

	// 7. A Byzantine replica3: same key, same address, signs a balance one
	// base unit higher. It is left out; the proof carries the honest value.
	if err := n.StopComponent("replica3"); err != nil {
		t.Fatal(err)
	}
	comp, _ := n.Component("replica3")
	sk, err := keys.LoadBLS(comp.KeyPath)
	if err != nil {
		t.Fatal(err)
	}
	byz := byzantineReplica(t, comp.HTTP, "http://"+c.Replicas[0].HTTP, func(b *obapi.Balance) {
		units, _ := strconv.ParseUint(b.BalanceUnits, 10, 64)
		units++
		b.BalanceUnits, b.Balance, b.Replica = strconv.FormatUint(units, 10), amount.Format(units), "replica3"
		d := c.Domain.Digest(&eip712.Balance{App: c.App, Account: common.HexToAddress(b.Address), Token: b.Token, Balance: units, Index: b.Index})
		b.Signature = sk.Sign(d).Hex()
	})
	p = waitProof("proof next to a Byzantine replica", user1, "USDT", "790000000", all[:2])
	if !slices.Equal(p.NonSigners, []string{"replica3"}) || byz() == 0 {
		t.Fatalf("non-signers %v, Byzantine answers %d", p.NonSigners, byz())
	}
	aggLog, _ := n.Component(localnet.AggregatorID)
	testproc.WaitFor(t, "the aggregator logs the Byzantine replica", 10*time.Second, func() (bool, string) {
		b, _ := os.ReadFile(aggLog.LogPath)
		s := string(b)
		return strings.Contains(s, "replica=replica3") && strings.Contains(s, "problem=disagrees") && strings.Contains(s, "790.000001"), "log has no such line"
	})

	// 8. A tampered proof does not verify.
	for name, edit := range map[string]func(q *client.BalanceProof){
		"balance": func(q *client.BalanceProof) { q.BalanceUnits, q.Balance = "790000001", "790.000001" },
		"signers": func(q *client.BalanceProof) {
			q.Signers, q.NonSigners = []string{"replica1", "replica3"}, []string{"replica2"}
		},
		"index": func(q *client.BalanceProof) { q.Index++ },
	} {
		q := *p
		edit(&q)
		if client.VerifyBalanceProof(c, &q) == nil {
			t.Errorf("tampered %s: verifies", name)
		}
	}
}

// byzantineReplica serves a replica's read API on addr: everything is
// relayed to the honest replica at upstream, but /balance answers pass
// through lie first. It returns a counter of the lies told.
func byzantineReplica(t *testing.T, addr, upstream string, lie func(*obapi.Balance)) func() int {
	t.Helper()
	var ln net.Listener
	var err error
	// The stopped replica's port may take a moment to be free.
	testproc.WaitFor(t, "listening on "+addr, 10*time.Second, func() (bool, string) {
		ln, err = net.Listen("tcp", addr)
		return err == nil, fmt.Sprint(err)
	})
	lies := make(chan struct{}, 1<<16)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		resp, err := http.Get(upstream + r.URL.RequestURI())
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if r.URL.Path == "/balance" && resp.StatusCode == http.StatusOK {
			var b obapi.Balance
			if json.Unmarshal(body, &b) == nil {
				lie(&b)
				body, _ = json.Marshal(b)
				select {
				case lies <- struct{}{}:
				default:
				}
			}
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(resp.StatusCode)
		w.Write(body)
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return func() int { return len(lies) }
}
