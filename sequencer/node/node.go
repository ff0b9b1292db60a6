package node

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/seqbook/seqbook/client/seqapi"
	"github.com/seqbook/seqbook/internal/metrics"
	"github.com/seqbook/seqbook/sequencer/core"
	"github.com/seqbook/seqbook/sequencer/node/runner"
	"github.com/seqbook/seqbook/sequencer/store"
	"github.com/seqbook/seqbook/sequencer/transport"
	"github.com/seqbook/seqbook/sequencer/wire"
)

// Metrics counts what the node did. Counters only go up.
type Metrics struct {
	BatchesAccepted  atomic.Uint64 // PUTs answered "accepted"
	BatchesRefused   atomic.Uint64 // PUTs the core refused (backlog, bad app…)
	BatchesFinalized atomic.Uint64 // batches reported final by the core
	MessagesStepped  atomic.Uint64 // peer messages handed to the core
	MessagesInvalid  atomic.Uint64 // peer messages that failed wire.Decode
	StepErrors       atomic.Uint64 // messages the core called invalid
	Readies          atomic.Uint64 // Readies handled
	SaveNanos        atomic.Uint64 // time spent in Store.Save, total
	Saves            atomic.Uint64 // Store.Save calls (one fsynced transaction each)
	// Rounds counts finalize proofs this node applied (one per round that
	// finalized something): fsyncs per round is Saves / Rounds.
	Rounds atomic.Uint64
	// Ticks counts the core's Ticks; TicksSkipped the ticks it let pass
	// idle (core.IdleTicks) while the loop slept.
	Ticks        atomic.Uint64
	TicksSkipped atomic.Uint64
}

// Deps are the node's ports. A nil field gets the production
// implementation (QUIC transport, bbolt store in DataDir, wall clock);
// tests put in-memory ones.
type Deps struct {
	Transport transport.Transport
	Store     Store
	// Now is the wall clock the leader stamps batches with.
	Now func() time.Time
	// Metrics are exported on GET /metrics; nil means Prometheus metrics
	// in a registry of the node's own.
	Metrics *PromMetrics
}

// Store is the core's store plus closing it.
type Store interface {
	core.Store
	io.Closer
}

// Node is one running sequencer node.
type Node struct {
	cfg     Config
	self    int
	id      string
	log     *slog.Logger
	metrics *Metrics
	prom    *PromMetrics

	core   *core.Node
	rn     *runner.Runner // handles core's Readies: save, then send
	crypto *core.BLSCrypto
	store  Store
	tr     transport.Transport
	now    func() time.Time
	// rttFed is when the transport's round trips were last handed to the
	// core (feedNetworkRTT); loop goroutine only.
	rttFed time.Time

	httpLn  net.Listener
	httpSrv *http.Server

	submits chan submitReq
	// status is the last core.Status, converted, for HTTP handlers.
	status  atomic.Pointer[seqapi.NodeState]
	running atomic.Bool
	coreOK  atomic.Bool // the core says it follows an established leader
	stopped chan struct{}
	// stopping is closed when Run begins to stop; finalized fires after
	// every Ready that finalized batches (both wake long-polls).
	stopping  chan struct{}
	finalized broadcast

	closeOnce sync.Once
}

type submitReq struct {
	app   string
	body  []byte
	reply chan error
}

