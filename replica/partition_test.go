package replica

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/seqbook/seqbook/client"
	"github.com/seqbook/seqbook/client/cluster"
	"github.com/seqbook/seqbook/client/keys"
	"github.com/seqbook/seqbook/client/obapi"
)

// silentNode accepts connections and answers nothing while silent (a
// partitioned host: packets vanish, nothing is refused); otherwise it
// answers every request with status.
type silentNode struct {
	silent atomic.Bool
	status int
	puts   atomic.Int64
	// gone ends silent waits when the test ends.
	gone chan struct{}
}

func (n *silentNode) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodPut {
		n.puts.Add(1)
	}
	// Reading the body lets the server notice the client leaving.
	_, _ = io.Copy(io.Discard, r.Body)
	if n.silent.Load() {
		select {
		case <-r.Context().Done():
		case <-n.gone:
		}
		return
	}
	w.WriteHeader(n.status)
	fmt.Fprintln(w, `{"error":"busy"}`)
}

// partitionedSequencer is the SDK sequencer over four nodes that the
// test makes silent or refusing.
func partitionedSequencer(t *testing.T, status int) (*SDKSequencer, []*silentNode) {
	t.Helper()
	f := cluster.File{ChainID: testDomain().EIP712.ChainID, App: testDomain().App}
	var nodes []*silentNode
	for i := 0; i < 4; i++ {
		n := &silentNode{status: status, gone: make(chan struct{})}
		srv := httptest.NewUnstartedServer(n)
		srv.Config.SetKeepAlivesEnabled(false)
		srv.Start()
		t.Cleanup(func() { close(n.gone); srv.Close() })
		sk := keys.DeterministicBLS(fmt.Sprintf("partition-node-%d", i))
		f.Nodes = append(f.Nodes, cluster.Member{ID: fmt.Sprintf("node%d", i+1), HTTP: srv.Listener.Addr().String(),
			QUIC: net.JoinHostPort("127.0.0.1", fmt.Sprint(7001+i)), BLSPubkey: sk.PublicKey().Hex(), BLSPop: sk.ProvePossession().Hex()})
		nodes = append(nodes, n)
	}
	c, err := cluster.New(f)
	if err != nil {
		t.Fatal(err)
	}
	return NewSDKSequencer(c, client.WithAttemptTimeout(50*time.Millisecond), client.WithHedgeAfter(50*time.Millisecond)), nodes
}

// Under a partition the replica never answers 503 for an order whose
// batch a node may hold: when every node is silent, the answer is 202
// pending with the order id, and the order stays in the outbox; when
// every node refuses, the answer is a definite 503.
func TestIntakeUnderPartition(t *testing.T) {
	seq, nodes := partitionedSequencer(t, http.StatusServiceUnavailable)
	for _, n := range nodes {
		n.silent.Store(true)
	}
	clock := newClock()
	cfg := testConfig("replica1", clock)
	cfg.SendTimeout = 500 * time.Millisecond
	r := startReplica(t, cfg, seq, NewMemStore())
	o := signOrder(t, alice, orderSpec{side: "buy", qty: 1_000_000, price: 1000_000_000, nonce: 1})
	var acc obapi.OrderAccepted
	if code := r.do(t, "POST", "/order", o, &acc); code != 202 || acc.Status != obapi.StatusPending || acc.OrderID != orderID(t, o) {
		t.Fatalf("all nodes silent: %d %+v; want 202 pending", code, acc)
	}
	if nodes[0].puts.Load()+nodes[1].puts.Load() == 0 {
		t.Fatal("no node was tried")
	}
	if !r.in.isPending(mustID(t, acc.OrderID)) {
		t.Fatal("a pending order left the outbox")
	}

	// Every node refuses: nothing holds the order, 503, and it is gone.
	for _, n := range nodes {
		n.silent.Store(false)
	}
	o2 := signOrder(t, alice, orderSpec{side: "buy", qty: 1_000_000, price: 1000_000_000, nonce: 2})
	var e obapi.Error
	if code := r.do(t, "POST", "/order", o2, &e); code != 503 {
		t.Fatalf("all nodes refusing: %d %q; want 503", code, e.Error)
	}
	if r.in.isPending(mustID(t, orderID(t, o2))) {
		t.Fatal("a refused order stayed pending")
	}
}

func mustID(t *testing.T, s string) [32]byte {
	t.Helper()
	id, err := parseHash32("id", s)
	if err != nil {
		t.Fatal(err)
	}
	return id
}
