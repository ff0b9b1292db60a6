package replica

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"

	"github.com/seqbook/seqbook/internal/matcher"
)

// The bulk of a snapshot (nonces, legacy ids, records, the closed queue,
// trades: hundreds of thousands of small values) is written by hand in
// ledgerSnapshot.Bulk from version 2 on: gob writes a [32]byte as 32
// separately encoded integers, and encoding a 10 MB snapshot took
// 150-200 ms of CPU. The layout is private to one data directory, like
// the rest of the snapshot:
//
//	bulk    = section(nonce) section(id) section(record) section(id) section(trade)
//	          section(extra)
//	          (nonces, legacy ids, records, closed queue, trades, and from
//	          version 3 one extra per record, in the records' order)
//	section = uvarint(count) item*
//	nonce   = signer[20] uvarint(nonce) uvarint(expiry)
//	record  = id[32] kind(1) trader[20] str(market) side(1) orderType(1)
//	          uvarint(quantity, price, filled) uvarint(count) fill* uvarint(fillsDropped)
//	          str(token) uvarint(amount) status(1) str(reason) uvarint(index, timestamp)
//	fill    = uvarint(trade) maker(1) uvarint(price, quantity, quote) counterparty[32] uvarint(index)
//	trade   = uvarint(seq) str(market) uvarint(price, quantity, quote) makerOrder[32]
//	          takerOrder[32] str(maker) str(taker) takerSide(1) uvarint(index, timestamp)
//	extra   = uvarint(nonce, seq, cancelled) authentic(1)
//	str     = uvarint(len) bytes

// appendBulk writes the bulk sections of s, records in id order.
func appendBulk(b []byte, s *ledgerSnapshot) []byte {
	// An upper estimate of the size, so the buffer grows once.
	size := 40*len(s.Nonces) + 32*(len(s.Legacy)+len(s.ClosedQueue)) + 200*len(s.Trades) + 64
	for i := range s.Records {
		size += 160 + len(s.Records[i].Reason) + 70*len(s.Records[i].Fills)
	}
	b = slices.Grow(b, size)
	b = binary.AppendUvarint(b, uint64(len(s.Nonces)))
	for _, e := range s.Nonces {
		b = append(b, e.Signer[:]...)
		b = binary.AppendUvarint(b, e.Nonce)
		b = binary.AppendUvarint(b, e.Expiry)
	}
	b = appendIDs(b, s.Legacy)
	// Sorted by id so equal ledgers give equal bytes (handy in tests; not
	// a contract), through indexes: records are large to move.
	order := make([]int32, len(s.Records))
	for i := range order {
		order[i] = int32(i)
	}
	slices.SortFunc(order, func(a, c int32) int { return compare32(s.Records[a].ID, s.Records[c].ID) })
	b = binary.AppendUvarint(b, uint64(len(s.Records)))
	for _, i := range order {
		b = appendRecord(b, &s.Records[i])
	}
	b = appendIDs(b, s.ClosedQueue)
	b = binary.AppendUvarint(b, uint64(len(s.Trades)))
	for i := range s.Trades {
		t := &s.Trades[i]
		b = binary.AppendUvarint(b, t.Seq)
		b = appendStr(b, t.Market)
		b = binary.AppendUvarint(b, t.Price)
		b = binary.AppendUvarint(b, t.Quantity)
		b = binary.AppendUvarint(b, t.Quote)
		b = append(b, t.MakerOrder[:]...)
		b = append(b, t.TakerOrder[:]...)
		b = appendStr(b, t.Maker)
		b = appendStr(b, t.Taker)
		b = append(b, byte(t.TakerSide))
		b = binary.AppendUvarint(b, t.Index)
		b = binary.AppendUvarint(b, t.Timestamp)
	}
	b = binary.AppendUvarint(b, uint64(len(s.Records)))
	for _, i := range order {
		r := &s.Records[i]
		b = binary.AppendUvarint(b, r.Nonce)
		b = binary.AppendUvarint(b, r.Seq)
		b = binary.AppendUvarint(b, r.Cancelled)
		b = append(b, boolByte(r.Authentic))
	}
	return b
}

func appendRecord(b []byte, r *record) []byte {
	b = append(b, r.ID[:]...)
	b = append(b, byte(r.Kind))
	b = append(b, r.Trader[:]...)
	b = appendStr(b, r.Market)
	b = append(b, byte(r.Side), byte(r.OrderType))
	b = binary.AppendUvarint(b, r.Quantity)
	b = binary.AppendUvarint(b, r.Price)
	b = binary.AppendUvarint(b, r.Filled)
	b = binary.AppendUvarint(b, uint64(len(r.Fills)))
	for i := range r.Fills {
		f := &r.Fills[i]
		b = binary.AppendUvarint(b, f.Trade)
		b = append(b, boolByte(f.Maker))
		b = binary.AppendUvarint(b, f.Price)
		b = binary.AppendUvarint(b, f.Quantity)
		b = binary.AppendUvarint(b, f.Quote)
		b = append(b, f.Counterparty[:]...)
		b = binary.AppendUvarint(b, f.Index)
	}
	b = binary.AppendUvarint(b, r.FillsDropped)
	b = appendStr(b, r.Token)
	b = binary.AppendUvarint(b, r.Amount)
	b = append(b, byte(r.Status))
	b = appendStr(b, r.Reason)
	b = binary.AppendUvarint(b, r.Index)
	return binary.AppendUvarint(b, r.Timestamp)
}