// New opens the store, builds the core from what the store holds, starts
// listening (HTTP and QUIC) and returns the node; Run drives it.
func New(cfg Config, deps Deps) (*Node, error) {
	if err := cfg.ValidateBasic(); err != nil {
		return nil, err
	}
	self, err := cfg.complete()
	if err != nil {
		return nil, err
	}
	base := cfg.Logger
	if base == nil {
		base = slog.Default()
	}
	log := base.With("node", cfg.NodeID)
	cfg.Core.Logger = log.With("component", "core")
	// The transport names the node itself (it is usable on its own).
	cfg.Transport.Logger = base.With("component", "transport")
	n := &Node{
		cfg: cfg, self: self, id: cfg.NodeID, log: log, metrics: &Metrics{}, prom: deps.Metrics,
		store: deps.Store, tr: deps.Transport, now: deps.Now,
		submits: make(chan submitReq, cfg.SubmitQueueMax),
		stopped: make(chan struct{}),

		stopping: make(chan struct{}),
	}
	if n.prom == nil {
		n.prom = PrometheusMetrics(metrics.NewRegistry())
	}
	if n.now == nil {
		n.now = time.Now
	}
	ok := false
	defer func() {
		if !ok {
			n.closePorts()
		}
	}()
	if n.store == nil {
		// Open into a typed local first: a nil *Bolt stored in the Store
		// interface would pass n.store != nil, and closePorts would call
		// Close on it.
		bolt, err := store.Open(cfg.DataDir, store.Options{Identity: &store.Identity{
			ChainID: cfg.Cluster.ChainID, NodeID: cfg.NodeID, PublicKey: cfg.Key.PublicKey().Hex(),
		}})
		if err != nil {
			return nil, err
		}
		n.store = bolt
	}
	crypto, err := core.NewBLSCrypto(cfg.Cluster, self, cfg.Key)
	if err != nil {
		return nil, err
	}
	n.crypto = crypto
	n.core, err = core.NewNode(cfg.Core, crypto, n.store)
	if err != nil {
		return nil, fmt.Errorf("node: core: %w", err)
	}
	httpAddr := cfg.HTTPListen
	if httpAddr == "" {
		httpAddr = cfg.Cluster.Nodes[self].HTTP
	}
	n.httpLn, err = net.Listen("tcp", httpAddr)
	if err != nil {
		return nil, fmt.Errorf("node: http listen on %s: %w", httpAddr, err)
	}
	n.httpSrv = NewHTTPServer(httpAddr, NewHandler(n, cfg.HTTP, log.With("component", "http")), cfg.HTTP)
	if n.tr == nil {
		q, err := transport.NewQUIC(cfg.Transport)
		if err != nil {
			return nil, err
		}
		n.tr = q
	}
	n.rn = runner.New(n.core, n.tr, runner.Options{Mutation: cfg.Core.Mutation, Finished: n.finished})
	n.prom.registerSources(n)
	n.publishStatus()
	ok = true
	return n, nil
}

// HTTPAddr is the address the HTTP API listens on.
func (n *Node) HTTPAddr() string { return n.httpLn.Addr().String() }

// Metrics returns the node's counters.
func (n *Node) Metrics() *Metrics { return n.metrics }

// Run serves HTTP and runs the protocol loop until ctx ends or the loop
// fails (a store error). It then stops: HTTP first (letting in-flight
// requests finish while the loop still runs), then the loop, the
// transport and the store. It returns the loop's error, if any.
func (n *Node) Run(ctx context.Context) error {
	loopCtx, stopLoop := context.WithCancel(context.Background())
	loopDone := make(chan error, 1)
	go func() { loopDone <- n.loop(loopCtx) }()
	httpDone := make(chan error, 1)
	go func() { httpDone <- n.httpSrv.Serve(n.httpLn) }()
	n.log.Info("sequencer node running", "http", n.HTTPAddr(), "nodes", len(n.cfg.Cluster.Nodes), "quorum", n.cfg.Cluster.NodeQuorum())

	var loopErr error
	select {
	case <-ctx.Done():
	case loopErr = <-loopDone:
		loopDone <- loopErr
	case err := <-httpDone:
		if err != nil && !errors.Is(err, http.ErrServerClosed) {
			n.log.Error("http server failed", "err", err)
			loopErr = err
		}
	}
	n.log.Info("sequencer node stopping")
	close(n.stopping)
	shCtx, cancel := context.WithTimeout(context.Background(), n.cfg.ShutdownTimeout)
	if err := n.httpSrv.Shutdown(shCtx); err != nil {
		n.httpSrv.Close()
	}
	cancel()
	stopLoop()
	if err := <-loopDone; err != nil && loopErr == nil {
		loopErr = err
	}
	n.closePorts()
	n.log.Info("sequencer node stopped")
	return loopErr
}

// closePorts closes the transport and the store (once).
func (n *Node) closePorts() {
	n.closeOnce.Do(func() {
		if n.httpLn != nil {
			n.httpLn.Close()
		}
		if n.tr != nil {
			n.tr.Close()
		}
		if n.store != nil {
			if err := n.store.Close(); err != nil {
				n.log.Error("closing the store", "err", err)
			}
		}
	})
}

