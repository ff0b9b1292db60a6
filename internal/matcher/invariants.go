package matcher

import (
	"fmt"

	"github.com/seqbook/seqbook/client/amount"
)

// CheckInvariants walks the whole state and returns the first broken
// invariant, or nil:
//
//   - conservation: per token, the sum of available+reserved over accounts
//     equals the token's supply (deposits minus withdrawals), at most
//     amount.Max;
//   - reservations: an account's reserved balance of a token equals what its
//     open orders hold (Quote(remaining, price) of quote per buy, remaining
//     of base per sell);
//   - book shape: levels strictly sorted with the best last, non-empty, their
//     totals and counts right, FIFO in acceptance order, no crossed book, no
//     resting remainder that is dust (see Dust);
//   - indexes: the id index, account lists and counts agree with the book.
//
// It costs a walk of the whole state: tests call it after every operation,
// a replica may call it after restoring a snapshot.
func (e *Engine) CheckInvariants() error {
	type key struct{ a, t uint32 }
	held := make(map[key]uint64)
	seen := 0
	for mi := range e.markets {
		mk := &e.markets[mi]
		for _, side := range []Side{Buy, Sell} {
			s := &mk.asks
			if side == Buy {
				s = &mk.bids
			}
			if s.ascending != (side == Buy) {
				return fmt.Errorf("market %s: side %s has the wrong sort direction", mk.name, side)
			}
			for k := range s.levels {
				lv := &s.levels[k]
				if k > 0 {
					prev := s.levels[k-1].price
					if (s.ascending && prev >= lv.price) || (!s.ascending && prev <= lv.price) {
						return fmt.Errorf("market %s %s: levels not strictly sorted at %d", mk.name, side, k)
					}
				}
				if lv.head == 0 || lv.count == 0 {
					return fmt.Errorf("market %s %s: empty level at price %d", mk.name, side, lv.price)
				}
				var total uint64
				var count uint32
				var prevSeq uint64
				prev := uint32(0)
				for i := lv.head; i != 0; i = e.orders[i].next {
					o, id := &e.orders[i], e.orderIDs[i]
					if o.prev != prev || o.market != uint32(mi) || o.side != side || o.price != lv.price {
						return fmt.Errorf("order %s: bad links or placement", id)
					}
					if o.remaining == 0 || o.remaining > o.quantity || o.seq <= prevSeq || o.seq > e.orderSeq {
						return fmt.Errorf("order %s: bad remaining or seq", id)
					}
					if Dust(o.remaining, o.price) {
						return fmt.Errorf("order %s: rests with a dust remainder", id)
					}
					if id == "" || o.tag != e.ids.tag(id) || e.ids.find(e.orderIDs, id, o.tag) != i {
						return fmt.Errorf("order %s: not in the id index", id)
					}
					prevSeq, prev = o.seq, i
					total += o.remaining
					count++
					seen++
					t, amt := e.holds(o)
					held[key{o.acct, t}] += amt
				}
				if lv.tail != prev || total != lv.total || count != lv.count {
					return fmt.Errorf("market %s %s: level %d totals or tail wrong", mk.name, side, lv.price)
				}
			}
		}
		if nb, na := len(mk.bids.levels), len(mk.asks.levels); nb > 0 && na > 0 &&
			mk.bids.levels[nb-1].price >= mk.asks.levels[na-1].price {
			return fmt.Errorf("market %s: crossed book", mk.name)
		}
	}
	if e.lastMarketName != "" && (int(e.lastMarket) >= len(e.markets) || e.markets[e.lastMarket].name != e.lastMarketName) {
		return fmt.Errorf("market cache names %q, points at another market", e.lastMarketName)
	}
	if seen != e.openCount || e.ids.n != e.openCount {
		return fmt.Errorf("open order count %d, book holds %d, index holds %d", e.openCount, seen, e.ids.n)
	}

	sums := make([]uint64, len(e.tokens))
	for a := range e.accounts {
		acc := &e.accounts[a]
		for t, b := range acc.bal {
			if b.available > amount.Max || b.reserved > amount.Max-b.available {
				return fmt.Errorf("balance %s %s too large", acc.name, e.tokens[t].name)
			}
			sums[t] += b.available + b.reserved
			if h := held[key{uint32(a), uint32(t)}]; h != b.reserved {
				return fmt.Errorf("%s reserves %d %s, its open orders hold %d", acc.name, b.reserved, e.tokens[t].name, h)
			}
		}
		n := 0
		var prevSeq uint64
		prev := uint32(0)
		for i := acc.head; i != 0; i = e.orders[i].acctNext {
			o := &e.orders[i]
			if o.acct != uint32(a) || o.acctPrev != prev || o.seq <= prevSeq {
				return fmt.Errorf("account %s: order list broken at %s", acc.name, e.orderIDs[i])
			}
			prev, prevSeq = i, o.seq
			n++
		}
		if n != acc.open || acc.tail != prev {
			return fmt.Errorf("account %s: open count %d, list holds %d", acc.name, acc.open, n)
		}
	}
	for t := range e.tokens {
		if sums[t] != e.tokens[t].supply || e.tokens[t].supply > amount.Max {
			return fmt.Errorf("token %s: balances sum to %d, supply is %d", e.tokens[t].name, sums[t], e.tokens[t].supply)
		}
	}
	return nil
}
