package client

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/seqbook/seqbook/client/bls"
	"github.com/seqbook/seqbook/client/cluster"
	"github.com/seqbook/seqbook/client/eip712"
	"github.com/seqbook/seqbook/client/seqapi"
)

const testApp = "orderbook"

// testNet is a cluster of real BLS keys whose nodes are httptest servers
// running fakeNode handlers.
type testNet struct {
	c           *cluster.Cluster
	nodeKeys    []*bls.SecretKey
	replicaKeys []*bls.SecretKey
	nodes       []*fakeNode
	servers     []*httptest.Server
}

// switchHandler lets a server exist (and have an address for the cluster
// file) before its handler does.
type switchHandler struct{ h http.Handler }

func (s *switchHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.h.ServeHTTP(w, r) }

// newTestNet starts nNodes fake nodes sharing one chain and builds a
// cluster with nReplicas replica keys (replicas have no server).
func newTestNet(t testing.TB, nNodes, nReplicas int) *testNet {
	t.Helper()
	tn := &testNet{}
	f := cluster.File{ChainID: eip712.DefaultChainID, App: testApp}
	switches := make([]*switchHandler, nNodes)
	for i := 0; i < nNodes; i++ {
		sk := mustKey(t)
		tn.nodeKeys = append(tn.nodeKeys, sk)
		switches[i] = &switchHandler{h: http.NotFoundHandler()}
		srv := httptest.NewServer(switches[i])
		t.Cleanup(srv.Close)
		tn.servers = append(tn.servers, srv)
		f.Nodes = append(f.Nodes, cluster.Member{
			ID: fmt.Sprintf("node%d", i+1), HTTP: strings.TrimPrefix(srv.URL, "http://"),
			QUIC: fmt.Sprintf("127.0.0.1:%d", 7001+i), BLSPubkey: sk.PublicKey().Hex(), BLSPop: sk.ProvePossession().Hex(),
		})
	}
	for i := 0; i < nReplicas; i++ {
		sk := mustKey(t)
		tn.replicaKeys = append(tn.replicaKeys, sk)
		f.Replicas = append(f.Replicas, cluster.Member{
			ID: fmt.Sprintf("replica%d", i+1), HTTP: fmt.Sprintf("127.0.0.1:%d", 5001+i),
			BLSPubkey: sk.PublicKey().Hex(), BLSPop: sk.ProvePossession().Hex(),
		})
	}
	c, err := cluster.New(f)
	if err != nil {
		t.Fatal(err)
	}
	tn.c = c
	chain := &fakeChain{tn: tn, app: testApp, proofs: map[uint64]seqapi.FinalizedProof{}}
	for i := 0; i < nNodes; i++ {
		n := &fakeNode{chain: chain, pageMax: 1000}
		tn.nodes = append(tn.nodes, n)
		switches[i].h = n
	}
	return tn
}

// newFixedNet builds a server-less cluster from deterministic keys (seed
// decides them), so pages built on it are the same bytes on every run: what
// fuzz seed corpora need.
func newFixedNet(t testing.TB, seed string, nNodes, nReplicas int) *testNet {
	t.Helper()
	tn := &testNet{}
	f := cluster.File{ChainID: eip712.DefaultChainID, App: testApp}
	for i := 0; i < nNodes+nReplicas; i++ {
		sk := fixedKey(t, fmt.Sprintf("%s key %d", seed, i))
		m := cluster.Member{HTTP: fmt.Sprintf("127.0.0.1:%d", 6001+i), BLSPubkey: sk.PublicKey().Hex(), BLSPop: sk.ProvePossession().Hex()}
		if i < nNodes {
			m.ID, m.QUIC = fmt.Sprintf("node%d", i+1), fmt.Sprintf("127.0.0.1:%d", 7001+i)
			tn.nodeKeys = append(tn.nodeKeys, sk)
			f.Nodes = append(f.Nodes, m)
		} else {
			m.ID = fmt.Sprintf("replica%d", i-nNodes+1)
			tn.replicaKeys = append(tn.replicaKeys, sk)
			f.Replicas = append(f.Replicas, m)
		}
	}
	c, err := cluster.New(f)
	if err != nil {
		t.Fatal(err)
	}
	tn.c = c
	tn.nodes = []*fakeNode{{chain: &fakeChain{tn: tn, app: testApp, proofs: map[uint64]seqapi.FinalizedProof{}}, pageMax: 1000}}
	return tn
}

