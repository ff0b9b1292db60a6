package matcher_test

import (
	"cmp"
	"math/big"
	"slices"
	"strings"

	"github.com/seqbook/seqbook/client/amount"
	"github.com/seqbook/seqbook/internal/matcher"
)

// refEngine is the naive reference matcher: slices, linear scans, math/big
// for every product, no indexes and no cleverness, written straight from the
// rules of DESIGN §5 so that it is obviously right. The fast Engine must
// produce exactly the same results, errors and balances on any stream.
type refEngine struct {
	openMax  int
	bals     []matcher.Balance // one entry per (account, token) ever touched
	accounts []string          // accounts that ever received a deposit
	orders   []*refOrder       // open orders in acceptance order
	orderSeq uint64
	tradeSeq uint64
}

type refOrder struct {
	matcher.OrderInfo
	base, quote string
}

func newRef(openMax int) *refEngine { return &refEngine{openMax: openMax} }

// refQuote is floor(q×p/10^6) with big integers; ok is false above amount.Max.
func refQuote(q, p uint64) (uint64, bool) {
	x := new(big.Int).Mul(new(big.Int).SetUint64(q), new(big.Int).SetUint64(p))
	x.Quo(x, big.NewInt(1_000_000))
	if !x.IsUint64() || x.Uint64() > amount.Max {
		return 0, false
	}
	return x.Uint64(), true
}

func mustRefQuote(q, p uint64) uint64 {
	v, ok := refQuote(q, p)
	if !ok {
		panic("refQuote overflow")
	}
	return v
}

func (r *refEngine) bal(acct, tok string) *matcher.Balance {
	for i := range r.bals {
		if r.bals[i].Account == acct && r.bals[i].Token == tok {
			return &r.bals[i]
		}
	}
	r.bals = append(r.bals, matcher.Balance{Account: acct, Token: tok})
	return &r.bals[len(r.bals)-1]
}

func (r *refEngine) peek(acct, tok string) matcher.Balance {
	for _, b := range r.bals {
		if b.Account == acct && b.Token == tok {
			return b
		}
	}
	return matcher.Balance{Account: acct, Token: tok}
}

func (r *refEngine) supply(tok string) uint64 {
	var s uint64
	for _, b := range r.bals {
		if b.Token == tok {
			s += b.Available + b.Reserved
		}
	}
	return s
}

func refValidName(s string) bool { return s != "" && len(s) <= matcher.NameBytesMax }
func refValidToken(s string) bool {
	return refValidName(s) && !strings.Contains(s, "/")
}

func (r *refEngine) Deposit(acct, tok string, amt uint64) error {
	switch {
	case !refValidName(acct):
		return matcher.ErrInvalidAccount
	case !refValidToken(tok):
		return matcher.ErrInvalidToken
	case amt == 0:
		return matcher.ErrZeroAmount
	case amt > amount.Max:
		return matcher.ErrAmountTooLarge
	case amt > amount.Max-r.supply(tok):
		return matcher.ErrSupplyOverflow
	}
	if !slices.Contains(r.accounts, acct) {
		r.accounts = append(r.accounts, acct)
	}
	r.bal(acct, tok).Available += amt
	return nil
}

func (r *refEngine) Withdraw(acct, tok string, amt uint64) error {
	switch {
	case !refValidName(acct):
		return matcher.ErrInvalidAccount
	case !refValidToken(tok):
		return matcher.ErrInvalidToken
	case amt == 0:
		return matcher.ErrZeroAmount
	case amt > amount.Max:
		return matcher.ErrAmountTooLarge
	case r.peek(acct, tok).Available < amt:
		return matcher.ErrInsufficientBalance
	}
	r.bal(acct, tok).Available -= amt
	return nil
}