// loop is the one goroutine that owns the core (through the runner).
//
// Group commit: at most one Store.Save is in flight. While it runs (on the
// saver goroutine) the loop keeps stepping events into the core; their
// output gathers in the core and becomes the next Ready, taken once the
// save returns. So however many events arrive during one fsync, they cost
// one more fsync, not one each. Every Ready's messages leave, and its PUTs
// are answered, only after the save that covers it returned nil (persist
// before send); Readys are saved and sent in order. The runner
// (sequencer/node/runner) holds that logic; the simulator runs the same
// runner and checks the order.
//
// Ticks come from a tickClock: every TickInterval while the core has work,
// and only when a timer is due while it is idle; every event first brings
// the core's ticks level with the clock.
func (n *Node) loop(ctx context.Context) (err error) {
	n.running.Store(true)
	sv := newSaver(n.store)
	defer func() {
		sv.stop()
		n.running.Store(false)
		close(n.stopped)
		// PUTs still queued get an answer instead of hanging.
		for {
			select {
			case req := <-n.submits:
				req.reply <- ErrNotRunning
			default:
				return
			}
		}
	}()
	clock := newTickClock(n.cfg.TickInterval(), n.metrics)
	defer clock.stop()
	recv := n.tr.Recv()
	refuseAll := func() { n.rn.Refuse(ErrNotRunning) }
	lastView := ^uint64(0)
	for {
		// Wait for one event, then take what else is already there (up
		// to EventsPerReadyMax) so one Save covers them all.
		select {
		case <-ctx.Done():
			if n.rn.Saving() {
				// Let the save finish (its PUTs may be answered); its
				// messages may still go: the save covers them.
				n.rn.Saved(<-sv.done) // on an error: sends nothing
			}
			refuseAll()
			return nil
		case <-clock.C():
			clock.fired()
			clock.catchUp(n.core, n.now)
			n.feedNetworkRTT()
		case m, ok := <-recv:
			if !ok {
				refuseAll()
				return errors.New("node: transport closed under the loop")
			}
			clock.catchUp(n.core, n.now)
			n.step(m)
		case req := <-n.submits:
			clock.catchUp(n.core, n.now)
			n.submit(req)
		case err := <-sv.done:
			clock.catchUp(n.core, n.now)
			if err := n.rn.Saved(err); err != nil {
				// Nothing of this Ready may leave the process: its messages
				// may carry signatures whose safety records did not reach
				// the disk.
				n.log.Error("store save failed; stopping without sending", "err", err)
				refuseAll()
				return fmt.Errorf("node: store: %w", err)
			}
		}
	drain:
		for i := 1; i < n.cfg.EventsPerReadyMax; i++ {
			select {
			case m, ok := <-recv:
				if !ok {
					refuseAll()
					return errors.New("node: transport closed under the loop")
				}
				n.step(m)
			case req := <-n.submits:
				n.submit(req)
			default:
				break drain
			}
		}
		if f := n.rn.TakeReady(); f != nil {
			sv.save(f)
		}
		st := n.publishStatus()
		if st.View != lastView {
			if lastView != ^uint64(0) {
				n.log.Info("view changed", "view", st.View, "leader", st.Leader)
			}
			lastView = st.View
		}
		clock.arm(n.core)
	}
}

// rttSource is a transport that measures the network's round trip to each
// peer (the QUIC transport).
type rttSource interface {
	MinRTT(peer int) (time.Duration, bool)
}

// feedNetworkRTT hands the core the transport's round trips to its peers
// (core.Node.NetworkRTT), at most once a second: the core tells a long
// link from a busy CPU by them.
func (n *Node) feedNetworkRTT() {
	src, ok := n.tr.(rttSource)
	if !ok {
		return
	}
	now := n.now()
	if now.Sub(n.rttFed) < time.Second {
		return
	}
	n.rttFed = now
	for p := range n.cfg.Core.Nodes {
		if rtt, ok := src.MinRTT(p); ok {
			n.core.NetworkRTT(p, uint64(rtt.Milliseconds()))
		}
	}
}