// fixedKey derives a BLS key from text: keccak256, again until the value is
// a valid scalar.
func fixedKey(t testing.TB, text string) *bls.SecretKey {
	h := eip712.Keccak256([]byte(text))
	for {
		if sk, err := bls.SecretKeyFromBytes(h[:]); err == nil {
			return sk
		}
		h = eip712.Keccak256(h[:])
	}
}

func mustKey(t testing.TB) *bls.SecretKey {
	t.Helper()
	sk, err := bls.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	return sk
}

// signFinalize returns the aggregate signature of the given node indexes
// over Finalize(app, view, index, chaining) and their ids.
func (tn *testNet) signFinalize(app string, view, index uint64, chaining [32]byte, signers ...int) (string, []string) {
	d := tn.c.Domain.Digest(&eip712.Finalize{App: app, View: view, Index: index, ChainingHash: chaining})
	var sigs []*bls.Signature
	var ids []string
	for _, i := range signers {
		sigs = append(sigs, tn.nodeKeys[i].Sign(d))
		ids = append(ids, tn.c.Nodes[i].ID)
	}
	return bls.Aggregate(sigs).Hex(), ids
}

// quorum is the first Q node indexes.
func (tn *testNet) quorum() []int {
	q := make([]int, tn.c.NodeQuorum())
	for i := range q {
		q[i] = i
	}
	return q
}

// fakeChain is the one honest sequence all fake nodes serve.
type fakeChain struct {
	tn  *testNet
	app string

	mu      sync.Mutex
	batches []seqapi.Batch
	proofs  map[uint64]seqapi.FinalizedProof
	// finalizeOnPut makes a PUT append and finalize the batch at once.
	finalizeOnPut bool
	nextTS        uint64
	// leader is the node id GET /node/state names ("" : node1).
	leader string
}

// appendBatches adds bodies as batches with increasing timestamps.
func (ch *fakeChain) appendBatches(bodies ...string) {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	for _, b := range bodies {
		ch.appendLocked(b)
	}
}

func (ch *fakeChain) appendLocked(body string) {
	ch.nextTS += 7
	if ch.nextTS < 1_700_000_000_000 {
		ch.nextTS = 1_700_000_000_000
	}
	var prev [32]byte
	if n := len(ch.batches); n > 0 {
		prev, _ = parseHash32("", ch.batches[n-1].ChainingHash)
	}
	h := BatchHash(ch.nextTS, []byte(body))
	ch.batches = append(ch.batches, seqapi.Batch{
		Index: uint64(len(ch.batches) + 1), Timestamp: ch.nextTS, Body: body,
		Hash: hex32(h), ChainingHash: hex32(NextChainingHash(prev, h)),
	})
}

// finalize makes a quorum proof for index.
func (ch *fakeChain) finalize(index uint64) {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	ch.finalizeLocked(index)
}

func (ch *fakeChain) finalizeLocked(index uint64) {
	b := ch.batches[index-1]
	chaining, _ := parseHash32("", b.ChainingHash)
	sig, ids := ch.tn.signFinalize(ch.app, 3, index, chaining, ch.tn.quorum()...)
	ch.proofs[index] = seqapi.FinalizedProof{Index: index, ChainingHash: b.ChainingHash, View: 3, Signature: sig, Signers: ids}
}

