package client

import (
	"context"
	"crypto/ecdsa"
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/ethereum/go-ethereum/common"

	"github.com/seqbook/seqbook/client/eip712"
	"github.com/seqbook/seqbook/client/obapi"
)

// The trading API of DESIGN §8: batch placement, cancel-all, orders named
// by nonce, history and reference data.

// OrderTypes lists the order types a replica takes, for messages.
const OrderTypes = "limit, market, ioc, fok, post_only"

func validOrderType(t string) bool {
	return slices.Contains([]string{"limit", "market", "ioc", "fok", "post_only"}, t)
}

// BatchResult is a replica's answer to PlaceOrders.
type BatchResult struct {
	// OrderIDs are the orders' EIP-712 digests, computed locally, in the
	// order given; Requests what was sent.
	OrderIDs []string
	Requests []obapi.OrderRequest
	// Results are the replica's per-order results, in the same order:
	// an order id with a status, or an error for that order alone.
	Results []obapi.OrderResult
	Raw     json.RawMessage
}

// PlaceOrders signs every order with key and submits them in one request
// (POST /orders, at most obapi.OrdersBatchMax). Orders without a nonce get
// fresh distinct ones. A refused order does not refuse the others: check
// each entry of Results. With wait, the replica answers once every accepted
// order is applied (or its wait timed out). The error is for the request as
// a whole (bad parameters, transport, a refused body, or an answer whose
// ids differ from the signed digests, returned with ErrIDMismatch).
func (ob *Orderbook) PlaceOrders(ctx context.Context, key *ecdsa.PrivateKey, orders []OrderParams, wait bool) (*BatchResult, error) {
	if len(orders) == 0 || len(orders) > obapi.OrdersBatchMax {
		return nil, fmt.Errorf("%w: %d orders; a batch holds 1 to %d", ErrInvalidParams, len(orders), obapi.OrdersBatchMax)
	}
	res := &BatchResult{}
	for i, p := range orders {
		req, digest, err := ob.SignOrder(ctx, key, p)
		if err != nil {
			return nil, fmt.Errorf("order %d: %w", i, err)
		}
		res.Requests = append(res.Requests, req)
		res.OrderIDs = append(res.OrderIDs, hex32(digest))
	}
	return ob.postOrders(ctx, res, wait)
}

// PlaceSignedOrders submits orders signed elsewhere (by SignOrder, a wallet,
// or several keys) in one request, like PlaceOrders. Their ids are
// recomputed locally from the signed fields.
func (ob *Orderbook) PlaceSignedOrders(ctx context.Context, reqs []obapi.OrderRequest, wait bool) (*BatchResult, error) {
	if len(reqs) == 0 || len(reqs) > obapi.OrdersBatchMax {
		return nil, fmt.Errorf("%w: %d orders; a batch holds 1 to %d", ErrInvalidParams, len(reqs), obapi.OrdersBatchMax)
	}
	d, err := ob.Domain(ctx)
	if err != nil {
		return nil, err
	}
	res := &BatchResult{Requests: reqs}
	for i, r := range reqs {
		id, err := OrderRequestID(d, &r)
		if err != nil {
			return nil, fmt.Errorf("order %d: %w", i, err)
		}
		res.OrderIDs = append(res.OrderIDs, hex32(id))
	}
	return ob.postOrders(ctx, res, wait)
}

// OrderRequestID computes the id (EIP-712 digest) of a signed order
// request whose integers are decimal base units.
func OrderRequestID(d eip712.Domain, r *obapi.OrderRequest) ([32]byte, error) {
	var u [4]uint64
	for i, n := range []obapi.Number{r.Quantity, r.Price, r.Nonce, r.Expiry} {
		v, err := strconv.ParseUint(string(n), 10, 64)
		if err != nil {
			return [32]byte{}, fmt.Errorf("%w: %q is not a decimal integer", ErrInvalidParams, n)
		}
		u[i] = v
	}
	if !common.IsHexAddress(r.Trader) {
		return [32]byte{}, fmt.Errorf("%w: trader %q is not an address", ErrInvalidParams, r.Trader)
	}
	return d.Digest(&eip712.Order{Trader: common.HexToAddress(r.Trader), Market: r.Market, Side: r.Side, OrderType: r.OrderType,
		Quantity: u[0], Price: u[1], Nonce: u[2], Expiry: u[3]}), nil
}

func (ob *Orderbook) postOrders(ctx context.Context, res *BatchResult, wait bool) (*BatchResult, error) {
	body := struct {
		Orders []obapi.OrderRequest `json:"orders"`
	}{res.Requests}
	raw, err := postJSON(ctx, &ob.o, ob.base, ob.base+"/orders"+ob.waitQuery(ctx, wait), body)
	if err != nil {
		return nil, err
	}
	res.Raw = raw
	var ans obapi.OrdersBatchResult
	if err := json.Unmarshal(raw, &ans); err != nil {
		return res, fmt.Errorf("%s: malformed answer to a batch of orders: %w", ob.base, err)
	}
	res.Results = ans.Results
	if len(ans.Results) != len(res.Requests) {
		return res, fmt.Errorf("%s answered %d results for %d orders", ob.base, len(ans.Results), len(res.Requests))
	}
	for i, r := range ans.Results {
		if r.OrderID != "" && !strings.EqualFold(r.OrderID, res.OrderIDs[i]) {
			return res, fmt.Errorf("%w: order %d signed %s, replica says %q", ErrIDMismatch, i, res.OrderIDs[i], r.OrderID)
		}
	}
	return res, nil
}

