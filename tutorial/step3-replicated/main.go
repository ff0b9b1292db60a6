// Command step3-replicated is step 3 of the orderbook tutorial: the signed
// orderbook of step 2, replicated through the sequencer. Several instances
// run against one sequencer cluster; none applies an order when it receives
// it. Instead:
//
//   - POST /order checks the order (fields, the sender's signature, the
//     sender's balance as this instance knows it) and sends it to the
//     sequencer as a batch: a JSON list of order payloads, like the
//     tutorial's zellular.send([order_payload]). The answer is
//     {"message": "Order sent to consensus layer (the sequencer): …", "order_id": …}.
//   - A loop follows the app's finalized batches (through the client SDK,
//     which checks each batch's hash, the chaining hash and the nodes'
//     quorum BLS signature itself, trusting no single node) and applies
//     every order in them, in order, to the matcher.
//
// Every instance applies the same orders in the same order, so every
// instance holds the same book and balances. The apply loop re-verifies
// each order's signature: an instance trusts no other instance's checks.
// State is in memory: a restarted instance rebuilds it by following the
// app from the first batch.
//
//	POST /order   {"sender","order_type","base_token","quote_token","quantity","price","signature"}
//	GET  /balance ?address=&token=        {address, token, balance, balance_units} (available)
//	GET  /orders                          open orders
//	GET  /state                           {"app","applied_index","open_orders"}
//
// Answers: 400 malformed (the error names the field), 401 when the
// signature is not the sender's, 403 insufficient balance, 409 when this
// instance already applied that signature, 503 when no sequencer node takes
// the batch. The tutorial's two accounts are funded at start, as in step 2.
//
//	step3-replicated --cluster cluster.json [--port 5001] [--host 127.0.0.1] [--app tutorial-orderbook]
//
// The app name defaults to "tutorial-orderbook", not the cluster's app, so
// tutorial instances can share a cluster with the real replicas without
// reading each other's batches.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/seqbook/seqbook/client"
	"github.com/seqbook/seqbook/client/amount"
	"github.com/seqbook/seqbook/client/cluster"
	"github.com/seqbook/seqbook/client/keys"
	"github.com/seqbook/seqbook/internal/cli"
	"github.com/seqbook/seqbook/tutorial/internal/replicated"
	"github.com/seqbook/seqbook/tutorial/internal/tut"
)

// sequencer is what the service needs from the sequencer: the client
// SDK's Sequencer, or an in-memory one in tests.
type sequencer interface {
	Send(ctx context.Context, app string, body []byte) error
	Follow(ctx context.Context, app string, after uint64, prev [32]byte, fn func(client.Batch) error) error
}

var _ sequencer = (*client.Sequencer)(nil)

type server struct {
	// ledger is the replicated book: the orders of the app's finalized
	// batches, applied in order (package replicated, shared with step 4).
	ledger *replicated.Ledger
	seq    sequencer
	app    string
	log    *slog.Logger
}

func newServer(seq sequencer, app string, log *slog.Logger) (*server, error) {
	l, err := replicated.NewLedger(tut.TutorialGenesis(keys.TutorialUser1Address.Hex(), keys.TutorialUser2Address.Hex()), nil)
	if err != nil {
		return nil, err
	}
	return &server{ledger: l, seq: seq, app: app, log: log}, nil
}

func (s *server) routes() http.Handler {
	r := tut.NewEngine()
	r.GET("/balance", tut.BalanceHandler(s.ledger.Book()))
	r.GET("/orders", s.orders)
	r.GET("/state", s.state)
	r.POST("/order", s.placeOrder)
	return r
}