// page builds the honest answer to ?after=N: batches up to the highest
// proof within pageMax, or an empty page with the latest proof.
func (ch *fakeChain) page(after uint64, pageMax int) seqapi.FinalizedPage {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	var best, latest uint64
	for idx := range ch.proofs {
		if idx > latest {
			latest = idx
		}
		if idx > after && idx <= after+uint64(pageMax) && idx > best {
			best = idx
		}
	}
	out := seqapi.FinalizedPage{Batches: []seqapi.Batch{}}
	if best == 0 {
		if latest > after {
			// The proof lies beyond a full page: serve the page and the
			// latest proof (the truncated case).
			out.Batches = append(out.Batches, ch.batches[after:after+uint64(pageMax)]...)
		}
		if latest > 0 {
			p := ch.proofs[latest]
			out.Finalized = &p
		}
		return out
	}
	out.Batches = append(out.Batches, ch.batches[after:best]...)
	p := ch.proofs[best]
	out.Finalized = &p
	return out
}

// fakeNode serves DESIGN §4's node API over the shared chain, optionally
// lying through tamper or failing with a status.
type fakeNode struct {
	chain   *fakeChain
	pageMax int

	mu       sync.Mutex
	tamper   func(p *seqapi.FinalizedPage)
	status   int // non-zero: answer every request with it
	putCount int
	getCount int
	// waits records the wait_ms of each finalized-page request ("" when
	// absent).
	waits []string
	// holdLongPolls: a long-poll with nothing new is held as the node
	// holds it: status and headers at once, the page when wait_ms ends.
	holdLongPolls bool
	// cutOffWhileHolding: a long-poll gets its status and headers, then
	// nothing more, as from a node cut off from the network while it
	// held the poll.
	cutOffWhileHolding bool
	// noStream: the node ignores ?stream=1 and answers one page (a node
	// from before streams).
	noStream bool
	// streamLines: a stream goes silent after this many lines (0: never),
	// as a node cut off from the network mid-stream.
	streamLines int
	// streams counts the streams opened.
	streams int
}

func (n *fakeNode) setTamper(f func(p *seqapi.FinalizedPage)) {
	n.mu.Lock()
	n.tamper = f
	n.mu.Unlock()
}
func (n *fakeNode) setStatus(s int) { n.mu.Lock(); n.status = s; n.mu.Unlock() }
func (n *fakeNode) counts() (put, get int) {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.putCount, n.getCount
}

