// Package integration_test runs real processes (4 sequencer nodes and 3
// replicas: `seqbook localnet`'s layout on free ports) and checks the
// replicas from the outside, over their HTTP API only: orders sent to
// different replicas end in identical trades, balances and state digests on
// every replica; with a replica and the sequencer's leader SIGKILLed
// mid-stream, no order answered "accepted" is lost; the killed replica
// restarts from its data and catches up; a replica wiped clean syncs from
// index 0.
//
// Skipped under -short. It builds the seqbook binary once.
package integration_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"reflect"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/common"

	"github.com/seqbook/seqbook/client/eip712"
	"github.com/seqbook/seqbook/client/ethsig"
	"github.com/seqbook/seqbook/client/obapi"
	"github.com/seqbook/seqbook/client/seqapi"
	"github.com/seqbook/seqbook/internal/localnet"
	"github.com/seqbook/seqbook/internal/testproc"
)

var seqbookBin string

func TestMain(m *testing.M) { os.Exit(testproc.Main(m, "seqbook-replica-integration-", &seqbookBin)) }

var httpc = &http.Client{Timeout: 10 * time.Second}

// call sends a JSON request and decodes a JSON answer; it returns the
// status (0 when the server could not be reached).
func call(method, url string, in, out any) (int, error) {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return 0, err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		return 0, err
	}
	resp, err := httpc.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return resp.StatusCode, err
	}
	if out != nil && resp.StatusCode == http.StatusOK {
		if err := json.Unmarshal(raw, out); err != nil {
			return resp.StatusCode, fmt.Errorf("decoding %s: %w", raw, err)
		}
	}
	if resp.StatusCode != http.StatusOK {
		return resp.StatusCode, fmt.Errorf("%s %s: %d %s", method, url, resp.StatusCode, bytes.TrimSpace(raw))
	}
	return resp.StatusCode, nil
}

type network struct {
	t   *testing.T
	net *localnet.Network
	dom eip712.Domain
}

// startNetwork starts 4 nodes and 3 replicas, each replica run with
// replicaArgs added.
func startNetwork(t *testing.T, replicaArgs ...string) *network {
	t.Helper()
	if testing.Short() {
		t.Skip("starts real processes; skipped under -short")
	}
	n := testproc.StartNetwork(t, seqbookBin, 40, func(cfg *localnet.Config) {
		cfg.Kinds = []string{localnet.KindSequencer, localnet.KindReplica}
		cfg.Traders = 4
		// Snapshots every few hundred operations: the SIGKILLs below land
		// among group commits of applied pages, outbox entries and
		// background snapshots.
		cfg.ReplicaArgs = append([]string{"--snapshot-ops", "300"}, replicaArgs...)
	})
	nw := &network{t: t, net: n, dom: n.Cluster.Domain}
	return nw
}

func (nw *network) replicaURL(id string) string {
	c, ok := nw.net.Component(id)
	if !ok {
		nw.t.Fatalf("no component %s", id)
	}
	return c.URL()
}

// leader asks the nodes who leads the current view.
func (nw *network) leader() string {
	for _, u := range nw.net.NodeURLs() {
		var st seqapi.NodeState
		if _, err := call("GET", u+"/node/state", nil, &st); err == nil && st.Leader != "" {
			return st.Leader
		}
	}
	nw.t.Fatal("no node answers /node/state")
	return ""
}

func (nw *network) signOrder(k *ecdsa.PrivateKey, side string, qty, price, nonce uint64) (obapi.OrderRequest, string) {
	expiry := uint64(time.Now().Unix()) + 600
	o := eip712.Order{Trader: ethsig.Address(k), Market: "ETH/USDT", Side: side, OrderType: "limit",
		Quantity: qty, Price: price, Nonce: nonce, Expiry: expiry}
	d := nw.dom.Digest(&o)
	sig, err := ethsig.Sign(k, d)
	if err != nil {
		nw.t.Fatal(err)
	}
	return obapi.OrderRequest{Trader: o.Trader.Hex(), Market: o.Market, Side: side, OrderType: "limit",
		Quantity: obapi.Uint(qty), Price: obapi.Uint(price), Nonce: obapi.Uint(nonce), Expiry: obapi.Uint(expiry),
		Signature: fmt.Sprintf("0x%x", sig)}, fmt.Sprintf("0x%x", d)
}

