package matcher

// The book: per market two sides, each a slice of price levels sorted so the
// best level is the LAST element (bids ascending, asks descending). Matching
// consumes the best level and a level is removed when it empties, so the
// common operations touch the end of the slice and never shift it; a new
// level is inserted with a binary search and a copy, which is cheap because
// the number of distinct prices near the top of a book is small.
//
// Each level is a FIFO of orders linked through order.prev/next: appending
// is O(1) and cancelling from the middle is O(1) once the level is found.

// order is a resting order in the slab. It holds no pointer (its id lives
// in Engine.orderIDs at the same index), so the garbage collector never
// scans the slab and growing it copies plain memory.
type order struct {
	seq       uint64 // acceptance number: time priority and per-account order
	price     uint64
	quantity  uint64 // original
	remaining uint64
	acct      uint32
	market    uint32
	side      Side
	tag       uint32 // idIndex hash of id
	// FIFO links within the price level, and links in the account's list
	// of open orders; 0 = none.
	prev, next         uint32
	acctPrev, acctNext uint32
}

type level struct {
	price      uint64
	total      uint64 // sum of remaining over the level's orders
	count      uint32
	head, tail uint32
}

type bookSide struct {
	levels    []level // best last
	ascending bool    // true for bids: levels sorted by ascending price, so the highest bid is last
}

type market struct {
	name        string
	base, quote uint32 // token numbers
	bids, asks  bookSide
}

// holds returns the (token, amount) a resting order keeps reserved: a buy
// keeps Quote(remaining, price) of quote, a sell keeps remaining of base.
func (e *Engine) holds(o *order) (uint32, uint64) {
	mk := &e.markets[o.market]
	if o.side == Buy {
		return mk.quote, quoteOf(o.remaining, o.price)
	}
	return mk.base, o.remaining
}

