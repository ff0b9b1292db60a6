package replica

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/seqbook/seqbook/client"
	"github.com/seqbook/seqbook/client/obapi"
)

// dialFeed opens GET /ws on a test replica.
func dialFeed(t *testing.T, tr *testReplica) *websocket.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(tr.srv.URL, "http")+"/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	conn.SetReadLimit(64 << 20)
	t.Cleanup(func() { conn.CloseNow() })
	return conn
}

func sendJSON(t *testing.T, conn *websocket.Conn, v any) {
	t.Helper()
	b, _ := json.Marshal(v)
	if err := conn.Write(context.Background(), websocket.MessageText, b); err != nil {
		t.Fatal(err)
	}
}

// readFeed reads the next message (failing after 10 s).
func readFeed(t *testing.T, conn *websocket.Conn) (obapi.WSMessage, []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, b, err := conn.Read(ctx)
	if err != nil {
		t.Fatalf("reading the feed: %v", err)
	}
	var m obapi.WSMessage
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("feed message %s: %v", b, err)
	}
	return m, b
}

func TestFeedChannels(t *testing.T) {
	clock := newClock()
	seq := NewMemSequencer(clock.Ms)
	tr := startReplica(t, testConfig("r1", clock), seq, NewMemStore())
	conn := dialFeed(t, tr)
	for _, req := range []obapi.WSRequest{
		{Op: "subscribe", Channel: "book", Market: "ETH/USDT"},
		{Op: "subscribe", Channel: "trades", Market: "ETH/USDT"},
		{Op: "subscribe", Channel: "orders", Trader: strings.ToLower(addr(alice).Hex())},
		{Op: "subscribe", Channel: "finality"},
	} {
		sendJSON(t, conn, req)
		m, raw := readFeed(t, conn)
		if m.Channel != req.Channel || !strings.Contains(string(m.Data), `"snapshot":true`) && req.Channel != "finality" {
			t.Fatalf("first message of %s: %s", req.Channel, raw)
		}
	}
	// A refused request is answered with an error and changes nothing.
	sendJSON(t, conn, obapi.WSRequest{Op: "subscribe", Channel: "book", Market: "ETHUSDT"})
	if _, raw := readFeed(t, conn); !strings.Contains(string(raw), `"error":"market: invalid market`) {
		t.Fatalf("bad market answered %s", raw)
	}
	sendJSON(t, conn, obapi.WSRequest{Op: "subscribe", Channel: "book", Market: "ETH/USDT"})
	if _, raw := readFeed(t, conn); !strings.Contains(string(raw), "already subscribed") {
		t.Fatalf("a second book subscription answered %s", raw)
	}

	// A resting sell, then a buy that takes it.
	sell := signOrder(t, carol, orderSpec{side: "sell", qty: 1_000_000, price: 2000_000_000, nonce: 1})
	if code := tr.do(t, "POST", "/order?wait=finalized", sell, nil); code != 200 {
		t.Fatalf("sell: %d", code)
	}
	buy := signOrder(t, alice, orderSpec{side: "buy", qty: 1_000_000, price: 2000_000_000, nonce: 1})
	if code := tr.do(t, "POST", "/order?wait=finalized", buy, nil); code != 200 {
		t.Fatalf("buy: %d", code)
	}
	last := map[string]uint64{}
	var sawAsk, sawAskGone, sawTrade, sawFilled bool
	finality := 0
	for !(sawAsk && sawAskGone && sawTrade && sawFilled && finality >= 2) {
		m, raw := readFeed(t, conn)
		if m.Index < last[m.Channel] {
			t.Fatalf("%s message at index %d after %d", m.Channel, m.Index, last[m.Channel])
		}
		last[m.Channel] = m.Index
		ev := client.FeedEvent{WSMessage: m}
		switch m.Channel {
		case "book":
			b, _ := ev.Book()
			for _, l := range b.Asks {
				sawAsk = sawAsk || l.Price == "2000" && l.Quantity == "1"
				sawAskGone = sawAskGone || sawAsk && l.Price == "2000" && l.Quantity == "0"
			}
		case "trades":
			tt, _ := ev.Trades()
			sawTrade = len(tt.Trades) == 1 && tt.Trades[0].Price == "2000" && tt.Trades[0].Quantity == "1" && tt.Trades[0].Index == m.Index
		case "orders":
			o, _ := ev.Orders()
			for _, ord := range o.Orders {
				if ord.Trader != addr(alice).Hex() {
					t.Fatalf("alice's orders channel carried %s", raw)
				}
				sawFilled = sawFilled || ord.Status == "filled"
			}
		case "finality":
			f, _ := ev.Finality()
			if f.Index != m.Index || len(f.ChainingHash) != 66 || f.Operations != 1 {
				t.Fatalf("finality message %s", raw)
			}
			finality++
		default:
			t.Fatalf("unexpected message %s", raw)
		}
	}
	if n := tr.prom.FeedSubscribers; n == nil {
		t.Fatal("no subscriber gauge")
	}
}

