package matcher

import (
	"cmp"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"

	"github.com/seqbook/seqbook/client/amount"
)

// The snapshot is the canonical encoding of the state: it depends only on
// what the state is, not on how it was reached (internal numbering of
// accounts, tokens, markets and slab slots never shows), so it doubles as the
// input of Digest. Layout, all integers unsigned LEB128 varints in their
// shortest form, strings as a varint length then the bytes:
//
//	"SQBM" version(=1)
//	orderSeq tradeSeq
//	nBalances { account token available reserved }   sorted by (account, token); only non-zero
//	nMarkets  { name nBids {order} nAsks {order} }   sorted by name; only markets with open orders
//	order = id account seq price quantity remaining  in book order: best price first, then FIFO
//
// Tokens' supplies are not stored: they equal the sum of the balances (the
// conservation invariant) and are recomputed on restore.
const (
	snapshotMagic   = "SQBM"
	snapshotVersion = 1
)

// MarshalBinary returns the canonical encoding of the whole state. Equal
// states give equal bytes.
func (e *Engine) MarshalBinary() ([]byte, error) {
	return e.appendSnapshot(make([]byte, 0, 64+64*len(e.accounts)+96*e.openCount), nil), nil
}

// Digest returns the SHA-256 of the canonical encoding: equal on equal
// states, different after every change (every accepted operation changes a
// balance, an order or a counter). It costs a walk of the whole state, so
// call it once per applied batch, not per order.
func (e *Engine) Digest() [32]byte {
	// Stream the encoding through the hash in chunks instead of building
	// the whole snapshot (tens of MB for a large book) first.
	h := sha256.New()
	b := e.appendSnapshot(make([]byte, 0, snapshotChunkBytes+256), func(p []byte) { h.Write(p) })
	h.Write(b)
	var d [32]byte
	h.Sum(d[:0])
	return d
}

const snapshotChunkBytes = 32 << 10

// appendSnapshot appends the encoding to b. With a non-nil flush, it hands
// the bytes so far to flush whenever they exceed snapshotChunkBytes and
// starts over; the caller gets the tail.
func (e *Engine) appendSnapshot(b []byte, flush func([]byte)) []byte {
	maybeFlush := func() {
		if flush != nil && len(b) >= snapshotChunkBytes {
			flush(b)
			b = b[:0]
		}
	}
	b = append(b, snapshotMagic...)
	b = append(b, snapshotVersion)
	b = binary.AppendUvarint(b, e.orderSeq)
	b = binary.AppendUvarint(b, e.tradeSeq)

	bals := e.Balances()
	b = binary.AppendUvarint(b, uint64(len(bals)))
	for _, x := range bals {
		b = appendString(b, x.Account)
		b = appendString(b, x.Token)
		b = binary.AppendUvarint(b, x.Available)
		b = binary.AppendUvarint(b, x.Reserved)
		maybeFlush()
	}

	ms := e.sortedMarkets()
	n := 0
	for _, mi := range ms {
		if mk := &e.markets[mi]; len(mk.bids.levels)+len(mk.asks.levels) > 0 {
			n++
		}
	}
	b = binary.AppendUvarint(b, uint64(n))
	for _, mi := range ms {
		mk := &e.markets[mi]
		if len(mk.bids.levels)+len(mk.asks.levels) == 0 {
			continue
		}
		b = appendString(b, mk.name)
		for _, s := range []*bookSide{&mk.bids, &mk.asks} {
			cnt := 0
			for k := range s.levels {
				cnt += int(s.levels[k].count)
			}
			b = binary.AppendUvarint(b, uint64(cnt))
			for k := len(s.levels) - 1; k >= 0; k-- {
				for i := s.levels[k].head; i != 0; i = e.orders[i].next {
					o := &e.orders[i]
					b = appendString(b, e.orderIDs[i])
					b = appendString(b, e.accounts[o.acct].name)
					b = binary.AppendUvarint(b, o.seq)
					b = binary.AppendUvarint(b, o.price)
					b = binary.AppendUvarint(b, o.quantity)
					b = binary.AppendUvarint(b, o.remaining)
					maybeFlush()
				}
			}
		}
	}
	return b
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// errSnapshot is wrapped by every decoding error.
var errSnapshot = errors.New("matcher: bad snapshot")

type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail(format string, args ...any) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: %s", errSnapshot, fmt.Sprintf(format, args...))
	}
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail("truncated or overlong varint")
		return 0
	}
	// Canonical form only: a longer encoding of the same value would give
	// the same state two encodings and two digests.
	if n != len(binary.AppendUvarint(nil, v)) {
		d.fail("non-minimal varint")
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) str() string {
	n := d.uvarint()
	if d.err != nil {
		return ""
	}
	if n > NameBytesMax || n > uint64(len(d.b)) {
		d.fail("string length %d too long", n)
		return ""
	}
	s := string(d.b[:n])
	d.b = d.b[n:]
	return s
}

