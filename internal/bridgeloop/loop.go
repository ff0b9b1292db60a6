// Package bridgeloop runs the bridge's whole loop against a running
// network and a simulated chain: deposit on chain → relayed → credited on
// every replica → traded → withdrawn on the orderbook → quorum proof →
// withdraw on chain pays. `seqbook demo --bridge` prints it; the
// integration test runs it against real processes and checks more.
package bridgeloop

import (
	"context"
	"crypto/ecdsa"
	"fmt"
	"log/slog"
	"math/big"
	"path/filepath"
	"strconv"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/crypto"

	"github.com/seqbook/seqbook/bridge"
	"github.com/seqbook/seqbook/client"
	"github.com/seqbook/seqbook/client/amount"
	"github.com/seqbook/seqbook/client/cluster"
	"github.com/seqbook/seqbook/client/obapi"
)

// Env is what the loop runs against.
type Env struct {
	Chain       *bridge.SimChain
	Cluster     *cluster.Cluster
	ReplicaURLs []string
	Aggregator  string
	// BridgeKey is the cluster's bridge key (the relayer signs with it).
	BridgeKey *ecdsa.PrivateKey
	// Deployer, Alice and Bob are funded on the chain.
	Deployer, Alice, Bob *ecdsa.PrivateKey
	// Dir holds the relayer's state file.
	Dir    string
	Logger *slog.Logger
	// Step reports progress (printf-style).
	Step func(format string, a ...any)
}

// Keys returns fresh deployer, Alice and Bob keys to fund on the chain.
func Keys() (deployer, alice, bob *ecdsa.PrivateKey, err error) {
	ks := make([]*ecdsa.PrivateKey, 3)
	for i := range ks {
		if ks[i], err = crypto.GenerateKey(); err != nil {
			return nil, nil, nil, err
		}
	}
	return ks[0], ks[1], ks[2], nil
}

// The loop's amounts: Alice locks 2 ETH, Bob 500 USDT; Alice sells Bob
// 1 ETH at 200 USDT; Alice withdraws her 200 USDT and Bob his 1 ETH to
// fresh addresses.
const (
	aliceETH  = 2 * amount.Scale
	bobUSDT   = 500 * amount.Scale
	tradeQty  = 1 * amount.Scale
	tradePx   = 200 * amount.Scale
	confirmed = 2 // blocks on top of a deposit before it is relayed
)

// Report is what the loop did, for the caller to check.
type Report struct {
	Bridge, USDT        common.Address
	RelayState          string // path of the relayer's state file
	DepositBlocks       []uint64
	AliceTo, BobTo      common.Address
	Claims              []*bridge.ClaimResult
	ReplayReason        string // the contract's answer to a second claim
	RecipientsBefore    [2]*big.Int
	RecipientsAfter     [2]*big.Int
	BridgeETH, BridgeUS [2]*big.Int // before and after the claims
}

