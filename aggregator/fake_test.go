package aggregator

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/common"

	"github.com/seqbook/seqbook/client/amount"
	"github.com/seqbook/seqbook/client/bls"
	"github.com/seqbook/seqbook/client/cluster"
	"github.com/seqbook/seqbook/client/eip712"
	"github.com/seqbook/seqbook/client/obapi"
)

// testKey derives a fixed BLS key from a label, so proofs in tests (and
// the golden vector) are reproducible: BLS signatures are deterministic.
func testKey(label string) *bls.SecretKey {
	h := eip712.Keccak256([]byte("seqbook aggregator test key: " + label))
	h[0] &= 0x3f // below the group order (0x73ed…), never zero in practice
	sk, err := bls.SecretKeyFromBytes(h[:])
	if err != nil {
		panic(err)
	}
	return sk
}

func member(id, httpAddr string, sk *bls.SecretKey) cluster.Member {
	return cluster.Member{ID: id, HTTP: httpAddr, BLSPubkey: sk.PublicKey().Hex(), BLSPop: sk.ProvePossession().Hex()}
}

// testCluster builds a checked cluster of the given replicas (addresses and
// keys); one sequencer node is listed because a cluster file needs one.
func testCluster(t testing.TB, addrs []string, keys []*bls.SecretKey) *cluster.Cluster {
	t.Helper()
	node := member("node1", "127.0.0.1:1", testKey("node1"))
	node.QUIC = "127.0.0.1:2"
	f := cluster.File{ChainID: eip712.DefaultChainID, App: "orderbook", Nodes: []cluster.Member{node}}
	for i, a := range addrs {
		f.Replicas = append(f.Replicas, member(fmt.Sprintf("replica%d", i+1), a, keys[i]))
	}
	c, err := cluster.New(f)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// ledger is the replicated state the fake replicas serve: balances per
// applied index (every honest replica computes the same).
type ledger struct {
	mu       sync.Mutex
	balances map[uint64]map[string]uint64 // index → "address|token" → units
	records  map[[32]byte]*eip712.Withdrawal
}

func newLedger() *ledger {
	return &ledger{balances: map[uint64]map[string]uint64{}, records: map[[32]byte]*eip712.Withdrawal{}}
}

func (l *ledger) set(index uint64, addr common.Address, token string, units uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.balances[index] == nil {
		l.balances[index] = map[string]uint64{}
	}
	l.balances[index][addr.Hex()+"|"+token] = units
}

func (l *ledger) get(index uint64, addr common.Address, token string) (uint64, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	m, ok := l.balances[index]
	if !ok {
		return 0, false
	}
	return m[addr.Hex()+"|"+token], true
}

func (l *ledger) record(w *eip712.Withdrawal) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.records[w.ID] = w
}

// fakeReplica is a replica's read API over a ledger, with hooks that make
// it misbehave the ways a real one can.
type fakeReplica struct {
	id      string
	sk      *bls.SecretKey
	c       func() *cluster.Cluster // set once the cluster exists
	ledger  *ledger
	applied uint64 // the index /state reports
	// tamper, if set, rewrites the balance it signs (a Byzantine replica).
	tamper func(units uint64) uint64
	// signWith, if set, signs with this key instead (a forged signature).
	signWith *bls.SecretKey
	// badSigHex, if set, is sent as the signature.
	badSigHex string
	// hang: never answer /balance and /withdrawals (until the request is
	// cancelled).
	hang bool
	// answerAs lies about which replica answers.
	answerAs string
	mu       sync.Mutex
	balanceQ int // /balance questions received
}

