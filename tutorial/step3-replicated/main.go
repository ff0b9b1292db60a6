// Command step3-replicated is step 3 of the orderbook tutorial: the signed
// orderbook of step 2, replicated through the sequencer. Several instances
// run against one sequencer cluster; none applies an order when it receives
// it. Instead:
//
//   - POST /order checks the order (fields, the sender's signature, the
//     sender's balance as this instance knows it) and sends it to the
//     sequencer as a batch: a JSON list of order payloads, like the
//     tutorial's zellular.send([order_payload]). The answer is
//     {"message": "Order sent to consensus layer", "order_id": …}.
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
//	GET  /balance ?address=&token=        a bare JSON number (available balance)
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
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"github.com/gin-gonic/gin"

	"github.com/seqbook/seqbook/client"
	"github.com/seqbook/seqbook/client/amount"
	"github.com/seqbook/seqbook/client/cluster"
	"github.com/seqbook/seqbook/client/eip712"
	"github.com/seqbook/seqbook/client/ethsig"
	"github.com/seqbook/seqbook/client/keys"
	"github.com/seqbook/seqbook/client/legacy"
	"github.com/seqbook/seqbook/tutorial/internal/tut"
)

// usedSignaturesMax bounds the replay-protection memory, as in step 2.
// Past it, orders are skipped identically on every instance (they all see
// the same sequence) rather than a signature being forgotten.
const usedSignaturesMax = 1 << 20

// sequencer is what the service needs from the sequencer: the client
// SDK's Sequencer, or an in-memory one in tests.
type sequencer interface {
	Send(ctx context.Context, app string, body []byte) error
	Follow(ctx context.Context, app string, after uint64, prev [32]byte, fn func(client.Batch) error) error
}

var _ sequencer = (*client.Sequencer)(nil)

type server struct {
	book *tut.Book
	// used holds keccak256(r‖s) of every signature that placed an order
	// (guarded by the book's lock), as in step 2.
	used    map[[32]byte]struct{}
	seq     sequencer
	app     string
	applied atomic.Uint64
	log     *slog.Logger
}

func newServer(seq sequencer, app string, log *slog.Logger) (*server, error) {
	book, err := tut.NewBook(tut.TutorialGenesis(keys.TutorialUser1Address.Hex(), keys.TutorialUser2Address.Hex()))
	if err != nil {
		return nil, err
	}
	return &server{book: book, used: map[[32]byte]struct{}{}, seq: seq, app: app, log: log}, nil
}

func (s *server) routes() http.Handler {
	r := tut.NewEngine()
	r.GET("/balance", s.balance)
	r.GET("/orders", s.orders)
	r.GET("/state", s.state)
	r.POST("/order", s.placeOrder)
	return r
}

// orderRequest is the tutorial's signed order (step 2's request).
type orderRequest struct {
	Sender     string          `json:"sender"`
	OrderType  string          `json:"order_type"`
	BaseToken  string          `json:"base_token"`
	QuoteToken string          `json:"quote_token"`
	Quantity   tut.AmountField `json:"quantity"`
	Price      tut.AmountField `json:"price"`
	Signature  string          `json:"signature"`
}

// orderPayload is one order inside a batch: the tutorial's order_payload,
// with the id every instance recomputes (the EIP-191 hash of the signed
// text) instead of a random uuid.
type orderPayload struct {
	ID         string          `json:"id"`
	User       string          `json:"user"`
	OrderType  string          `json:"order_type"`
	BaseToken  string          `json:"base_token"`
	QuoteToken string          `json:"quote_token"`
	Quantity   json.RawMessage `json:"quantity"`
	Price      json.RawMessage `json:"price"`
	Signature  string          `json:"signature"`
}

// checked is an order that passed every check that needs no state.
type checked struct {
	order   tut.OrderIn
	message string
	sigKey  [32]byte
}

func address(field, s string) (string, *tut.HTTPError) {
	if s == "" {
		return "", tut.BadRequest("field %q is required", field)
	}
	if !strings.HasPrefix(s, "0x") || !common.IsHexAddress(s) {
		return "", tut.BadRequest("field %q: %q is not a 0x-prefixed 20-byte hex address", field, s)
	}
	return common.HexToAddress(s).Hex(), nil
}

