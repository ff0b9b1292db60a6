package transport

import (
	"bytes"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"testing"
	"time"

	"github.com/seqbook/seqbook/client/bls"
	"github.com/seqbook/seqbook/client/cluster"
	"github.com/seqbook/seqbook/sequencer/node/testnet"
)

// testQUICConfig is DefaultQUICConfig with timeouts short enough that
// reconnect tests finish quickly.
func testQUICConfig(c *cluster.Cluster, self int, key *bls.SecretKey) QUICConfig {
	cfg := DefaultQUICConfig()
	cfg.Cluster, cfg.Self, cfg.Key = c, self, key
	cfg.IdleTimeout = 2 * time.Second
	cfg.KeepAlive = 200 * time.Millisecond
	cfg.BackoffMin = 10 * time.Millisecond
	cfg.BackoffMax = 200 * time.Millisecond
	if testing.Verbose() {
		cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return cfg
}

func startQUIC(t *testing.T, cfg QUICConfig) *QUIC {
	t.Helper()
	q, err := NewQUIC(cfg)
	if err != nil {
		t.Fatalf("NewQUIC(%s): %v", cfg.Cluster.Nodes[cfg.Self].ID, err)
	}
	t.Cleanup(func() { q.Close() })
	return q
}

// recvWithin waits for one message or fails after d.
func recvWithin(t *testing.T, tr Transport, d time.Duration) Message {
	t.Helper()
	select {
	case m, ok := <-tr.Recv():
		if !ok {
			t.Fatal("Recv closed")
		}
		return m
	case <-time.After(d):
		t.Fatalf("no message within %v", d)
	}
	return Message{}
}

// sendUntilReceived resends data every few milliseconds until the receiver
// gets a copy (the connection may still be coming up; the transport is
// allowed to drop until then), or fails at the deadline.
func sendUntilReceived(t *testing.T, from Transport, fromIdx int, to Transport, toIdx int, data []byte, d time.Duration) {
	t.Helper()
	deadline := time.After(d)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	from.Send(toIdx, data)
	for {
		select {
		case m := <-to.Recv():
			// Earlier resends from other test steps may still arrive;
			// only this payload counts, and it must carry the right sender.
			if bytes.Equal(m.Data, data) {
				if m.From != fromIdx {
					t.Fatalf("message %q claims From=%d, sent by %d", data, m.From, fromIdx)
				}
				return
			}
		case <-tick.C:
			from.Send(toIdx, data)
		case <-deadline:
			t.Fatalf("node %d never received %q from node %d within %v", toIdx, data, fromIdx, d)
		}
	}
}

func TestQUICDeliversAmongThreeNodes(t *testing.T) {
	net, err := testnet.New(3)
	if err != nil {
		t.Fatal(err)
	}
	ts := make([]*QUIC, 3)
	for i := range ts {
		ts[i] = startQUIC(t, testQUICConfig(net.Cluster, i, net.Keys[i]))
	}
	for i := range ts {
		for j := range ts {
			if i != j {
				sendUntilReceived(t, ts[i], i, ts[j], j, []byte(fmt.Sprintf("hello %d->%d", i, j)), 10*time.Second)
			}
		}
	}
	// Once connected, a burst arrives whole and in order.
	const burst = 200
	for k := 0; k < burst; k++ {
		ts[0].Send(1, []byte(fmt.Sprintf("m%03d", k)))
	}
	next := 0
	for next < burst {
		m := recvWithin(t, ts[1], 10*time.Second)
		if string(m.Data) == fmt.Sprintf("m%03d", next) {
			next++
		} else if next > 0 {
			t.Fatalf("out of order: got %q, want m%03d", m.Data, next)
		}
	}
	// A large message (a full batch) crosses too.
	big := bytes.Repeat([]byte{'x'}, 1<<20+100)
	ts[2].Send(0, big)
	for {
		m := recvWithin(t, ts[0], 10*time.Second)
		if bytes.Equal(m.Data, big) {
			if m.From != 2 {
				t.Fatalf("From = %d", m.From)
			}
			break
		}
	}
	st := ts[0].Peers()
	if len(st) != 2 || !st[0].Outbound || !st[0].Inbound {
		t.Fatalf("peer status after traffic: %+v", st)
	}
	// On loopback the network's round trip is well under a millisecond
	// (generous bound for a loaded machine); there is none to oneself.
	if rtt, ok := ts[0].MinRTT(1); !ok || rtt > 20*time.Millisecond {
		t.Fatalf("MinRTT(1) = %v, %v after traffic on loopback", rtt, ok)
	}
	if _, ok := ts[0].MinRTT(0); ok {
		t.Fatal("MinRTT to itself")
	}
}

func TestQUICRefusesWrongKey(t *testing.T) {
	net, err := testnet.New(3)
	if err != nil {
		t.Fatal(err)
	}
	honest := startQUIC(t, testQUICConfig(net.Cluster, 0, net.Keys[0]))

	// An impostor takes node2's id and address but has its own key: it
	// edits its copy of the cluster file to hold its key, which the
	// honest node's file does not.
	impostorKey, err := bls.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	forged := net.File
	forged.Nodes = append([]cluster.Member(nil), net.File.Nodes...)
	forged.Nodes[1].BLSPubkey = impostorKey.PublicKey().Hex()
	forged.Nodes[1].BLSPop = impostorKey.ProvePossession().Hex()
	forgedCluster, err := cluster.New(forged)
	if err != nil {
		t.Fatal(err)
	}
	impostor := startQUIC(t, testQUICConfig(forgedCluster, 1, impostorKey))

	// The impostor keeps sending; the honest node must refuse every
	// connection it makes and must also refuse to talk to it when dialing
	// node2's address.
	deadline := time.Now().Add(10 * time.Second)
	for honest.Metrics().AuthRejected.Load() < 2 || honest.Metrics().DialFailures.Load() < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("honest node did not refuse the impostor: %+v", honest.Metrics().Snapshot())
		}
		impostor.Send(0, []byte("forged lock vote"))
		time.Sleep(20 * time.Millisecond) // pacing the sender, not waiting for a result
	}
	select {
	case m := <-honest.Recv():
		t.Fatalf("honest node delivered a message from the impostor: from=%d %q", m.From, m.Data)
	default:
	}
	select {
	case m := <-impostor.Recv():
		t.Fatalf("honest node sent to the impostor: from=%d %q", m.From, m.Data)
	default:
	}
	if s := honest.Metrics().Snapshot(); s.InboundAccepted != 0 || s.ReceivedMessages != 0 {
		t.Fatalf("impostor got in: %+v", s)
	}
}