func (f *fakeReplica) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	writeJSON := func(status int, v any) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(v)
	}
	c := f.c()
	id := f.id
	if f.answerAs != "" {
		id = f.answerAs
	}
	signer := f.sk
	if f.signWith != nil {
		signer = f.signWith
	}
	sigHex := func(d [32]byte) string {
		if f.badSigHex != "" {
			return f.badSigHex
		}
		return signer.Sign(d).Hex()
	}
	switch {
	case r.URL.Path == "/state":
		writeJSON(200, obapi.State{App: c.App, Replica: id, AppliedIndex: f.applied})
	case r.URL.Path == "/balance":
		f.mu.Lock()
		f.balanceQ++
		f.mu.Unlock()
		if f.hang {
			<-r.Context().Done()
			return
		}
		q := r.URL.Query()
		addr := common.HexToAddress(q.Get("address"))
		token := q.Get("token")
		index, err := strconv.ParseUint(q.Get("index"), 10, 64)
		if err != nil || index > f.applied {
			writeJSON(400, obapi.Error{Error: "index: not applied yet"})
			return
		}
		units, ok := f.ledger.get(index, addr, token)
		if !ok {
			writeJSON(400, obapi.Error{Error: "index: history not kept"})
			return
		}
		if f.tamper != nil {
			units = f.tamper(units)
		}
		d := c.Domain.Digest(&eip712.Balance{App: c.App, Account: addr, Token: token, Balance: units, Index: index})
		writeJSON(200, obapi.Balance{
			Address: addr.Hex(), Token: token, Balance: amount.Format(units), BalanceUnits: strconv.FormatUint(units, 10),
			Index: index, Replica: id, Signature: sigHex(d),
		})
	case strings.HasPrefix(r.URL.Path, "/withdrawals/"):
		if f.hang {
			<-r.Context().Done()
			return
		}
		wid, err := parseHash(strings.TrimPrefix(r.URL.Path, "/withdrawals/"))
		if err != nil {
			writeJSON(400, obapi.Error{Error: "id: " + err.Error()})
			return
		}
		f.ledger.mu.Lock()
		rec, ok := f.ledger.records[wid]
		f.ledger.mu.Unlock()
		if !ok || rec.Index > f.applied {
			writeJSON(404, obapi.Error{Error: "unknown withdrawal"})
			return
		}
		signed := *rec
		if f.tamper != nil {
			signed.Amount = f.tamper(signed.Amount)
		}
		d := c.Domain.Digest(&signed)
		writeJSON(200, obapi.Withdrawal{
			App: c.App, ID: hex32(signed.ID), Trader: signed.Trader.Hex(), Token: signed.Token,
			Amount: amount.Format(signed.Amount), AmountUnits: strconv.FormatUint(signed.Amount, 10),
			Recipient: signed.Recipient.Hex(), Index: signed.Index, Replica: id, Signature: sigHex(d),
		})
	case r.URL.Path == "/attestation":
		if f.hang {
			<-r.Context().Done()
			return
		}
		index, err := strconv.ParseUint(r.URL.Query().Get("index"), 10, 64)
		if err != nil || index == 0 {
			writeJSON(400, obapi.Error{Error: "index: not a positive integer"})
			return
		}
		if index > f.applied {
			writeJSON(404, obapi.Error{Error: "no attestation at this index"})
			return
		}
		// Every honest replica computes the same digest at an index.
		sd := eip712.Keccak256([]byte("state"), []byte(strconv.FormatUint(index, 10)))
		if f.tamper != nil {
			sd[0] ^= 1
		}
		d := c.Domain.Digest(&eip712.State{App: c.App, Index: index, StateDigest: sd})
		writeJSON(200, obapi.Attestation{App: c.App, Index: index, StateDigest: hex32(sd), Replica: id, Signature: sigHex(d)})
	default:
		writeJSON(404, obapi.Error{Error: "no route"})
	}
}

// testNet is a cluster of fake replicas over real HTTP.
type testNet struct {
	c        *cluster.Cluster
	keys     []*bls.SecretKey
	replicas []*fakeReplica
	servers  []*httptest.Server // nil for a replica that is down
	ledger   *ledger
}

// newTestNet starts n honest fake replicas at applied index 1; configure
// misbehaviour through setup before they serve (setup may mark replicas
// down by returning true for them).
func newTestNet(t testing.TB, n int, setup func(i int, f *fakeReplica) (down bool)) *testNet {
	t.Helper()
	return newTestNetKeyed(t, n, "", setup)
}

// newTestNetKeyed is newTestNet with replica keys testKey(keyPrefix+id).
func newTestNetKeyed(t testing.TB, n int, keyPrefix string, setup func(i int, f *fakeReplica) (down bool)) *testNet {
	t.Helper()
	tn := &testNet{ledger: newLedger()}
	addrs := make([]string, n)
	for i := 0; i < n; i++ {
		id := fmt.Sprintf("replica%d", i+1)
		sk := testKey(keyPrefix + id)
		f := &fakeReplica{id: id, sk: sk, ledger: tn.ledger, applied: 1, c: func() *cluster.Cluster { return tn.c }}
		down := setup != nil && setup(i, f)
		tn.keys = append(tn.keys, sk)
		tn.replicas = append(tn.replicas, f)
		if down {
			addrs[i] = closedAddr(t)
			tn.servers = append(tn.servers, nil)
			continue
		}
		s := httptest.NewServer(f)
		t.Cleanup(s.Close)
		tn.servers = append(tn.servers, s)
		addrs[i] = s.Listener.Addr().String()
	}
	tn.c = testCluster(t, addrs, tn.keys)
	return tn
}

// closedAddr returns a loopback address nothing listens on.
func closedAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a := l.Addr().String()
	l.Close()
	return a
}

// aggregator returns an aggregator over the net that waits for every
// replica that does not fail (so which replicas sign does not depend on
// how busy the machine is), logging to log.
func (tn *testNet) aggregator(t testing.TB, log io.Writer) *Aggregator {
	t.Helper()
	cfg := TestConfig()
	cfg.Timeout, cfg.StragglerWait = 20*time.Second, 20*time.Second
	return tn.aggregatorWith(t, log, cfg)
}

// aggregatorWith is aggregator with the given configuration.
func (tn *testNet) aggregatorWith(t testing.TB, log io.Writer, cfg Config) *Aggregator {
	t.Helper()
	if log == nil {
		log = io.Discard
	}
	a, err := New(tn.c, NewHTTPReplicas(tn.c, nil, cfg.AnswerBytesMax), cfg, slog.New(slog.NewTextHandler(log, nil)))
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// syncBuffer is a log sink safe for concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
