package replica

import (
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/seqbook/seqbook/client/amount"
	"github.com/seqbook/seqbook/client/obapi"
	"github.com/seqbook/seqbook/internal/matcher"
)

// FeedConfig bounds the live feed (GET /ws). Every bound keeps a
// consumer from growing the replica's memory: a connection holds at most
// QueueMax encoded messages, and there are at most ConnsMax of them.
type FeedConfig struct {
	// ConnsMax bounds open WebSocket connections; past it GET /ws answers
	// 503 before upgrading.
	ConnsMax int
	// SubsPerConnMax bounds the subscriptions of one connection.
	SubsPerConnMax int
	// QueueMax bounds the messages waiting to be written to one
	// connection. A consumer that lets it fill is closed with a reason
	// (policy violation, "slow consumer") instead of making the apply loop
	// wait or the queue grow.
	QueueMax int
	// WriteTimeout bounds writing one message (and a ping's answer).
	WriteTimeout time.Duration
	// PingInterval is how often an idle connection is pinged; a peer that
	// does not answer within WriteTimeout is closed.
	PingInterval time.Duration
	// BookLevels is the depth of the book channel (each side).
	BookLevels int
	// TradesSnapshotMax bounds the fills of a trades subscription's first
	// message, and of one batch's trades message while catching up.
	TradesSnapshotMax int
	// RequestBytesMax bounds one client message.
	RequestBytesMax int64
}

// DefaultFeedConfig returns the production bounds.
func DefaultFeedConfig() FeedConfig {
	return FeedConfig{
		ConnsMax:          1024,
		SubsPerConnMax:    16,
		QueueMax:          512,
		WriteTimeout:      10 * time.Second,
		PingInterval:      30 * time.Second,
		BookLevels:        50,
		TradesSnapshotMax: 100,
		RequestBytesMax:   4 << 10,
	}
}

// ValidateBasic checks the bounds.
func (c *FeedConfig) ValidateBasic() error {
	switch {
	case c.ConnsMax < 1 || c.SubsPerConnMax < 1 || c.QueueMax < 4:
		return errors.New("feed: ConnsMax and SubsPerConnMax must be at least 1, QueueMax at least 4")
	case c.WriteTimeout <= 0 || c.PingInterval <= 0:
		return errors.New("feed: WriteTimeout and PingInterval must be positive")
	case c.BookLevels < 1 || c.BookLevels > 1000 || c.TradesSnapshotMax < 1 || c.TradesSnapshotMax > obapi.TradesPageMax:
		return fmt.Errorf("feed: BookLevels must be in 1..1000 and TradesSnapshotMax in 1..%d", obapi.TradesPageMax)
	case c.RequestBytesMax < 256:
		return errors.New("feed: RequestBytesMax below 256 bytes")
	}
	return nil
}

// errSlowConsumer closes a connection whose queue is full.
var errSlowConsumer = errors.New("slow consumer: the connection fell behind the live feed and was closed; reconnect and resubscribe")

// subKey names one subscription of a connection.
type subKey struct{ channel, market, trader string }

// feedSub is one subscription: messages at or below from are already
// covered by its first message.
type feedSub struct {
	key  subKey
	from uint64
}

// feedConn is one WebSocket connection's side of the hub.
type feedConn struct {
	out  chan []byte // encoded messages; bounded by QueueMax
	subs map[subKey]*feedSub
	// stop ends the connection with a reason (set once, under feed.mu).
	stop    func(error)
	stopped bool
}

// bookCache is the last published top of one market's book.
type bookCache struct {
	index      uint64
	bids, asks []matcher.Level
}