// saver runs Store.Save off the loop goroutine, one at a time.
type saver struct {
	store Store
	reqs  chan *runner.Flight
	done  chan error
	quit  chan struct{}
	exit  chan struct{}
}

func newSaver(st Store) *saver {
	s := &saver{store: st, reqs: make(chan *runner.Flight), done: make(chan error, 1), quit: make(chan struct{}), exit: make(chan struct{})}
	go s.run()
	return s
}

func (s *saver) run() {
	defer close(s.exit)
	for {
		select {
		case <-s.quit:
			return
		case f := <-s.reqs:
			start := time.Now()
			err := s.store.Save(&f.Ready.Persist)
			f.SaveDur = time.Since(start)
			s.done <- err
		}
	}
}

// save starts saving f; its result comes on done.
func (s *saver) save(f *runner.Flight) { s.reqs <- f }

// stop ends the saver after any save in flight (whose result nobody reads).
func (s *saver) stop() {
	close(s.quit)
	<-s.exit
}

// finished publishes a Ready the runner finished (its Persist durable, its
// messages sent): counts it and wakes the readers of what it finalized.
// The runner then advances the core and answers the Ready's PUTs.
func (n *Node) finished(f *runner.Flight) {
	rd := &f.Ready
	n.metrics.Readies.Add(1)
	if !rd.Persist.IsEmpty() {
		n.metrics.SaveNanos.Add(uint64(f.SaveDur))
		n.metrics.Saves.Add(1)
		n.prom.StoreSave.Observe(f.SaveDur.Seconds())
	}
	for _, fin := range rd.Finalized {
		if len(fin.Entries) == 0 {
			continue
		}
		// Saved above: readers woken now find the batches in the store.
		n.finalized.fire()
		n.metrics.BatchesFinalized.Add(uint64(len(fin.Entries)))
		n.metrics.Rounds.Add(1)
		n.prom.observeFinality(fin.Entries, n.now())
		n.log.Debug("finalized", "app", fin.App, "view", fin.Proof.View,
			"from", fin.Entries[0].Index, "index", fin.Proof.Index, "batches", len(fin.Entries))
	}
}

func (n *Node) step(m transport.Message) {
	msg, err := wire.Decode(m.Data)
	if err != nil {
		n.metrics.MessagesInvalid.Add(1)
		n.log.Warn("dropping undecodable message", "peer", n.peerID(m.From), "err", err)
		return
	}
	n.metrics.MessagesStepped.Add(1)
	if err := n.rn.Step(m.From, msg); err != nil {
		n.metrics.StepErrors.Add(1)
		n.log.Debug("core refused message", "peer", n.peerID(m.From), "type", msg.Type().String(), "err", err)
	}
}

// submit hands a PUT's batch to the core; the runner answers it once the
// save of the next Ready made it durable.
func (n *Node) submit(req submitReq) {
	err := n.rn.Submit(req.app, req.body, func(err error) {
		if err == nil {
			n.metrics.BatchesAccepted.Add(1)
		}
		req.reply <- err
	})
	if err != nil {
		n.metrics.BatchesRefused.Add(1)
		if errors.Is(err, core.ErrBacklogFull) {
			err = fmt.Errorf("%w: %v", ErrBacklogFull, err)
		}
		req.reply <- err
	}
}

func (n *Node) peerID(i int) string {
	if i >= 0 && i < len(n.cfg.Cluster.Nodes) {
		return n.cfg.Cluster.Nodes[i].ID
	}
	return fmt.Sprintf("#%d", i)
}

// publishStatus converts the core's status for HTTP readers.
func (n *Node) publishStatus() *seqapi.NodeState {
	s := n.core.Status()
	n.prom.observeStatus(s, n.core.Metrics(), n.now())
	st := &seqapi.NodeState{Node: n.id, View: s.View, Leader: n.peerID(s.Leader), Apps: make(map[string]seqapi.AppState, len(s.Apps))}
	for _, a := range s.Apps {
		st.Apps[a.App] = seqapi.AppState{Pending: a.Initialized, Sequenced: a.Sequenced, Locked: a.Locked, Finalized: a.Finalized}
	}
	w := n.crypto.Work()
	st.Work = &seqapi.NodeWork{
		BLSSigns: w.Signs, BLSVerifies: w.Verifies, BLSAggregates: w.Aggregates, BLSAggregateVerifies: w.AggregateVerifies,
		BLSBatchVerifies: w.BatchVerifies,
		StoreSaves:       n.metrics.Saves.Load(), StoreSaveMs: float64(n.metrics.SaveNanos.Load()) / 1e6,
		BatchesFinalized: n.metrics.BatchesFinalized.Load(), Rounds: n.metrics.Rounds.Load(),
	}
	n.coreOK.Store(s.Ready)
	n.status.Store(st)
	return st
}