// check validates an order and its signature (the same checks as step 2;
// the apply loop runs them again on every order it applies).
func check(req orderRequest) (*checked, *tut.HTTPError) {
	sender, e := address("sender", req.Sender)
	if e != nil {
		return nil, e
	}
	if e := tut.Side(req.OrderType); e != nil {
		return nil, e
	}
	if e := tut.Token("base_token", req.BaseToken); e != nil {
		return nil, e
	}
	if e := tut.Token("quote_token", req.QuoteToken); e != nil {
		return nil, e
	}
	qty, e := tut.PositiveAmount("quantity", req.Quantity)
	if e != nil {
		return nil, e
	}
	price, e := tut.PositiveAmount("price", req.Price)
	if e != nil {
		return nil, e
	}
	if err := legacy.CheckExact(qty); err != nil {
		return nil, tut.BadRequest("field \"quantity\": %v", err)
	}
	if err := legacy.CheckExact(price); err != nil {
		return nil, tut.BadRequest("field \"price\": %v", err)
	}
	if req.Signature == "" {
		return nil, tut.BadRequest("field \"signature\" is required")
	}
	sig, err := ethsig.ParseHex(req.Signature)
	if err != nil {
		return nil, tut.BadRequest("field \"signature\": %v", err)
	}
	msg := legacy.Message(req.OrderType, qty, price, req.BaseToken, req.QuoteToken)
	signer, err := legacy.Recover(msg, sig)
	if err != nil {
		return nil, &tut.HTTPError{Status: http.StatusUnauthorized, Msg: fmt.Sprintf("invalid signature: %v", err)}
	}
	if signer.Hex() != sender {
		return nil, &tut.HTTPError{Status: http.StatusUnauthorized,
			Msg: fmt.Sprintf("invalid signature: it is not the sender's signature of %q", msg)}
	}
	h := legacy.Hash(msg)
	return &checked{
		order: tut.OrderIn{ID: "0x" + common.Bytes2Hex(h[:]), Account: sender, Side: req.OrderType,
			Base: req.BaseToken, Quote: req.QuoteToken, Qty: qty, Price: price},
		message: msg,
		sigKey:  eip712.Keccak256(sig[:64]),
	}, nil
}

func (s *server) placeOrder(c *gin.Context) {
	var req orderRequest
	if e := tut.DecodeJSON(c, &req); e != nil {
		tut.Abort(c, e)
		return
	}
	ck, e := check(req)
	if e != nil {
		tut.Abort(c, e)
		return
	}
	// The basic balance check of the tutorial, against this instance's
	// view; the apply loop decides for good, on every instance alike.
	need, tok := ck.order.Qty, ck.order.Base
	if ck.order.Side == "buy" {
		q, err := amount.Quote(ck.order.Qty, ck.order.Price)
		if err != nil {
			tut.Abort(c, tut.BadRequest("quantity × price exceeds the largest amount"))
			return
		}
		need, tok = q, ck.order.Quote
	}
	s.book.Lock(func(*tut.Locked) {
		if _, dup := s.used[ck.sigKey]; dup {
			e = &tut.HTTPError{Status: http.StatusConflict,
				Msg: "signature already used: a legacy order carries no nonce, so each signature places one order"}
		}
	})
	if e != nil {
		tut.Abort(c, e)
		return
	}
	if have := s.book.Balance(ck.order.Account, tok); have < need {
		tut.Abort(c, &tut.HTTPError{Status: http.StatusForbidden,
			Msg: fmt.Sprintf("insufficient %s balance: the order needs %s, available %s", tok, amount.Format(need), amount.Format(have))})
		return
	}
	payload := []orderPayload{{
		ID: ck.order.ID, User: ck.order.Account, OrderType: ck.order.Side, BaseToken: ck.order.Base, QuoteToken: ck.order.Quote,
		Quantity: json.RawMessage(amount.Format(ck.order.Qty)), Price: json.RawMessage(amount.Format(ck.order.Price)),
		Signature: req.Signature,
	}}
	body, err := json.Marshal(payload)
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
	s.log.Info("order sent to the sequencer", "sender", ck.order.Account, "id", ck.order.ID, "message", ck.message)
	c.JSON(http.StatusOK, gin.H{"message": "Order sent to consensus layer", "order_id": ck.order.ID})
}