// find returns the index of the level at price, or where it would be
// inserted, and whether it exists. Levels are ascending for bids and
// descending for asks.
func (s *bookSide) find(price uint64) (int, bool) {
	lo, hi := 0, len(s.levels)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		p := s.levels[m].price
		var before bool // level m sorts before price
		if s.ascending {
			before = p < price
		} else {
			before = p > price
		}
		if before {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo, lo < len(s.levels) && s.levels[lo].price == price
}

// newOrder takes a slab slot.
func (e *Engine) newOrder() uint32 {
	if i := e.freeOrder; i != 0 {
		e.freeOrder = e.orders[i].next
		return i
	}
	if len(e.orders) == cap(e.orders) {
		// Double explicitly: append grows large slices by only ~1.25x,
		// which copies a big book several times over while it grows.
		n := 2 * cap(e.orders)
		e.orders = append(make([]order, 0, n), e.orders...)
		e.orderIDs = append(make([]string, 0, n), e.orderIDs...)
	}
	e.orders = append(e.orders, order{})
	e.orderIDs = append(e.orderIDs, "")
	return uint32(len(e.orders) - 1)
}

// freeOrderSlot returns a slot to the slab, dropping the id string so the
// garbage collector can reclaim it.
func (e *Engine) freeOrderSlot(i uint32) {
	e.orders[i] = order{next: e.freeOrder}
	e.orderIDs[i] = ""
	e.freeOrder = i
}

// taker is the incoming order while it matches.
type taker struct {
	id        string
	tag       uint32 // idIndex hash of id
	acct      uint32
	side      Side
	limit     uint64
	remaining uint64
	// reserved is what the taker still holds: Quote(remaining, limit) of
	// quote for a buy, remaining of base for a sell.
	reserved uint64
}

// matchBuy fills an incoming buy against the asks while the best ask is at or
// below the buy's limit.
func (e *Engine) matchBuy(mk *market, t *taker, res *PlaceResult) {
	asks := &mk.asks
	tb := e.accounts[t.acct].bal
	tBase, tQuote := &tb[mk.base], &tb[mk.quote]
	for t.remaining > 0 && len(asks.levels) > 0 {
		n := len(asks.levels) - 1
		lv := &asks.levels[n]
		if lv.price > t.limit {
			break
		}
		for t.remaining > 0 && lv.head != 0 {
			mi := lv.head
			m := &e.orders[mi]
			if m.acct == t.acct {
				e.cancelSelfTrade(lv, mi, res)
				continue
			}
			q := min(t.remaining, m.remaining)
			pay := quoteOf(q, lv.price)
			if pay == 0 {
				// A dust fill; only the taker's remainder can be that
				// small (resting orders are never dust), so it stops.
				res.RemainderDust = true
				return
			}
			// The buyer's reservation shrinks to Quote(remaining', limit);
			// what it frees beyond pay is price improvement (and rounding)
			// and goes back to available. floor is superadditive and
			// price <= limit, so consumed >= pay.
			after := quoteOf(t.remaining-q, t.limit)
			consumed := t.reserved - after
			if consumed < pay {
				panic("matcher: buyer's consumed reservation below the price paid")
			}
			t.reserved = after
			t.remaining -= q
			tQuote.reserved -= consumed
			tQuote.available += consumed - pay
			tBase.available += q

			mb := e.accounts[m.acct].bal
			mb[mk.base].reserved -= q
			mb[mk.quote].available += pay

			m.remaining -= q
			lv.total -= q
			e.tradeSeq++
			res.Trades = append(res.Trades, Trade{
				Seq: e.tradeSeq, Market: mk.name, MakerOrder: e.orderIDs[mi], TakerOrder: t.id,
				Maker: e.accounts[m.acct].name, Taker: e.accounts[t.acct].name, TakerSide: Buy,
				Price: lv.price, Quantity: q, Quote: pay, MakerRemaining: m.remaining,
			})
			e.closeMakerIfDone(lv, mi, res)
		}
		if lv.head == 0 {
			asks.levels = asks.levels[:n]
		}
	}
}

// closeMakerIfDone takes resting order mi out of level lv after a fill when
// it is filled, or when its remainder is dust at its price: a dust remainder
// could never trade again, so it is cancelled, its reservation (what is
// left of it) released and the order reported in res.DustCancelled. This
// keeps the invariant that no resting order is dust.
func (e *Engine) closeMakerIfDone(lv *level, mi uint32, res *PlaceResult) {
	m := &e.orders[mi]
	switch {
	case m.remaining == 0:
		e.unlinkFromLevel(lv, mi)
		e.forget(mi)
	case Dust(m.remaining, m.price):
		res.DustCancelled = append(res.DustCancelled, e.closedInfo(mi, StatusCancelled))
		e.unlinkFromLevel(lv, mi)
		e.release(mi)
	}
}

// cancelSelfTrade applies self-trade prevention to resting order mi of
// level lv, which belongs to the incoming order's own account: the resting
// order is cancelled (its reservation released) and reported, and matching
// goes on with the next resting order. One place for the rule, for both
// sides.
func (e *Engine) cancelSelfTrade(lv *level, mi uint32, res *PlaceResult) {
	res.SelfTradeCancelled = append(res.SelfTradeCancelled, e.closedInfo(mi, StatusCancelled))
	e.unlinkFromLevel(lv, mi)
	e.release(mi)
}

// matchSell fills an incoming sell against the bids while the best bid is at
// or above the sell's limit.
func (e *Engine) matchSell(mk *market, t *taker, res *PlaceResult) {
	bids := &mk.bids
	tb := e.accounts[t.acct].bal
	tBase, tQuote := &tb[mk.base], &tb[mk.quote]
	for t.remaining > 0 && len(bids.levels) > 0 {
		n := len(bids.levels) - 1
		lv := &bids.levels[n]
		if lv.price < t.limit {
			break
		}
		for t.remaining > 0 && lv.head != 0 {
			mi := lv.head
			m := &e.orders[mi]
			if m.acct == t.acct {
				e.cancelSelfTrade(lv, mi, res)
				continue
			}
			q := min(t.remaining, m.remaining)
			p := lv.price
			pay := quoteOf(q, p)
			if pay == 0 {
				res.RemainderDust = true // as in matchBuy
				return
			}
			// The maker is the buyer, at its own price: its reservation
			// shrinks to Quote(remaining', price); the rounding left over
			// beyond pay returns to its available balance.
			before := quoteOf(m.remaining, p)
			after := quoteOf(m.remaining-q, p)
			consumed := before - after
			if consumed < pay {
				panic("matcher: buyer's consumed reservation below the price paid")
			}
			mb := e.accounts[m.acct].bal
			mq := &mb[mk.quote]
			mq.reserved -= consumed
			mq.available += consumed - pay
			mb[mk.base].available += q

			t.remaining -= q
			t.reserved -= q
			tBase.reserved -= q
			tQuote.available += pay

			m.remaining -= q
			lv.total -= q
			e.tradeSeq++
			res.Trades = append(res.Trades, Trade{
				Seq: e.tradeSeq, Market: mk.name, MakerOrder: e.orderIDs[mi], TakerOrder: t.id,
				Maker: e.accounts[m.acct].name, Taker: e.accounts[t.acct].name, TakerSide: Sell,
				Price: p, Quantity: q, Quote: pay, MakerRemaining: m.remaining,
			})
			e.closeMakerIfDone(lv, mi, res)
		}
		if lv.head == 0 {
			bids.levels = bids.levels[:n]
		}
	}
}

// rest puts the taker's remainder in the book. Its reservation stays as it
// is: t.reserved is exactly what the resting order holds.
func (e *Engine) rest(mi uint32, t *taker, quantity, seq uint64) {
	i := e.newOrder()
	o := &e.orders[i]
	*o = order{
		tag: t.tag, seq: seq, price: t.limit, quantity: quantity, remaining: t.remaining,
		acct: t.acct, market: mi, side: t.side,
	}
	e.orderIDs[i] = t.id
	e.link(i)
}

// link adds a filled-in slab order to its level (at the tail), its
// account's list (at the tail) and the id index.
func (e *Engine) link(i uint32) {
	e.linkLevel(i)
	e.linkAccount(i)
	e.ids.insert(e.orders[i].tag, i)
	e.openCount++
}

// linkLevel appends order i to the FIFO of its price level, creating the
// level if needed.
func (e *Engine) linkLevel(i uint32) {
	o := &e.orders[i]
	mk := &e.markets[o.market]
	side := &mk.asks
	if o.side == Buy {
		side = &mk.bids
	}
	k, found := side.find(o.price)
	if !found {
		side.levels = append(side.levels, level{})
		copy(side.levels[k+1:], side.levels[k:])
		side.levels[k] = level{price: o.price}
	}
	lv := &side.levels[k]
	o.prev, o.next = lv.tail, 0
	if lv.tail != 0 {
		e.orders[lv.tail].next = i
	} else {
		lv.head = i
	}
	lv.tail = i
	lv.total += o.remaining
	lv.count++
}

// linkAccount appends order i to its account's list of open orders.
func (e *Engine) linkAccount(i uint32) {
	o := &e.orders[i]
	acc := &e.accounts[o.acct]
	o.acctPrev, o.acctNext = acc.tail, 0
	if acc.tail != 0 {
		e.orders[acc.tail].acctNext = i
	} else {
		acc.head = i
	}
	acc.tail = i
	acc.open++
}

// unlinkFromLevel removes order i from level lv's FIFO (the level itself
// stays, possibly empty: the caller removes empty levels, so pointers to
// levels stay valid while a match loop runs).
func (e *Engine) unlinkFromLevel(lv *level, i uint32) {
	o := &e.orders[i]
	if o.prev != 0 {
		e.orders[o.prev].next = o.next
	} else {
		lv.head = o.next
	}
	if o.next != 0 {
		e.orders[o.next].prev = o.prev
	} else {
		lv.tail = o.prev
	}
	lv.total -= o.remaining
	lv.count--
}

// forget drops an order already out of its level from the account list, the
// id index and the slab.
func (e *Engine) forget(i uint32) {
	o := &e.orders[i]
	acc := &e.accounts[o.acct]
	if o.acctPrev != 0 {
		e.orders[o.acctPrev].acctNext = o.acctNext
	} else {
		acc.head = o.acctNext
	}
	if o.acctNext != 0 {
		e.orders[o.acctNext].acctPrev = o.acctPrev
	} else {
		acc.tail = o.acctPrev
	}
	acc.open--
	e.ids.remove(o.tag, i)
	e.openCount--
	e.freeOrderSlot(i)
}

// release gives back what an order already out of its level holds, then
// forgets it.
func (e *Engine) release(i uint32) {
	o := &e.orders[i]
	tok, amt := e.holds(o)
	b := &e.accounts[o.acct].bal[tok]
	b.reserved -= amt
	b.available += amt
	e.forget(i)
}

// cancelResting takes an order out of the book and releases what it holds.
func (e *Engine) cancelResting(i uint32) {
	o := &e.orders[i]
	mk := &e.markets[o.market]
	side := &mk.asks
	if o.side == Buy {
		side = &mk.bids
	}
	k, found := side.find(o.price)
	if !found {
		panic("matcher: open order's price level missing")
	}
	lv := &side.levels[k]
	e.unlinkFromLevel(lv, i)
	if lv.head == 0 {
		side.levels = append(side.levels[:k], side.levels[k+1:]...)
	}
	e.release(i)
}

// info describes an open order.
func (e *Engine) info(i uint32) OrderInfo {
	o := &e.orders[i]
	st := StatusOpen
	if o.remaining < o.quantity {
		st = StatusPartiallyFilled
	}
	return OrderInfo{
		ID: e.orderIDs[i], Account: e.accounts[o.acct].name, Market: e.markets[o.market].name,
		Side: o.side, Type: Limit, Price: o.price, Quantity: o.quantity,
		Filled: o.quantity - o.remaining, Remaining: o.remaining, Seq: o.seq, Status: st,
	}
}

func (e *Engine) closedInfo(i uint32, st Status) OrderInfo {
	in := e.info(i)
	in.Status = st
	return in
}

// crosses reports whether an incoming order of side and limit price would
// meet the best resting order on the other side: a post-only order that
// crosses would take liquidity. Resting orders of the incoming order's own
// account count too, because meeting them also consumes the book (self-trade
// prevention would cancel them).
func (e *Engine) crosses(mk *market, side Side, limit uint64) bool {
	if side == Buy {
		n := len(mk.asks.levels)
		return n > 0 && mk.asks.levels[n-1].price <= limit
	}
	n := len(mk.bids.levels)
	return n > 0 && mk.bids.levels[n-1].price >= limit
}

// fillable returns how much of want an incoming order of account acct,
// side and limit price would fill right now, walking the crossing levels
// best first and skipping the account's own resting orders (self-trade
// prevention cancels those instead of filling against them). It stops as
// soon as want is reached, so a fill-or-kill check costs what its match
// would, and where the match would stop: before a fill that would be dust.
func (e *Engine) fillable(mk *market, acct uint32, side Side, limit, want uint64) uint64 {
	s := &mk.asks
	if side == Sell {
		s = &mk.bids
	}
	var got uint64
	for k := len(s.levels) - 1; k >= 0 && got < want; k-- {
		lv := &s.levels[k]
		if side == Buy && lv.price > limit || side == Sell && lv.price < limit {
			break
		}
		for i := lv.head; i != 0 && got < want; i = e.orders[i].next {
			if e.orders[i].acct != acct {
				q := min(e.orders[i].remaining, want-got)
				if Dust(q, lv.price) {
					return got
				}
				got += q
			}
		}
	}
	return got
}
