// Command step2-signatures is step 2 of the orderbook tutorial: no login,
// every order is signed by its sender's Ethereum key. The signed text is the
// tutorial's legacy form (DESIGN §3.2), an EIP-191 personal_sign of
//
//	Order {order_type} {quantity} {base_token} at {price} {quote_token}
//
// with the amounts written as Python's float repr ("1.0", "200.0"), so the
// tutorial's Python client (eth_account's sign_message) works unchanged.
//
//	POST /order   {"sender","order_type","base_token","quote_token","quantity","price","signature"}
//	GET  /balance ?address=&token=        {address, token, balance, balance_units}
//	GET  /orders                          open orders
//
// Answers: 400 malformed (the error names the field), 401 when the
// signature is not the sender's, 403 insufficient balance, 409 when the
// signature was already used. The text carries no nonce, so a signature
// places at most one order: the service remembers every signature that
// placed one and refuses it afterwards (replay protection). Signing the same
// text again gives the same signature (RFC 6979), so an identical second
// order needs a different quantity or price; the real API (EIP-712, with
// nonces) has no such limit.
//
// The tutorial's two accounts are funded at start:
// 0xc66F8Fba940064B5bA8d437d6fF829E60134230E with 1000 USDT and
// 0x7F3b0b1530A0d0Ce3D721a6e976C7eA4296A0f5d with 5 ETH (their keys are in
// client/keys: TutorialUser1, TutorialUser2).
//
//	step2-signatures [--port 5001] [--host 127.0.0.1]
package main

import (
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"os"

	"github.com/gin-gonic/gin"

	"github.com/seqbook/seqbook/client/keys"
	"github.com/seqbook/seqbook/internal/cli"
	"github.com/seqbook/seqbook/tutorial/internal/tut"
)

// usedSignaturesMax bounds the replay-protection memory (32 bytes per
// signature that placed an order). When it is full the service refuses new
// orders with 503 rather than forget a signature and let it be replayed: a
// tutorial service is restarted long before a million orders.
const usedSignaturesMax = 1 << 20

type server struct {
	book *tut.Book
	// used holds keccak256(r‖s) of every signature that placed an order;
	// v is left out so the same signature written with v 0/1 instead of
	// 27/28 counts as the same. Guarded by the book's lock.
	used map[[32]byte]struct{}
}

func newServer() (*server, error) {
	book, err := tut.NewBook(tut.TutorialGenesis(keys.TutorialUser1Address.Hex(), keys.TutorialUser2Address.Hex()))
	if err != nil {
		return nil, err
	}
	return &server{book: book, used: map[[32]byte]struct{}{}}, nil
}

func (s *server) routes() http.Handler {
	r := tut.NewEngine()
	r.GET("/balance", tut.BalanceHandler(s.book))
	r.GET("/orders", s.orders)
	r.POST("/order", s.placeOrder)
	return r
}

func (s *server) orders(c *gin.Context) {
	c.JSON(http.StatusOK, s.book.OpenOrders())
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
	var placed *tut.Placed
	s.book.Lock(func(l *tut.Locked) {
		if _, dup := s.used[ck.SigKey]; dup {
			e = &tut.HTTPError{Status: http.StatusConflict,
				Msg: "signature already used: a legacy order carries no nonce, so each signature places one order; sign a different order (quantity or price) or use the EIP-712 API"}
			return
		}
		if len(s.used) >= usedSignaturesMax {
			e = &tut.HTTPError{Status: http.StatusServiceUnavailable, Msg: "replay-protection memory is full; restart the tutorial service"}
			return
		}
		placed, e = l.Place(ck.Order)
		if e != nil {
			if e.Status == http.StatusConflict {
				// The id is the hash of the signed text, so this is an
				// identical order (another signature of the same text).
				e.Msg = fmt.Sprintf("an identical order %q is already open (id %s)", ck.Message, ck.Order.ID)
			}
			return
		}
		// A signature counts as used once it has placed an order; one
		// refused for balance or validity may be sent again later.
		s.used[ck.SigKey] = struct{}{}
	})
	if e != nil {
		tut.Abort(c, e)
		return
	}
	slog.Info("order", cli.KeyTrader, ck.Order.Account, cli.KeyOrderID, ck.Order.ID, "message", ck.Message, "status", placed.Status, "fills", len(placed.Fills))
	c.JSON(http.StatusOK, placed)
}

func main() {
	fs := flag.NewFlagSet("step2-signatures", flag.ContinueOnError)
	lf := cli.AddLogFlags(fs)
	port := fs.Int("port", 5001, "TCP port to listen on")
	host := fs.String("host", "127.0.0.1", "address to listen on")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "step2-signatures: tutorial step 2, an orderbook where every order is signed (EIP-191 personal_sign of the legacy text)")
		fs.PrintDefaults()
	}
	if code, done := cli.Parse(fs, os.Args[1:]); done {
		os.Exit(code)
	}
	if _, err := lf.SetDefault(os.Stderr); err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", fs.Name(), err)
		os.Exit(2)
	}
	s, err := newServer()
	if err != nil {
		slog.Error("start", "err", err)
		os.Exit(1)
	}
	os.Exit(tut.Serve("step2-signatures", *host, *port, s.routes()))
}
