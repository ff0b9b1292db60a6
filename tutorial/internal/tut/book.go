// Package tut is what the tutorial steps share: an in-memory orderbook
// (the real matcher behind a mutex), the seed-shaped JSON they answer with,
// strict request decoding, the signed legacy order of steps 2 to 4, and the
// HTTP server loop.
//
// Amounts in steps 1 and 2's answers are JSON numbers written with their
// exact decimal text (1000, 1.5, 0.000001), the shape the tutorial's Python
// services answered with; they are produced from base units, never through
// a float. Requests take amounts as JSON numbers or decimal strings.
package tut

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"

	"github.com/seqbook/seqbook/client/amount"
	"github.com/seqbook/seqbook/internal/matcher"
)

// Amount is base units written to JSON as an exact decimal number.
type Amount uint64

// MarshalJSON writes the amount as a JSON number: amount.Format's output
// ("1.5", "2000") is always valid JSON number text.
func (a Amount) MarshalJSON() ([]byte, error) { return []byte(amount.Format(uint64(a))), nil }

// Funding is one genesis balance.
type Funding struct {
	Account string
	Token   string
	Amount  uint64
}

// TutorialGenesis returns the seed's balances: the first account holds
// 1000 USDT, the second 5 ETH.
func TutorialGenesis(first, second string) []Funding {
	return []Funding{
		{Account: first, Token: "USDT", Amount: 1000 * amount.Scale},
		{Account: second, Token: "ETH", Amount: 5 * amount.Scale},
	}
}

// Book is the orderbook of one tutorial service: the deterministic matcher
// plus a lock, since HTTP handlers run concurrently.
type Book struct {
	mu  sync.Mutex
	eng *matcher.Engine
}

// NewBook returns a book with the genesis balances credited.
func NewBook(genesis []Funding) (*Book, error) {
	eng := matcher.New(matcher.DefaultConfig())
	for _, f := range genesis {
		if err := eng.Deposit(f.Account, f.Token, f.Amount); err != nil {
			return nil, fmt.Errorf("genesis %s %s: %w", f.Account, f.Token, err)
		}
	}
	return &Book{eng: eng}, nil
}

// Lock runs fn with the book locked, for callers that must check something
// of their own (a used signature) atomically with placing an order.
func (b *Book) Lock(fn func(*Locked)) {
	b.mu.Lock()
	defer b.mu.Unlock()
	fn(&Locked{b: b})
}

// Locked is the book while its lock is held.
type Locked struct{ b *Book }

// OrderIn is a validated order as the tutorial takes it: always a limit
// order (the seed has no other kind).
type OrderIn struct {
	ID      string
	Account string
	Side    string // "buy" | "sell"
	Base    string
	Quote   string
	Qty     uint64
	Price   uint64
}

// Fill is one trade of a placed order, seen from that order.
type Fill struct {
	MakerOrder   string `json:"maker_order"`
	Counterparty string `json:"counterparty"` // the maker's account
	Price        Amount `json:"price"`
	Quantity     Amount `json:"quantity"`
	Quote        Amount `json:"quote"` // quote tokens paid by the buyer to the seller
}

// Placed is the answer to an accepted order: the seed's
// {"message","order_id"} plus what happened to it.
type Placed struct {
	Message   string `json:"message"`
	OrderID   string `json:"order_id"`
	Status    string `json:"status"` // "open" | "partially_filled" | "filled" | "cancelled" (a remainder too small to pay one quote unit at the book's price or its own)
	Filled    Amount `json:"filled"`
	Remaining Amount `json:"remaining"`
	Fills     []Fill `json:"fills"`
	// SelfTradeCancelled lists the sender's own resting orders that this
	// order would have filled against: they were cancelled instead.
	SelfTradeCancelled []string `json:"self_trade_cancelled,omitempty"`
}