// feed is the live feed's hub: the apply loop publishes each committed
// page into it, connections subscribe to it. Lock order: feed.mu is never
// held while the apply loop waits for the ledger's write lock, and the
// apply loop never holds the ledger lock while taking feed.mu.
type feed struct {
	cfg FeedConfig
	m   *PromMetrics

	mu    sync.Mutex
	conns map[*feedConn]struct{}
	// books caches the published top of the books that have subscribers;
	// a book update is the difference from it.
	books map[string]*bookCache
	// tradeSeq is the sequence number of the last trade published.
	tradeSeq uint64
	subCount int
}

func newFeed(cfg FeedConfig, m *PromMetrics, tradeSeq uint64) *feed {
	return &feed{cfg: cfg, m: m, conns: map[*feedConn]struct{}{}, books: map[string]*bookCache{}, tradeSeq: tradeSeq}
}

// admit registers a new connection, or reports that there are ConnsMax.
func (f *feed) admit(stop func(error)) (*feedConn, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.conns) >= f.cfg.ConnsMax {
		return nil, false
	}
	c := &feedConn{out: make(chan []byte, f.cfg.QueueMax), subs: map[subKey]*feedSub{}, stop: stop}
	f.conns[c] = struct{}{}
	return c, true
}

// remove forgets a connection (it ended).
func (f *feed) remove(c *feedConn) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.dropLocked(c, nil)
}

func (f *feed) dropLocked(c *feedConn, reason error) {
	if _, ok := f.conns[c]; !ok {
		return
	}
	delete(f.conns, c)
	f.subCount -= len(c.subs)
	f.m.FeedSubscribers.Set(float64(f.subCount))
	if !c.stopped {
		c.stopped = true
		if reason != nil {
			c.stop(reason)
		}
	}
	f.gcBooksLocked()
}

// gcBooksLocked drops the cached books nobody subscribes to any more, so
// publishing stops computing them.
func (f *feed) gcBooksLocked() {
	for market := range f.books {
		used := false
		for c := range f.conns {
			if _, ok := c.subs[subKey{obapi.ChannelBook, market, ""}]; ok {
				used = true
				break
			}
		}
		if !used {
			delete(f.books, market)
		}
	}
}

// sendLocked queues msg to c without waiting; a full queue closes c.
func (f *feed) sendLocked(c *feedConn, msg []byte) {
	if c.stopped {
		return
	}
	select {
	case c.out <- msg:
	default:
		f.m.FeedSlowClosed.Inc()
		f.dropLocked(c, errSlowConsumer)
	}
}

// encodeMessage is one WSMessage, encoded once for every subscriber.
func encodeMessage(channel string, index uint64, data any) []byte {
	d, err := json.Marshal(data)
	if err != nil {
		panic(fmt.Sprintf("feed: encoding %s data: %v", channel, err)) // our own types always encode
	}
	b, err := json.Marshal(obapi.WSMessage{Channel: channel, Index: index, Data: d})
	if err != nil {
		panic(fmt.Sprintf("feed: encoding a %s message: %v", channel, err))
	}
	return b
}

// subscribe adds a subscription to c and queues its first message, built
// by first under the hub lock (so no published page falls between the
// first message and the updates after it). first returns the index the
// message is as of and the message.
func (f *feed) subscribe(c *feedConn, key subKey, first func(cache *bookCache) (uint64, []byte, *bookCache)) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.conns[c]; !ok {
		return errors.New("connection closed")
	}
	if _, dup := c.subs[key]; dup {
		return fmt.Errorf("already subscribed to %s", describeSub(key))
	}
	if len(c.subs) >= f.cfg.SubsPerConnMax {
		return fmt.Errorf("too many subscriptions on one connection (at most %d)", f.cfg.SubsPerConnMax)
	}
	var cache *bookCache
	if key.channel == obapi.ChannelBook {
		cache = f.books[key.market]
	}
	index, msg, newCache := first(cache)
	if key.channel == obapi.ChannelBook && cache == nil {
		f.books[key.market] = newCache
	}
	c.subs[key] = &feedSub{key: key, from: index}
	f.subCount++
	f.m.FeedSubscribers.Set(float64(f.subCount))
	f.m.FeedMessages.WithLabelValues(key.channel).Inc()
	f.sendLocked(c, msg)
	return nil
}