// NodeID implements Backend.
func (n *Node) NodeID() string { return n.id }

// Submit implements Backend: it queues the batch for the loop and waits
// until the loop has made it durable (or refused it).
func (n *Node) Submit(ctx context.Context, app string, body []byte) error {
	if !n.running.Load() {
		return ErrNotRunning
	}
	req := submitReq{app: app, body: body, reply: make(chan error, 1)}
	select {
	case n.submits <- req:
	default:
		n.metrics.BatchesRefused.Add(1)
		return fmt.Errorf("%w: %d requests waiting for the node", ErrBacklogFull, cap(n.submits))
	}
	select {
	case err := <-req.reply:
		return err
	case <-ctx.Done():
		// The loop may still take the batch; the client sees a timeout
		// and may resubmit (batches are opaque; apps deduplicate).
		return ctx.Err()
	case <-n.stopped:
		select {
		case err := <-req.reply:
			return err
		default:
			return ErrNotRunning
		}
	}
}

// FinalizedAfter implements Backend from the store (bbolt read
// transactions, beside the loop's writes).
func (n *Node) FinalizedAfter(app string, after uint64) (seqapi.FinalizedPage, error) {
	p, err := core.ReadFinalized(n.store, app, after, seqapi.PageBatchesMax, seqapi.PageBytesMax)
	if err != nil {
		return seqapi.FinalizedPage{}, err
	}
	return n.page(p.Entries, p.Proof), nil
}

// LastFinalized implements Backend.
func (n *Node) LastFinalized(app string) (seqapi.FinalizedPage, error) {
	proof, err := core.LastFinalized(n.store, app)
	if err != nil || proof == nil {
		return n.page(nil, nil), err
	}
	entries, err := n.store.Entries(app, proof.Index, 1, seqapi.PageBytesMax)
	if err != nil {
		return seqapi.FinalizedPage{}, err
	}
	if len(entries) != 1 {
		return seqapi.FinalizedPage{}, fmt.Errorf("store has the proof of %s/%d but not the batch", app, proof.Index)
	}
	return n.page(entries, proof), nil
}

func (n *Node) page(entries []core.Entry, proof *wire.Proof) seqapi.FinalizedPage {
	out := seqapi.FinalizedPage{Batches: make([]seqapi.Batch, 0, len(entries))}
	for _, e := range entries {
		out.Batches = append(out.Batches, seqapi.Batch{
			Index: e.Index, Timestamp: e.Timestamp, Body: string(e.Body),
			Hash: hex0x(e.Hash[:]), ChainingHash: hex0x(e.ChainingHash[:]),
		})
	}
	if proof != nil {
		signers := make([]string, 0, proof.Signers.Count())
		for _, i := range proof.Signers.Nodes() {
			signers = append(signers, n.peerID(i))
		}
		out.Finalized = &seqapi.FinalizedProof{
			Index: proof.Index, ChainingHash: hex0x(proof.ChainingHash[:]), View: proof.View,
			Signature: hex0x(proof.Signature[:]), Signers: signers,
		}
	}
	return out
}

// FinalizedSignal implements Backend.
func (n *Node) FinalizedSignal() <-chan struct{} { return n.finalized.wait() }

// Stopping implements Backend.
func (n *Node) Stopping() <-chan struct{} { return n.stopping }

// State implements Backend.
func (n *Node) State() seqapi.NodeState { return *n.status.Load() }

// Ready implements Backend: the loop runs and the core follows an
// established leader of its view.
func (n *Node) Ready() bool { return n.running.Load() && n.coreOK.Load() }

func hex0x(b []byte) string { return "0x" + hex.EncodeToString(b) }

var _ Backend = (*Node)(nil)