func TestQUICRefusesNodeNotInCluster(t *testing.T) {
	net, err := testnet.New(2)
	if err != nil {
		t.Fatal(err)
	}
	honest := startQUIC(t, testQUICConfig(net.Cluster, 0, net.Keys[0]))

	// The outsider's cluster file has a third node, itself; the honest
	// node's does not.
	m, outsiderKey, err := testnet.NewMember("node3")
	if err != nil {
		t.Fatal(err)
	}
	bigger := net.File
	bigger.Nodes = append(append([]cluster.Member(nil), net.File.Nodes...), m)
	biggerCluster, err := cluster.New(bigger)
	if err != nil {
		t.Fatal(err)
	}
	outsider := startQUIC(t, testQUICConfig(biggerCluster, 2, outsiderKey))
	deadline := time.Now().Add(10 * time.Second)
	for honest.Metrics().AuthRejected.Load() < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("honest node did not refuse the outsider: %+v", honest.Metrics().Snapshot())
		}
		outsider.Send(0, []byte("forged"))
		time.Sleep(20 * time.Millisecond) // pacing the sender
	}
	select {
	case msg := <-honest.Recv():
		t.Fatalf("outsider injected a message: %+v", msg)
	default:
	}
}

func TestQUICReconnectsToRestartedPeer(t *testing.T) {
	net, err := testnet.New(2)
	if err != nil {
		t.Fatal(err)
	}
	a := startQUIC(t, testQUICConfig(net.Cluster, 0, net.Keys[0]))
	b, err := NewQUIC(testQUICConfig(net.Cluster, 1, net.Keys[1]))
	if err != nil {
		t.Fatal(err)
	}
	sendUntilReceived(t, a, 0, b, 1, []byte("before"), 10*time.Second)
	sendUntilReceived(t, b, 1, a, 0, []byte("before back"), 10*time.Second)
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	// While b is down, a's sends queue or drop; nothing blocks.
	for k := 0; k < 10; k++ {
		a.Send(1, []byte("while down"))
	}
	b2 := startQUIC(t, testQUICConfig(net.Cluster, 1, net.Keys[1]))
	sendUntilReceived(t, a, 0, b2, 1, []byte("after restart"), 15*time.Second)
	sendUntilReceived(t, b2, 1, a, 0, []byte("after restart back"), 15*time.Second)
}

func TestQUICQueueDropsOldestWhenPeerDown(t *testing.T) {
	net, err := testnet.New(2)
	if err != nil {
		t.Fatal(err)
	}
	cfg := testQUICConfig(net.Cluster, 0, net.Keys[0])
	cfg.QueueMessagesMax = 5
	a := startQUIC(t, cfg)
	// Node 2 never starts: everything queues, then the oldest go.
	for k := 0; k < 12; k++ {
		a.Send(1, []byte{byte(k)})
	}
	if got := a.Metrics().DroppedQueueFull.Load(); got != 7 {
		t.Fatalf("DroppedQueueFull = %d, want 7", got)
	}
	if q := a.peers[1].queue.len(); q != 5 {
		t.Fatalf("queue holds %d, want 5", q)
	}
	a.Send(0, []byte("self"))
	a.Send(7, []byte("nobody"))
	a.Send(1, nil)
	if got := a.Metrics().DroppedInvalid.Load(); got != 3 {
		t.Fatalf("DroppedInvalid = %d, want 3", got)
	}
}

func TestQUICRefusesKeyNotMatchingClusterFile(t *testing.T) {
	net, err := testnet.New(2)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := NewQUIC(testQUICConfig(net.Cluster, 0, net.Keys[1])); err == nil {
		t.Fatal("NewQUIC accepted node2's key as node1")
	}
}

func TestQUICCloseLeavesNoGoroutines(t *testing.T) {
	before := runtime.NumGoroutine()
	net, err := testnet.New(3)
	if err != nil {
		t.Fatal(err)
	}
	ts := make([]*QUIC, 3)
	for i := range ts {
		ts[i], err = NewQUIC(testQUICConfig(net.Cluster, i, net.Keys[i]))
		if err != nil {
			t.Fatal(err)
		}
	}
	sendUntilReceived(t, ts[0], 0, ts[1], 1, []byte("x"), 10*time.Second)
	sendUntilReceived(t, ts[2], 2, ts[0], 0, []byte("y"), 10*time.Second)
	for _, tr := range ts {
		if err := tr.Close(); err != nil {
			t.Fatal(err)
		}
		if _, ok := <-tr.Recv(); ok {
			// Drain anything still buffered; Recv must end closed.
			for range tr.Recv() {
			}
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			n := runtime.Stack(buf, true)
			t.Fatalf("%d goroutines left, %d before:\n%s", runtime.NumGoroutine(), before, buf[:n])
		}
		time.Sleep(10 * time.Millisecond) // polling a condition with a deadline
	}
	ts[0].Send(1, []byte("after close")) // must not panic
}