func (s *server) placeOrder(c *gin.Context) {
	var req tut.OrderRequest
	if e := tut.DecodeJSON(c, &req); e != nil {
		tut.Abort(c, e)
		return
	}
	ck, e := tut.CheckSigned(req)
	if e != nil {
		tut.Abort(c, e)
		return
	}
	// The basic balance check of the tutorial, against this instance's
	// view; the apply loop decides for good, on every instance alike.
	need, tok := ck.Order.Qty, ck.Order.Base
	if ck.Order.Side == "buy" {
		q, err := amount.Quote(ck.Order.Qty, ck.Order.Price)
		if err != nil {
			tut.Abort(c, tut.BadRequest("quantity × price exceeds the largest amount"))
			return
		}
		need, tok = q, ck.Order.Quote
	}
	if s.ledger.SignatureUsed(ck.SigKey) {
		tut.Abort(c, &tut.HTTPError{Status: http.StatusConflict,
			Msg: "signature already used: a legacy order carries no nonce, so each signature places one order"})
		return
	}
	if have := s.ledger.Book().Balance(ck.Order.Account, tok); have < need {
		tut.Abort(c, &tut.HTTPError{Status: http.StatusForbidden,
			Msg: fmt.Sprintf("insufficient %s balance: the order needs %s, available %s", tok, amount.Format(need), amount.Format(have))})
		return
	}
	body, err := json.Marshal([]replicated.OrderPayload{replicated.PayloadOf(ck.Order, req.Signature)})
	if err != nil {
		tut.Abort(c, &tut.HTTPError{Status: http.StatusInternalServerError, Msg: err.Error()})
		return
	}
	ctx, cancel := context.WithTimeout(c.Request.Context(), 10*time.Second)
	defer cancel()
	if err := s.seq.Send(ctx, s.app, body); err != nil {
		tut.Abort(c, &tut.HTTPError{Status: http.StatusServiceUnavailable, Msg: fmt.Sprintf("no sequencer node took the order: %v", err)})
		return
	}
	s.log.Info("order sent to the sequencer", cli.KeyTrader, ck.Order.Account, cli.KeyOrderID, ck.Order.ID, "message", ck.Message)
	c.JSON(http.StatusOK, gin.H{"message": replicated.SentMessage, "order_id": ck.Order.ID})
}

// apply applies one finalized batch: every order in it, in order, each
// checked again (package replicated). Nothing in a batch stops the loop: a
// batch that is not a list of orders, or an order that does not check out,
// is skipped, the same way on every instance.
func (s *server) apply(b client.Batch) error {
	results, err := s.ledger.Apply(b.Index, b.Body)
	if err != nil {
		s.log.Warn("skipping a batch that is not a list of orders", "index", b.Index, "err", err)
	}
	for i, o := range results {
		if o.Placed == nil {
			s.log.Info("order not applied", cli.KeyIndex, b.Index, "position", i, cli.KeyOrderID, o.ID, "reason", o.Reason)
			continue
		}
		s.log.Info("order applied", cli.KeyIndex, b.Index, cli.KeyOrderID, o.ID, "status", o.Status, "fills", len(o.Placed.Fills))
	}
	return nil
}

func (s *server) orders(c *gin.Context) { c.JSON(http.StatusOK, s.ledger.Book().OpenOrders()) }

func (s *server) state(c *gin.Context) {
	applied, _ := s.ledger.State()
	c.JSON(http.StatusOK, gin.H{"app": s.app, "applied_index": applied, "open_orders": len(s.ledger.Book().OpenOrders())})
}

// run follows the app from the first batch until ctx ends.
func (s *server) run(ctx context.Context) error {
	err := s.seq.Follow(ctx, s.app, 0, [32]byte{}, s.apply)
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

func main() {
	fs := flag.NewFlagSet("step3-replicated", flag.ContinueOnError)
	lf := cli.AddLogFlags(fs)
	clusterPath := fs.String("cluster", "", "cluster file of a running sequencer cluster (required)")
	port := fs.Int("port", 5001, "TCP port to listen on")
	host := fs.String("host", "127.0.0.1", "address to listen on")
	app := fs.String("app", "tutorial-orderbook", "sequencer app the instances share")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "step3-replicated: tutorial step 3, the signed orderbook replicated through the sequencer")
		fmt.Fprintln(fs.Output(), "usage: step3-replicated --cluster cluster.json [--port 5001]")
		fs.PrintDefaults()
	}
	if code, done := cli.Parse(fs, os.Args[1:]); done {
		os.Exit(code)
	}
	if *clusterPath == "" {
		fmt.Fprintln(os.Stderr, "step3-replicated: --cluster is required (the cluster file of a running sequencer, e.g. from seqbook localnet)")
		os.Exit(2)
	}
	logger, err := lf.SetDefault(os.Stderr)
	if err != nil {
		fmt.Fprintf(os.Stderr, "step3-replicated: %v\n", err)
		os.Exit(2)
	}
	log := logger.With("service", "step3-replicated", "port", *port)
	c, err := cluster.Load(*clusterPath)
	if err != nil {
		log.Error("start", "err", err)
		os.Exit(1)
	}
	s, err := newServer(client.NewSequencer(c, client.WithLogger(log)), *app, log)
	if err != nil {
		log.Error("start", "err", err)
		os.Exit(1)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := s.run(ctx); err != nil {
			log.Error("following the sequencer", "err", err)
			stop()
		}
	}()
	code := tut.Serve("step3-replicated", *host, *port, s.routes())
	stop()
	wg.Wait()
	os.Exit(code)
}
