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
//	GET  /balance ?address=&token=        a bare JSON number
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
	"strings"

	"github.com/ethereum/go-ethereum/common"
	"github.com/gin-gonic/gin"

	"github.com/seqbook/seqbook/client/eip712"
	"github.com/seqbook/seqbook/client/ethsig"
	"github.com/seqbook/seqbook/client/keys"
	"github.com/seqbook/seqbook/client/legacy"
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
	r.GET("/balance", s.balance)
	r.GET("/orders", s.orders)
	r.POST("/order", s.placeOrder)
	return r
}

// address parses an address field; accounts are kept under the EIP-55
// checksummed spelling, so any capitalisation names the same account.
func address(field, s string) (string, *tut.HTTPError) {
	if s == "" {
		return "", tut.BadRequest("field %q is required", field)
	}
	if !strings.HasPrefix(s, "0x") || !common.IsHexAddress(s) {
		return "", tut.BadRequest("field %q: %q is not a 0x-prefixed 20-byte hex address", field, s)
	}
	return common.HexToAddress(s).Hex(), nil
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

func (s *server) orders(c *gin.Context) {
	c.JSON(http.StatusOK, s.book.OpenOrders())
}

// orderRequest is the tutorial's signed order.
type orderRequest struct {
	Sender     string          `json:"sender"`
	OrderType  string          `json:"order_type"`
	BaseToken  string          `json:"base_token"`
	QuoteToken string          `json:"quote_token"`
	Quantity   tut.AmountField `json:"quantity"`
	Price      tut.AmountField `json:"price"`
	Signature  string          `json:"signature"`
}

// checked is a request that passed every stateless check, with the message
// its signature covers.
type checked struct {
	order   tut.OrderIn
	message string
	sigKey  [32]byte
}

// check validates a request and its signature: everything that needs no
// state, so it runs before the book is locked.
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
	// The signed text names the amounts as floats; refuse amounts a float
	// cannot name exactly, or one signature would cover several orders.
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
		// Saying which text was checked is what lets a client find a
		// formatting mismatch (1 vs 1.0) in its own message.
		return nil, &tut.HTTPError{Status: http.StatusUnauthorized,
			Msg: fmt.Sprintf("invalid signature: it is not the sender's signature of %q", msg)}
	}
	h := legacy.Hash(msg)
	return &checked{
		order: tut.OrderIn{
			ID: "0x" + common.Bytes2Hex(h[:]), Account: sender, Side: req.OrderType,
			Base: req.BaseToken, Quote: req.QuoteToken, Qty: qty, Price: price,
		},
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
	var placed *tut.Placed
	s.book.Lock(func(l *tut.Locked) {
		if _, dup := s.used[ck.sigKey]; dup {
			e = &tut.HTTPError{Status: http.StatusConflict,
				Msg: "signature already used: a legacy order carries no nonce, so each signature places one order; sign a different order (quantity or price) or use the EIP-712 API"}
			return
		}
		if len(s.used) >= usedSignaturesMax {
			e = &tut.HTTPError{Status: http.StatusServiceUnavailable, Msg: "replay-protection memory is full; restart the tutorial service"}
			return
		}
		placed, e = l.Place(ck.order)
		if e != nil {
			if e.Status == http.StatusConflict {
				// The id is the hash of the signed text, so this is an
				// identical order (another signature of the same text).
				e.Msg = fmt.Sprintf("an identical order %q is already open (id %s)", ck.message, ck.order.ID)
			}
			return
		}
		// A signature counts as used once it has placed an order; one
		// refused for balance or validity may be sent again later.
		s.used[ck.sigKey] = struct{}{}
	})
	if e != nil {
		tut.Abort(c, e)
		return
	}
	slog.Info("order", "sender", ck.order.Account, "id", ck.order.ID, "message", ck.message, "status", placed.Status, "fills", len(placed.Fills))
	c.JSON(http.StatusOK, placed)
}

func main() {
	fs := flag.NewFlagSet("step2-signatures", flag.ExitOnError)
	port := fs.Int("port", 5001, "TCP port to listen on")
	host := fs.String("host", "127.0.0.1", "address to listen on")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "step2-signatures: tutorial step 2, an orderbook where every order is signed (EIP-191 personal_sign of the legacy text)")
		fs.PrintDefaults()
	}
	_ = fs.Parse(os.Args[1:])
	s, err := newServer()
	if err != nil {
		slog.Error("start", "err", err)
		os.Exit(1)
	}
	os.Exit(tut.Serve("step2-signatures", *host, *port, s.routes()))
}
