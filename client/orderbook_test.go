package client

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/common"

	"github.com/seqbook/seqbook/client/amount"
	"github.com/seqbook/seqbook/client/eip712"
	"github.com/seqbook/seqbook/client/ethsig"
	"github.com/seqbook/seqbook/client/obapi"
)

// vectors are the ethers-made EIP-712 cases of testdata/vectors.
type vectorFile struct {
	Keys []struct {
		PrivateKey string `json:"private_key"`
		Address    string `json:"address"`
	} `json:"keys"`
	Cases []struct {
		Name    string            `json:"name"`
		Message map[string]string `json:"message"`
		Domain  struct {
			ChainID uint64 `json:"chainId"`
		} `json:"domain"`
		Digest    string `json:"digest"`
		Signature string `json:"signature"`
		Address   string `json:"address"`
	} `json:"cases"`
}

func loadVectors(t *testing.T) *vectorFile {
	t.Helper()
	b, err := os.ReadFile("../testdata/vectors/eip712.json")
	if err != nil {
		t.Fatal(err)
	}
	var v vectorFile
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	return &v
}

func (v *vectorFile) keyOf(t *testing.T, addr string) *ecdsa.PrivateKey {
	for _, k := range v.Keys {
		if strings.EqualFold(k.Address, addr) {
			key, err := ethsig.ParseKey(k.PrivateKey)
			if err != nil {
				t.Fatal(err)
			}
			return key
		}
	}
	t.Fatalf("no key for %s", addr)
	return nil
}

func (v *vectorFile) find(t *testing.T, name string) int {
	for i, c := range v.Cases {
		if c.Name == name {
			return i
		}
	}
	t.Fatalf("no vector %s", name)
	return -1
}

// fakeReplica checks signatures like a replica would and answers with the
// ids it computes, or with whatever a test makes it say.
type fakeReplica struct {
	t      *testing.T
	tn     *testNet
	domain eip712.Domain
	srv    *httptest.Server

	mu       sync.Mutex
	last     map[string]json.RawMessage // path → last request body
	lastURL  string
	override func(w http.ResponseWriter, r *http.Request) bool
	balance  uint64
}

