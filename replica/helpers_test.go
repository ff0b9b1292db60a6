package replica

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/common"

	"github.com/seqbook/seqbook/client/eip712"
	"github.com/seqbook/seqbook/client/ethsig"
	"github.com/seqbook/seqbook/client/keys"
	"github.com/seqbook/seqbook/client/legacy"
	"github.com/seqbook/seqbook/client/obapi"
)

// Fixed test clock: 2023-11-14T22:13:20Z.
const testNowSec = 1_700_000_000

var (
	alice  = keys.DeterministicTrader("replica-test-alice")
	bob    = keys.DeterministicTrader("replica-test-bob")
	carol  = keys.DeterministicTrader("replica-test-carol")
	bridge = keys.DeterministicTrader("replica-test-bridge")
)

func addr(k *ecdsa.PrivateKey) common.Address { return ethsig.Address(k) }

func testDomain() *Domain {
	return &Domain{EIP712: eip712.NewDomain(eip712.DefaultChainID), App: "orderbook", Bridge: addr(bridge)}
}

// testGenesis funds alice with USDT, bob with ETH, carol with both.
func testGenesis() *Genesis {
	return &Genesis{Balances: []GenesisBalance{
		{Address: addr(alice).Hex(), Token: "USDT", Amount: "100000"},
		{Address: addr(bob).Hex(), Token: "ETH", Amount: "50"},
		{Address: addr(carol).Hex(), Token: "USDT", Amount: "100000"},
		{Address: addr(carol).Hex(), Token: "ETH", Amount: "50"},
	}}
}

// manualClock is a settable wall clock shared by a test's replicas and
// MemSequencer.
type manualClock struct {
	mu  sync.Mutex
	now time.Time
}

func newClock() *manualClock { return &manualClock{now: time.Unix(testNowSec, 0)} }

