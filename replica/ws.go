package replica

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/coder/websocket"
	"github.com/gin-gonic/gin"

	"github.com/seqbook/seqbook/client/obapi"
)

// DecodeWSRequest reads and checks one client message of the live feed
// (docs/api.md): a known op and channel, with the market or trader the
// channel needs, well formed. It returns the subscription it names.
func DecodeWSRequest(b []byte) (obapi.WSRequest, error) {
	var req obapi.WSRequest
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return req, fmt.Errorf("not a live feed request ({\"op\":\"subscribe\",\"channel\":…}): %v", err)
	}
	if dec.More() {
		return req, errors.New("one JSON object per message")
	}
	switch req.Op {
	case "subscribe", "unsubscribe":
	case "":
		return req, fieldErr("op", errMissing)
	default:
		return req, fieldErr("op", fmt.Errorf("expected \"subscribe\" or \"unsubscribe\", got %q", clip(req.Op)))
	}
	needMarket, needTrader := false, false
	switch req.Channel {
	case obapi.ChannelBook, obapi.ChannelTrades:
		needMarket = true
	case obapi.ChannelOrders:
		needTrader = true
	case obapi.ChannelFinality:
	case "":
		return req, fieldErr("channel", errMissing)
	default:
		return req, fieldErr("channel", fmt.Errorf("expected book, trades, orders or finality, got %q", clip(req.Channel)))
	}
	if needMarket {
		m, err := parseMarket(req.Market)
		if err != nil {
			return req, err
		}
		req.Market = m
	} else if req.Market != "" {
		return req, fieldErr("market", fmt.Errorf("the %s channel takes no market", req.Channel))
	}
	if needTrader {
		a, err := parseAddress("trader", req.Trader)
		if err != nil {
			return req, err
		}
		req.Trader = a.Hex()
	} else if req.Trader != "" {
		return req, fieldErr("trader", fmt.Errorf("the %s channel takes no trader", req.Channel))
	}
	if req.After != 0 && req.Channel != obapi.ChannelTrades {
		return req, fieldErr("after", fmt.Errorf("only the trades channel resumes after an index"))
	}
	return req, nil
}

// serveWS is GET /ws: the live feed (DESIGN §8). The connection's reader
// (this goroutine) takes subscriptions; its writer drains the bounded
// queue the hub fills. Neither the apply loop nor another connection ever
// waits for it.
func (r *Replica) serveWS(c *gin.Context) {
	if !strings.EqualFold(c.GetHeader("Upgrade"), "websocket") {
		fail(c, http.StatusUpgradeRequired, "GET /ws is the live feed: connect with a WebSocket client (docs/api.md)")
		return
	}
	ctx, stop := context.WithCancelCause(context.Background())
	defer stop(nil)
	fc, ok := r.feed.admit(stop)
	if !ok {
		c.Header("Retry-After", "5")
		fail(c, http.StatusServiceUnavailable, "too many live feed connections (%d); retry later", r.cfg.Feed.ConnsMax)
		return
	}
	defer r.feed.remove(fc)
	// The server's read and write timeouts are for requests; a feed
	// connection lives on (the pings below find dead ones).
	rc := http.NewResponseController(c.Writer)
	_ = rc.SetReadDeadline(time.Time{})
	_ = rc.SetWriteDeadline(time.Time{})
	conn, err := websocket.Accept(c.Writer, c.Request, &websocket.AcceptOptions{CompressionMode: websocket.CompressionDisabled})
	if err != nil {
		return // Accept answered the client
	}
	c.Abort()
	conn.SetReadLimit(r.cfg.Feed.RequestBytesMax)
	done := make(chan struct{})
	go func() {
		defer close(done)
		r.writeWS(ctx, conn, fc)
	}()
	// The reader's context is not ctx: cancelling a Read closes the
	// connection at once, and the writer must get to send the reason. The
	// writer's Close ends the Read.
	r.readWS(context.Background(), conn, fc)
	stop(nil)
	<-done
}

// closeReason fits an error in a close frame (at most 123 bytes).
func closeReason(err error) string {
	s := err.Error()
	if len(s) > 120 {
		s = s[:120]
	}
	return s
}

// writeWS writes queued messages and pings until ctx ends, then closes
// the connection with the reason it ended for.
func (r *Replica) writeWS(ctx context.Context, conn *websocket.Conn, fc *feedConn) {
	ping := time.NewTicker(r.cfg.Feed.PingInterval)
	defer ping.Stop()
	// Writes are bounded by WriteTimeout, not by ctx: cancelling a Write
	// would close the connection before the close frame with the reason.
	write := func(b []byte) error {
		wctx, cancel := context.WithTimeout(context.Background(), r.cfg.Feed.WriteTimeout)
		defer cancel()
		return conn.Write(wctx, websocket.MessageText, b)
	}
	for {
		select {
		case <-ctx.Done():
			cause := context.Cause(ctx)
			switch {
			case errors.Is(cause, errSlowConsumer):
				conn.Close(websocket.StatusPolicyViolation, closeReason(cause))
			case cause == nil || errors.Is(cause, context.Canceled):
				conn.Close(websocket.StatusNormalClosure, "")
			default:
				conn.Close(websocket.StatusGoingAway, closeReason(cause))
			}
			return
		case b := <-fc.out:
			if err := write(b); err != nil {
				fc.stop(err)
				conn.CloseNow()
				return
			}
		case <-ping.C:
			pctx, cancel := context.WithTimeout(context.Background(), r.cfg.Feed.WriteTimeout)
			err := conn.Ping(pctx)
			cancel()
			if err != nil && ctx.Err() == nil {
				fc.stop(fmt.Errorf("no answer to a ping: %w", err))
			}
		}
	}
}