func newFakeReplica(t *testing.T, tn *testNet) *fakeReplica {
	fr := &fakeReplica{t: t, tn: tn, domain: eip712.NewDomain(eip712.DefaultChainID), last: map[string]json.RawMessage{}, balance: 1_500_000}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /eip712", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, map[string]any{"domain": map[string]any{"name": "seqbook", "version": "1", "chainId": "0x7a69"}, "types": map[string]any{}})
	})
	mux.HandleFunc("POST /order", func(w http.ResponseWriter, r *http.Request) {
		var req obapi.OrderRequest
		if !fr.decode(w, r, &req) {
			return
		}
		m := eip712.Order{Trader: common.HexToAddress(req.Trader), Market: req.Market, Side: req.Side, OrderType: req.OrderType,
			Quantity: mustUnits(string(req.Quantity)), Price: mustUnits(string(req.Price)), Nonce: mustUnits(string(req.Nonce)), Expiry: mustUnits(string(req.Expiry))}
		d := fr.domain.Digest(&m)
		if !fr.checkSig(w, d, req.Signature, m.Trader) {
			return
		}
		if r.URL.Query().Get("wait") == "finalized" {
			writeJSON(w, 200, obapi.Order{OrderID: hex32(d), Status: obapi.StatusFilled, Trader: req.Trader, Filled: amount.Format(m.Quantity)})
			return
		}
		writeJSON(w, 200, obapi.OrderAccepted{OrderID: hex32(d), Status: obapi.StatusAccepted})
	})
	mux.HandleFunc("POST /cancel", func(w http.ResponseWriter, r *http.Request) {
		var req obapi.CancelRequest
		if !fr.decode(w, r, &req) {
			return
		}
		m := eip712.Cancel{Trader: common.HexToAddress(req.Trader), OrderID: mustHash(req.OrderID), Nonce: mustUnits(string(req.Nonce)), Expiry: mustUnits(string(req.Expiry))}
		d := fr.domain.Digest(&m)
		if fr.checkSig(w, d, req.Signature, m.Trader) {
			writeJSON(w, 200, obapi.OpAccepted{ID: hex32(d), Status: obapi.StatusAccepted})
		}
	})
	mux.HandleFunc("POST /cancel_all", func(w http.ResponseWriter, r *http.Request) {
		var req obapi.CancelAllRequest
		if !fr.decode(w, r, &req) {
			return
		}
		m := eip712.CancelAll{Trader: common.HexToAddress(req.Trader), Market: req.Market, Nonce: mustUnits(string(req.Nonce)), Expiry: mustUnits(string(req.Expiry))}
		d := fr.domain.Digest(&m)
		if fr.checkSig(w, d, req.Signature, m.Trader) {
			writeJSON(w, 200, obapi.OpAccepted{ID: hex32(d), Status: obapi.StatusAccepted})
		}
	})
	mux.HandleFunc("POST /withdraw", func(w http.ResponseWriter, r *http.Request) {
		var req obapi.WithdrawRequest
		if !fr.decode(w, r, &req) {
			return
		}
		m := eip712.Withdraw{Trader: common.HexToAddress(req.Trader), Token: req.Token, Amount: mustUnits(string(req.Amount)),
			Recipient: common.HexToAddress(req.Recipient), Nonce: mustUnits(string(req.Nonce)), Expiry: mustUnits(string(req.Expiry))}
		d := fr.domain.Digest(&m)
		if fr.checkSig(w, d, req.Signature, m.Trader) {
			writeJSON(w, 200, obapi.OpResult{ID: hex32(d), Op: "withdraw", Status: obapi.StatusApplied, Index: 9})
		}
	})
	mux.HandleFunc("GET /balance", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		acct := common.HexToAddress(q.Get("address"))
		index := uint64(17)
		if s := q.Get("index"); s != "" {
			index = mustUnits(s)
		}
		fr.mu.Lock()
		bal := fr.balance
		fr.mu.Unlock()
		m := eip712.Balance{App: tn.c.App, Account: acct, Token: q.Get("token"), Balance: bal, Index: index}
		sig := tn.replicaKeys[0].Sign(tn.c.Domain.Digest(&m))
		writeJSON(w, 200, obapi.Balance{Address: acct.Hex(), Token: m.Token, Balance: amount.Format(bal),
			BalanceUnits: strconv.FormatUint(bal, 10), Index: index, Replica: "replica1", Signature: sig.Hex()})
	})
	mux.HandleFunc("GET /state", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, obapi.State{App: "orderbook", Replica: "replica1", AppliedIndex: 17})
	})
	fr.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fr.mu.Lock()
		fr.lastURL = r.URL.String()
		ov := fr.override
		fr.mu.Unlock()
		if ov != nil && ov(w, r) {
			return
		}
		mux.ServeHTTP(w, r)
	}))
	t.Cleanup(fr.srv.Close)
	return fr
}

func mustUnits(s string) uint64 {
	v, err := amount.ParseUnits(s)
	if err != nil {
		panic(err)
	}
	return v
}

func (fr *fakeReplica) setOverride(f func(w http.ResponseWriter, r *http.Request) bool) {
	fr.mu.Lock()
	fr.override = f
	fr.mu.Unlock()
}

func (fr *fakeReplica) request(path string) json.RawMessage {
	fr.mu.Lock()
	defer fr.mu.Unlock()
	return fr.last[path]
}

func (fr *fakeReplica) url() string {
	fr.mu.Lock()
	defer fr.mu.Unlock()
	return fr.lastURL
}

func (fr *fakeReplica) decode(w http.ResponseWriter, r *http.Request, out any) bool {
	var raw json.RawMessage
	if err := json.NewDecoder(r.Body).Decode(&raw); err != nil {
		writeJSON(w, 400, obapi.Error{Error: err.Error()})
		return false
	}
	fr.mu.Lock()
	fr.last[r.URL.Path] = raw
	fr.mu.Unlock()
	if err := json.Unmarshal(raw, out); err != nil {
		writeJSON(w, 400, obapi.Error{Error: err.Error()})
		return false
	}
	return true
}

func (fr *fakeReplica) checkSig(w http.ResponseWriter, d [32]byte, sigHex string, want common.Address) bool {
	sig, err := ethsig.ParseHex(sigHex)
	if err == nil {
		err = ethsig.Verify(d, sig, want)
	}
	if err != nil {
		writeJSON(w, 401, obapi.Error{Error: "signature: " + err.Error()})
		return false
	}
	return true
}

// fixedNow is a clock just before the vectors' expiries.
func fixedNow() time.Time { return time.Unix(1_699_999_000, 0) }

