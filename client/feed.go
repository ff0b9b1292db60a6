package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/coder/websocket"

	"github.com/seqbook/seqbook/client/obapi"
)

// FeedEvent is one message of a live feed subscription (GET /ws), or the
// news that the connection was lost and made again.
type FeedEvent struct {
	// Message is the server's message; Channel, Index and Data as sent
	// (decode Data with Book, Trades, Orders or Finality).
	obapi.WSMessage
	// Resumed is set on the first message of a subscription made again
	// after a reconnection: a book or orders snapshot replaces what the
	// caller held; trades continue after the last index delivered.
	Resumed bool
}

// Book decodes a book message.
func (e FeedEvent) Book() (obapi.WSBook, error) {
	return decodeFeed[obapi.WSBook](e, obapi.ChannelBook)
}

// Trades decodes a trades message.
func (e FeedEvent) Trades() (obapi.WSTrades, error) {
	return decodeFeed[obapi.WSTrades](e, obapi.ChannelTrades)
}

// Orders decodes an orders message.
func (e FeedEvent) Orders() (obapi.WSOrders, error) {
	return decodeFeed[obapi.WSOrders](e, obapi.ChannelOrders)
}

// Finality decodes a finality message.
func (e FeedEvent) Finality() (obapi.WSFinality, error) {
	return decodeFeed[obapi.WSFinality](e, obapi.ChannelFinality)
}

func decodeFeed[T any](e FeedEvent, channel string) (T, error) {
	var v T
	if e.Channel != channel {
		return v, fmt.Errorf("a %s message, not %s", e.Channel, channel)
	}
	if err := json.Unmarshal(e.Data, &v); err != nil {
		return v, fmt.Errorf("decoding a %s message: %w", channel, err)
	}
	return v, nil
}

// ErrFeedRefused is returned by Subscribe when the replica refuses a
// subscription (the request is wrong; retrying would not help).
var ErrFeedRefused = errors.New("live feed refused the subscription")

// feedReconnectMax bounds the pause between reconnection attempts.
const feedReconnectMax = 5 * time.Second

// Subscribe follows the replica's live feed (GET /ws) until ctx ends or fn
// returns an error, calling fn for every message in order. When the
// connection drops (the replica restarts, or closed it as a slow
// consumer) it reconnects with a growing pause and subscribes again,
// resuming: trades continue after the last index delivered (what the
// replica still keeps), book and orders start again with a snapshot
// (marked Resumed), and messages at or below an index already delivered
// are not repeated. It returns fn's error, ctx's, or ErrFeedRefused.
func (o *Orderbook) Subscribe(ctx context.Context, reqs []obapi.WSRequest, fn func(FeedEvent) error) error {
	if len(reqs) == 0 {
		return errors.New("subscribe: no subscriptions given")
	}
	url := "ws" + strings.TrimPrefix(o.base, "http") + "/ws"
	last := map[feedKey]uint64{} // last index delivered per subscription
	pause := 100 * time.Millisecond
	for attempt := 0; ; attempt++ {
		err := o.followFeed(ctx, url, reqs, last, attempt > 0, fn)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		var stop *feedStop
		if errors.As(err, &stop) {
			return stop.err
		}
		o.o.logger.Debug("live feed connection lost; reconnecting", "url", url, "err", err, "pause", pause)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(pause):
		}
		pause = min(2*pause, feedReconnectMax)
	}
}

type feedKey struct{ channel, market, trader string }

// feedStop ends Subscribe (not a connection problem).
type feedStop struct{ err error }

func (s *feedStop) Error() string { return s.err.Error() }

// followFeed runs one connection: subscribe to everything, then deliver
// until it fails.
func (o *Orderbook) followFeed(ctx context.Context, url string, reqs []obapi.WSRequest, last map[feedKey]uint64, resumed bool, fn func(FeedEvent) error) error {
	dctx, cancel := context.WithTimeout(ctx, o.o.timeout)
	conn, _, err := websocket.Dial(dctx, url, nil)
	cancel()
	if err != nil {
		return err
	}
	defer conn.CloseNow()
	conn.SetReadLimit(16 << 20)
	// Subscriptions are answered in order: the first message of each
	// arrives before any later message of it.
	fresh := map[feedKey]bool{}
	for _, r := range reqs {
		r.Op = "subscribe"
		k := feedKey{r.Channel, r.Market, r.Trader}
		if idx, ok := last[k]; ok && r.Channel == obapi.ChannelTrades {
			r.After = idx
		}
		fresh[k] = true
		b, _ := json.Marshal(r)
		if err := conn.Write(ctx, websocket.MessageText, b); err != nil {
			return err
		}
	}
	for {
		_, b, err := conn.Read(ctx)
		if err != nil {
			return err
		}
		var m obapi.WSMessage
		if err := json.Unmarshal(b, &m); err != nil {
			return fmt.Errorf("live feed sent a message that is not JSON: %w", err)
		}
		if m.Channel == "" {
			var e obapi.Error
			_ = json.Unmarshal(b, &e)
			return &feedStop{fmt.Errorf("%w: %s", ErrFeedRefused, e.Error)}
		}
		k, ok := messageKey(m, reqs)
		if !ok {
			continue
		}
		first := fresh[k]
		fresh[k] = false
		if prev, seen := last[k]; seen && m.Index <= prev && !(first && k.channel != obapi.ChannelTrades && k.channel != obapi.ChannelFinality) {
			continue // already delivered before the reconnection
		}
		last[k] = max(last[k], m.Index)
		if err := fn(FeedEvent{WSMessage: m, Resumed: resumed && first}); err != nil {
			return &feedStop{err}
		}
	}
}

// messageKey finds the subscription a message belongs to.
func messageKey(m obapi.WSMessage, reqs []obapi.WSRequest) (feedKey, bool) {
	var probe struct {
		Market string `json:"market"`
		Trader string `json:"trader"`
	}
	_ = json.Unmarshal(m.Data, &probe)
	for _, r := range reqs {
		if r.Channel != m.Channel {
			continue
		}
		switch m.Channel {
		case obapi.ChannelBook, obapi.ChannelTrades:
			if r.Market != probe.Market {
				continue
			}
		case obapi.ChannelOrders:
			if !strings.EqualFold(r.Trader, probe.Trader) {
				continue
			}
		}
		return feedKey{r.Channel, r.Market, r.Trader}, true
	}
	return feedKey{}, false
}
