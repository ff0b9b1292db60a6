package main

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/seqbook/seqbook/tutorial/internal/tut"
)

type client struct {
	t    *testing.T
	base string
	http *http.Client
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

// newClient is a browser-like client with its own cookie jar, as the seed's
// curl -c/-b and httpx clients are.
func newClient(t *testing.T, ts *httptest.Server) *client {
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &client{t: t, base: ts.URL, http: &http.Client{Jar: jar}}
}

func (c *client) do(method, path, body string) (int, string) {
	c.t.Helper()
	req, err := http.NewRequest(method, c.base+path, strings.NewReader(body))
	if err != nil {
		c.t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		c.t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

func (c *client) expect(method, path, body string, status int) string {
	c.t.Helper()
	got, resp := c.do(method, path, body)
	if got != status {
		c.t.Fatalf("%s %s %s: status %d, want %d; body %s", method, path, body, got, status, resp)
	}
	return resp
}

// expectError checks a refusal: the status, a JSON {"error"} body, and
// that the message mentions want.
func (c *client) expectError(method, path, body string, status int, want string) {
	c.t.Helper()
	resp := c.expect(method, path, body, status)
	var e struct {
		Error string `json:"error"`
	}
	if err := json.Unmarshal([]byte(resp), &e); err != nil || e.Error == "" {
		c.t.Fatalf("%s %s: body %s is not {\"error\": ...}", method, path, resp)
	}
	if !strings.Contains(e.Error, want) {
		c.t.Fatalf("%s %s %s: error %q does not mention %q", method, path, body, e.Error, want)
	}
}

func (c *client) login(user, pass string) {
	c.t.Helper()
	resp := c.expect("POST", "/login", `{"username": "`+user+`", "password": "`+pass+`"}`, http.StatusOK)
	if !strings.Contains(resp, "Login successful") {
		c.t.Fatalf("login answer %s", resp)
	}
}

func (c *client) balance(user, token string) string {
	c.t.Helper()
	return balanceOf(c.t, c.expect("GET", "/balance?username="+user+"&token="+token, "", http.StatusOK))
}

func balanceOf(t *testing.T, body string) string {
	t.Helper()
	b, err := tut.DecodeBalance([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

type placed struct {
	Message   string            `json:"message"`
	OrderID   string            `json:"order_id"`
	Status    string            `json:"status"`
	Filled    json.Number       `json:"filled"`
	Remaining json.Number       `json:"remaining"`
	Fills     []json.RawMessage `json:"fills"`
}

func decodePlaced(t *testing.T, s string) placed {
	t.Helper()
	var p placed
	dec := json.NewDecoder(strings.NewReader(s))
	dec.UseNumber()
	if err := dec.Decode(&p); err != nil {
		t.Fatalf("order answer %s: %v", s, err)
	}
	return p
}

// The seed's flow: log in, place the documented order, list the orders;
// then the crossing sell from the seed's 01_place_order.py.
func TestSeedFlow(t *testing.T) {
	s, ts := newTestServer(t)
	u1, u2 := newClient(t, ts), newClient(t, ts)

	u1.login("user1", "pass1")
	buy := decodePlaced(t, u1.expect("POST", "/order", `{
		"order_type": "buy", "base_token": "ETH", "quote_token": "USDT", "quantity": 1, "price": 200
	}`, http.StatusOK))
	if buy.Message != "Order placed" || buy.OrderID == "" || buy.Status != "open" || len(buy.Fills) != 0 {
		t.Fatalf("buy answer %+v", buy)
	}
	// The buy reserves 200 USDT: available 800.
	if got := u1.balance("user1", "USDT"); got != "800" {
		t.Fatalf("user1 USDT after the buy = %s, want 800", got)
	}
	orders := u1.expect("GET", "/orders", "", http.StatusOK)
	var open []map[string]any
	if err := json.Unmarshal([]byte(orders), &open); err != nil || len(open) != 1 {
		t.Fatalf("orders %s", orders)
	}
	if open[0]["id"] != buy.OrderID || open[0]["user"] != "user1" || open[0]["order_type"] != "buy" ||
		open[0]["quantity"] != float64(1) || open[0]["price"] != float64(200) || open[0]["base_token"] != "ETH" {
		t.Fatalf("open order %v", open[0])
	}

	u2.login("user2", "pass2")
	sell := decodePlaced(t, u2.expect("POST", "/order", `{
		"order_type": "sell", "base_token": "ETH", "quote_token": "USDT", "quantity": "1", "price": "200"
	}`, http.StatusOK))
	if sell.Status != "filled" || sell.Filled != "1" || sell.Remaining != "0" || len(sell.Fills) != 1 {
		t.Fatalf("sell answer %+v", sell)
	}
	var fill map[string]any
	if err := json.Unmarshal(sell.Fills[0], &fill); err != nil {
		t.Fatal(err)
	}
	if fill["maker_order"] != buy.OrderID || fill["counterparty"] != "user1" || fill["quantity"] != float64(1) ||
		fill["price"] != float64(200) || fill["quote"] != float64(200) {
		t.Fatalf("fill %v", fill)
	}
	for _, tc := range []struct{ user, token, want string }{
		{"user1", "USDT", "800"}, {"user1", "ETH", "1"}, {"user2", "ETH", "4"}, {"user2", "USDT", "200"}, {"nobody", "ETH", "0"},
	} {
		if got := u1.balance(tc.user, tc.token); got != tc.want {
			t.Errorf("balance %s %s = %s, want %s", tc.user, tc.token, got, tc.want)
		}
	}
	if got := u1.expect("GET", "/orders", "", http.StatusOK); strings.TrimSpace(got) != "[]" {
		t.Errorf("orders after the trade: %s", got)
	}
	// With no username, /balance answers for the session's user.
	if got := balanceOf(t, u2.expect("GET", "/balance?token=USDT", "", http.StatusOK)); got != "200" {
		t.Errorf("session balance = %s", got)
	}
	if err := s.book.CheckInvariants(); err != nil {
		t.Fatal(err)
	}
}

func TestPartialFillAndDecimals(t *testing.T) {
	_, ts := newTestServer(t)
	u1, u2 := newClient(t, ts), newClient(t, ts)
	u1.login("user1", "pass1")
	u2.login("user2", "pass2")
	// user2 offers 2.5 ETH at 199.5; user1 buys 1.5 at 200 and trades at
	// the resting price, 1.5 × 199.5 = 299.25 USDT.
	u2.expect("POST", "/order", `{"order_type":"sell","base_token":"ETH","quote_token":"USDT","quantity":2.5,"price":"199.5"}`, http.StatusOK)
	buy := decodePlaced(t, u1.expect("POST", "/order", `{"order_type":"buy","base_token":"ETH","quote_token":"USDT","quantity":"1.5","price":2e2}`, http.StatusOK))
	if buy.Status != "filled" || buy.Filled != "1.5" {
		t.Fatalf("buy %+v", buy)
	}
	if got := u1.balance("user1", "USDT"); got != "700.75" {
		t.Errorf("user1 USDT = %s, want 700.75 (paid 299.25)", got)
	}
	if got := u1.balance("user2", "USDT"); got != "299.25" {
		t.Errorf("user2 USDT = %s, want 299.25", got)
	}
	orders := u1.expect("GET", "/orders", "", http.StatusOK)
	if !strings.Contains(orders, `"quantity":1,`) || !strings.Contains(orders, `"filled":1.5`) || !strings.Contains(orders, `"status":"partially_filled"`) {
		t.Errorf("the remaining 1 ETH should rest, partially filled: %s", orders)
	}
}

func TestErrors(t *testing.T) {
	_, ts := newTestServer(t)
	anon, u1 := newClient(t, ts), newClient(t, ts)
	good := `{"order_type":"buy","base_token":"ETH","quote_token":"USDT","quantity":1,"price":200}`

	anon.expectError("POST", "/order", good, http.StatusUnauthorized, "not logged in")
	anon.expectError("POST", "/login", `{"username":"user1","password":"wrong"}`, http.StatusUnauthorized, "invalid credentials")
	anon.expectError("POST", "/login", `{"username":"root","password":""}`, http.StatusUnauthorized, "invalid credentials")
	anon.expectError("POST", "/login", `{"username":"user1"`, http.StatusBadRequest, "")
	anon.expectError("POST", "/order", good, http.StatusUnauthorized, "not logged in") // a failed login gives no session
	anon.expectError("GET", "/balance?token=ETH", "", http.StatusBadRequest, "username")
	anon.expectError("GET", "/balance?username=user1", "", http.StatusBadRequest, "token")
	anon.expectError("GET", "/nowhere", "", http.StatusNotFound, "no route")

	u1.login("user1", "pass1")
	// 1000 USDT buys at most 5 ETH at 200.
	u1.expectError("POST", "/order", `{"order_type":"buy","base_token":"ETH","quote_token":"USDT","quantity":5.000001,"price":200}`,
		http.StatusForbidden, "insufficient USDT balance")
	u1.expectError("POST", "/order", `{"order_type":"sell","base_token":"ETH","quote_token":"USDT","quantity":1,"price":200}`,
		http.StatusForbidden, "insufficient ETH balance")
	for _, tc := range []struct{ body, want string }{
		{`not json`, "malformed JSON"},
		{``, "empty request body"},
		{`{"order_type":"hold","base_token":"ETH","quote_token":"USDT","quantity":1,"price":200}`, "order_type"},
		{`{"base_token":"ETH","quote_token":"USDT","quantity":1,"price":200}`, "order_type"},
		{`{"order_type":"buy","quote_token":"USDT","quantity":1,"price":200}`, "base_token"},
		{`{"order_type":"buy","base_token":"ETH","quantity":1,"price":200}`, "quote_token"},
		{`{"order_type":"buy","base_token":"ETH","quote_token":"ETH","quantity":1,"price":200}`, "different"},
		{`{"order_type":"buy","base_token":"ETH/X","quote_token":"USDT","quantity":1,"price":200}`, "base_token"},
		{`{"order_type":"buy","base_token":"ETH","quote_token":"USDT","price":200}`, "quantity"},
		{`{"order_type":"buy","base_token":"ETH","quote_token":"USDT","quantity":0,"price":200}`, "quantity"},
		{`{"order_type":"buy","base_token":"ETH","quote_token":"USDT","quantity":-1,"price":200}`, "negative"},
		{`{"order_type":"buy","base_token":"ETH","quote_token":"USDT","quantity":"abc","price":200}`, "quantity"},
		{`{"order_type":"buy","base_token":"ETH","quote_token":"USDT","quantity":0.0000001,"price":200}`, "more than 6 decimals"},
		{`{"order_type":"buy","base_token":"ETH","quote_token":"USDT","quantity":1,"price":1e20}`, "price"},
		{`{"order_type":"buy","base_token":"ETH","quote_token":"USDT","quantity":1,"price":true}`, "price"},
		{`{"order_type":"buy","base_token":"ETH","quote_token":"USDT","quantity":0.000001,"price":0.1}`, "below one base unit"},
		{`{"order_type":"buy","base_token":"ETH","quote_token":"USDT","quantity":1,"price":200,"extra":1}`, "unknown field"},
		{`{"order_type":"buy","base_token":"ETH","quote_token":"USDT","quantity":1,"price":200} {}`, "trailing"},
		{`[1,2]`, "invalid request"},
	} {
		u1.expectError("POST", "/order", tc.body, http.StatusBadRequest, tc.want)
	}
	u1.expectError("POST", "/order", `{"order_type":"buy","base_token":"`+strings.Repeat("A", 70000)+`"}`, http.StatusRequestEntityTooLarge, "over")
	// Nothing above changed the book or the balance.
	if got := u1.balance("user1", "USDT"); got != "1000" {
		t.Fatalf("user1 USDT = %s after refused orders", got)
	}
	if got := u1.expect("GET", "/orders", "", http.StatusOK); strings.TrimSpace(got) != "[]" {
		t.Fatalf("orders %s after refused orders", got)
	}
}

func TestSessionsAreBounded(t *testing.T) {
	s := newSessions()
	first, err := s.create("user1")
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < sessionsMax; i++ {
		if _, err := s.create("user2"); err != nil {
			t.Fatal(err)
		}
	}
	if _, ok := s.user(first); ok {
		t.Fatal("the oldest session survived past the bound")
	}
	if len(s.byTok) != sessionsMax {
		t.Fatalf("%d sessions kept", len(s.byTok))
	}
}

// Concurrent traders through HTTP: no race (go test -race), tokens are
// conserved and the matcher's invariants hold.
func TestConcurrentOrders(t *testing.T) {
	s, ts := newTestServer(t)
	var wg sync.WaitGroup
	for _, u := range []struct{ user, pass, side string }{{"user1", "pass1", "buy"}, {"user2", "pass2", "sell"}} {
		c := newClient(t, ts)
		c.login(u.user, u.pass)
		wg.Add(1)
		go func(c *client, side string) {
			defer wg.Done()
			for i := 0; i < 20; i++ {
				body := `{"order_type":"` + side + `","base_token":"ETH","quote_token":"USDT","quantity":0.1,"price":` + []string{"199", "200", "201"}[i%3] + `}`
				if code, resp := c.do("POST", "/order", body); code != http.StatusOK && code != http.StatusForbidden {
					t.Errorf("order: %d %s", code, resp)
				}
			}
		}(c, u.side)
	}
	wg.Wait()
	if err := s.book.CheckInvariants(); err != nil {
		t.Fatal(err)
	}
}

func TestMain(m *testing.M) {
	slog.SetDefault(slog.New(slog.NewTextHandler(io.Discard, nil)))
	os.Exit(m.Run())
}