func TestPlaceOrderMatchesEthersVector(t *testing.T) {
	v := loadVectors(t)
	c := v.Cases[v.find(t, "order-buy-limit")]
	tn := newFixedNet(t, "orderbook", 4, 3)
	fr := newFakeReplica(t, tn)
	// No WithChainID: the domain comes from the replica's GET /eip712.
	ob, err := NewOrderbook(fr.srv.URL, withClock(fixedNow))
	if err != nil {
		t.Fatal(err)
	}
	key := v.keyOf(t, c.Address)
	res, err := ob.PlaceOrder(context.Background(), key, OrderParams{
		Market: c.Message["market"], Side: c.Message["side"], Type: c.Message["orderType"],
		Quantity: mustUnits(c.Message["quantity"]), Price: mustUnits(c.Message["price"]),
		Nonce: mustUnits(c.Message["nonce"]), Expiry: mustUnits(c.Message["expiry"]),
	}, false)
	if err != nil {
		t.Fatal(err)
	}
	if res.OrderID.String() != c.Digest || res.Accepted.OrderID != c.Digest {
		t.Fatalf("order id %s, ethers digest %s", res.OrderID, c.Digest)
	}
	if res.Request.Signature != c.Signature {
		t.Fatalf("signature %s, ethers %s", res.Request.Signature, c.Signature)
	}
	// The retry path resends the very same signed body.
	first := append([]byte(nil), fr.request("/order")...)
	again, err := ob.SubmitOrder(context.Background(), res.Request, false)
	if err != nil || again.OrderID.String() != c.Digest {
		t.Fatalf("resubmit: %v, id %s", err, again.OrderID)
	}
	if !bytes.Equal(fr.request("/order"), first) {
		t.Fatalf("resubmitted body differs:\n%s\n%s", first, fr.request("/order"))
	}
	// The body has exactly DESIGN §5's fields.
	var fields map[string]any
	_ = json.Unmarshal(fr.request("/order"), &fields)
	for _, f := range []string{"trader", "market", "side", "orderType", "quantity", "price", "nonce", "expiry", "signature"} {
		if _, ok := fields[f]; !ok {
			t.Errorf("request lacks %q", f)
		}
	}
	if len(fields) != 9 {
		t.Errorf("request has %d fields: %v", len(fields), fields)
	}
	if fields["quantity"] != "1500000" || fields["price"] != "2000000000" {
		t.Errorf("amounts not in base units: %v %v", fields["quantity"], fields["price"])
	}

	// With wait, the query asks for finality and the order comes back.
	res, err = ob.PlaceOrder(context.Background(), key, OrderParams{Market: "ETH/USDT", Side: "sell", Quantity: 1, Price: 1}, true)
	if err != nil {
		t.Fatal(err)
	}
	// The replica is told how long the client waits (the 15 s default
	// less a tenth for the way back), so it answers before the client
	// gives up.
	if !strings.HasSuffix(fr.url(), "?wait=finalized&timeout=13500ms") || res.Order == nil || res.Order.Status != obapi.StatusFilled || res.Order.OrderID != res.OrderID.String() {
		t.Fatalf("wait: url %s, answer %+v", fr.url(), res.Order)
	}
	// A context deadline shorter than the timeout wins.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if _, err = ob.PlaceOrder(ctx, key, OrderParams{Market: "ETH/USDT", Side: "sell", Quantity: 1, Price: 1}, true); err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse(fr.url())
	if d, err := time.ParseDuration(u.Query().Get("timeout")); err != nil || d > 1800*time.Millisecond || d < 100*time.Millisecond {
		t.Fatalf("wait with a 2 s deadline: url %s", fr.url())
	}
	// Defaults: a fresh nonce, expiry = now + 10 min, type limit.
	if res.Request.OrderType != "limit" || res.Request.Expiry != obapi.Uint(uint64(fixedNow().Add(DefaultExpiry).Unix())) || res.Request.Nonce == "" {
		t.Fatalf("defaults: %+v", res.Request)
	}
}