// Run runs the loop once. The relayer runs in the background until Run
// returns.
func Run(ctx context.Context, e Env) (*Report, error) {
	rep := &Report{}
	deployer, err := bridge.NewSender(ctx, e.Chain.Client, e.Deployer)
	if err != nil {
		return nil, err
	}
	alice, _ := bridge.NewSender(ctx, e.Chain.Client, e.Alice)
	bob, _ := bridge.NewSender(ctx, e.Chain.Client, e.Bob)

	usdt, err := bridge.DeployToken(ctx, deployer, "seqbook test USDT", "USDT", 6)
	if err != nil {
		return nil, err
	}
	k, r, err := bridge.Deploy(ctx, deployer, e.Cluster, []bridge.Listing{{Symbol: "ETH"}, {Symbol: "USDT", Token: usdt.Address}})
	if err != nil {
		return nil, err
	}
	rep.Bridge, rep.USDT = k.Address, usdt.Address
	e.Step("bridge %s deployed at block %d (%d gas): threshold %d of %d replicas, ETH and USDT %s",
		k.Address.Hex(), r.BlockNumber, r.GasUsed, e.Cluster.ReplicaThreshold(), len(e.Cluster.Replicas), usdt.Address.Hex())

	books := make([]*client.Orderbook, len(e.ReplicaURLs))
	for i, u := range e.ReplicaURLs {
		if books[i], err = client.NewOrderbook(u, client.WithTimeout(30*time.Second)); err != nil {
			return nil, err
		}
	}
	rcfg := bridge.DefaultRelayConfig()
	rcfg.Chain, rcfg.Contract, rcfg.Cluster, rcfg.BridgeKey, rcfg.Replica = e.Chain.Client, k.Address, e.Cluster, e.BridgeKey, books[0]
	rcfg.StatePath, rcfg.Confirmations, rcfg.StartBlock, rcfg.Poll = filepath.Join(e.Dir, "relay-state.json"), confirmed, r.BlockNumber.Uint64(), 100*time.Millisecond
	rcfg.Logger = e.Logger
	rep.RelayState = rcfg.StatePath
	relayer, err := bridge.NewRelayer(rcfg)
	if err != nil {
		return nil, err
	}
	rctx, stopRelay := context.WithCancel(ctx)
	relayDone := make(chan struct{})
	go func() { defer close(relayDone); relayer.Run(rctx) }()
	defer func() { stopRelay(); <-relayDone }()
	e.Step("relayer started: %d confirmations, state in %s", confirmed, rcfg.StatePath)

	// Lock funds on chain.
	a, b := crypto.PubkeyToAddress(e.Alice.PublicKey), crypto.PubkeyToAddress(e.Bob.PublicKey)
	if r, err = k.DepositETH(ctx, alice, a, weiOf(aliceETH)); err != nil {
		return nil, err
	}
	rep.DepositBlocks = append(rep.DepositBlocks, r.BlockNumber.Uint64())
	e.Step("Alice %s locks 2 ETH in the bridge (block %d, %d gas)", a.Hex(), r.BlockNumber, r.GasUsed)
	if _, err = usdt.Mint(ctx, deployer, b, new(big.Int).SetUint64(bobUSDT)); err != nil {
		return nil, err
	}
	if _, err = usdt.Approve(ctx, bob, k.Address, new(big.Int).SetUint64(bobUSDT)); err != nil {
		return nil, err
	}
	if r, err = k.DepositToken(ctx, bob, usdt.Address, b, new(big.Int).SetUint64(bobUSDT)); err != nil {
		return nil, err
	}
	rep.DepositBlocks = append(rep.DepositBlocks, r.BlockNumber.Uint64())
	e.Step("Bob %s locks 500 USDT in the bridge (block %d, %d gas)", b.Hex(), r.BlockNumber, r.GasUsed)
	e.Chain.Advance(confirmed)
	e.Step("%d more blocks mined: the deposits are confirmed", confirmed)

	// Credited on every replica.
	for _, want := range []struct {
		who   common.Address
		token string
		units uint64
	}{{a, "ETH", aliceETH}, {b, "USDT", bobUSDT}} {
		for i, ob := range books {
			if err := waitBalance(ctx, ob, want.who, want.token, want.units); err != nil {
				return nil, fmt.Errorf("replica%d: %w", i+1, err)
			}
		}
		e.Step("every replica credits %s %s to %s", amount.Format(want.units), want.token, want.who.Hex())
	}

	// Trade.
	sell, err := books[0].PlaceOrder(ctx, e.Alice, client.OrderParams{Market: "ETH/USDT", Side: "sell", Quantity: tradeQty, Price: tradePx}, true)
	if err != nil {
		return nil, fmt.Errorf("Alice's sell: %w", err)
	}
	buy, err := books[len(books)-1].PlaceOrder(ctx, e.Bob, client.OrderParams{Market: "ETH/USDT", Side: "buy", Quantity: tradeQty, Price: tradePx}, true)
	if err != nil {
		return nil, fmt.Errorf("Bob's buy: %w", err)
	}
	if buy.Order.Status != obapi.StatusFilled {
		return nil, fmt.Errorf("Bob's buy is %s (%s), want filled against Alice's sell (%s)", buy.Order.Status, buy.Order.Reason, sell.Order.Status)
	}
	e.Step("Alice sells Bob 1 ETH at 200 USDT: filled at index %d", buy.Order.Index)

	// Withdraw on the orderbook to fresh addresses.
	aKey, _ := crypto.GenerateKey()
	bKey, _ := crypto.GenerateKey()
	rep.AliceTo, rep.BobTo = crypto.PubkeyToAddress(aKey.PublicKey), crypto.PubkeyToAddress(bKey.PublicKey)
	ws := []struct {
		key   *ecdsa.PrivateKey
		name  string
		token string
		units uint64
		to    common.Address
	}{{e.Alice, "Alice", "USDT", tradePx, rep.AliceTo}, {e.Bob, "Bob", "ETH", tradeQty, rep.BobTo}}
	ids := make([][32]byte, len(ws))
	for i, w := range ws {
		// The fill was read on the replica Bob traded at; the one this
		// withdrawal goes to checks the balance as it has applied it, and
		// may not have applied the trade yet.
		if err := waitBalance(ctx, books[i], crypto.PubkeyToAddress(w.key.PublicKey), w.token, w.units); err != nil {
			return nil, fmt.Errorf("replica%d before %s's withdrawal: %w", i+1, w.name, err)
		}
		res, err := books[i].Withdraw(ctx, w.key, client.WithdrawParams{Token: w.token, Amount: w.units, Recipient: w.to}, true)
		if err != nil {
			return nil, fmt.Errorf("%s's withdrawal: %w", w.name, err)
		}
		if res.Result.Status != obapi.StatusApplied {
			return nil, fmt.Errorf("%s's withdrawal is %s: %s", w.name, res.Result.Status, res.Result.Reason)
		}
		ids[i] = res.ID
		e.Step("%s withdraws %s %s on the orderbook to %s: withdrawal %s at index %d", w.name, amount.Format(w.units), w.token, w.to.Hex(), res.ID, res.Result.Index)
	}

	// Claim on chain.
	agg, err := client.NewAggregator(e.Aggregator, client.WithTimeout(10*time.Second))
	if err != nil {
		return nil, err
	}
	onchain := func() ([2]*big.Int, *big.Int, *big.Int, error) {
		u, err := usdt.BalanceOf(ctx, rep.AliceTo)
		if err != nil {
			return [2]*big.Int{}, nil, nil, err
		}
		eth, err := e.Chain.Client.BalanceAt(ctx, rep.BobTo, nil)
		if err != nil {
			return [2]*big.Int{}, nil, nil, err
		}
		be, err := e.Chain.Client.BalanceAt(ctx, k.Address, nil)
		if err != nil {
			return [2]*big.Int{}, nil, nil, err
		}
		bu, err := usdt.BalanceOf(ctx, k.Address)
		return [2]*big.Int{u, eth}, be, bu, err
	}
	if rep.RecipientsBefore, rep.BridgeETH[0], rep.BridgeUS[0], err = onchain(); err != nil {
		return nil, err
	}
	e.Step("on chain before the claims: Alice's recipient holds %s USDT, Bob's %s ETH; the bridge holds %s ETH and %s USDT",
		tokenText(rep.RecipientsBefore[0], 6), tokenText(rep.RecipientsBefore[1], 18), tokenText(rep.BridgeETH[0], 18), tokenText(rep.BridgeUS[0], 6))
	for i, id := range ids {
		res, err := bridge.ClaimWithdrawal(ctx, deployer, k, e.Cluster, agg, id)
		if err != nil {
			return nil, fmt.Errorf("claiming %s's withdrawal: %w", ws[i].name, err)
		}
		rep.Claims = append(rep.Claims, res)
		e.Step("claim %s: proof of %s signed by %v (threshold %d) verified on-chain, paid in block %d, %d gas",
			res.Proof.ID[:10], ws[i].name, res.Proof.Signers, res.Proof.Threshold, res.Receipt.BlockNumber, res.Receipt.GasUsed)
	}
	if rep.RecipientsAfter, rep.BridgeETH[1], rep.BridgeUS[1], err = onchain(); err != nil {
		return nil, err
	}
	e.Step("on chain after the claims: Alice's recipient holds %s USDT, Bob's %s ETH; the bridge holds %s ETH and %s USDT",
		tokenText(rep.RecipientsAfter[0], 6), tokenText(rep.RecipientsAfter[1], 18), tokenText(rep.BridgeETH[1], 18), tokenText(rep.BridgeUS[1], 6))

	// The contract's verdict on a second claim of the same proof.
	err = k.CallWithdraw(ctx, deployer.Address(), rep.Claims[0].Claim)
	rep.ReplayReason = bridge.RevertReason(err)
	if rep.ReplayReason == "" {
		return nil, fmt.Errorf("the bridge would pay withdrawal %s twice (%v)", rep.Claims[0].Proof.ID, err)
	}
	e.Step("contract's verdict: both withdrawals paid once on a quorum proof; claiming %s again reverts: %q",
		rep.Claims[0].Proof.ID[:10], rep.ReplayReason)
	return rep, nil
}

// waitBalance waits until a replica reports exactly units of token.
func waitBalance(ctx context.Context, ob *client.Orderbook, who common.Address, token string, units uint64) error {
	var last string
	for {
		b, err := ob.Balance(ctx, who, token, 0)
		if err == nil {
			if b.BalanceUnits == strconv.FormatUint(units, 10) {
				return nil
			}
			last = b.Balance
		} else {
			last = err.Error()
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s's %s balance is %s, want %s: %w", who.Hex(), token, last, amount.Format(units), ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// weiOf converts base units of ETH (6 decimals) to wei.
func weiOf(units uint64) *big.Int {
	return new(big.Int).Mul(new(big.Int).SetUint64(units), big.NewInt(1_000_000_000_000))
}

// tokenText writes token units with their decimals.
func tokenText(v *big.Int, decimals int) string {
	if v == nil {
		return "?"
	}
	f := new(big.Float).SetInt(v)
	f.Quo(f, new(big.Float).SetInt(new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(decimals)), nil)))
	return f.Text('f', -1)
}
