package main

import (
	"context"
	"crypto/ecdsa"
	"errors"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ethereum/go-ethereum/common"

	"github.com/seqbook/seqbook/client"
	"github.com/seqbook/seqbook/client/amount"
	"github.com/seqbook/seqbook/client/cluster"
	"github.com/seqbook/seqbook/client/keys"
	"github.com/seqbook/seqbook/client/obapi"
	"github.com/seqbook/seqbook/internal/localnet"
	"github.com/seqbook/seqbook/internal/localnet/load"
)

func init() {
	register(command{
		name:    "demo",
		summary: "start a local network, place the tutorial's orders, verify a balance proof, stop",
		run:     runDemo,
	})
}

// The demo's trade: the tutorial's 02_place_order.py orders, 1 ETH at 200
// USDT each way.
const (
	demoQuantity = 1 * amount.Scale
	demoPrice    = 200 * amount.Scale
)

func runDemo(args []string) int {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	nf := addNetFlags(fs, "", false)
	timeout := fs.Duration("timeout", 90*time.Second, "give up (and fail) after this long")
	keep := fs.Bool("keep", false, "keep the temporary data folder (keys, logs) afterwards")
	withBridge := fs.Bool("bridge", false, "run the bridge loop instead, against an in-process simulated chain (see below)")
	setUsage(fs, "Usage: seqbook demo [flags]",
		"Starts a local network (4 sequencer nodes, 3 replicas, the aggregator) in a temporary",
		"folder (or --dir), has the tutorial's user1 buy 1 ETH from user2 at 200 USDT with EIP-712",
		"orders sent to two different replicas, prints the fills, fetches user1's balance proof",
		"from the aggregator, verifies it against cluster.json, checks that every replica has the",
		"same state digest, and stops the network. Exits non-zero if any step fails.",
		"",
		"With --bridge: starts an in-process Ethereum chain (go-ethereum's simulated backend,",
		"Prague rules), deploys SeqbookBridge for the network's cluster file and a test USDT,",
		"runs the deposit relayer, has Alice lock 2 ETH and Bob 500 USDT on chain, waits until",
		"every replica credits them, trades 1 ETH for 200 USDT, withdraws both on the orderbook,",
		"claims both on chain with the aggregator's quorum proofs, prints the on-chain balances",
		"before and after, and ends with the contract's verdict.",
	)
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	ctx, cancel := interruptContext()
	defer cancel()
	ctx, cancelT := context.WithTimeout(ctx, *timeout)
	defer cancelT()
	began := time.Now()
	step := func(format string, a ...any) {
		fmt.Printf("[%5.1fs] %s\n", time.Since(began).Seconds(), fmt.Sprintf(format, a...))
	}

	step("starting a local network: %d sequencer nodes, %d replicas, 1 aggregator", *nf.nodes, *nf.replicas)
	var deathMu sync.Mutex
	var deaths []string
	n, done, err := throwawayNetKeep(ctx, nf, "seqbook-demo-", keep, os.Stdout, func(c *localnet.Config) {
		c.OnExit = func(e localnet.Exit) {
			deathMu.Lock()
			deaths = append(deaths, e.ID)
			deathMu.Unlock()
		}
	})
	if err != nil {
		return fail("demo", err)
	}
	defer done()
	step("network ready in %s", n.Dir)
	n.WriteEndpoints(os.Stdout)

	if *withBridge {
		err = demoBridge(ctx, n, step)
	} else {
		err = demo(ctx, n, step)
	}
	deathMu.Lock()
	if len(deaths) > 0 && err == nil {
		err = fmt.Errorf("components died during the demo: %s (see the reports above)", strings.Join(deaths, ", "))
	}
	deathMu.Unlock()
	if err != nil {
		fmt.Printf("logs: %s\n", n.Dir+"/logs")
		*keep = true
		return fail("demo", err)
	}
	step("stopping the network")
	return 0
}

