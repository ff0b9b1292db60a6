// Package load drives a running seqbook network for the demo, the
// benchmarks and the chaos run: it signs EIP-712 orders ahead of time,
// posts them to replicas, and watches replicas and nodes (applied index,
// state digest, finalized index) to tell when orders took effect
// everywhere.
package load

import (
	"crypto/ecdsa"
	"encoding/json"
	"fmt"
	"runtime"
	"sync"

	"github.com/ethereum/go-ethereum/common"

	"github.com/seqbook/seqbook/client/eip712"
	"github.com/seqbook/seqbook/client/ethsig"
	"github.com/seqbook/seqbook/client/obapi"
)

// Market is the market every generated order trades.
const Market = "ETH/USDT"

// Order shape of generated traffic: 0.001 ETH at 2000 USDT (2 USDT each),
// small enough that a bench trader's genesis funds last for hundreds of
// thousands of orders.
const (
	OrderQuantity = 1_000         // 0.001 ETH in base units
	OrderPrice    = 2_000_000_000 // 2000 USDT in base units
)

// Signed is an order signed ahead of time: its id (the EIP-712 digest) and
// the exact JSON body POST /order gets.
type Signed struct {
	ID     string
	Trader common.Address
	Side   string
	Body   []byte
}

// Plan says which orders to sign.
type Plan struct {
	ChainID uint64
	Traders []*ecdsa.PrivateKey
	Count   int
	// NonceBase is added to every nonce; pick it so no earlier run against
	// the same network used the same (trader, nonce) (e.g. unix ns).
	NonceBase uint64
	// Expiry is the unix second after which the orders may no longer be
	// sequenced (DESIGN §3.1: at most 1 h ahead of the batch time).
	Expiry uint64
}

// Sign signs plan.Count orders on all cores. Order k is placed by trader
// k mod len(Traders) and alternates sides in pairs of traders (sell, buy,
// sell, buy, …) at one price, so the book keeps crossing: resting orders
// are filled by the next opposite order instead of piling up towards the
// per-account open-order bound, and the traffic exercises matching.
func Sign(plan Plan) ([]Signed, error) {
	if len(plan.Traders) < 2 {
		return nil, fmt.Errorf("load: need at least 2 traders, got %d", len(plan.Traders))
	}
	if plan.Count < 0 {
		return nil, fmt.Errorf("load: negative order count")
	}
	domain := eip712.NewDomain(plan.ChainID)
	addrs := make([]common.Address, len(plan.Traders))
	for i, k := range plan.Traders {
		addrs[i] = ethsig.Address(k)
	}
	out := make([]Signed, plan.Count)
	workers := runtime.GOMAXPROCS(0)
	var wg sync.WaitGroup
	errs := make([]error, workers)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for k := w; k < plan.Count; k += workers {
				t := k % len(plan.Traders)
				side := "sell"
				if k%2 == 1 {
					side = "buy"
				}
				o := eip712.Order{
					Trader:    addrs[t],
					Market:    Market,
					Side:      side,
					OrderType: "limit",
					Quantity:  OrderQuantity,
					Price:     OrderPrice,
					Nonce:     plan.NonceBase + uint64(k),
					Expiry:    plan.Expiry,
				}
				s, err := SignOrder(domain, plan.Traders[t], o)
				if err != nil {
					errs[w] = err
					return
				}
				out[k] = s
			}
		}(w)
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

// SignOrder signs one EIP-712 order and encodes its POST /order body.
func SignOrder(domain eip712.Domain, key *ecdsa.PrivateKey, o eip712.Order) (Signed, error) {
	digest := domain.Digest(&o)
	sig, err := ethsig.Sign(key, digest)
	if err != nil {
		return Signed{}, fmt.Errorf("load: signing: %w", err)
	}
	req := obapi.OrderRequest{
		Trader:    o.Trader.Hex(),
		Market:    o.Market,
		Side:      o.Side,
		OrderType: o.OrderType,
		Quantity:  obapi.Uint(o.Quantity),
		Price:     obapi.Uint(o.Price),
		Nonce:     obapi.Uint(o.Nonce),
		Expiry:    obapi.Uint(o.Expiry),
		Signature: fmt.Sprintf("0x%x", sig),
	}
	body, err := json.Marshal(req)
	if err != nil {
		return Signed{}, err
	}
	return Signed{ID: fmt.Sprintf("0x%x", digest), Trader: o.Trader, Side: o.Side, Body: body}, nil
}