func (nw *network) signWithdraw(k *ecdsa.PrivateKey, token string, amount uint64, to common.Address, nonce uint64) obapi.WithdrawRequest {
	expiry := uint64(time.Now().Unix()) + 600
	w := eip712.Withdraw{Trader: ethsig.Address(k), Token: token, Amount: amount, Recipient: to, Nonce: nonce, Expiry: expiry}
	sig, err := ethsig.Sign(k, nw.dom.Digest(&w))
	if err != nil {
		nw.t.Fatal(err)
	}
	return obapi.WithdrawRequest{Trader: w.Trader.Hex(), Token: token, Amount: obapi.Uint(amount), Recipient: to.Hex(),
		Nonce: obapi.Uint(nonce), Expiry: obapi.Uint(expiry), Signature: fmt.Sprintf("0x%x", sig)}
}

func TestReplicasAgreeAndLoseNothingAcrossCrashes(t *testing.T) {
	nw := startNetwork(t)
	replicas := []string{"replica1", "replica2", "replica3"}
	const tradersN = 4
	traders := make([]*ecdsa.PrivateKey, tradersN)
	for i := range traders {
		traders[i] = localnet.TraderKey(i)
	}

	// Order stream: each trader places crossing buys and sells, each order
	// sent to the next replica in turn (another one if that one is down).
	var (
		mu       sync.Mutex
		accepted = map[string]bool{} // order ids answered "accepted"
		stop     atomic.Bool
		wg       sync.WaitGroup
		sent     atomic.Int64
	)
	for ti := range traders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := uint64(1); !stop.Load(); n++ {
				side := []string{"buy", "sell"}[(int(n)+ti)%2]
				price := uint64(1990+(n*7+uint64(ti)*3)%20) * 1_000_000
				req, id := nw.signOrder(traders[ti], side, (1+n%5)*100_000, price, n)
				for attempt := 0; attempt < 3*len(replicas) && !stop.Load(); attempt++ {
					r := replicas[(int(n)+ti+attempt)%len(replicas)]
					var acc obapi.OrderAccepted
					code, err := call("POST", nw.replicaURL(r)+"/order", req, &acc)
					if err == nil {
						if acc.OrderID != id {
							t.Errorf("%s answered order id %s, signed %s", r, acc.OrderID, id)
						}
						mu.Lock()
						accepted[id] = true
						mu.Unlock()
						sent.Add(1)
						break
					}
					if code == http.StatusConflict {
						// An earlier attempt reached a replica after all
						// (its answer was lost): the order is in.
						break
					}
					time.Sleep(20 * time.Millisecond)
				}
			}
		}()
	}
	testproc.WaitFor(t, "some orders", 60*time.Second, func() (bool, string) { return sent.Load() >= 100, fmt.Sprint(sent.Load()) })

	// SIGKILL a replica and the leader mid-stream.
	leader := nw.leader()
	t.Logf("killing replica2 and the leader %s after %d orders", leader, sent.Load())
	if err := nw.net.Kill("replica2"); err != nil {
		t.Fatal(err)
	}
	if err := nw.net.Kill(leader); err != nil {
		t.Fatal(err)
	}
	before := sent.Load()
	testproc.WaitFor(t, "orders to flow again after the crashes", 90*time.Second, func() (bool, string) {
		return sent.Load() >= before+100, fmt.Sprint(sent.Load() - before)
	})
	// The surviving nodes moved to a new leader (finality resumed without
	// the killed one).
	testproc.WaitFor(t, "a new leader", 60*time.Second, func() (bool, string) {
		l := nw.leader()
		return l != leader, l
	})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := nw.net.StartComponent(ctx, leader); err != nil {
		t.Fatal(err)
	}
	if err := nw.net.StartComponent(ctx, "replica2"); err != nil {
		t.Fatal(err)
	}
	before = sent.Load()
	testproc.WaitFor(t, "more orders after the restarts", 60*time.Second, func() (bool, string) {
		return sent.Load() >= before+50, fmt.Sprint(sent.Load() - before)
	})
	// SIGKILL replica1 twice while it takes orders: its outbox entries
	// and applied pages share transactions, and whatever it answered
	// "accepted" must still apply.
	for round := 0; round < 2; round++ {
		if err := nw.net.Kill("replica1"); err != nil {
			t.Fatal(err)
		}
		before = sent.Load()
		testproc.WaitFor(t, "orders to flow without replica1", 60*time.Second, func() (bool, string) {
			return sent.Load() >= before+30, fmt.Sprint(sent.Load() - before)
		})
		if err := nw.net.StartComponent(ctx, "replica1"); err != nil {
			t.Fatal(err)
		}
		before = sent.Load()
		testproc.WaitFor(t, "orders after replica1 restarted", 60*time.Second, func() (bool, string) {
			return sent.Load() >= before+50, fmt.Sprint(sent.Load() - before)
		})
	}
	stop.Store(true)
	wg.Wait()
	t.Logf("%d orders accepted", len(accepted))

	// Every accepted order is applied on every replica, which all agree.
	testproc.WaitFor(t, "every accepted order applied everywhere", 2*time.Minute, func() (bool, string) {
		for _, r := range replicas {
			for id := range accepted {
				var o obapi.Order
				if _, err := call("GET", nw.replicaURL(r)+"/orders/"+id, nil, &o); err != nil || o.Status == obapi.StatusPending {
					return false, fmt.Sprintf("%s: order %s: %v %s", r, id, err, o.Status)
				}
			}
		}
		return true, ""
	})
	checkAgreement(t, nw, replicas, traders)

	// A replica wiped clean syncs from index 0 to the same state.
	if err := nw.net.StopComponent("replica3"); err != nil {
		t.Fatal(err)
	}
	c3, _ := nw.net.Component("replica3")
	if err := os.RemoveAll(c3.DataDir); err != nil {
		t.Fatal(err)
	}
	if err := nw.net.StartComponent(ctx, "replica3"); err != nil {
		t.Fatal(err)
	}
	checkAgreement(t, nw, replicas, traders)
}