func (r *refEngine) Place(o matcher.Order) (matcher.PlaceResult, error) {
	var res matcher.PlaceResult
	parts := strings.Split(o.Market, "/")
	switch {
	case !refValidName(o.ID):
		return res, matcher.ErrInvalidOrderID
	case !refValidName(o.Account):
		return res, matcher.ErrInvalidAccount
	case len(o.Market) > matcher.NameBytesMax || len(parts) != 2 ||
		!refValidToken(parts[0]) || !refValidToken(parts[1]) || parts[0] == parts[1]:
		return res, matcher.ErrInvalidMarket
	case o.Side != matcher.Buy && o.Side != matcher.Sell:
		return res, matcher.ErrInvalidSide
	case o.Type < matcher.Limit || o.Type > matcher.PostOnly:
		return res, matcher.ErrInvalidOrderType
	case o.Quantity == 0:
		return res, matcher.ErrZeroQuantity
	case o.Price == 0:
		return res, matcher.ErrZeroPrice
	case o.Quantity > amount.Max || o.Price > amount.Max:
		return res, matcher.ErrAmountTooLarge
	}
	cost, ok := refQuote(o.Quantity, o.Price)
	if !ok {
		return res, matcher.ErrQuoteOverflow
	}
	if cost == 0 {
		return res, matcher.ErrZeroQuoteAmount
	}
	open := 0
	for _, x := range r.orders {
		if x.ID == o.ID {
			return res, matcher.ErrDuplicateOrderID
		}
		if x.Account == o.Account {
			open++
		}
	}
	rests := o.Type == matcher.Limit || o.Type == matcher.PostOnly
	if rests && open >= r.openMax {
		return res, matcher.ErrTooManyOpenOrders
	}
	base, quote := parts[0], parts[1]
	resTok, need := base, o.Quantity
	if o.Side == matcher.Buy {
		resTok, need = quote, cost
	}
	if r.peek(o.Account, resTok).Available < need {
		return res, matcher.ErrInsufficientBalance
	}
	// Post-only: any crossing resting order, whoever owns it, means the
	// order would take. Fill-or-kill: the crossing orders of other
	// accounts, taken in priority order, must cover the whole quantity
	// before a fill would pay zero quote units (the dust rule).
	crossing := r.crossingByPriority(o)
	if o.Type == matcher.PostOnly && len(crossing) > 0 {
		return res, matcher.ErrWouldTakeLiquidity
	}
	if o.Type == matcher.FOK {
		need := o.Quantity
		for _, x := range crossing {
			if x.Account == o.Account || need == 0 {
				continue
			}
			q := min(need, x.Remaining)
			if mustRefQuote(q, x.Price) == 0 {
				break
			}
			need -= q
		}
		if need > 0 {
			return res, matcher.ErrCannotFillInFull
		}
	}

	b := r.bal(o.Account, resTok)
	b.Available -= need
	b.Reserved += need
	r.orderSeq++
	res.Seq = r.orderSeq
	remaining := o.Quantity
	for remaining > 0 {
		// The best crossing resting order on the other side: best price,
		// then earliest.
		crossing := r.crossingByPriority(o)
		if len(crossing) == 0 {
			break
		}
		best := crossing[0]
		if best.Account == o.Account {
			// Self-trade prevention: cancel the resting one, go on.
			info := best.OrderInfo
			info.Status = matcher.StatusCancelled
			res.SelfTradeCancelled = append(res.SelfTradeCancelled, info)
			r.remove(best)
			r.releaseAll(best)
			continue
		}
		q := min(remaining, best.Remaining)
		p := best.Price
		pay := mustRefQuote(q, p)
		if pay == 0 {
			// A fill would pay nothing: matching stops and the
			// remainder is cancelled, whatever the order's type.
			res.RemainderDust = true
			break
		}
		buyer, seller := o.Account, best.Account
		// The buyer's order: the taker's limit, or the maker's own price.
		buyerLimit, buyerRemaining := o.Price, remaining
		if o.Side == matcher.Sell {
			buyer, seller = best.Account, o.Account
			buyerLimit, buyerRemaining = best.Price, best.Remaining
		}
		consumed := mustRefQuote(buyerRemaining, buyerLimit) - mustRefQuote(buyerRemaining-q, buyerLimit)
		if consumed < pay {
			panic("reference: consumed < pay")
		}
		bq := r.bal(buyer, quote)
		bq.Reserved -= consumed
		bq.Available += consumed - pay
		r.bal(buyer, base).Available += q
		r.bal(seller, base).Reserved -= q
		r.bal(seller, quote).Available += pay

		remaining -= q
		best.Remaining -= q
		best.Filled += q
		r.tradeSeq++
		res.Trades = append(res.Trades, matcher.Trade{
			Seq: r.tradeSeq, Market: o.Market, MakerOrder: best.ID, TakerOrder: o.ID,
			Maker: best.Account, Taker: o.Account, TakerSide: o.Side,
			Price: p, Quantity: q, Quote: pay, MakerRemaining: best.Remaining,
		})
		switch {
		case best.Remaining == 0:
			r.remove(best)
		case mustRefQuote(best.Remaining, p) == 0:
			// What is left of the maker could never pay: cancelled.
			info := best.OrderInfo
			info.Status = matcher.StatusCancelled
			res.DustCancelled = append(res.DustCancelled, info)
			r.remove(best)
			r.releaseAll(best)
		}
	}
	res.Filled = o.Quantity - remaining
	res.Remaining = remaining
	if remaining > 0 && rests && mustRefQuote(remaining, o.Price) == 0 {
		res.RemainderDust = true
	}
	switch {
	case remaining == 0:
		res.Status = matcher.StatusFilled
	case rests && !res.RemainderDust:
		res.Status = matcher.StatusOpen
		if res.Filled > 0 {
			res.Status = matcher.StatusPartiallyFilled
		}
		r.orders = append(r.orders, &refOrder{
			OrderInfo: matcher.OrderInfo{
				ID: o.ID, Account: o.Account, Market: o.Market, Side: o.Side, Type: matcher.Limit,
				Price: o.Price, Quantity: o.Quantity, Filled: res.Filled, Remaining: remaining,
				Seq: res.Seq,
			},
			base: base, quote: quote,
		})
	default:
		held := remaining
		if o.Side == matcher.Buy {
			held = mustRefQuote(remaining, o.Price)
		}
		b := r.bal(o.Account, resTok)
		b.Reserved -= held
		b.Available += held
		res.Status = matcher.StatusCancelled
	}
	return res, nil
}