func appendIDs(b []byte, ids [][32]byte) []byte {
	b = binary.AppendUvarint(b, uint64(len(ids)))
	for i := range ids {
		b = append(b, ids[i][:]...)
	}
	return b
}

func appendStr(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func boolByte(v bool) byte {
	if v {
		return 1
	}
	return 0
}

// errBulkCorrupt reports a bulk section that does not decode.
var errBulkCorrupt = errors.New("ledger snapshot: corrupt bulk section")

// bulkReader reads appendBulk's layout; the first error sticks and later
// reads return zero values.
type bulkReader struct {
	b   []byte
	err error
}

func (r *bulkReader) fail() {
	if r.err == nil {
		r.err = errBulkCorrupt
	}
	r.b = nil
}

func (r *bulkReader) uvarint() uint64 {
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.fail()
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *bulkReader) byte1() byte {
	if len(r.b) < 1 {
		r.fail()
		return 0
	}
	v := r.b[0]
	r.b = r.b[1:]
	return v
}

func (r *bulkReader) fixed(dst []byte) {
	if len(r.b) < len(dst) {
		r.fail()
		return
	}
	copy(dst, r.b)
	r.b = r.b[len(dst):]
}

func (r *bulkReader) str() string {
	n := r.uvarint()
	if n > uint64(len(r.b)) {
		r.fail()
		return ""
	}
	s := string(r.b[:n])
	r.b = r.b[n:]
	return s
}

// count reads a section length, refusing one that cannot fit in what is
// left (each item takes at least minBytes), so a corrupt length cannot
// make the reader allocate without bound.
func (r *bulkReader) count(minBytes int) int {
	n := r.uvarint()
	if n > uint64(len(r.b)/minBytes) || n > math.MaxInt32 {
		r.fail()
		return 0
	}
	return int(n)
}

func (r *bulkReader) ids() [][32]byte {
	out := make([][32]byte, r.count(32))
	for i := range out {
		r.fixed(out[i][:])
	}
	return out
}

// readBulk fills s's bulk fields from appendBulk's bytes, laid out as
// s.Version wrote them.
func readBulk(data []byte, s *ledgerSnapshot) error {
	r := &bulkReader{b: data}
	s.Nonces = make([]nonceEntry, r.count(22))
	for i := range s.Nonces {
		e := &s.Nonces[i]
		r.fixed(e.Signer[:])
		e.Nonce = r.uvarint()
		e.Expiry = r.uvarint()
	}
	s.Legacy = r.ids()
	s.Records = make([]record, r.count(32+1+20+1+2+3+1+1+1+1+1+1+2))
	for i := range s.Records {
		readRecord(r, &s.Records[i])
	}
	s.ClosedQueue = r.ids()
	s.Trades = make([]trade, r.count(1+1+3+64+2+1+2))
	for i := range s.Trades {
		t := &s.Trades[i]
		t.Seq = r.uvarint()
		t.Market = r.str()
		t.Price, t.Quantity, t.Quote = r.uvarint(), r.uvarint(), r.uvarint()
		r.fixed(t.MakerOrder[:])
		r.fixed(t.TakerOrder[:])
		t.Maker, t.Taker = r.str(), r.str()
		t.TakerSide = matcher.Side(r.byte1())
		t.Index, t.Timestamp = r.uvarint(), r.uvarint()
	}
	// Version 2 ends here; version 3 adds one extra per record.
	if s.Version >= 3 {
		if n := r.count(4); n != len(s.Records) && r.err == nil {
			return fmt.Errorf("%w: %d record extras for %d records", errBulkCorrupt, n, len(s.Records))
		}
		for i := range s.Records {
			rec := &s.Records[i]
			rec.Nonce, rec.Seq, rec.Cancelled = r.uvarint(), r.uvarint(), r.uvarint()
			rec.Authentic = r.byte1() != 0
		}
	}
	if r.err != nil {
		return r.err
	}
	if len(r.b) != 0 {
		return fmt.Errorf("%w: %d bytes after the last section", errBulkCorrupt, len(r.b))
	}
	return nil
}

func readRecord(r *bulkReader, rec *record) {
	r.fixed(rec.ID[:])
	rec.Kind = OpKind(r.byte1())
	r.fixed(rec.Trader[:])
	rec.Market = r.str()
	rec.Side, rec.OrderType = matcher.Side(r.byte1()), matcher.OrderType(r.byte1())
	rec.Quantity, rec.Price, rec.Filled = r.uvarint(), r.uvarint(), r.uvarint()
	if n := r.count(1 + 1 + 3 + 32 + 1); n > 0 {
		rec.Fills = make([]fill, n)
		for i := range rec.Fills {
			f := &rec.Fills[i]
			f.Trade = r.uvarint()
			f.Maker = r.byte1() != 0
			f.Price, f.Quantity, f.Quote = r.uvarint(), r.uvarint(), r.uvarint()
			r.fixed(f.Counterparty[:])
			f.Index = r.uvarint()
		}
	}
	rec.FillsDropped = r.uvarint()
	rec.Token = r.str()
	rec.Amount = r.uvarint()
	rec.Status = opStatus(r.byte1())
	rec.Reason = r.str()
	rec.Index, rec.Timestamp = r.uvarint(), r.uvarint()
}
