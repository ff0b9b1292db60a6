package main

import (
	"bytes"
	"crypto/ecdsa"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/seqbook/seqbook/client/amount"
	"github.com/seqbook/seqbook/client/ethsig"
	"github.com/seqbook/seqbook/client/keys"
	"github.com/seqbook/seqbook/client/legacy"
	"github.com/seqbook/seqbook/tutorial/internal/tut"
)

func TestMain(m *testing.M) {
	slog.SetDefault(slog.New(slog.NewTextHandler(io.Discard, nil)))
	os.Exit(m.Run())
}

func newTestServer(t *testing.T) (*server, *httptest.Server) {
	t.Helper()
	s, err := newServer()
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(s.routes())
	t.Cleanup(ts.Close)
	return s, ts
}

func do(t *testing.T, method, url, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

func expect(t *testing.T, method, url, body string, status int, want string) string {
	t.Helper()
	code, resp := do(t, method, url, body)
	if code != status {
		t.Fatalf("%s %s %s: status %d, want %d; body %s", method, url, body, code, status, resp)
	}
	text := resp
	if status >= 400 {
		var e struct {
			Error string `json:"error"`
		}
		if err := json.Unmarshal([]byte(resp), &e); err != nil || e.Error == "" {
			t.Fatalf("refusal body %s is not {\"error\": ...}", resp)
		}
		text = e.Error
	}
	if !strings.Contains(text, want) {
		t.Fatalf("%s %s: answer %s does not contain %q", method, url, text, want)
	}
	return resp
}

// signedOrder builds the tutorial's request as its Python client does:
// amounts as JSON floats, the signature hex from eth_account.
func signedOrder(t *testing.T, key *ecdsa.PrivateKey, side string, qty, price uint64) map[string]any {
	t.Helper()
	sig, err := legacy.Sign(key, legacy.Message(side, qty, price, "ETH", "USDT"))
	if err != nil {
		t.Fatal(err)
	}
	return map[string]any{
		"sender": keys.Address(key).Hex(), "order_type": side, "base_token": "ETH", "quote_token": "USDT",
		"quantity": json.Number(amount.Format(qty)), "price": json.Number(amount.Format(price)),
		"signature": "0x" + hex.EncodeToString(sig),
	}
}

func encode(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func balance(t *testing.T, ts *httptest.Server, addr, token string) string {
	t.Helper()
	b, err := tut.DecodeBalance([]byte(expect(t, "GET", ts.URL+"/balance?address="+addr+"&token="+token, "", http.StatusOK, "")))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// The seed's 02_place_order.py, byte for byte as its Python client sends
// it: the signatures are ethers' (testdata/vectors/legacy.json), the
// amounts JSON floats, the signature hex without 0x (HexBytes.hex()).
func TestSeedClientOrders(t *testing.T) {
	s, ts := newTestServer(t)
	b, err := os.ReadFile("../../testdata/vectors/legacy.json")
	if err != nil {
		t.Fatal(err)
	}
	var file struct {
		Cases []struct {
			Name, Message, Signature, Address string
		} `json:"cases"`
	}
	if err := json.Unmarshal(b, &file); err != nil {
		t.Fatal(err)
	}
	sigOf := map[string]string{}
	for _, c := range file.Cases {
		sigOf[c.Name] = strings.TrimPrefix(c.Signature, "0x")
	}
	if sigOf["seed-buy"] == "" || sigOf["seed-sell"] == "" {
		t.Fatal("seed vectors missing")
	}
	buy := `{"sender": "0xc66F8Fba940064B5bA8d437d6fF829E60134230E", "order_type": "buy", "base_token": "ETH", "quote_token": "USDT", "quantity": 1.0, "price": 200.0, "signature": "` + sigOf["seed-buy"] + `"}`
	sell := `{"sender": "0x7F3b0b1530A0d0Ce3D721a6e976C7eA4296A0f5d", "order_type": "sell", "base_token": "ETH", "quote_token": "USDT", "quantity": 1.0, "price": 200.0, "signature": "` + sigOf["seed-sell"] + `"}`

	resp := expect(t, "POST", ts.URL+"/order", buy, http.StatusOK, `"status":"open"`)
	var placed struct {
		OrderID string `json:"order_id"`
	}
	if err := json.Unmarshal([]byte(resp), &placed); err != nil {
		t.Fatal(err)
	}
	// The order id is the EIP-191 hash of the signed text (DESIGN §5).
	h := legacy.Hash("Order buy 1.0 ETH at 200.0 USDT")
	if placed.OrderID != "0x"+hex.EncodeToString(h[:]) {
		t.Fatalf("order id %s", placed.OrderID)
	}
	orders := expect(t, "GET", ts.URL+"/orders", "", http.StatusOK, placed.OrderID)
	if !strings.Contains(orders, `"user":"0xc66F8Fba940064B5bA8d437d6fF829E60134230E"`) {
		t.Fatalf("orders %s", orders)
	}
	expect(t, "POST", ts.URL+"/order", sell, http.StatusOK, `"status":"filled"`)

	for _, tc := range []struct{ addr, token, want string }{
		{"0xc66F8Fba940064B5bA8d437d6fF829E60134230E", "USDT", "800"},
		{"0xc66f8fba940064b5ba8d437d6ff829e60134230e", "ETH", "1"}, // any capitalisation
		{"0x7F3b0b1530A0d0Ce3D721a6e976C7eA4296A0f5d", "ETH", "4"},
		{"0x7F3b0b1530A0d0Ce3D721a6e976C7eA4296A0f5d", "USDT", "200"},
	} {
		if got := balance(t, ts, tc.addr, tc.token); got != tc.want {
			t.Errorf("balance %s %s = %s, want %s", tc.addr, tc.token, got, tc.want)
		}
	}
	// Replaying either captured request is refused, and changes nothing.
	expect(t, "POST", ts.URL+"/order", buy, http.StatusConflict, "already used")
	expect(t, "POST", ts.URL+"/order", sell, http.StatusConflict, "already used")
	if got := balance(t, ts, "0xc66F8Fba940064B5bA8d437d6fF829E60134230E", "USDT"); got != "800" {
		t.Fatalf("a replay moved funds: USDT %s", got)
	}
	if err := s.book.CheckInvariants(); err != nil {
		t.Fatal(err)
	}
}

func TestSignatureChecks(t *testing.T) {
	_, ts := newTestServer(t)
	u1, u2 := keys.TutorialUser1(), keys.TutorialUser2()
	url := ts.URL + "/order"

	// Signed by user2 but claiming to be user1.
	forged := signedOrder(t, u2, "buy", 1_000_000, 200_000_000)
	forged["sender"] = keys.Address(u1).Hex()
	expect(t, "POST", url, encode(t, forged), http.StatusUnauthorized, "not the sender's signature")

	// A valid signature over other amounts: the text checked is named.
	tampered := signedOrder(t, u1, "buy", 1_000_000, 200_000_000)
	tampered["quantity"] = json.Number("2")
	expect(t, "POST", url, encode(t, tampered), http.StatusUnauthorized, `Order buy 2.0 ETH at 200.0 USDT`)
	tampered = signedOrder(t, u1, "buy", 1_000_000, 200_000_000)
	tampered["order_type"] = "sell"
	expect(t, "POST", url, encode(t, tampered), http.StatusUnauthorized, "invalid signature")

	// The high-s twin of a valid signature is refused before anything else.
	good := signedOrder(t, u1, "buy", 500_000, 100_000_000)
	sig, err := ethsig.ParseHex(good["signature"].(string))
	if err != nil {
		t.Fatal(err)
	}
	twin := highSTwin(sig)
	bad := signedOrder(t, u1, "buy", 500_000, 100_000_000)
	bad["signature"] = "0x" + hex.EncodeToString(twin)
	expect(t, "POST", url, encode(t, bad), http.StatusUnauthorized, "high-s")

	// Accepted once; again, or with v written as 0/1, it is a replay.
	body := encode(t, good)
	expect(t, "POST", url, body, http.StatusOK, `"status":"open"`)
	expect(t, "POST", url, body, http.StatusConflict, "already used")
	sig[64] -= 27
	good["signature"] = hex.EncodeToString(sig)
	expect(t, "POST", url, encode(t, good), http.StatusConflict, "already used")

	// A different order by the same sender is fine.
	expect(t, "POST", url, encode(t, signedOrder(t, u1, "buy", 500_001, 100_000_000)), http.StatusOK, `"status":"open"`)
}

// highSTwin returns (r, n-s, v flipped): the same signature in its
// malleable encoding.
func highSTwin(sig []byte) []byte {
	n, _ := new(big.Int).SetString("fffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141", 16)
	s := new(big.Int).SetBytes(sig[32:64])
	out := append([]byte(nil), sig...)
	new(big.Int).Sub(n, s).FillBytes(out[32:64])
	out[64] = 27 + 28 - out[64]
	return out
}

func TestRefusals(t *testing.T) {
	_, ts := newTestServer(t)
	u1, u2 := keys.TutorialUser1(), keys.TutorialUser2()
	url := ts.URL + "/order"

	// Balances: user1 has 1000 USDT, user2 5 ETH.
	expect(t, "POST", url, encode(t, signedOrder(t, u1, "buy", 5_000_001, 200_000_000)), http.StatusForbidden, "insufficient USDT balance")
	expect(t, "POST", url, encode(t, signedOrder(t, u2, "sell", 5_000_001, 200_000_000)), http.StatusForbidden, "insufficient ETH balance")
	expect(t, "POST", url, encode(t, signedOrder(t, u1, "sell", 1_000_000, 200_000_000)), http.StatusForbidden, "insufficient ETH balance")
	// A refused order did not use up its signature: after funding it would
	// go through (here: a smaller one proves the account still works).
	refused := encode(t, signedOrder(t, u2, "sell", 5_000_000, 200_000_000))
	expect(t, "POST", url, refused, http.StatusOK, `"status":"open"`)
	expect(t, "POST", url, refused, http.StatusConflict, "already used")

	base := func(mut func(m map[string]any)) string {
		m := signedOrder(t, u1, "buy", 1_000_000, 200_000_000)
		mut(m)
		return encode(t, m)
	}
	for _, tc := range []struct {
		body, want string
	}{
		{base(func(m map[string]any) { delete(m, "sender") }), `"sender"`},
		{base(func(m map[string]any) { m["sender"] = "0x1234" }), `"sender"`},
		{base(func(m map[string]any) { m["sender"] = "c66F8Fba940064B5bA8d437d6fF829E60134230E" }), `"sender"`},
		{base(func(m map[string]any) { m["order_type"] = "limit" }), `"order_type"`},
		{base(func(m map[string]any) { m["base_token"] = "" }), `"base_token"`},
		{base(func(m map[string]any) { m["quote_token"] = "US DT" }), `"quote_token"`},
		{base(func(m map[string]any) { m["quantity"] = "0" }), `"quantity"`},
		{base(func(m map[string]any) { m["quantity"] = json.Number("1.0000001") }), "more than 6 decimals"},
		{base(func(m map[string]any) { m["price"] = nil }), `"price"`},
		{base(func(m map[string]any) { m["price"] = []int{1} }), `"price"`},
		// 2^63-1 base units: valid, but no float names it exactly.
		{base(func(m map[string]any) { m["price"] = "9223372036854.775807" }), "not exactly representable"},
		{base(func(m map[string]any) { delete(m, "signature") }), `"signature"`},
		{base(func(m map[string]any) { m["signature"] = "0xzz" }), `"signature"`},
		{base(func(m map[string]any) { m["signature"] = "0x" + strings.Repeat("00", 64) }), `"signature"`},
		{base(func(m map[string]any) { m["nonce"] = 1 }), "unknown field"},
		{`{`, "malformed JSON"},
	} {
		expect(t, "POST", url, tc.body, http.StatusBadRequest, tc.want)
	}
	expect(t, "GET", ts.URL+"/balance?address=nope&token=ETH", "", http.StatusBadRequest, `"address"`)
	expect(t, "GET", ts.URL+"/balance?address=0xc66F8Fba940064B5bA8d437d6fF829E60134230E", "", http.StatusBadRequest, `"token"`)
}

// Many concurrent submissions of one signed order: exactly one places it.
func TestConcurrentReplay(t *testing.T) {
	s, ts := newTestServer(t)
	body := encode(t, signedOrder(t, keys.TutorialUser1(), "buy", 1_000_000, 100_000_000))
	var wg sync.WaitGroup
	codes := make(chan int, 16)
	for i := 0; i < 16; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := http.Post(ts.URL+"/order", "application/json", bytes.NewBufferString(body))
			if err != nil {
				t.Error(err)
				return
			}
			resp.Body.Close()
			codes <- resp.StatusCode
		}()
	}
	wg.Wait()
	close(codes)
	ok := 0
	for c := range codes {
		switch c {
		case http.StatusOK:
			ok++
		case http.StatusConflict:
		default:
			t.Errorf("status %d", c)
		}
	}
	if ok != 1 {
		t.Fatalf("%d submissions placed the order, want 1", ok)
	}
	if got := balance(t, ts, keys.TutorialUser1Address.Hex(), "USDT"); got != "900" {
		t.Fatalf("USDT available %s, want 900 (one order of 100 reserved)", got)
	}
	if err := s.book.CheckInvariants(); err != nil {
		t.Fatal(err)
	}
}