// count reads an element count and refuses one that the remaining bytes
// cannot hold (every element takes at least minBytes), so a forged count
// cannot make the decoder allocate or loop beyond the input's size.
func (d *decoder) count(minBytes int) int {
	n := d.uvarint()
	if d.err == nil && n > uint64(len(d.b)/minBytes) {
		d.fail("count %d exceeds the input", n)
		return 0
	}
	return int(n)
}

// UnmarshalBinary replaces the engine's state with a snapshot made by
// MarshalBinary, keeping the engine's Config. It accepts only canonical
// encodings of consistent states (sorted, unique, reservations matching the
// open orders, no crossed book); on error the engine is unchanged.
//
// The per-account open-order bound is not re-checked: a snapshot taken under
// a larger bound stays loadable after the operator lowers it, and such
// accounts just cannot add orders until they are under the new bound.
func (e *Engine) UnmarshalBinary(data []byte) error {
	n, err := decodeSnapshot(e.cfg, data)
	if err != nil {
		return err
	}
	*e = *n
	return nil
}

type bkey struct{ acct, tok uint32 }

func decodeSnapshot(cfg Config, data []byte) (*Engine, error) {
	if len(data) < len(snapshotMagic)+1 || string(data[:len(snapshotMagic)]) != snapshotMagic {
		return nil, fmt.Errorf("%w: missing magic", errSnapshot)
	}
	if v := data[len(snapshotMagic)]; v != snapshotVersion {
		return nil, fmt.Errorf("%w: unknown version %d", errSnapshot, v)
	}
	d := &decoder{b: data[len(snapshotMagic)+1:]}
	e := New(cfg)
	e.orderSeq = d.uvarint()
	e.tradeSeq = d.uvarint()

	// Balances.
	nb := d.count(4)
	var prevAcct, prevTok string
	encodedReserved := map[bkey]uint64{}
	for k := 0; k < nb && d.err == nil; k++ {
		acct, tok := d.str(), d.str()
		avail, resv := d.uvarint(), d.uvarint()
		if d.err != nil {
			break
		}
		switch {
		case !validName(acct):
			d.fail("balance %d: invalid account", k)
		case !validToken(tok):
			d.fail("balance %d: invalid token", k)
		case k > 0 && cmp.Or(cmp.Compare(acct, prevAcct), cmp.Compare(tok, prevTok)) <= 0:
			d.fail("balance %d: not sorted or duplicate", k)
		case avail == 0 && resv == 0:
			d.fail("balance %d: zero balance stored", k)
		case avail > amount.Max || resv > amount.Max-avail:
			d.fail("balance %d: too large", k)
		}
		if d.err != nil {
			break
		}
		prevAcct, prevTok = acct, tok
		a, t := e.internAccount(acct), e.internToken(tok)
		if total := avail + resv; total > amount.Max-e.tokens[t].supply {
			d.fail("token %q: supply overflows", tok)
			break
		}
		e.tokens[t].supply += avail + resv
		b := e.bal(a, t)
		b.available, b.reserved = avail, resv
		encodedReserved[bkey{a, t}] = resv
	}

	// Markets and orders.
	nm := d.count(3)
	var prevMarket string
	var all []uint32 // slab indexes, for the account lists
	seqs := map[uint64]bool{}
	for k := 0; k < nm && d.err == nil; k++ {
		name := d.str()
		if d.err != nil {
			break
		}
		base, quote, err := SplitMarket(name)
		if err != nil {
			d.fail("market %d: invalid name", k)
			break
		}
		if k > 0 && name <= prevMarket {
			d.fail("market %d: not sorted or duplicate", k)
			break
		}
		prevMarket = name
		mi := e.internMarket(name, base, quote)
		total := 0
		for _, side := range []Side{Buy, Sell} {
			no := d.count(8)
			total += no
			var prevPrice, prevSeq uint64
			for j := 0; j < no && d.err == nil; j++ {
				o := order{market: mi, side: side}
				id := d.str()
				acct := d.str()
				o.seq, o.price, o.quantity, o.remaining = d.uvarint(), d.uvarint(), d.uvarint(), d.uvarint()
				if d.err != nil {
					break
				}
				where := fmt.Sprintf("market %q %s order %d", name, side, j)
				a, known := e.accountIdx[acct]
				o.tag = e.ids.tag(id)
				dup := e.ids.find(e.orderIDs, id, o.tag) != 0
				switch {
				case !validName(id):
					d.fail("%s: invalid id", where)
				case !known:
					d.fail("%s: account without balance", where)
				case dup:
					d.fail("%s: duplicate id", where)
				case o.seq == 0 || o.seq > e.orderSeq || seqs[o.seq]:
					d.fail("%s: bad or duplicate seq", where)
				case o.price == 0 || o.price > amount.Max || o.quantity > amount.Max:
					d.fail("%s: bad price or quantity", where)
				case o.remaining == 0 || o.remaining > o.quantity:
					d.fail("%s: bad remaining", where)
				case Dust(o.remaining, o.price):
					// Only a state made before the dust rule holds one;
					// it could block its price level, so it is refused
					// and the state rebuilt from history.
					d.fail("%s: remainder is dust (pays no quote unit at its price)", where)
				}
				if d.err != nil {
					break
				}
				if q, err := amount.Quote(o.quantity, o.price); err != nil || q == 0 {
					d.fail("%s: quote amount zero or overflowing", where)
					break
				}
				// Book order: best price first, FIFO (rising seq) within a price.
				if j > 0 {
					worse := o.price < prevPrice
					if side == Sell {
						worse = o.price > prevPrice
					}
					if !(worse || (o.price == prevPrice && o.seq > prevSeq)) {
						d.fail("%s: not in book order", where)
						break
					}
				}
				prevPrice, prevSeq = o.price, o.seq
				seqs[o.seq] = true
				o.acct = a
				e.bal(a, e.markets[mi].base)
				e.bal(a, e.markets[mi].quote)
				i := e.newOrder()
				e.orders[i] = o
				e.orderIDs[i] = id
				e.linkLevel(i)
				e.ids.insert(o.tag, i)
				e.openCount++
				all = append(all, i)
			}
		}
		if d.err == nil && total == 0 {
			d.fail("market %q: stored without orders", name)
		}
		if d.err == nil {
			mk := &e.markets[mi]
			if len(mk.bids.levels) > 0 && len(mk.asks.levels) > 0 &&
				mk.bids.levels[len(mk.bids.levels)-1].price >= mk.asks.levels[len(mk.asks.levels)-1].price {
				d.fail("market %q: crossed book", name)
			}
		}
	}
	if d.err == nil && len(d.b) != 0 {
		d.fail("%d trailing bytes", len(d.b))
	}
	if d.err != nil {
		return nil, d.err
	}

	// Reservations must be exactly what the open orders hold.
	held := map[bkey]uint64{}
	for _, i := range all {
		t, amt := e.holds(&e.orders[i])
		k := bkey{e.orders[i].acct, t}
		if amt > amount.Max-held[k] {
			return nil, fmt.Errorf("%w: reservations overflow", errSnapshot)
		}
		held[k] += amt
	}
	if err := sameReservations(e, encodedReserved, held); err != nil {
		return nil, err
	}

	// Account lists in acceptance order.
	slices.SortFunc(all, func(x, y uint32) int { return cmp.Compare(e.orders[x].seq, e.orders[y].seq) })
	for _, i := range all {
		e.linkAccount(i)
	}
	return e, nil
}

// sameReservations compares two maps without iterating either in an order
// that could matter: it only checks key by key, and reports the smallest
// offending (account, token) so the error text is deterministic too.
func sameReservations(e *Engine, encoded, held map[bkey]uint64) error {
	var bad []bkey
	for k, v := range encoded {
		if held[k] != v {
			bad = append(bad, k)
		}
	}
	for k, v := range held {
		if encoded[k] != v {
			bad = append(bad, k)
		}
	}
	if len(bad) == 0 {
		return nil
	}
	k := slices.MinFunc(bad, func(x, y bkey) int {
		return cmp.Or(cmp.Compare(e.accounts[x.acct].name, e.accounts[y.acct].name),
			cmp.Compare(e.tokens[x.tok].name, e.tokens[y.tok].name))
	})
	return fmt.Errorf("%w: reserved %s of %s is %d, open orders hold %d", errSnapshot,
		e.tokens[k.tok].name, e.accounts[k.acct].name, encoded[k], held[k])
}