func TestCancelAndWithdrawMatchEthersVectors(t *testing.T) {
	v := loadVectors(t)
	tn := newFixedNet(t, "orderbook", 4, 3)
	fr := newFakeReplica(t, tn)
	ob, _ := NewOrderbook(fr.srv.URL, WithChainID(31337), withClock(fixedNow))

	c := v.Cases[v.find(t, "cancel")]
	res, err := ob.Cancel(context.Background(), v.keyOf(t, c.Address), mustHash(c.Message["orderId"]),
		OpParams{Nonce: mustUnits(c.Message["nonce"]), Expiry: mustUnits(c.Message["expiry"])}, false)
	if err != nil {
		t.Fatal(err)
	}
	if res.ID.String() != c.Digest || res.Accepted.ID != c.Digest {
		t.Fatalf("cancel id %s, ethers %s", res.ID, c.Digest)
	}
	var req obapi.CancelRequest
	_ = json.Unmarshal(fr.request("/cancel"), &req)
	if req.Signature != c.Signature || req.OrderID != c.Message["orderId"] {
		t.Fatalf("cancel request %+v", req)
	}

	c = v.Cases[v.find(t, "cancel-all-market")]
	cres, err := ob.CancelAll(context.Background(), v.keyOf(t, c.Address), c.Message["market"],
		OpParams{Nonce: mustUnits(c.Message["nonce"]), Expiry: mustUnits(c.Message["expiry"])}, false)
	if err != nil || cres.ID.String() != c.Digest || cres.Accepted.ID != c.Digest {
		t.Fatalf("cancel-all: %+v (ethers %s), %v", cres, c.Digest, err)
	}
	var careq obapi.CancelAllRequest
	_ = json.Unmarshal(fr.request("/cancel_all"), &careq)
	if careq.Signature != c.Signature || careq.Market != "ETH/USDT" {
		t.Fatalf("cancel-all request %+v, ethers signature %s", careq, c.Signature)
	}

	c = v.Cases[v.find(t, "withdraw")]
	wres, err := ob.Withdraw(context.Background(), v.keyOf(t, c.Address), WithdrawParams{
		Token: c.Message["token"], Amount: mustUnits(c.Message["amount"]), Recipient: common.HexToAddress(c.Message["recipient"]),
		OpParams: OpParams{Nonce: mustUnits(c.Message["nonce"]), Expiry: mustUnits(c.Message["expiry"])},
	}, true)
	if err != nil {
		t.Fatal(err)
	}
	if wres.ID.String() != c.Digest || wres.Result == nil || wres.Result.Status != obapi.StatusApplied {
		t.Fatalf("withdraw id %s (ethers %s), result %+v", wres.ID, c.Digest, wres.Result)
	}
	var wreq obapi.WithdrawRequest
	_ = json.Unmarshal(fr.request("/withdraw"), &wreq)
	if wreq.Signature != c.Signature {
		t.Fatalf("withdraw signature %s, ethers %s", wreq.Signature, c.Signature)
	}
}

func TestOrderbookErrors(t *testing.T) {
	tn := newFixedNet(t, "orderbook", 4, 3)
	fr := newFakeReplica(t, tn)
	ob, _ := NewOrderbook(fr.srv.URL, WithChainID(31337))
	key := fixedSecp(t)
	ctx := context.Background()
	good := OrderParams{Market: "ETH/USDT", Side: "buy", Quantity: 1_500_000, Price: 2_000_000_000}

	// Refused locally, before any request.
	for _, p := range []OrderParams{
		{Market: "ETHUSDT", Side: "buy", Quantity: 1, Price: 1},
		{Market: "ETH/USDT", Side: "hold", Quantity: 1, Price: 1},
		{Market: "ETH/USDT", Side: "buy", Type: "stop", Quantity: 1, Price: 1},
		{Market: "ETH/USDT", Side: "buy", Quantity: 0, Price: 1},
		{Market: "ETH/USDT", Side: "buy", Quantity: 1, Price: 0},
		{Market: "ETH/USDT", Side: "buy", Quantity: 1, Price: 1, Expiry: 1000},
	} {
		if _, err := ob.PlaceOrder(ctx, key, p, false); !errors.Is(err, ErrInvalidParams) {
			t.Errorf("%+v: got %v, want ErrInvalidParams", p, err)
		}
	}

	// A server refusal surfaces as an APIError with status and message.
	fr.setOverride(func(w http.ResponseWriter, r *http.Request) bool {
		writeJSON(w, http.StatusForbidden, obapi.Error{Error: "insufficient balance: need 3000 USDT"})
		return true
	})
	_, err := ob.PlaceOrder(ctx, key, good, false)
	var ae *APIError
	if !errors.As(err, &ae) || ae.Status != 403 || ae.Message != "insufficient balance: need 3000 USDT" {
		t.Fatalf("got %v", err)
	}

	// A replica answering with another id is caught.
	fr.setOverride(func(w http.ResponseWriter, r *http.Request) bool {
		writeJSON(w, 200, obapi.OrderAccepted{OrderID: hex32([32]byte{1}), Status: "accepted"})
		return true
	})
	res, err := ob.PlaceOrder(ctx, key, good, false)
	if !errors.Is(err, ErrIDMismatch) || res == nil {
		t.Fatalf("got %v", err)
	}

	// A domain that is not seqbook's is refused.
	fr.setOverride(func(w http.ResponseWriter, r *http.Request) bool {
		writeJSON(w, 200, map[string]any{"domain": map[string]any{"name": "other", "version": "1", "chainId": 1}})
		return true
	})
	ob2, _ := NewOrderbook(fr.srv.URL)
	if _, err := ob2.PlaceOrder(ctx, key, good, false); err == nil || !strings.Contains(err.Error(), "domain") {
		t.Fatalf("got %v", err)
	}

	for _, bad := range []string{"", "ftp://x:1", "http://", "http://h:1/?q=1"} {
		if _, err := NewOrderbook(bad); err == nil {
			t.Errorf("base URL %q accepted", bad)
		}
	}
}