// Place submits a limit order. The error carries the HTTP status to answer
// with: 403 for insufficient balance, 409 for a clashing order id, 400 for
// anything else the matcher refuses.
func (l *Locked) Place(in OrderIn) (*Placed, *HTTPError) {
	side, err := matcher.ParseSide(in.Side)
	if err != nil {
		return nil, BadRequest("order_type must be \"buy\" or \"sell\", got %q", in.Side)
	}
	res, err := l.b.eng.Place(matcher.Order{
		ID: in.ID, Account: in.Account, Market: in.Base + "/" + in.Quote,
		Side: side, Type: matcher.Limit, Quantity: in.Qty, Price: in.Price,
	})
	switch {
	case errors.Is(err, matcher.ErrInsufficientBalance):
		need, tok := in.Qty, in.Base
		if side == matcher.Buy {
			need, _ = amount.Quote(in.Qty, in.Price)
			tok = in.Quote
		}
		have := l.b.eng.Balance(in.Account, tok).Available
		return nil, &HTTPError{Status: http.StatusForbidden,
			Msg: fmt.Sprintf("insufficient %s balance: the order needs %s, available %s", tok, amount.Format(need), amount.Format(have))}
	case errors.Is(err, matcher.ErrDuplicateOrderID):
		return nil, &HTTPError{Status: http.StatusConflict, Msg: "an open order already has id " + in.ID}
	case errors.Is(err, matcher.ErrZeroQuoteAmount):
		return nil, BadRequest("quantity × price is below one base unit (0.000001) of %s", in.Quote)
	case errors.Is(err, matcher.ErrQuoteOverflow):
		return nil, BadRequest("quantity × price exceeds the largest amount")
	case errors.Is(err, matcher.ErrInvalidMarket):
		return nil, BadRequest("base_token and quote_token must be two different tokens")
	case errors.Is(err, matcher.ErrTooManyOpenOrders):
		return nil, &HTTPError{Status: http.StatusForbidden, Msg: "too many open orders for this account"}
	case err != nil:
		return nil, BadRequest("order refused: %v", err)
	}
	out := &Placed{Message: "Order placed", OrderID: in.ID, Status: res.Status.String(),
		Filled: Amount(res.Filled), Remaining: Amount(res.Remaining), Fills: []Fill{}}
	for _, t := range res.Trades {
		out.Fills = append(out.Fills, Fill{MakerOrder: t.MakerOrder, Counterparty: t.Maker,
			Price: Amount(t.Price), Quantity: Amount(t.Quantity), Quote: Amount(t.Quote)})
	}
	for _, c := range res.SelfTradeCancelled {
		out.SelfTradeCancelled = append(out.SelfTradeCancelled, c.ID)
	}
	return out, nil
}

// OpenOrder is one resting order in the seed's shape; quantity is what is
// left to fill.
type OpenOrder struct {
	ID         string `json:"id"`
	User       string `json:"user"`
	OrderType  string `json:"order_type"`
	BaseToken  string `json:"base_token"`
	QuoteToken string `json:"quote_token"`
	Quantity   Amount `json:"quantity"`
	Price      Amount `json:"price"`
	Filled     Amount `json:"filled"`
	Status     string `json:"status"`
}

// OpenOrders lists resting orders in book order (per market: bids best
// first, then asks best first).
func (b *Book) OpenOrders() []OpenOrder {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := []OpenOrder{}
	for _, o := range b.eng.OpenOrders() {
		base, quote, _ := strings.Cut(o.Market, "/")
		out = append(out, OpenOrder{ID: o.ID, User: o.Account, OrderType: o.Side.String(), BaseToken: base, QuoteToken: quote,
			Quantity: Amount(o.Remaining), Price: Amount(o.Price), Filled: Amount(o.Filled), Status: o.Status.String()})
	}
	return out
}

// Balance returns what an account can spend of a token: its available
// balance (funds reserved by its open orders are not counted, as the seed
// debited them when the order was placed).
func (b *Book) Balance(account, token string) uint64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.eng.Balance(account, token).Available
}

// CheckInvariants runs the matcher's own consistency checks (tests).
func (b *Book) CheckInvariants() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.eng.CheckInvariants()
}