// readWS takes the client's requests until the connection ends.
func (r *Replica) readWS(ctx context.Context, conn *websocket.Conn, fc *feedConn) {
	for {
		typ, b, err := conn.Read(ctx)
		if err != nil {
			return
		}
		if typ != websocket.MessageText {
			r.feed.reply(fc, obapi.Error{Error: "requests are JSON text messages"})
			continue
		}
		req, err := DecodeWSRequest(b)
		if err == nil {
			key := subKey{req.Channel, req.Market, req.Trader}
			if req.Op == "unsubscribe" {
				err = r.feed.unsubscribe(fc, key)
			} else {
				err = r.feed.subscribe(fc, key, r.firstMessage(req))
			}
		}
		if err != nil {
			r.feed.reply(fc, obapi.Error{Error: err.Error()})
		}
	}
}

// reply queues an answer to c's request.
func (f *feed) reply(c *feedConn, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // obapi.Error always encodes
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.conns[c]; ok {
		f.sendLocked(c, b)
	}
}

// firstMessage builds a subscription's first message from the ledger, or
// for a book with subscribers already from the hub's cache (so the new
// subscriber and the others get the same updates after it).
func (r *Replica) firstMessage(req obapi.WSRequest) func(*bookCache) (uint64, []byte, *bookCache) {
	return func(cache *bookCache) (uint64, []byte, *bookCache) {
		if cache != nil {
			return cache.index, encodeMessage(obapi.ChannelBook, cache.index, obapi.WSBook{Market: req.Market, Snapshot: true,
				Bids: levelsJSON(cache.bids), Asks: levelsJSON(cache.asks)}), nil
		}
		r.mu.RLock()
		defer r.mu.RUnlock()
		l := r.ledger
		index := l.index
		switch req.Channel {
		case obapi.ChannelBook:
			bids, asks := l.eng.Depth(req.Market, r.cfg.Feed.BookLevels)
			return index, encodeMessage(req.Channel, index, obapi.WSBook{Market: req.Market, Snapshot: true,
				Bids: levelsJSON(bids), Asks: levelsJSON(asks)}), &bookCache{index: index, bids: bids, asks: asks}
		case obapi.ChannelTrades:
			return index, encodeMessage(req.Channel, index, obapi.WSTrades{Market: req.Market, Snapshot: true,
				Trades: r.recentTrades(req.Market, req.After)}), nil
		case obapi.ChannelOrders:
			out := obapi.WSOrders{Trader: req.Trader, Snapshot: true, Orders: []obapi.Order{}}
			for _, info := range l.eng.AccountOrders(req.Trader) {
				id, _ := parseHash32("id", info.ID)
				if rec, ok := l.record(id); ok {
					out.Orders = append(out.Orders, r.orderJSON(rec))
				}
			}
			return index, encodeMessage(req.Channel, index, out), nil
		default: // finality: where the replica stands
			return index, encodeMessage(req.Channel, index, obapi.WSFinality{Index: index, ChainingHash: hexID(l.chain), Timestamp: l.timestamp}), nil
		}
	}
}

// recentTrades returns, oldest first, the market's last TradesSnapshotMax
// fills, or with after > 0 the first TradesSnapshotMax of those in
// batches after that index (ledger read lock held).
func (r *Replica) recentTrades(market string, after uint64) []obapi.Trade {
	max := r.cfg.Feed.TradesSnapshotMax
	var picked []trade
	if after > 0 {
		// Trades are kept in sequence order, so their batch indexes do
		// not decrease.
		i := sort.Search(len(r.ledger.trades), func(i int) bool { return r.ledger.trades[i].Index > after })
		for _, t := range r.ledger.trades[i:] {
			if t.Market == market {
				picked = append(picked, t)
				if len(picked) == max {
					break
				}
			}
		}
	} else {
		for i := len(r.ledger.trades) - 1; i >= 0 && len(picked) < max; i-- {
			if t := r.ledger.trades[i]; t.Market == market {
				picked = append(picked, t)
			}
		}
		for i, j := 0, len(picked)-1; i < j; i, j = i+1, j-1 {
			picked[i], picked[j] = picked[j], picked[i]
		}
	}
	out := make([]obapi.Trade, len(picked))
	for i, t := range picked {
		out[i] = tradeJSON(t)
	}
	return out
}