// apply applies one finalized batch: every order in it, in order. Nothing
// in a batch stops the loop: a batch that is not a list of orders, or an
// order that does not check out, is skipped, the same way on every
// instance.
func (s *server) apply(b client.Batch) error {
	defer s.applied.Store(b.Index)
	var orders []orderPayload
	if err := json.Unmarshal(b.Body, &orders); err != nil {
		s.log.Warn("skipping a batch that is not a list of orders", "index", b.Index, "err", err)
		return nil
	}
	for i, p := range orders {
		ck, e := check(orderRequest{Sender: p.User, OrderType: p.OrderType, BaseToken: p.BaseToken, QuoteToken: p.QuoteToken,
			Quantity: tut.AmountField(p.Quantity), Price: tut.AmountField(p.Price), Signature: p.Signature})
		if e == nil && p.ID != ck.order.ID {
			e = tut.BadRequest("id %s is not the hash of the signed order (%s)", p.ID, ck.order.ID)
		}
		if e != nil {
			s.log.Warn("skipping an invalid order", "index", b.Index, "position", i, "err", e.Msg)
			continue
		}
		var placed *tut.Placed
		s.book.Lock(func(l *tut.Locked) {
			if _, dup := s.used[ck.sigKey]; dup {
				e = &tut.HTTPError{Status: http.StatusConflict, Msg: "signature already used"}
				return
			}
			if len(s.used) >= usedSignaturesMax {
				e = &tut.HTTPError{Status: http.StatusServiceUnavailable, Msg: "replay-protection memory is full"}
				return
			}
			if placed, e = l.Place(ck.order); e == nil {
				s.used[ck.sigKey] = struct{}{}
			}
		})
		if e != nil {
			s.log.Info("order not applied", "index", b.Index, "id", ck.order.ID, "reason", e.Msg)
			continue
		}
		s.log.Info("order applied", "index", b.Index, "id", ck.order.ID, "status", placed.Status, "fills", len(placed.Fills))
	}
	return nil
}

func (s *server) balance(c *gin.Context) {
	addr, e := address("address", c.Query("address"))
	if e != nil {
		tut.Abort(c, e)
		return
	}
	token := c.Query("token")
	if e := tut.Token("token", token); e != nil {
		tut.Abort(c, e)
		return
	}
	tut.WriteAmount(c, s.book.Balance(addr, token))
}

func (s *server) orders(c *gin.Context) { c.JSON(http.StatusOK, s.book.OpenOrders()) }

func (s *server) state(c *gin.Context) {
	c.JSON(http.StatusOK, gin.H{"app": s.app, "applied_index": s.applied.Load(), "open_orders": len(s.book.OpenOrders())})
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
	fs := flag.NewFlagSet("step3-replicated", flag.ExitOnError)
	clusterPath := fs.String("cluster", "", "cluster file of a running sequencer cluster (required)")
	port := fs.Int("port", 5001, "TCP port to listen on")
	host := fs.String("host", "127.0.0.1", "address to listen on")
	app := fs.String("app", "tutorial-orderbook", "sequencer app the instances share")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "step3-replicated: tutorial step 3, the signed orderbook replicated through the sequencer")
		fmt.Fprintln(fs.Output(), "usage: step3-replicated --cluster cluster.json [--port 5001]")
		fs.PrintDefaults()
	}
	_ = fs.Parse(os.Args[1:])
	if *clusterPath == "" {
		fmt.Fprintln(os.Stderr, "step3-replicated: --cluster is required (the cluster file of a running sequencer, e.g. from seqbook localnet)")
		os.Exit(2)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, nil)).With("service", "step3-replicated", "port", *port)
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
