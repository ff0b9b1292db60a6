package replica

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/seqbook/seqbook/client"
	"github.com/seqbook/seqbook/client/obapi"
)

// The Go SDK's trading calls against a real replica (HTTP, in-memory
// sequencer): what each call sends is what the replica takes, and what it
// answers decodes into the SDK's types.
func TestSDKTradingCalls(t *testing.T) {
	// The SDK stamps expiries from the wall clock: so does this replica.
	clock := &manualClock{now: time.Now()}
	seq := NewMemSequencer(clock.Ms)
	r := startReplica(t, testConfig("replica1", clock), seq, NewMemStore())
	ob, err := client.NewOrderbook(r.srv.URL, client.WithChainID(31337))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	exp := uint64(clock.Now().Unix() + 600)
	res, err := ob.PlaceOrders(ctx, carol, []client.OrderParams{
		{Market: "ETH/USDT", Side: "sell", Quantity: 1_000_000, Price: 2000_000_000, Expiry: exp},
		{Market: "ETH/USDT", Side: "buy", Type: "post_only", Quantity: 1_000_000, Price: 1900_000_000, Nonce: 42, Expiry: exp},
		{Market: "ETH/USDT", Side: "buy", Type: "fok", Quantity: 1_000_000_000, Price: 1900_000_000, Expiry: exp}, // unfunded: 403
	}, true)
	if err != nil {
		t.Fatal(err)
	}
	if res.Results[0].Status != "open" || res.Results[1].Status != "open" || res.Results[2].Code != 403 {
		t.Fatalf("batch results %+v", res.Results)
	}
	if _, err := ob.PlaceOrders(ctx, carol, nil, false); !errors.Is(err, client.ErrInvalidParams) {
		t.Errorf("an empty batch: %v", err)
	}
	if _, err := ob.PlaceOrders(ctx, carol, []client.OrderParams{{Market: "ETH/USDT", Side: "buy", Type: "gtc", Quantity: 1, Price: 1}}, false); !errors.Is(err, client.ErrInvalidParams) {
		t.Errorf("an unknown order type: %v", err)
	}
	o, err := ob.OrderByNonce(ctx, addr(carol), 42)
	if err != nil || o.OrderID != res.OrderIDs[1] || o.OrderType != "post_only" {
		t.Fatalf("by nonce: %+v %v", o, err)
	}
	if _, err := ob.OrderByNonce(ctx, addr(carol), 43); err == nil {
		t.Error("an unused nonce named an order")
	}
	// Alice buys half of carol's ask.
	if _, err := ob.PlaceOrder(ctx, alice, client.OrderParams{Market: "ETH/USDT", Side: "buy", Type: "ioc", Quantity: 500_000, Price: 2000_000_000, Expiry: exp}, true); err != nil {
		t.Fatal(err)
	}
	h, err := ob.OrderHistory(ctx, addr(carol), client.HistoryQuery{Status: obapi.HistoryOpen, Limit: 1})
	if err != nil || len(h.Orders) != 1 || h.Orders[0].OrderID != res.OrderIDs[1] || h.Next == "" {
		t.Fatalf("history page 1: %+v %v", h, err)
	}
	h, err = ob.OrderHistory(ctx, addr(carol), client.HistoryQuery{Status: obapi.HistoryOpen, Before: h.Next})
	if err != nil || len(h.Orders) != 1 || h.Orders[0].Status != "partially_filled" {
		t.Fatalf("history page 2: %+v %v", h, err)
	}
	ts, err := ob.TraderTrades(ctx, addr(alice), "ETH/USDT", 0, 0)
	if err != nil || len(ts.Trades) != 1 || ts.Trades[0].Quantity != "0.5" {
		t.Fatalf("alice's trades: %+v %v", ts, err)
	}
	bs, err := ob.Balances(ctx, addr(carol))
	if err != nil || len(bs.Balances) != 2 || bs.Balances[0].Token != "ETH" || bs.Balances[0].Reserved != "0.5" {
		t.Fatalf("balances: %+v %v", bs, err)
	}
	ms, err := ob.Markets(ctx)
	if err != nil || len(ms.Markets) != 1 || ms.Markets[0].LastPrice != "2000" || ms.Markets[0].BestBid != "1900" {
		t.Fatalf("markets: %+v %v", ms, err)
	}
	ca, err := ob.CancelAll(ctx, carol, "", client.OpParams{Expiry: exp}, true)
	if err != nil || ca.Result == nil || ca.Result.Cancelled == nil || *ca.Result.Cancelled != 2 {
		t.Fatalf("cancel all: %+v %v", ca, err)
	}
	if _, err := ob.CancelAll(ctx, carol, "ETHUSDT", client.OpParams{}, false); !errors.Is(err, client.ErrInvalidParams) {
		t.Errorf("a bad market: %v", err)
	}
	// Signed elsewhere, submitted together.
	req, id, err := ob.SignOrder(ctx, bob, client.OrderParams{Market: "ETH/USDT", Side: "sell", Quantity: 1_000_000, Price: 2100_000_000, Expiry: exp})
	if err != nil {
		t.Fatal(err)
	}
	sres, err := ob.PlaceSignedOrders(ctx, []obapi.OrderRequest{req}, false)
	if err != nil || sres.OrderIDs[0] != hexID(id) || sres.Results[0].Status != "accepted" {
		t.Fatalf("signed batch: %+v %v", sres, err)
	}
	waitFor(t, "the signed order to apply", 10*time.Second, func() bool {
		o, err := ob.Order(ctx, id)
		return err == nil && o.Status == "open"
	})
}

// An order the replica holds but that is not applied within the wait comes
// back to the SDK as "pending" (HTTP 202) with the message on how to
// follow it; resending the same signed request changes nothing (409), and
// the order applies once finality resumes.
func TestSDKWaitAnswersPending(t *testing.T) {
	clock := &manualClock{now: time.Now()}
	seq := NewMemSequencer(clock.Ms)
	r := startReplica(t, testConfig("replica1", clock), seq, NewMemStore())
	// The replica is told to wait 90 % of the client's 300 ms.
	ob, err := client.NewOrderbook(r.srv.URL, client.WithChainID(31337), client.WithTimeout(300*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	seq.Hold()
	res, err := ob.PlaceOrder(ctx, carol, client.OrderParams{Market: "ETH/USDT", Side: "sell", Quantity: 1_000_000, Price: 2000_000_000,
		Expiry: uint64(clock.Now().Unix() + 600)}, true)
	if err != nil {
		t.Fatal(err)
	}
	if res.Order == nil || res.Order.Status != obapi.StatusPending || res.Order.OrderID != res.OrderID.String() ||
		res.Accepted == nil || res.Accepted.Message == "" {
		t.Fatalf("not applied within the wait: order %+v, accepted %+v; want pending with a message", res.Order, res.Accepted)
	}
	var ae *client.APIError
	if _, err := ob.SubmitOrder(ctx, res.Request, false); !errors.As(err, &ae) || ae.Status != 409 {
		t.Fatalf("resending the pending order: %v; want 409", err)
	}
	seq.Release()
	r.waitApplied(t, 1)
	o, err := ob.Order(ctx, res.OrderID)
	if err != nil || o.Status != "open" {
		t.Fatalf("after release: %+v %v", o, err)
	}
	if r.Applied() != 1 {
		t.Fatalf("applied %d batches; the resend must not add one", r.Applied())
	}
}