func (c *manualClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *manualClock) Ms() uint64     { return uint64(c.Now().UnixMilli()) }
func (c *manualClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// ---- Signing helpers ----

type orderSpec struct {
	market, side, typ string
	qty, price        uint64 // base units
	nonce, expiry     uint64
}

func signOrder(t testing.TB, k *ecdsa.PrivateKey, s orderSpec) obapi.OrderRequest {
	t.Helper()
	if s.market == "" {
		s.market = "ETH/USDT"
	}
	if s.typ == "" {
		s.typ = "limit"
	}
	if s.expiry == 0 {
		s.expiry = testNowSec + 600
	}
	o := eip712.Order{Trader: addr(k), Market: s.market, Side: s.side, OrderType: s.typ,
		Quantity: s.qty, Price: s.price, Nonce: s.nonce, Expiry: s.expiry}
	sig, err := ethsig.Sign(k, testDomain().EIP712.Digest(&o))
	if err != nil {
		t.Fatal(err)
	}
	return obapi.OrderRequest{Trader: addr(k).Hex(), Market: s.market, Side: s.side, OrderType: s.typ,
		Quantity: obapi.Uint(s.qty), Price: obapi.Uint(s.price), Nonce: obapi.Uint(s.nonce),
		Expiry: obapi.Uint(s.expiry), Signature: hexSig(sig)}
}

func orderID(t testing.TB, r obapi.OrderRequest) string {
	t.Helper()
	op, err := OrderOp(testDomain(), &r)
	if err != nil {
		t.Fatal(err)
	}
	return op.IDHex()
}

func signCancel(t testing.TB, k *ecdsa.PrivateKey, id string, nonce, expiry uint64) obapi.CancelRequest {
	t.Helper()
	if expiry == 0 {
		expiry = testNowSec + 600
	}
	oid := common.HexToHash(id)
	sig, err := ethsig.Sign(k, testDomain().EIP712.Digest(&eip712.Cancel{Trader: addr(k), OrderID: oid, Nonce: nonce, Expiry: expiry}))
	if err != nil {
		t.Fatal(err)
	}
	return obapi.CancelRequest{Trader: addr(k).Hex(), OrderID: id, Nonce: obapi.Uint(nonce), Expiry: obapi.Uint(expiry), Signature: hexSig(sig)}
}

func signWithdraw(t testing.TB, k *ecdsa.PrivateKey, token string, amt uint64, to common.Address, nonce, expiry uint64) obapi.WithdrawRequest {
	t.Helper()
	if expiry == 0 {
		expiry = testNowSec + 600
	}
	sig, err := ethsig.Sign(k, testDomain().EIP712.Digest(&eip712.Withdraw{Trader: addr(k), Token: token, Amount: amt, Recipient: to, Nonce: nonce, Expiry: expiry}))
	if err != nil {
		t.Fatal(err)
	}
	return obapi.WithdrawRequest{Trader: addr(k).Hex(), Token: token, Amount: obapi.Uint(amt), Recipient: to.Hex(),
		Nonce: obapi.Uint(nonce), Expiry: obapi.Uint(expiry), Signature: hexSig(sig)}
}

func signDeposit(t testing.TB, signer *ecdsa.PrivateKey, to common.Address, token string, amt, nonce, expiry uint64) obapi.DepositRequest {
	t.Helper()
	if expiry == 0 {
		expiry = testNowSec + 600
	}
	d := obapi.Deposit{ChainID: eip712.DefaultChainID, App: "orderbook", Account: to, Token: token, Amount: amt, Nonce: nonce, Expiry: expiry}
	sig, err := ethsig.Sign(signer, d.Digest())
	if err != nil {
		t.Fatal(err)
	}
	return obapi.DepositRequest{Account: to.Hex(), Token: token, Amount: obapi.Uint(amt), Nonce: obapi.Uint(nonce),
		Expiry: obapi.Uint(expiry), Signature: hexSig(sig)}
}

func signLegacy(t testing.TB, k *ecdsa.PrivateKey, side string, qty, price string) obapi.LegacyOrderRequest {
	t.Helper()
	q, err := parseDecimal("quantity", obapi.Number(qty))
	if err != nil {
		t.Fatal(err)
	}
	p, err := parseDecimal("price", obapi.Number(price))
	if err != nil {
		t.Fatal(err)
	}
	sig, err := legacy.Sign(k, legacy.Message(side, q, p, "ETH", "USDT"))
	if err != nil {
		t.Fatal(err)
	}
	return obapi.LegacyOrderRequest{Sender: addr(k).Hex(), OrderType: side, BaseToken: "ETH", QuoteToken: "USDT",
		Quantity: obapi.Number(qty), Price: obapi.Number(price), Signature: hexSig(sig)}
}

func hexSig(b []byte) string { return "0x" + common.Bytes2Hex(b) }

// wireOf returns the batch encoding of a request of any kind.
func wireOf(t testing.TB, req any) []byte {
	t.Helper()
	var op *Op
	var err error
	d := testDomain()
	switch r := req.(type) {
	case obapi.OrderRequest:
		op, err = OrderOp(d, &r)
	case obapi.LegacyOrderRequest:
		op, err = LegacyOrderOp(&r)
	case obapi.CancelRequest:
		op, err = CancelOp(d, &r)
	case obapi.CancelAllRequest:
		op, err = CancelAllOp(d, &r)
	case obapi.WithdrawRequest:
		op, err = WithdrawOp(d, &r)
	case obapi.DepositRequest:
		op, err = DepositOp(d, &r)
	default:
		t.Fatalf("wireOf %T", req)
	}
	if err != nil {
		t.Fatal(err)
	}
	return op.Wire()
}

func batchOf(t testing.TB, reqs ...any) []byte {
	t.Helper()
	ws := make([][]byte, len(reqs))
	for i, r := range reqs {
		ws[i] = wireOf(t, r)
	}
	return EncodeBatch(ws)
}

// ---- Running replicas ----

type testReplica struct {
	*Replica
	srv    *httptest.Server
	cancel context.CancelFunc
	done   chan error
	store  Store
}

func testConfig(id string, clock *manualClock) Config {
	cfg := TestConfig()
	cfg.ID = id
	cfg.Domain = testDomain()
	cfg.Key = keys.DeterministicBLS("replica-test-" + id)
	cfg.Genesis = testGenesis()
	cfg.Now = clock.Now
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	return cfg
}

// startReplica builds and runs a replica until the test ends (or stop).
func startReplica(t *testing.T, cfg Config, seq Sequencer, store Store) *testReplica {
	t.Helper()
	r, err := New(cfg, seq, store)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	tr := &testReplica{Replica: r, srv: httptest.NewServer(r.Handler()), cancel: cancel, done: make(chan error, 1), store: store}
	go func() { tr.done <- r.Run(ctx) }()
	t.Cleanup(tr.stop)
	return tr
}

func (tr *testReplica) stop() {
	if tr.cancel == nil {
		return
	}
	tr.cancel()
	<-tr.done
	tr.srv.Close()
	tr.Close()
	tr.cancel = nil
}

// do sends a request and decodes the JSON answer into out (if not nil).
func (tr *testReplica) do(t testing.TB, method, path string, body any, out any) int {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = bytes.NewReader([]byte(b))
	case []byte:
		rd = bytes.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, tr.srv.URL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			t.Fatalf("%s %s: decoding %q: %v", method, path, raw, err)
		}
	}
	return resp.StatusCode
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(time.Millisecond)
	}
}

func (tr *testReplica) waitApplied(t testing.TB, n uint64) {
	t.Helper()
	waitFor(t, fmt.Sprintf("%s to apply index %d", tr.cfg.ID, n), 10*time.Second, func() bool { return tr.Applied() >= n })
}

func (tr *testReplica) state(t testing.TB) obapi.State {
	t.Helper()
	var s obapi.State
	if code := tr.do(t, "GET", "/state", nil, &s); code != 200 {
		t.Fatalf("GET /state: %d", code)
	}
	return s
}

func (tr *testReplica) balance(t testing.TB, a common.Address, token string) string {
	t.Helper()
	var b obapi.Balance
	if code := tr.do(t, "GET", "/balance?address="+a.Hex()+"&token="+token, nil, &b); code != 200 {
		t.Fatalf("GET /balance: %d", code)
	}
	return b.Balance
}

func u(v uint64) string { return strconv.FormatUint(v, 10) }