// crossingByPriority returns the resting orders o would meet, best first:
// the other side of its market at or better than its limit, best price
// then earliest.
func (r *refEngine) crossingByPriority(o matcher.Order) []*refOrder {
	var out []*refOrder
	for _, x := range r.orders {
		if x.Market != o.Market || x.Side == o.Side {
			continue
		}
		if o.Side == matcher.Buy && x.Price > o.Price || o.Side == matcher.Sell && x.Price < o.Price {
			continue
		}
		out = append(out, x)
	}
	slices.SortFunc(out, func(x, y *refOrder) int { return bookPriority(x.OrderInfo, y.OrderInfo) })
	return out
}

// bookPriority orders two resting orders of the same side: best price
// first (highest bid, lowest ask), then earliest.
func bookPriority(x, y matcher.OrderInfo) int {
	if x.Price != y.Price {
		if x.Side == matcher.Buy {
			return cmp.Compare(y.Price, x.Price)
		}
		return cmp.Compare(x.Price, y.Price)
	}
	return cmp.Compare(x.Seq, y.Seq)
}

func (r *refEngine) remove(x *refOrder) {
	r.orders = slices.DeleteFunc(r.orders, func(y *refOrder) bool { return y == x })
}

// releaseAll gives back what a (removed) order held.
func (r *refEngine) releaseAll(x *refOrder) {
	tok, amt := x.base, x.Remaining
	if x.Side == matcher.Buy {
		tok, amt = x.quote, mustRefQuote(x.Remaining, x.Price)
	}
	b := r.bal(x.Account, tok)
	b.Reserved -= amt
	b.Available += amt
}

func (r *refEngine) Cancel(acct, id string) (matcher.OrderInfo, error) {
	for _, x := range r.orders {
		if x.ID != id {
			continue
		}
		if x.Account != acct {
			return matcher.OrderInfo{}, matcher.ErrNotOwner
		}
		info := x.OrderInfo
		info.Status = matcher.StatusCancelled
		r.remove(x)
		r.releaseAll(x)
		return info, nil
	}
	return matcher.OrderInfo{}, matcher.ErrUnknownOrder
}

// CancelAll cancels the account's open orders of market ("" = all), in
// acceptance order.
func (r *refEngine) CancelAll(acct, market string) []matcher.OrderInfo {
	var out []matcher.OrderInfo
	for _, x := range slices.Clone(r.orders) {
		if x.Account != acct || market != "" && x.Market != market {
			continue
		}
		info := x.OrderInfo
		info.Status = matcher.StatusCancelled
		out = append(out, info)
		r.remove(x)
		r.releaseAll(x)
	}
	return out
}

// Balances returns the non-zero balances sorted by account then token.
func (r *refEngine) Balances() []matcher.Balance {
	var out []matcher.Balance
	for _, b := range r.bals {
		if b.Available != 0 || b.Reserved != 0 {
			out = append(out, b)
		}
	}
	slices.SortFunc(out, func(x, y matcher.Balance) int {
		return cmp.Or(cmp.Compare(x.Account, y.Account), cmp.Compare(x.Token, y.Token))
	})
	return out
}

// OpenOrders returns the open orders in book order, with their statuses.
func (r *refEngine) OpenOrders() []matcher.OrderInfo {
	var out []matcher.OrderInfo
	for _, x := range r.orders {
		info := x.OrderInfo
		info.Status = matcher.StatusOpen
		if info.Filled > 0 {
			info.Status = matcher.StatusPartiallyFilled
		}
		out = append(out, info)
	}
	slices.SortFunc(out, func(x, y matcher.OrderInfo) int {
		c := cmp.Compare(x.Market, y.Market)
		if c != 0 {
			return c
		}
		if x.Side != y.Side {
			return cmp.Compare(x.Side, y.Side) // Buy (1) before Sell (2)
		}
		return bookPriority(x, y)
	})
	return out
}