func (n *fakeNode) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	n.mu.Lock()
	status, tamper := n.status, n.tamper
	if r.Method == http.MethodPut {
		n.putCount++
	} else {
		n.getCount++
	}
	n.mu.Unlock()
	if status != 0 {
		writeJSON(w, status, seqapi.Error{Error: "fake failure"})
		return
	}
	parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	if r.Method == http.MethodGet && r.URL.Path == "/node/ready" {
		writeJSON(w, 200, seqapi.Ready{Ready: true})
		return
	}
	if r.Method == http.MethodGet && r.URL.Path == "/node/state" {
		n.chain.mu.Lock()
		leader := n.chain.leader
		n.chain.mu.Unlock()
		if leader == "" {
			leader = "node1"
		}
		writeJSON(w, 200, seqapi.NodeState{Leader: leader})
		return
	}
	if len(parts) < 3 || parts[0] != "node" || parts[2] != "batches" {
		writeJSON(w, 404, seqapi.Error{Error: "no route"})
		return
	}
	app := parts[1]
	if app != n.chain.app {
		writeJSON(w, 404, seqapi.Error{Error: "unknown app " + app})
		return
	}
	switch {
	case r.Method == http.MethodPut && len(parts) == 3:
		body, _ := io.ReadAll(r.Body)
		if len(body) > seqapi.BatchBytesMax {
			writeJSON(w, 413, seqapi.Error{Error: "batch too large"})
			return
		}
		ch := n.chain
		ch.mu.Lock()
		if ch.finalizeOnPut {
			ch.appendLocked(string(body))
			ch.finalizeLocked(uint64(len(ch.batches)))
		}
		ch.mu.Unlock()
		writeJSON(w, 200, seqapi.Accepted{Status: "accepted"})
	case r.Method == http.MethodGet && len(parts) == 5 && parts[3] == "finalized" && parts[4] == "last":
		n.chain.mu.Lock()
		out := seqapi.FinalizedPage{Batches: []seqapi.Batch{}}
		var latest uint64
		for idx := range n.chain.proofs {
			latest = max(latest, idx)
		}
		if latest > 0 {
			p := n.chain.proofs[latest]
			out.Finalized = &p
			out.Batches = append(out.Batches, n.chain.batches[latest-1])
		}
		n.chain.mu.Unlock()
		if tamper != nil {
			tamper(&out)
		}
		writeJSON(w, 200, out)
	case r.Method == http.MethodGet && len(parts) == 4 && parts[3] == "finalized":
		n.mu.Lock()
		n.waits = append(n.waits, r.URL.Query().Get("wait_ms"))
		n.mu.Unlock()
		after, err := strconv.ParseUint(r.URL.Query().Get("after"), 10, 64)
		if err != nil {
			writeJSON(w, 400, seqapi.Error{Error: "after must be an integer"})
			return
		}
		n.mu.Lock()
		hold, cutOff, noStream, lines := n.holdLongPolls, n.cutOffWhileHolding, n.noStream, n.streamLines
		n.mu.Unlock()
		if r.URL.Query().Get("stream") == "1" && !noStream {
			n.mu.Lock()
			n.streams++
			n.mu.Unlock()
			n.serveStream(w, r, after, lines, tamper)
			return
		}
		p := n.chain.page(after, n.pageMax)
		if wait, _ := strconv.Atoi(r.URL.Query().Get("wait_ms")); cutOff && wait > 0 {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(200)
			w.(http.Flusher).Flush()
			<-r.Context().Done()
			return
		}
		if wait, _ := strconv.Atoi(r.URL.Query().Get("wait_ms")); hold && wait > 0 && len(p.Batches) == 0 {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(200)
			w.(http.Flusher).Flush()
			select {
			case <-time.After(time.Duration(wait) * time.Millisecond):
			case <-r.Context().Done():
				return
			}
			_ = json.NewEncoder(w).Encode(n.chain.page(after, n.pageMax))
			return
		}
		if tamper != nil {
			tamper(&p)
		}
		writeJSON(w, 200, p)
	default:
		writeJSON(w, 404, seqapi.Error{Error: "no route"})
	}
}

// serveStream is ?stream=1 as the node serves it: a page per line as the
// chain finalizes (the fake polls its chain every 5 ms), an empty page
// every wait_ms; silent after `lines` lines when lines > 0.
func (n *fakeNode) serveStream(w http.ResponseWriter, r *http.Request, after uint64, lines int, tamper func(p *seqapi.FinalizedPage)) {
	wait, _ := strconv.Atoi(r.URL.Query().Get("wait_ms"))
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.WriteHeader(200)
	enc := json.NewEncoder(w)
	last := time.Now()
	for sent := 0; ; {
		p := n.chain.page(after, n.pageMax)
		if len(p.Batches) > 0 || sent == 0 || time.Since(last) >= time.Duration(wait)*time.Millisecond {
			if lines > 0 && sent >= lines {
				<-r.Context().Done() // cut off: nothing more
				return
			}
			if tamper != nil {
				tamper(&p)
			}
			if enc.Encode(p) != nil {
				return
			}
			w.(http.Flusher).Flush()
			sent++
			last = time.Now()
			if k := len(p.Batches); k > 0 {
				after = p.Batches[k-1].Index
			}
		}
		select {
		case <-r.Context().Done():
			return
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// blackhole replaces node i's server by a listener on the same address
// that accepts connections and never answers (a host that silently drops
// what it gets, unlike a crashed one that refuses). It returns a counter
// of the connections it accepted.
func (tn *testNet) blackhole(t testing.TB, i int) *atomic.Int64 {
	t.Helper()
	addr := tn.servers[i].Listener.Addr().String()
	tn.servers[i].Close()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("re-listening on %s: %v", addr, err)
	}
	var accepted atomic.Int64
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			mu.Lock()
			conns = append(conns, c) // held open, never read or written
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
	})
	return &accepted
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func finalizeMsg(app string, view, index uint64, chaining [32]byte) *eip712.Finalize {
	return &eip712.Finalize{App: app, View: view, Index: index, ChainingHash: chaining}
}