// CancelAll signs and submits the cancellation of every open order of the
// key's trader in market, or in every market when market is "" (POST
// /cancel_all). With wait, Result.Cancelled is the number cancelled.
func (ob *Orderbook) CancelAll(ctx context.Context, key *ecdsa.PrivateKey, market string, p OpParams, wait bool) (*OpResult, error) {
	if market != "" {
		if base, quote, ok := strings.Cut(market, "/"); !ok || base == "" || quote == "" || strings.Contains(quote, "/") {
			return nil, fmt.Errorf("%w: market %q must be BASE/QUOTE, e.g. ETH/USDT, or empty for every market", ErrInvalidParams, market)
		}
	}
	s, err := ob.signOp(ctx, key, p, func(trader common.Address, p OpParams) eip712.Message {
		return &eip712.CancelAll{Trader: trader, Market: market, Nonce: p.Nonce, Expiry: p.Expiry}
	})
	if err != nil {
		return nil, err
	}
	req := obapi.CancelAllRequest{Trader: s.trader.Hex(), Market: market,
		Nonce: obapi.Uint(s.p.Nonce), Expiry: obapi.Uint(s.p.Expiry), Signature: s.sig}
	return ob.submitOp(ctx, "/cancel_all", req, s.digest, wait)
}

// OrderByNonce reads the order trader signed with nonce (GET
// /orders/by-nonce): its client-side name, usable before it is sequenced.
func (ob *Orderbook) OrderByNonce(ctx context.Context, trader common.Address, nonce uint64) (*obapi.Order, error) {
	q := url.Values{"trader": {trader.Hex()}, "nonce": {strconv.FormatUint(nonce, 10)}}
	var out obapi.Order
	if err := getJSON(ctx, &ob.o, ob.base, ob.base+"/orders/by-nonce?"+q.Encode(), &out); err != nil {
		return nil, err
	}
	if !strings.EqualFold(out.Trader, trader.Hex()) {
		return &out, fmt.Errorf("%s answered an order of %s, asked %s", ob.base, out.Trader, trader.Hex())
	}
	return &out, nil
}

// HistoryQuery selects a trader's orders: Status one of obapi.HistoryOpen,
// HistoryFilled, HistoryCancelled, HistoryRejected, HistoryAll ("" = all);
// Limit 0 = the replica's page size; Before the Next of the previous page.
type HistoryQuery struct {
	Status string
	Limit  int
	Before string
}

// OrderHistory reads a trader's orders, newest first (GET
// /orders?trader=&status=). Page on with Before = answer.Next.
func (ob *Orderbook) OrderHistory(ctx context.Context, trader common.Address, hq HistoryQuery) (*obapi.OrderHistory, error) {
	if hq.Status == "" {
		hq.Status = obapi.HistoryAll
	}
	q := url.Values{"trader": {trader.Hex()}, "status": {hq.Status}}
	if hq.Limit > 0 {
		q.Set("limit", strconv.Itoa(hq.Limit))
	}
	if hq.Before != "" {
		q.Set("before", hq.Before)
	}
	var out obapi.OrderHistory
	if err := getJSON(ctx, &ob.o, ob.base, ob.base+"/orders?"+q.Encode(), &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// TraderTrades reads the trades a trader took part in (as maker or taker)
// with sequence number above after (GET /trades?trader=); market "" means
// all markets.
func (ob *Orderbook) TraderTrades(ctx context.Context, trader common.Address, market string, after uint64, limit int) (*obapi.Trades, error) {
	return ob.trades(ctx, url.Values{"trader": {trader.Hex()}}, market, after, limit)
}

// Balances reads every token balance of an account, available and
// reserved (GET /balances). Unlike Balance it is not signed.
func (ob *Orderbook) Balances(ctx context.Context, address common.Address) (*obapi.Balances, error) {
	var out obapi.Balances
	if err := getJSON(ctx, &ob.o, ob.base, ob.base+"/balances?"+url.Values{"address": {address.Hex()}}.Encode(), &out); err != nil {
		return nil, err
	}
	if !strings.EqualFold(out.Address, address.Hex()) {
		return &out, fmt.Errorf("%s answered the balances of %s, asked %s", ob.base, out.Address, address.Hex())
	}
	return &out, nil
}

// Markets reads every market's best bid and ask, last price and 24 h
// volume (GET /markets).
func (ob *Orderbook) Markets(ctx context.Context) (*obapi.Markets, error) {
	var out obapi.Markets
	if err := getJSON(ctx, &ob.o, ob.base, ob.base+"/markets", &out); err != nil {
		return nil, err
	}
	return &out, nil
}
