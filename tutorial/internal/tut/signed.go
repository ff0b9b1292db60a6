package tut

import (
	"fmt"
	"net/http"
	"strings"

	"github.com/ethereum/go-ethereum/common"
	"github.com/gin-gonic/gin"

	"github.com/seqbook/seqbook/client/eip712"
	"github.com/seqbook/seqbook/client/ethsig"
	"github.com/seqbook/seqbook/client/legacy"
)

// OrderRequest is the tutorial's signed order (steps 2 to 4): the seed's
// order fields plus the sender and its EIP-191 signature of the legacy
// text (DESIGN §3.2).
type OrderRequest struct {
	Sender     string      `json:"sender"`
	OrderType  string      `json:"order_type"`
	BaseToken  string      `json:"base_token"`
	QuoteToken string      `json:"quote_token"`
	Quantity   AmountField `json:"quantity"`
	Price      AmountField `json:"price"`
	Signature  string      `json:"signature"`
}

// Address parses an address field; accounts are kept under the EIP-55
// checksummed spelling, so any capitalisation names the same account.
func Address(field, s string) (string, *HTTPError) {
	if s == "" {
		return "", BadRequest("field %q is required", field)
	}
	if !strings.HasPrefix(s, "0x") || !common.IsHexAddress(s) {
		return "", BadRequest("field %q: %q is not a 0x-prefixed 20-byte hex address", field, s)
	}
	return common.HexToAddress(s).Hex(), nil
}

// Signed is a signed order that passed every stateless check, with the
// message its signature covers.
type Signed struct {
	Order   OrderIn
	Message string
	// SigKey is keccak256(r‖s): v is left out so the same signature
	// written with v 0/1 instead of 27/28 counts as the same.
	SigKey [32]byte
}

// CheckSigned validates a signed order request and its signature (steps 2
// and 3): everything that needs no state, so it runs before the book is
// locked.
func CheckSigned(req OrderRequest) (*Signed, *HTTPError) {
	sender, e := Address("sender", req.Sender)
	if e != nil {
		return nil, e
	}
	if e := Side(req.OrderType); e != nil {
		return nil, e
	}
	if e := Token("base_token", req.BaseToken); e != nil {
		return nil, e
	}
	if e := Token("quote_token", req.QuoteToken); e != nil {
		return nil, e
	}
	qty, e := PositiveAmount("quantity", req.Quantity)
	if e != nil {
		return nil, e
	}
	price, e := PositiveAmount("price", req.Price)
	if e != nil {
		return nil, e
	}
	// The signed text names the amounts as floats; refuse amounts a float
	// cannot name exactly, or one signature would cover several orders.
	if err := legacy.CheckExact(qty); err != nil {
		return nil, BadRequest("field \"quantity\": %v", err)
	}
	if err := legacy.CheckExact(price); err != nil {
		return nil, BadRequest("field \"price\": %v", err)
	}
	if req.Signature == "" {
		return nil, BadRequest("field \"signature\" is required")
	}
	sig, err := ethsig.ParseHex(req.Signature)
	if err != nil {
		return nil, BadRequest("field \"signature\": %v", err)
	}
	msg := legacy.Message(req.OrderType, qty, price, req.BaseToken, req.QuoteToken)
	signer, err := legacy.Recover(msg, sig)
	if err != nil {
		return nil, &HTTPError{Status: http.StatusUnauthorized, Msg: fmt.Sprintf("invalid signature: %v", err)}
	}
	if signer.Hex() != sender {
		// Saying which text was checked is what lets a client find a
		// formatting mismatch (1 vs 1.0) in its own message.
		return nil, &HTTPError{Status: http.StatusUnauthorized,
			Msg: fmt.Sprintf("invalid signature: it is not the sender's signature of %q", msg)}
	}
	h := legacy.Hash(msg)
	return &Signed{
		Order: OrderIn{
			ID: "0x" + common.Bytes2Hex(h[:]), Account: sender, Side: req.OrderType,
			Base: req.BaseToken, Quote: req.QuoteToken, Qty: qty, Price: price,
		},
		Message: msg,
		SigKey:  eip712.Keccak256(sig[:64]),
	}, nil
}

// BalanceHandler answers GET /balance?address=&token= with the account's
// available balance (see Balance).
func BalanceHandler(book *Book) func(c *gin.Context) {
	return func(c *gin.Context) {
		addr, e := Address("address", c.Query("address"))
		if e != nil {
			Abort(c, e)
			return
		}
		token := c.Query("token")
		if e := Token("token", token); e != nil {
			Abort(c, e)
			return
		}
		WriteBalance(c, Balance{Address: addr, Token: token}, book.Balance(addr, token))
	}
}