// unsubscribe removes a subscription of c.
func (f *feed) unsubscribe(c *feedConn, key subKey) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := c.subs[key]; !ok {
		return fmt.Errorf("not subscribed to %s", describeSub(key))
	}
	delete(c.subs, key)
	f.subCount--
	f.m.FeedSubscribers.Set(float64(f.subCount))
	f.gcBooksLocked()
	return nil
}

func describeSub(k subKey) string {
	switch {
	case k.market != "":
		return k.channel + " " + k.market
	case k.trader != "":
		return k.channel + " " + k.trader
	}
	return k.channel
}

// pageUpdate is what one committed page changed, read from the ledger.
type pageUpdate struct {
	index    uint64
	tradeSeq uint64
	trades   []trade
	books    map[string]*bookCache
	orders   map[string][]obapi.Order // by trader
	batches  []obapi.WSFinality
}

// interest is what the subscribers want from a page, and the last trade
// published.
type interest struct {
	any      bool
	books    []string
	traders  map[string]bool
	tradeSeq uint64
}

func (f *feed) interest() interest {
	f.mu.Lock()
	defer f.mu.Unlock()
	in := interest{any: len(f.conns) > 0, traders: map[string]bool{}, tradeSeq: f.tradeSeq}
	for m := range f.books {
		in.books = append(in.books, m)
	}
	for c := range f.conns {
		for k := range c.subs {
			if k.channel == obapi.ChannelOrders {
				in.traders[k.trader] = true
			}
		}
	}
	return in
}

// publish fans a committed page out (apply loop). It reads the ledger
// under the read lock, then queues encoded messages without ever waiting
// for a consumer.
func (r *Replica) publish(preps []prepared, applied []*Applied) {
	f := r.feed
	in := f.interest()
	r.mu.RLock()
	u := r.readPage(in, preps, applied)
	r.mu.RUnlock()
	f.fanOut(u)
}

// readPage reads what the subscribers want of a page (ledger read lock
// held).
func (r *Replica) readPage(in interest, preps []prepared, applied []*Applied) pageUpdate {
	l, tradeSeq := r.ledger, in.tradeSeq
	_, seq := l.eng.Counters()
	u := pageUpdate{index: l.index, tradeSeq: seq}
	if !in.any {
		return u
	}
	// The page's trades: those after the last published one (a page
	// cannot hold more than the history keeps; fills beyond it were
	// evicted and are not sent).
	if seq > tradeSeq {
		u.trades, _ = l.tradesAfter("", "", tradeSeq, int(min(seq-tradeSeq, uint64(r.cfg.Ledger.TradesMax))))
	}
	u.books = map[string]*bookCache{}
	for _, m := range in.books {
		bids, asks := l.eng.Depth(m, r.cfg.Feed.BookLevels)
		u.books[m] = &bookCache{index: l.index, bids: bids, asks: asks}
	}
	if len(in.traders) > 0 {
		u.orders = map[string][]obapi.Order{}
		seen := map[[32]byte]bool{}
		add := func(id [32]byte) {
			if seen[id] {
				return
			}
			seen[id] = true
			if rec, ok := l.record(id); ok && rec.Kind.IsOrder() && in.traders[rec.Trader.Hex()] {
				u.orders[rec.Trader.Hex()] = append(u.orders[rec.Trader.Hex()], r.orderJSON(rec))
			}
		}
		for _, a := range applied {
			for _, o := range a.Outcomes {
				if o.Authentic {
					add(o.ID)
				}
			}
		}
		// A resting order filled by someone else's order changed too.
		for _, t := range u.trades {
			add(t.MakerOrder)
		}
	}
	// The page's proof (on its last batch) covers every batch of it.
	proof := preps[len(preps)-1].batch.Proof
	for _, a := range applied {
		fin := obapi.WSFinality{Index: a.Index, ChainingHash: hexID(a.ChainingHash), Timestamp: a.Timestamp, Operations: len(a.Outcomes)}
		if proof != nil {
			fin.ProofIndex, fin.View, fin.Signers = proof.Index, proof.View, proof.Signers
		}
		u.batches = append(u.batches, fin)
	}
	return u
}

