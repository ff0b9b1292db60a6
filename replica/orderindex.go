package replica

import (
	"cmp"
	"slices"

	"github.com/ethereum/go-ethereum/common"
)

// orderIndex is a read model over the ledger's order records, for GET
// /orders?trader= (history, newest first) and GET /orders/by-nonce. Like
// the records it indexes it is not part of the replicated state and not in
// the digest (STYLE, last section): it is derived from the applied log, so
// every replica builds the same one, and it is rebuilt from the records
// after a restart.
//
// Only operations whose signature verified are indexed: anyone can submit
// garbage under a trader's address, and it must not fill that trader's
// history or take its (trader, nonce) name.
//
// Why it stays bounded: it holds only ids of records the ledger keeps
// (bounded by LedgerConfig.RecordsMax plus the open orders); a trader's
// list may keep ids of evicted records until it is compacted, which
// happens once they are more than half of it.
type orderIndex struct {
	byNonce  map[nonceKey][32]byte
	byTrader map[common.Address]*traderOrders
	// lastSeq is the highest record sequence indexed.
	lastSeq uint64
}

// traderOrders lists one trader's order records by ascending sequence.
type traderOrders struct {
	refs []orderRef
	live int // refs whose record is still kept
}

type orderRef struct {
	seq uint64
	id  [32]byte
}

func newOrderIndex() orderIndex {
	return orderIndex{byNonce: map[nonceKey][32]byte{}, byTrader: map[common.Address]*traderOrders{}}
}

// add indexes an authentic order record (r.Seq is above every indexed
// one); it ignores any other record.
func (x *orderIndex) add(r *record) {
	if !r.Kind.IsOrder() || !r.Authentic {
		return
	}
	if r.Kind == OpOrder {
		x.byNonce[nonceKey{r.Trader, r.Nonce}] = r.ID
	}
	t := x.byTrader[r.Trader]
	if t == nil {
		t = &traderOrders{}
		x.byTrader[r.Trader] = t
	}
	t.refs = append(t.refs, orderRef{seq: r.Seq, id: r.ID})
	t.live++
	x.lastSeq = max(x.lastSeq, r.Seq)
}

// forget drops an evicted record; records holds what is still kept.
func (x *orderIndex) forget(r *record, records map[[32]byte]*record) {
	if !r.Kind.IsOrder() || !r.Authentic {
		return
	}
	k := nonceKey{r.Trader, r.Nonce}
	if r.Kind == OpOrder && x.byNonce[k] == r.ID {
		delete(x.byNonce, k)
	}
	t := x.byTrader[r.Trader]
	if t == nil {
		return
	}
	t.live--
	if t.live <= 0 {
		delete(x.byTrader, r.Trader)
		return
	}
	if len(t.refs) > 2*t.live+16 {
		t.refs = slices.DeleteFunc(t.refs, func(ref orderRef) bool { return !current(records, ref) })
		t.live = len(t.refs)
	}
}

// current reports whether ref still names a kept record (and not an older
// record of the same id that was replaced).
func current(records map[[32]byte]*record, ref orderRef) bool {
	r, ok := records[ref.id]
	return ok && r.Seq == ref.seq
}

// rebuild indexes restored records. Records of a version 2 snapshot carry
// no sequence and no authenticity: they are numbered by (index, id), which
// keeps batches in order, and taken as authentic.
func (x *orderIndex) rebuild(records map[[32]byte]*record) {
	*x = newOrderIndex()
	rs := make([]*record, 0, len(records))
	for _, r := range records {
		rs = append(rs, r)
	}
	slices.SortFunc(rs, func(a, b *record) int {
		return cmp.Or(cmp.Compare(a.Seq, b.Seq), cmp.Compare(a.Index, b.Index), compare32(a.ID, b.ID))
	})
	var seq uint64
	for _, r := range rs {
		if r.Seq == 0 {
			r.Seq, r.Authentic = seq+1, true
		}
		seq = r.Seq
		x.add(r)
	}
	x.lastSeq = seq
}

// historyFilter selects records by status (GET /orders?status=).
type historyFilter func(opStatus) bool

// history returns up to limit of trader's order records matching keep,
// newest first, older than sequence before (0: from the newest), and the
// sequence to continue from (0 when there is no more).
func (x *orderIndex) history(records map[[32]byte]*record, trader common.Address, keep historyFilter, before uint64, limit int) (out []*record, more bool) {
	t := x.byTrader[trader]
	if t == nil {
		return nil, false
	}
	end := len(t.refs)
	if before != 0 {
		end, _ = slices.BinarySearchFunc(t.refs, before, func(ref orderRef, s uint64) int { return cmp.Compare(ref.seq, s) })
	}
	for k := end - 1; k >= 0; k-- {
		ref := t.refs[k]
		if !current(records, ref) {
			continue
		}
		r := records[ref.id]
		if !keep(r.Status) {
			continue
		}
		if len(out) == limit {
			return out, true
		}
		out = append(out, r)
	}
	return out, false
}

// marketStat is one market's trading summary over a window of batch time
// (GET /markets).
type marketStat struct {
	last                uint64 // price of the last kept trade
	hasLast             bool
	volume, quoteVolume uint64 // saturating sums: a display value
	trades              int
}

// marketStats summarises the kept trades (a read model, newest last) per
// market over the windowMs of batch time ending at the last applied batch,
// for markets markets. complete is false when trades older than the kept
// ones may fall in the window (TradesMax dropped some). It walks back
// through the window, then only until every market has a last price.
func (l *Ledger) marketStats(windowMs uint64, markets int) (stats map[string]marketStat, complete bool) {
	out := map[string]marketStat{}
	var since uint64
	if l.timestamp > windowMs {
		since = l.timestamp - windowMs
	}
	// Every trade ever made is kept while the first kept one is trade 1.
	allKept := len(l.trades) == 0 || l.trades[0].Seq == 1
	k := len(l.trades) - 1
	for ; k >= 0; k-- {
		t := &l.trades[k]
		st := out[t.Market]
		if !st.hasLast {
			st.last, st.hasLast = t.Price, true
		}
		if t.Timestamp > since {
			st.trades++
			st.volume = satAdd(st.volume, t.Quantity)
			st.quoteVolume = satAdd(st.quoteVolume, t.Quote)
			out[t.Market] = st
			continue
		}
		out[t.Market] = st
		break
	}
	// Past the window, the markets not seen yet still need a last price.
	for ; k >= 0 && len(out) < markets; k-- {
		t := &l.trades[k]
		if st := out[t.Market]; !st.hasLast {
			st.last, st.hasLast = t.Price, true
			out[t.Market] = st
		}
	}
	// The window is complete when it ends inside the kept trades.
	complete = allKept || l.trades[0].Timestamp <= since
	return out, complete
}

func satAdd(a, b uint64) uint64 {
	if a+b < a {
		return ^uint64(0)
	}
	return a + b
}
