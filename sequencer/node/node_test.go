package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/seqbook/seqbook/client/seqapi"
	"github.com/seqbook/seqbook/sequencer/core"
	"github.com/seqbook/seqbook/sequencer/node/testnet"
	"github.com/seqbook/seqbook/sequencer/transport"
	"github.com/seqbook/seqbook/sequencer/wire"
)

// inProcess is a cluster of nodes in this process over a MemNetwork, each
// with its own bbolt store and a real HTTP server on a loopback port.
type inProcess struct {
	t      *testing.T
	net    *testnet.Net
	mem    *transport.MemNetwork
	nodes  []*Node
	cancel []context.CancelFunc
	done   []chan error
	dirs   []string
	client *testnet.Client
	// wrap, when set, adjusts node i's configuration and replaces its
	// ports (tests that watch them).
	wrap func(i int, cfg *Config, d Deps) Deps
}

// testLogger logs at info under -v (debug with SEQBOOK_TEST_LOG=debug),
// and nothing otherwise.
func testLogger(t *testing.T) *slog.Logger {
	if testing.Verbose() {
		level := slog.LevelInfo
		if os.Getenv("SEQBOOK_TEST_LOG") == "debug" {
			level = slog.LevelDebug
		}
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	}
	return slog.New(slog.DiscardHandler)
}

func startInProcess(t *testing.T, n int) *inProcess { return startInProcessWith(t, n, nil) }

// startInProcessWith starts n nodes, node i with the configuration and
// ports wrap(i, …) gives (nil: the defaults).
func startInProcessWith(t *testing.T, n int, wrap func(i int, cfg *Config, d Deps) Deps) *inProcess {
	t.Helper()
	tn, err := testnet.New(n)
	if err != nil {
		t.Fatal(err)
	}
	c := &inProcess{t: t, net: tn, mem: transport.NewMemNetwork(n, 4096), client: testnet.NewClient(),
		nodes: make([]*Node, n), cancel: make([]context.CancelFunc, n), done: make([]chan error, n), wrap: wrap}
	for i := 0; i < n; i++ {
		c.dirs = append(c.dirs, t.TempDir())
		c.start(i)
	}
	t.Cleanup(func() {
		for i := range c.nodes {
			c.stop(i)
		}
	})
	return c
}

func (c *inProcess) config(i int) Config {
	cfg := TestConfig()
	cfg.Cluster, cfg.NodeID, cfg.Key, cfg.DataDir = c.net.Cluster, c.net.File.Nodes[i].ID, c.net.Keys[i], c.dirs[i]
	cfg.HTTPListen = "127.0.0.1:0"
	cfg.Logger = testLogger(c.t)
	return cfg
}