// fanOut queues a page's messages to the subscriptions that want them.
func (f *feed) fanOut(u pageUpdate) {
	start := time.Now()
	f.mu.Lock()
	defer f.mu.Unlock()
	f.tradeSeq = max(f.tradeSeq, u.tradeSeq)
	if len(f.conns) == 0 {
		return
	}
	msgs := map[subKey][]byte{}
	// Trades by market, one message each.
	byMarket := map[string][]obapi.Trade{}
	var markets []string
	for _, t := range u.trades {
		if _, ok := byMarket[t.Market]; !ok {
			markets = append(markets, t.Market)
		}
		byMarket[t.Market] = append(byMarket[t.Market], tradeJSON(t))
	}
	for _, m := range markets {
		msgs[subKey{obapi.ChannelTrades, m, ""}] = encodeMessage(obapi.ChannelTrades, u.index, obapi.WSTrades{Market: m, Trades: byMarket[m]})
	}
	for m, now := range u.books {
		prev, ok := f.books[m]
		if !ok || prev.index >= now.index {
			continue // subscribed after the read: its first message covers this page
		}
		bids, asks := levelChanges(prev.bids, now.bids), levelChanges(prev.asks, now.asks)
		f.books[m] = now
		if len(bids)+len(asks) > 0 {
			msgs[subKey{obapi.ChannelBook, m, ""}] = encodeMessage(obapi.ChannelBook, u.index, obapi.WSBook{Market: m, Bids: bids, Asks: asks})
		}
	}
	for trader, os := range u.orders {
		msgs[subKey{obapi.ChannelOrders, "", trader}] = encodeMessage(obapi.ChannelOrders, u.index, obapi.WSOrders{Trader: trader, Orders: os})
	}
	var finality [][]byte
	var finalityIdx []uint64
	for _, b := range u.batches {
		finality = append(finality, encodeMessage(obapi.ChannelFinality, b.Index, b))
		finalityIdx = append(finalityIdx, b.Index)
	}
	sent := map[string]int{} // by channel, added to the metric once
	for c := range f.conns {
		for k, s := range c.subs {
			if k.channel == obapi.ChannelFinality {
				for i, msg := range finality {
					if finalityIdx[i] > s.from {
						sent[k.channel]++
						f.sendLocked(c, msg)
					}
				}
			} else if msg, ok := msgs[k]; ok && u.index > s.from {
				sent[k.channel]++
				f.sendLocked(c, msg)
			}
			if c.stopped {
				break
			}
		}
	}
	for ch, n := range sent {
		f.m.FeedMessages.WithLabelValues(ch).Add(float64(n))
	}
	f.m.FeedPublishDelay.Observe(time.Since(start).Seconds())
}

// levelChanges lists the levels of now that differ from prev, and the
// levels of prev gone from now with quantity 0 (both in now's price
// order, then prev's).
func levelChanges(prev, now []matcher.Level) []obapi.Level {
	old := make(map[uint64]matcher.Level, len(prev))
	for _, l := range prev {
		old[l.Price] = l
	}
	out := []obapi.Level{}
	inNow := make(map[uint64]bool, len(now))
	for _, l := range now {
		inNow[l.Price] = true
		if o, ok := old[l.Price]; !ok || o != l {
			out = append(out, levelJSON(l))
		}
	}
	for _, l := range prev {
		if !inNow[l.Price] {
			out = append(out, obapi.Level{Price: amount.Format(l.Price), Quantity: "0", Orders: 0})
		}
	}
	return out
}