func TestFeedRefusesPlainGETAndBoundsConnections(t *testing.T) {
	clock := newClock()
	cfg := testConfig("r1", clock)
	cfg.Feed.ConnsMax = 1
	tr := startReplica(t, cfg, NewMemSequencer(clock.Ms), NewMemStore())
	var e obapi.Error
	if code := tr.do(t, "GET", "/ws", nil, &e); code != http.StatusUpgradeRequired || !strings.Contains(e.Error, "WebSocket") {
		t.Fatalf("plain GET /ws: %d %+v", code, e)
	}
	dialFeed(t, tr)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, resp, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(tr.srv.URL, "http")+"/ws", nil)
	if err == nil || resp == nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("a connection past ConnsMax: %v %+v", err, resp)
	}
}

// A consumer that does not read is closed with a reason once its queue is
// full; the hub never waits for it.
func TestFeedClosesSlowConsumer(t *testing.T) {
	clock := newClock()
	cfg := testConfig("r1", clock)
	cfg.Feed.QueueMax = 4
	tr := startReplica(t, cfg, NewMemSequencer(clock.Ms), NewMemStore())
	conn := dialFeed(t, tr)
	sendJSON(t, conn, obapi.WSRequest{Op: "subscribe", Channel: "finality"})
	readFeed(t, conn)
	f := tr.feed
	f.mu.Lock()
	var fc *feedConn
	for c := range f.conns {
		fc = c
	}
	f.mu.Unlock()
	// Messages of 1 MiB, far more than the socket buffers take while the
	// client reads nothing: the writer blocks, the queue fills.
	big := encodeMessage("finality", 1, obapi.WSFinality{ChainingHash: strings.Repeat("a", 1<<20)})
	start := time.Now()
	for sent := 0; ; sent++ {
		f.mu.Lock()
		_, open := f.conns[fc]
		if open {
			f.sendLocked(fc, big)
		}
		f.mu.Unlock()
		if !open {
			break
		}
		if sent > 10_000 {
			t.Fatal("the hub never closed a consumer that reads nothing")
		}
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("queueing to a stuck consumer took %v; the hub must not wait", d)
	}
	// The client reads what was already on its way, then the reason.
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		_, _, err := conn.Read(ctx)
		cancel()
		if err == nil {
			continue
		}
		var ce websocket.CloseError
		if !errors.As(err, &ce) || ce.Code != websocket.StatusPolicyViolation || !strings.HasPrefix(ce.Reason, "slow consumer") {
			t.Fatalf("closed with %v, want policy violation \"slow consumer…\"", err)
		}
		break
	}
}

func TestDecodeWSRequest(t *testing.T) {
	good := []string{
		`{"op":"subscribe","channel":"book","market":"ETH/USDT"}`,
		`{"op":"unsubscribe","channel":"trades","market":"ETH/USDT","after":12}`,
		`{"op":"subscribe","channel":"orders","trader":"0xc66f8fba940064b5ba8d437d6ff829e60134230e"}`,
		`{"op":"subscribe","channel":"finality"}`,
	}
	for _, s := range good {
		if _, err := DecodeWSRequest([]byte(s)); err != nil {
			t.Errorf("%s: %v", s, err)
		}
	}
	bad := map[string]string{
		`{"op":"subscribe","channel":"book"}`:                               "market: missing",
		`{"op":"subscribe","channel":"candles","market":"ETH/USDT"}`:        "channel: expected",
		`{"op":"sub","channel":"book","market":"ETH/USDT"}`:                 "op: expected",
		`{"channel":"book","market":"ETH/USDT"}`:                            "op: missing",
		`{"op":"subscribe","channel":"orders","trader":"0x12"}`:             "trader: not a 0x",
		`{"op":"subscribe","channel":"finality","market":"ETH/USDT"}`:       "takes no market",
		`{"op":"subscribe","channel":"book","market":"ETH/USDT","after":1}`: "only the trades channel",
		`{"op":"subscribe","channel":"finality","x":1}`:                     "unknown field",
		`{"op":"subscribe","channel":"finality"} {}`:                        "one JSON object",
		`[1]`: "not a live feed request",
	}
	for s, want := range bad {
		if _, err := DecodeWSRequest([]byte(s)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: got %v, want an error with %q", s, err, want)
		}
	}
}

func FuzzDecodeWSRequest(f *testing.F) {
	f.Add([]byte(`{"op":"subscribe","channel":"book","market":"ETH/USDT"}`))
	f.Add([]byte(`{"op":"subscribe","channel":"orders","trader":"0xc66f8fba940064b5ba8d437d6ff829e60134230e"}`))
	f.Add([]byte(`{"op":"subscribe","channel":"trades","market":"ETH/USDT","after":3}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		req, err := DecodeWSRequest(b)
		if err != nil {
			return
		}
		// What is accepted decodes again to the same request.
		again, _ := json.Marshal(req)
		req2, err := DecodeWSRequest(again)
		if err != nil || req2 != req {
			t.Fatalf("accepted %q, but its normal form %s gives %+v, %v", b, again, req2, err)
		}
	})
}