// demo runs the scripted trade against a running network.
func demo(ctx context.Context, n *localnet.Network, step func(string, ...any)) error {
	c, err := cluster.Load(n.ClusterPath)
	if err != nil {
		return err
	}
	urls := n.ReplicaURLs()
	if len(urls) < 2 {
		return errors.New("the demo needs at least 2 replicas")
	}
	books := make([]*client.Orderbook, len(urls))
	for i, u := range urls {
		if books[i], err = client.NewOrderbook(u, client.WithTimeout(30*time.Second)); err != nil {
			return err
		}
	}
	user1, user2 := keys.TutorialUser1(), keys.TutorialUser2()
	a1, a2 := keys.Address(user1), keys.Address(user2)
	step("user1 %s and user2 %s are the tutorial's accounts (genesis: 1000 USDT and 5 ETH)", a1.Hex(), a2.Hex())

	usdt1Before, err := demoBalance(ctx, books[0], a1, "USDT")
	if err != nil {
		return err
	}
	for _, who := range []struct {
		name string
		addr common.Address
	}{{"user1", a1}, {"user2", a2}} {
		var parts []string
		for _, tok := range []string{"USDT", "ETH"} {
			b, err := books[0].Balance(ctx, who.addr, tok, 0)
			if err != nil {
				return fmt.Errorf("balance of %s: %w", who.name, err)
			}
			parts = append(parts, b.Balance+" "+tok)
		}
		step("%s holds %s", who.name, strings.Join(parts, ", "))
	}

	// user1's buy rests first, then user2's sell at the same price fills
	// it; the two go through different replicas, and each call returns
	// only once the order is finalized by the sequencer and applied.
	buy, err := demoPlace(ctx, books[0], user1, "buy", step, "user1", "replica1")
	if err != nil {
		return err
	}
	sell, err := demoPlace(ctx, books[1], user2, "sell", step, "user2", "replica2")
	if err != nil {
		return err
	}
	if sell.Order.Status != obapi.StatusFilled {
		return fmt.Errorf("user2's sell should have filled against user1's buy, its status is %q", sell.Order.Status)
	}
	for _, f := range sell.Order.Fills {
		step("fill: %s ETH at %s USDT (%s USDT): user2 sold as taker to order %s", f.Quantity, f.Price, f.Quote, load.ShortHash(f.Counterparty))
	}
	// The third replica saw the same trade from the sequence alone.
	last := books[len(books)-1]
	seen, err := demoWaitOrder(ctx, last, buy.OrderID, sell.Order.Index)
	if err != nil {
		return err
	}
	step("replica%d, which received neither order, reports user1's buy as %s (%s ETH filled)", len(books), seen.Status, seen.Filled)
	if seen.Status != obapi.StatusFilled {
		return fmt.Errorf("replica%d reports user1's buy as %q, want filled", len(books), seen.Status)
	}

	conv, err := load.WaitConverged(ctx, load.NewHTTP(5*time.Second), urls, sell.Order.Index)
	if err != nil {
		return err
	}
	step("all %d replicas are at index %d with state digest %s", len(urls), conv.Index, conv.Digest)

	// The aggregator's quorum proof of user1's USDT, checked offline against
	// the cluster file: BLS keys, threshold, digest.
	agg, err := client.NewAggregator(n.AggregatorURL(), client.WithTimeout(10*time.Second))
	if err != nil {
		return err
	}
	var proof *client.BalanceProof
	for {
		if proof, err = agg.BalanceProof(ctx, a1, "USDT"); err != nil {
			return fmt.Errorf("aggregator: %w", err)
		}
		if proof.Index >= sell.Order.Index {
			break
		}
		// The aggregator picked an index from before the trade; ask again.
		if ctx.Err() != nil {
			return fmt.Errorf("aggregator keeps proving index %d, before the trade at %d", proof.Index, sell.Order.Index)
		}
		sleepCtx(ctx, 50*time.Millisecond)
	}
	step("aggregator: user1 holds %s USDT at index %d, signed by %s (threshold %d of %d replicas)",
		proof.Balance, proof.Index, strings.Join(proof.Signers, ", "), proof.Threshold, len(c.Replicas))
	if err := client.VerifyBalanceProof(c, proof); err != nil {
		return fmt.Errorf("balance proof does NOT verify: %w", err)
	}
	paid, err := amount.Quote(demoQuantity, demoPrice)
	if err != nil {
		return err
	}
	want := usdt1Before - paid
	if got, err := strconv.ParseUint(proof.BalanceUnits, 10, 64); err != nil || got != want {
		return fmt.Errorf("the proof says user1 holds %s USDT, expected %s - %s = %s", proof.Balance,
			amount.Format(usdt1Before), amount.Format(paid), amount.Format(want))
	}
	step("proof verified: balance %s USDT of %s at index %d, signed by %s (threshold %d), checked against %s",
		proof.Balance, a1.Hex(), proof.Index, strings.Join(proof.Signers, ","), proof.Threshold, n.ClusterPath)
	return nil
}

func demoBalance(ctx context.Context, ob *client.Orderbook, a common.Address, tok string) (uint64, error) {
	b, err := ob.Balance(ctx, a, tok, 0)
	if err != nil {
		return 0, fmt.Errorf("balance %s %s: %w", a.Hex(), tok, err)
	}
	return strconv.ParseUint(b.BalanceUnits, 10, 64)
}

func demoPlace(ctx context.Context, ob *client.Orderbook, key *ecdsa.PrivateKey, side string, step func(string, ...any), who, replica string) (*client.OrderResult, error) {
	p := client.OrderParams{Market: "ETH/USDT", Side: side, Type: "limit", Quantity: demoQuantity, Price: demoPrice}
	step("%s signs an EIP-712 order: %s %s ETH at %s USDT, sent to %s, waiting for finality",
		who, side, amount.Format(p.Quantity), amount.Format(p.Price), replica)
	t0 := time.Now()
	r, err := ob.PlaceOrder(ctx, key, p, true)
	if err != nil {
		return nil, fmt.Errorf("%s's %s order: %w", who, side, err)
	}
	step("%s's order %s is %s at index %d after %d ms (%s ETH filled)", who, load.ShortHash(r.OrderID.String()), r.Order.Status,
		r.Order.Index, time.Since(t0).Milliseconds(), r.Order.Filled)
	if r.Order.Status == obapi.StatusRejected {
		return nil, fmt.Errorf("%s's order was rejected: %s", who, r.Order.Reason)
	}
	return r, nil
}

// demoWaitOrder reads an order from a replica until it has applied index.
func demoWaitOrder(ctx context.Context, ob *client.Orderbook, id [32]byte, index uint64) (*obapi.Order, error) {
	for {
		st, err := ob.State(ctx)
		if err == nil && st.AppliedIndex >= index {
			return ob.Order(ctx, id)
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("%s did not reach index %d: %v", ob.URL(), index, err)
		}
		sleepCtx(ctx, 20*time.Millisecond)
	}
}