// start runs node i. A MemNetwork endpoint cannot be reopened once
// closed, so a restarted node gets a fresh network slot through a relay.
func (c *inProcess) start(i int) {
	c.t.Helper()
	cfg, deps := c.config(i), Deps{Transport: newRelay(c.mem.Endpoint(i))}
	if c.wrap != nil {
		deps = c.wrap(i, &cfg, deps)
	}
	nd, err := New(cfg, deps)
	if err != nil {
		c.t.Fatalf("node %d: %v", i, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- nd.Run(ctx) }()
	c.nodes[i], c.cancel[i], c.done[i] = nd, cancel, done
}

func (c *inProcess) stop(i int) {
	if c.cancel[i] == nil {
		return
	}
	c.cancel[i]()
	if err := <-c.done[i]; err != nil {
		c.t.Errorf("node %d stopped with %v", i, err)
	}
	c.cancel[i] = nil
}

func (c *inProcess) url(i int) string { return "http://" + c.nodes[i].HTTPAddr() }

// relay lets a node be stopped and started again over the same MemNetwork
// endpoint: Close stops this relay only, not the endpoint.
type relay struct {
	ep     *transport.Mem
	recv   chan transport.Message
	stop   chan struct{}
	done   chan struct{}
	closed sync.Once
}

func newRelay(ep *transport.Mem) *relay {
	r := &relay{ep: ep, recv: make(chan transport.Message, 1024), stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(r.done)
		defer close(r.recv)
		for {
			select {
			case m := <-ep.Recv():
				select {
				case r.recv <- m:
				case <-r.stop:
					return
				}
			case <-r.stop:
				return
			}
		}
	}()
	return r
}

func (r *relay) Send(to int, data []byte) {
	select {
	case <-r.stop:
	default:
		r.ep.Send(to, data)
	}
}
func (r *relay) Recv() <-chan transport.Message { return r.recv }
func (r *relay) Close() error {
	r.closed.Do(func() { close(r.stop); <-r.done })
	return nil
}

// waitSameFinalized waits until every listed node serves the same verified
// finalized log holding at least want batches, and returns it.
func (c *inProcess) waitSameFinalized(nodes []int, want int, timeout time.Duration) []seqapi.Batch {
	c.t.Helper()
	var logs [][]seqapi.Batch
	err := testnet.WaitFor(timeout, 20*time.Millisecond, func() error {
		logs = logs[:0]
		for _, i := range nodes {
			l, err := c.client.AllFinalized(c.net.Cluster, c.url(i), testnet.DefaultApp)
			if err != nil {
				return err
			}
			if len(l) < want {
				return fmt.Errorf("node %d has %d finalized batches, want %d", i, len(l), want)
			}
			logs = append(logs, l)
		}
		for k := 1; k < len(logs); k++ {
			n := min(len(logs[0]), len(logs[k]))
			if !slices.Equal(logs[0][:n], logs[k][:n]) {
				c.t.Fatalf("nodes %d and %d finalized different batches", nodes[0], nodes[k])
			}
			if len(logs[k]) != len(logs[0]) {
				return fmt.Errorf("nodes hold %d and %d batches", len(logs[0]), len(logs[k]))
			}
		}
		return nil
	})
	if err != nil {
		c.t.Fatal(err)
	}
	return logs[0]
}

func (c *inProcess) put(i int, body string) {
	c.t.Helper()
	err := testnet.WaitFor(10*time.Second, 20*time.Millisecond, func() error {
		status, ans, err := c.client.Put(c.url(i)+"/node/"+testnet.DefaultApp+"/batches", []byte(body))
		if err != nil {
			return err
		}
		if status != 200 {
			return fmt.Errorf("PUT to node %d: %d %s", i, status, ans)
		}
		return nil
	})
	if err != nil {
		c.t.Fatal(err)
	}
}

func (c *inProcess) state(i int) seqapi.NodeState {
	var st seqapi.NodeState
	if err := c.client.GetJSON(c.url(i)+"/node/state", &st); err != nil {
		c.t.Fatal(err)
	}
	return st
}

func bodiesOf(bs []seqapi.Batch) map[string]int {
	out := map[string]int{}
	for _, b := range bs {
		out[b.Body]++
	}
	return out
}

func TestInProcessClusterFinalizesAndFailsOver(t *testing.T) {
	c := startInProcess(t, 4)
	for k := 0; k < 12; k++ {
		c.put(k%4, fmt.Sprintf(`{"k":%d}`, k))
	}
	all := []int{0, 1, 2, 3}
	log := c.waitSameFinalized(all, 12, 20*time.Second)
	for k := 0; k < 12; k++ {
		if n := bodiesOf(log)[fmt.Sprintf(`{"k":%d}`, k)]; n != 1 {
			t.Fatalf("batch %d finalized %d times", k, n)
		}
	}
	var last seqapi.FinalizedPage
	if err := c.client.GetJSON(c.url(2)+"/node/"+testnet.DefaultApp+"/batches/finalized/last", &last); err != nil {
		t.Fatal(err)
	}
	if len(last.Batches) != 1 || last.Finalized == nil || last.Batches[0].Index != uint64(len(log)) || last.Finalized.Index != uint64(len(log)) {
		t.Fatalf("last: %+v", last)
	}
	if err := testnet.VerifyProof(c.net.Cluster, testnet.DefaultApp, last.Finalized); err != nil {
		t.Fatal(err)
	}
	// Every node reports the work behind those finalized batches: it
	// finalized them and made them durable first; a quorum signed locks
	// and finalizes (a spare voter, docs/protocol.md §4 step 8, may have
	// signed nothing).
	if err := testnet.WaitFor(10*time.Second, 20*time.Millisecond, func() error {
		signers := 0
		for _, i := range all {
			w := c.state(i).Work
			if w == nil || w.BatchesFinalized < 12 || w.StoreSaves == 0 || w.StoreSaveMs <= 0 {
				return fmt.Errorf("node %d work counters: %+v", i, w)
			}
			if w.BLSSigns > 0 {
				signers++
			}
		}
		if signers < 3 {
			return fmt.Errorf("%d nodes signed, want a quorum (3)", signers)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}

	// Cut the leader off; the others elect a new one and go on.
	st := c.state(0)
	leader, _ := c.net.Cluster.NodeIndex(st.Leader)
	c.mem.Isolate(leader, true)
	var rest []int
	for i := range 4 {
		if i != leader {
			rest = append(rest, i)
		}
	}
	if err := testnet.WaitFor(20*time.Second, 20*time.Millisecond, func() error {
		for _, i := range rest {
			if s := c.state(i); s.Leader == st.Leader || s.View <= st.View {
				return fmt.Errorf("node %d still in view %d led by %s", i, s.View, s.Leader)
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	for k := 12; k < 18; k++ {
		c.put(rest[k%3], fmt.Sprintf(`{"k":%d}`, k))
	}
	c.waitSameFinalized(rest, 18, 20*time.Second)

	// The old leader rejoins: with no traffic of its own it still learns
	// of the new view and catches up; then it takes batches again.
	c.mem.Isolate(leader, false)
	c.waitSameFinalized(all, 18, 20*time.Second)
	for k := 18; k < 26; k++ {
		c.put(k%4, fmt.Sprintf(`{"k":%d}`, k))
	}
	log = c.waitSameFinalized(all, 26, 20*time.Second)
	for k := 0; k < 26; k++ {
		if n := bodiesOf(log)[fmt.Sprintf(`{"k":%d}`, k)]; n != 1 {
			t.Fatalf("batch %d finalized %d times", k, n)
		}
	}
}

func TestRestartedNodeKeepsItsLog(t *testing.T) {
	c := startInProcess(t, 4)
	for k := 0; k < 5; k++ {
		c.put(k%4, fmt.Sprintf("before-%d", k))
	}
	c.waitSameFinalized([]int{0, 1, 2, 3}, 5, 20*time.Second)
	c.stop(3)
	c.start(3)
	for k := 0; k < 5; k++ {
		c.put(k%4, fmt.Sprintf("after-%d", k))
	}
	c.waitSameFinalized([]int{0, 1, 2, 3}, 10, 20*time.Second)
}

// poisonStore saves normally until a Persist holds the poison batch: that
// Save fails, as a disk breaking under the node would.
type poisonStore struct {
	*core.MemoryStore
	poison string
	failed atomic.Bool
}

func (s *poisonStore) Save(p *core.Persist) error {
	for _, ap := range p.Apps {
		for _, pd := range ap.PendingPut {
			if string(pd.Body) == s.poison {
				s.failed.Store(true)
			}
		}
	}
	if s.failed.Load() {
		return errors.New("disk on fire")
	}
	return s.MemoryStore.Save(p)
}
func (s *poisonStore) Close() error { return nil }

// leakWatch counts what a node sends that its store does not back: any
// message once the failing Save began, a Post carrying the poison batch
// (only the failed Save held it) and a vote whose safety record is not in
// the store.
type leakWatch struct {
	transport.Transport
	st    *poisonStore
	leaks *atomic.Int32
}

func (w leakWatch) Send(to int, data []byte) {
	leak := w.st.failed.Load()
	if m, err := wire.Decode(data); err == nil {
		switch m := m.(type) {
		case *wire.Post:
			for _, b := range m.Batches {
				leak = leak || string(b.Body) == w.st.poison
			}
		case *wire.Vote:
			leak = leak || !holdsRecords(w.st.MemoryStore, m)
		}
	}
	if leak {
		w.leaks.Add(1)
	}
	w.Transport.Send(to, data)
}

// saveFailureLeaks runs a 4-node cluster whose node2 fails the Save of a
// PUT's batch (a follower in an active view: the Ready holding the batch
// also holds the Post that carries it to the leader). The node must answer
// the PUT 503 and stop with the store's error; it returns how many
// messages node2 sent that its store did not back.
func saveFailureLeaks(t *testing.T, mutation core.Mutation) int32 {
	st := &poisonStore{MemoryStore: core.NewMemoryStore(), poison: "poison: never durable here"}
	leaks := &atomic.Int32{}
	c := startInProcessWith(t, 4, func(i int, cfg *Config, d Deps) Deps {
		cfg.Core.Mutation = mutation
		if i == 1 {
			d.Store = st
			d.Transport = leakWatch{Transport: d.Transport, st: st, leaks: leaks}
		}
		return d
	})
	c.put(1, "warm-up")
	c.waitSameFinalized([]int{0, 1, 2, 3}, 1, 20*time.Second)
	status, ans, err := c.client.Put(c.url(1)+"/node/"+testnet.DefaultApp+"/batches", []byte(st.poison))
	if err != nil {
		t.Fatal(err)
	}
	if status != 503 {
		t.Fatalf("PUT answered %d %s while the store failed", status, ans)
	}
	select {
	case err := <-c.done[1]:
		if err == nil || !st.failed.Load() {
			t.Fatalf("Run returned %v", err)
		}
		c.cancel[1]()
		c.cancel[1] = nil
	case <-time.After(10 * time.Second):
		t.Fatal("node kept running after its store failed")
	}
	return leaks.Load()
}

// TestSaveFailureStopsWithoutSending: when a Save fails, nothing of its
// Ready leaves the node, before the Save (the Post with the batch) or
// after it (the node stops).
func TestSaveFailureStopsWithoutSending(t *testing.T) {
	if n := saveFailureLeaks(t, core.MutationNone); n != 0 {
		t.Fatalf("%d messages the store did not back left the node", n)
	}
}

// TestSaveFailureCatchesSendBeforeSave: with the runtime mutated to send a
// Ready's messages before its save, the test above fails (so it can).
func TestSaveFailureCatchesSendBeforeSave(t *testing.T) {
	if n := saveFailureLeaks(t, core.MutationSendBeforeSave); n == 0 {
		t.Fatal("a runtime sending before its save left no trace: the save-failure test cannot catch it")
	}
}

// TestBacklogFullAnswers429: a node cut off from the others cannot get its
// batches finalized; past the core's pending bound it answers 429 with a
// JSON error instead of taking more.
func TestBacklogFullAnswers429(t *testing.T) {
	c := startInProcess(t, 4)
	c.mem.Isolate(1, true)
	max := TestConfig().Core.PendingBatchesMax
	url := c.url(1) + "/node/" + testnet.DefaultApp + "/batches"
	for k := 0; k < max; k++ {
		status, ans, err := c.client.Put(url, []byte(fmt.Sprintf("b%d", k)))
		if err != nil || status != 200 {
			t.Fatalf("PUT %d of %d: %d %s %v", k+1, max, status, ans, err)
		}
	}
	status, ans, err := c.client.Put(url, []byte("one too many"))
	if err != nil || status != 429 || !strings.Contains(ans, `"error"`) {
		t.Fatalf("PUT past the backlog: %d %s %v", status, ans, err)
	}
	// Cut off, it could not post them to the leader: all are pending.
	if st := c.state(1).Apps[testnet.DefaultApp]; st.Pending != max {
		t.Fatalf("state does not show the backlog of %d: %+v", max, st)
	}
	// Reconnected, the backlog drains and the node accepts again.
	c.mem.Isolate(1, false)
	c.waitSameFinalized([]int{0, 1, 2, 3}, max, 20*time.Second)
	c.put(1, "after the backlog")
}

// TestStopLeavesNoGoroutines: Run returns only once the loop, the HTTP
// server and the transport have stopped.
func TestStopLeavesNoGoroutines(t *testing.T) {
	before := runtime.NumGoroutine()
	c := startInProcess(t, 4)
	c.put(0, "x")
	c.waitSameFinalized([]int{0, 1, 2, 3}, 1, 20*time.Second)
	for i := range c.nodes {
		c.stop(i)
	}
	c.client.HTTP.CloseIdleConnections()
	err := testnet.WaitFor(5*time.Second, 10*time.Millisecond, func() error {
		if n := runtime.NumGoroutine(); n > before {
			return fmt.Errorf("%d goroutines, %d before", n, before)
		}
		return nil
	})
	if err != nil {
		buf := make([]byte, 1<<20)
		t.Fatalf("%v\n%s", err, buf[:runtime.Stack(buf, true)])
	}
}

// TestLongPollOnARealCluster: a request held with wait_ms is answered with
// the batch once the cluster finalizes it, and a held request does not
// hold the node's stop.
func TestLongPollOnARealCluster(t *testing.T) {
	c := startInProcess(t, 4)
	c.put(0, "first")
	c.waitSameFinalized([]int{0, 1, 2, 3}, 1, 20*time.Second)
	type answer struct {
		page seqapi.FinalizedPage
		err  error
	}
	get := func(i int, after uint64) <-chan answer {
		out := make(chan answer, 1)
		go func() {
			var p seqapi.FinalizedPage
			err := c.client.GetJSON(fmt.Sprintf("%s/node/%s/batches/finalized?after=%d&wait_ms=60000", c.url(i), testnet.DefaultApp, after), &p)
			out <- answer{p, err}
		}()
		return out
	}
	held := get(1, 1)
	c.put(2, "second")
	select {
	case a := <-held:
		if a.err != nil || len(a.page.Batches) != 1 || a.page.Batches[0].Body != "second" || a.page.Finalized == nil {
			t.Fatalf("woken page: %+v %v", a.page, a.err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the held request was not answered after the batch was finalized")
	}
	held = get(3, 2)
	stopped := make(chan struct{})
	go func() { c.stop(3); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(30 * time.Second):
		t.Fatal("a held request kept the node from stopping")
	}
	if a := <-held; a.err == nil && len(a.page.Batches) != 0 {
		t.Fatalf("answer at stop: %+v", a.page)
	}
}

// TestUnopenableDataFolderIsRefused: when the data folder cannot be opened
// (here it is a regular file), New returns the store's error instead of
// keeping a nil *Bolt in the Store interface and crashing on Close.
func TestUnopenableDataFolderIsRefused(t *testing.T) {
	tn, err := testnet.New(4)
	if err != nil {
		t.Fatal(err)
	}
	notADir := t.TempDir() + "/file"
	if err := os.WriteFile(notADir, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := TestConfig()
	cfg.Cluster, cfg.NodeID, cfg.Key, cfg.DataDir = tn.Cluster, "node1", tn.Keys[0], notADir
	cfg.HTTPListen = "127.0.0.1:0"
	cfg.Logger = testLogger(t)
	nd, err := New(cfg, Deps{Transport: transport.NewMemNetwork(4, 16).Endpoint(0)})
	if err == nil {
		nd.closePorts()
		t.Fatal("New opened a store in a regular file")
	}
	if !strings.Contains(err.Error(), notADir) {
		t.Fatalf("error does not name the folder: %v", err)
	}
}
