package matcher

import (
	"cmp"
	"slices"
)

// Balance is one account's holding of one token.
type Balance struct {
	Account   string
	Token     string
	Available uint64
	Reserved  uint64 // held by open orders
}

// Total is Available + Reserved (never overflows: both are bounded by the
// token's supply, itself at most amount.Max).
func (b Balance) Total() uint64 { return b.Available + b.Reserved }

// Balance returns the balance of (account, token); zero for unknown ones.
func (e *Engine) Balance(acct, tok string) Balance {
	b := Balance{Account: acct, Token: tok}
	a, okA := e.accountIdx[acct]
	t, okT := e.tokenIdx[tok]
	if okA && okT && int(t) < len(e.accounts[a].bal) {
		b.Available = e.accounts[a].bal[t].available
		b.Reserved = e.accounts[a].bal[t].reserved
	}
	return b
}

// Balances returns every non-zero balance, sorted by account then token
// (byte order).
func (e *Engine) Balances() []Balance {
	var out []Balance
	for _, a := range e.sortedAccounts() {
		acc := &e.accounts[a]
		start := len(out)
		for t, b := range acc.bal {
			if b.available != 0 || b.reserved != 0 {
				out = append(out, Balance{Account: acc.name, Token: e.tokens[t].name, Available: b.available, Reserved: b.reserved})
			}
		}
		slices.SortFunc(out[start:], func(x, y Balance) int { return cmp.Compare(x.Token, y.Token) })
	}
	return out
}

// AccountBalances returns the non-zero balances of one account, sorted by
// token.
func (e *Engine) AccountBalances(acct string) []Balance {
	a, ok := e.accountIdx[acct]
	if !ok {
		return nil
	}
	var out []Balance
	for t, b := range e.accounts[a].bal {
		if b.available != 0 || b.reserved != 0 {
			out = append(out, Balance{Account: acct, Token: e.tokens[t].name, Available: b.available, Reserved: b.reserved})
		}
	}
	slices.SortFunc(out, func(x, y Balance) int { return cmp.Compare(x.Token, y.Token) })
	return out
}

// Markets returns the name of every market that ever had an accepted
// order, sorted.
func (e *Engine) Markets() []string {
	out := make([]string, 0, len(e.markets))
	for _, mi := range e.sortedMarkets() {
		out = append(out, e.markets[mi].name)
	}
	return out
}

// Supply returns deposits minus withdrawals of a token: by the conservation
// invariant, also the sum of every account's available and reserved.
func (e *Engine) Supply(tok string) uint64 {
	if t, ok := e.tokenIdx[tok]; ok {
		return e.tokens[t].supply
	}
	return 0
}

// Order returns an open order by id. Closed orders are not kept (see
// Status): ok is false for them as for unknown ids.
func (e *Engine) Order(id string) (OrderInfo, bool) {
	i := e.ids.find(e.orderIDs, id, e.ids.tag(id))
	if i == 0 {
		return OrderInfo{}, false
	}
	return e.info(i), true
}

// OpenOrders returns every open order in book order: markets by name, in
// each the bids best first (highest price, then earliest), then the asks
// best first (lowest price, then earliest).
func (e *Engine) OpenOrders() []OrderInfo {
	out := make([]OrderInfo, 0, e.openCount)
	for _, mi := range e.sortedMarkets() {
		mk := &e.markets[mi]
		for _, s := range []*bookSide{&mk.bids, &mk.asks} {
			for k := len(s.levels) - 1; k >= 0; k-- {
				for i := s.levels[k].head; i != 0; i = e.orders[i].next {
					out = append(out, e.info(i))
				}
			}
		}
	}
	return out
}

// OpenOrderCount returns the number of open orders.
func (e *Engine) OpenOrderCount() int { return e.openCount }

// AccountOrders returns the open orders of one account in acceptance order.
// There are at most Config.OpenOrdersPerAccountMax of them.
func (e *Engine) AccountOrders(acct string) []OrderInfo {
	a, ok := e.accountIdx[acct]
	if !ok {
		return nil
	}
	acc := &e.accounts[a]
	out := make([]OrderInfo, 0, acc.open)
	for i := acc.head; i != 0; i = e.orders[i].acctNext {
		out = append(out, e.info(i))
	}
	return out
}

// Level is one aggregated price level of a book.
type Level struct {
	Price    uint64
	Quantity uint64 // sum of the remaining quantities
	Orders   int
}

// Depth returns up to levelsMax levels of each side of a market (all of them
// if levelsMax <= 0): bids by descending price, asks by ascending price. An
// unknown market has an empty book.
func (e *Engine) Depth(mkt string, levelsMax int) (bids, asks []Level) {
	mi, ok := e.marketIdx[mkt]
	if !ok {
		return nil, nil
	}
	mk := &e.markets[mi]
	return depthOf(&mk.bids, levelsMax), depthOf(&mk.asks, levelsMax)
}

func depthOf(s *bookSide, levelsMax int) []Level {
	n := len(s.levels)
	if levelsMax > 0 && levelsMax < n {
		n = levelsMax
	}
	out := make([]Level, 0, n)
	for k := len(s.levels) - 1; k >= 0 && len(out) < n; k-- {
		lv := &s.levels[k]
		out = append(out, Level{Price: lv.price, Quantity: lv.total, Orders: int(lv.count)})
	}
	return out
}

// Counters returns the acceptance number of the last accepted order and the
// number of the last trade.
func (e *Engine) Counters() (orderSeq, tradeSeq uint64) { return e.orderSeq, e.tradeSeq }

// sortedAccounts returns account numbers ordered by name. Accounts are
// only ever added, so the order is cached and re-sorted only after new
// accounts appear: the digest, asked once per batch, needs it every time.
// The result is shared: do not modify it.
func (e *Engine) sortedAccounts() []uint32 {
	if len(e.acctByName) != len(e.accounts) {
		for i := len(e.acctByName); i < len(e.accounts); i++ {
			e.acctByName = append(e.acctByName, uint32(i))
		}
		slices.SortFunc(e.acctByName, func(x, y uint32) int { return cmp.Compare(e.accounts[x].name, e.accounts[y].name) })
	}
	return e.acctByName
}

// sortedMarkets returns market numbers ordered by name.
func (e *Engine) sortedMarkets() []uint32 {
	idx := make([]uint32, len(e.markets))
	for i := range idx {
		idx[i] = uint32(i)
	}
	slices.SortFunc(idx, func(x, y uint32) int { return cmp.Compare(e.markets[x].name, e.markets[y].name) })
	return idx
}