// checkAgreement waits until every replica reports the same applied index
// and state digest, then compares trades and balances.
func checkAgreement(t *testing.T, nw *network, replicas []string, traders []*ecdsa.PrivateKey) {
	t.Helper()
	states := []obapi.State{agreedState(t, nw, replicas)}
	t.Logf("all replicas at index %d, digest %s, %d trades", states[0].AppliedIndex, states[0].StateDigest, states[0].Trades)
	if states[0].Trades == 0 {
		t.Fatal("no trades: the stream did not cross")
	}
	var ref []obapi.Trade
	for i, r := range replicas {
		var all []obapi.Trade
		for after := uint64(0); ; {
			var page obapi.Trades
			if _, err := call("GET", fmt.Sprintf("%s/trades?after=%d", nw.replicaURL(r), after), nil, &page); err != nil {
				t.Fatal(err)
			}
			all = append(all, page.Trades...)
			if len(page.Trades) == 0 || page.Next == after {
				break
			}
			after = page.Next
		}
		if i == 0 {
			ref = all
		} else if !reflect.DeepEqual(all, ref) {
			t.Fatalf("%s has other trades than %s (%d vs %d)", r, replicas[0], len(all), len(ref))
		}
	}
	idx := states[0].AppliedIndex
	for _, k := range traders {
		a := ethsig.Address(k).Hex()
		for _, tok := range []string{"ETH", "USDT"} {
			var first string
			for i, r := range replicas {
				var b obapi.Balance
				if _, err := call("GET", fmt.Sprintf("%s/balance?address=%s&token=%s&index=%d", nw.replicaURL(r), a, tok, idx), nil, &b); err != nil {
					t.Fatal(err)
				}
				if i == 0 {
					first = b.BalanceUnits
				} else if b.BalanceUnits != first {
					t.Fatalf("%s %s at %d: %s has %s, %s has %s", a, tok, idx, replicas[0], first, r, b.BalanceUnits)
				}
			}
		}
	}
}