func fixedSecp(t *testing.T) *ecdsa.PrivateKey {
	k, err := ethsig.ParseKey("0x4b7f4de058ab4d3629f438c1728ac77bea7f4ab0099218be77242f8ba099cca7")
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestBalanceAndItsSignature(t *testing.T) {
	tn := newFixedNet(t, "orderbook", 4, 3)
	fr := newFakeReplica(t, tn)
	ob, _ := NewOrderbook(strings.TrimPrefix(fr.srv.URL, "http://")) // host:port works too
	acct := common.HexToAddress("0xc66F8Fba940064B5bA8d437d6fF829E60134230E")
	b, err := ob.Balance(context.Background(), acct, "ETH", 0)
	if err != nil {
		t.Fatal(err)
	}
	if b.Balance != "1.5" || b.Index != 17 {
		t.Fatalf("balance %+v", b)
	}
	if err := VerifyBalanceSignature(tn.c, "replica1", b); err != nil {
		t.Fatal(err)
	}
	if err := VerifyBalanceSignature(tn.c, "", b); err != nil {
		t.Fatal(err)
	}
	if err := VerifyBalanceSignature(tn.c, "replica2", b); !errors.Is(err, ErrProofSigner) {
		t.Fatalf("claimed by another replica: %v", err)
	}
	forged := *b
	forged.Replica = "replica2" // replica1's signature passed off as replica2's
	if err := VerifyBalanceSignature(tn.c, "replica2", &forged); !errors.Is(err, ErrProofSignature) {
		t.Fatalf("relabelled: %v", err)
	}
	forged = *b
	forged.Balance, forged.BalanceUnits = "2", "2000000"
	if err := VerifyBalanceSignature(tn.c, "replica1", &forged); !errors.Is(err, ErrProofSignature) {
		t.Fatalf("tampered balance: %v", err)
	}
	forged = *b
	forged.Index = 18
	if err := VerifyBalanceSignature(tn.c, "replica1", &forged); !errors.Is(err, ErrProofSignature) {
		t.Fatalf("tampered index: %v", err)
	}

	// At an index: asked and checked.
	b, err = ob.Balance(context.Background(), acct, "ETH", 5)
	if err != nil || b.Index != 5 || !strings.Contains(fr.url(), "index=5") {
		t.Fatalf("at index: %+v %v (%s)", b, err, fr.url())
	}
	// An answer about something else is refused.
	fr.setOverride(func(w http.ResponseWriter, r *http.Request) bool {
		writeJSON(w, 200, obapi.Balance{Address: acct.Hex(), Token: "USDT", Index: 5})
		return true
	})
	if _, err := ob.Balance(context.Background(), acct, "ETH", 5); err == nil {
		t.Fatal("answer for another token accepted")
	}
}

func TestNextNonceUnique(t *testing.T) {
	const workers, each = 4, 1000
	var mu sync.Mutex
	seen := map[uint64]bool{}
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var prev uint64
			for i := 0; i < each; i++ {
				n := NextNonce()
				if n <= prev {
					t.Errorf("nonce went from %d to %d", prev, n)
				}
				prev = n
				mu.Lock()
				seen[n] = true
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if len(seen) != workers*each {
		t.Fatalf("%d distinct nonces of %d", len(seen), workers*each)
	}
	if n := NextNonce(); n < uint64(time.Now().Add(-time.Minute).UnixNano()) {
		t.Fatalf("nonce %d is not seeded from the clock", n)
	}
}
