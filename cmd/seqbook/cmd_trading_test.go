package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/seqbook/seqbook/client/eip712"
	"github.com/seqbook/seqbook/client/keys"
	"github.com/seqbook/seqbook/client/obapi"
	"github.com/seqbook/seqbook/replica"
)

// realReplica runs a replica over an in-memory sequencer behind a real HTTP
// server; the tutorial buyer (testTraderKey) holds 1000 USDT and 5 ETH.
func realReplica(t *testing.T) *httptest.Server {
	t.Helper()
	cfg := replica.TestConfig()
	cfg.ID = "replica1"
	cfg.Domain = &replica.Domain{EIP712: eip712.NewDomain(eip712.DefaultChainID), App: "orderbook"}
	cfg.Key = keys.DeterministicBLS("cli-trading-test")
	cfg.Genesis = &replica.Genesis{Balances: []replica.GenesisBalance{
		{Address: buyer.Hex(), Token: "USDT", Amount: "1000"},
		{Address: buyer.Hex(), Token: "ETH", Amount: "5"},
	}}
	r, err := replica.New(cfg, replica.NewMemSequencer(func() uint64 { return uint64(time.Now().UnixMilli()) }), replica.NewMemStore())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	srv := httptest.NewServer(r.Handler())
	t.Cleanup(func() { cancel(); <-done; srv.Close(); r.Close() })
	return srv
}

func TestOrderFileCancelAllAndOrdersCommands(t *testing.T) {
	srv := realReplica(t)
	t.Setenv(envKey, testTraderKey)
	conn := []string{"--replica", srv.URL, "--chain-id", "31337"}
	file := filepath.Join(t.TempDir(), "orders.jsonl")
	lines := `{"market":"ETH/USDT","side":"sell","type":"post_only","quantity":"1","price":"2100","nonce":"7"}
# comments and blank lines are skipped

{"market":"ETH/USDT","side":"buy","quantity":1.5,"price":100}
{"market":"ETH/USDT","side":"buy","type":"fok","quantity":"1","price":"100"}
{"market":"ETH/USDT","side":"buy","quantity":"100","price":"2000"}
`
	if err := os.WriteFile(file, []byte(lines), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := runCmd(orderMain, append(conn, "--file", file, "--wait")...)
	if code != 1 || !strings.Contains(errOut, "1 of the file's orders were refused") {
		t.Fatalf("exit %d (want 1: one order is unfunded), stderr %q", code, errOut)
	}
	var got struct {
		Orders []fileResult `json:"orders"`
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, out)
	}
	want := []fileResult{{Line: 1, Status: "open"}, {Line: 4, Status: "open"}, {Line: 5, Status: "rejected"}, {Line: 6}}
	if len(got.Orders) != len(want) {
		t.Fatalf("%d results: %s", len(got.Orders), out)
	}
	for i, w := range want {
		g := got.Orders[i]
		if g.Line != w.Line || g.Status != w.Status || (w.Status == "") != (g.Error != "") {
			t.Errorf("result %d = %+v, want line %d status %q", i, g, w.Line, w.Status)
		}
	}
	if !strings.Contains(got.Orders[3].Error, "insufficient balance") {
		t.Errorf("unfunded order's error: %q", got.Orders[3].Error)
	}

	// seqbook orders: newest first, filtered.
	code, out, errOut = runCmd(ordersMain, "--replica", srv.URL, "--trader", buyer.Hex(), "--status", "open")
	var h obapi.OrderHistory
	if code != 0 || json.Unmarshal([]byte(out), &h) != nil || len(h.Orders) != 2 || h.Orders[0].Side != "buy" || h.Orders[1].OrderType != "post_only" {
		t.Fatalf("orders: exit %d, %s %s", code, out, errOut)
	}

	// seqbook cancel --all --wait: both open orders.
	code, out, errOut = runCmd(cancelMain, append(conn, "--all", "--wait")...)
	var ca struct {
		Answer obapi.OpResult `json:"answer"`
	}
	if code != 0 || json.Unmarshal([]byte(out), &ca) != nil || ca.Answer.Cancelled == nil || *ca.Answer.Cancelled != 2 {
		t.Fatalf("cancel --all: exit %d, %s %s", code, out, errOut)
	}
	code, out, _ = runCmd(ordersMain, "--replica", srv.URL, "--trader", buyer.Hex(), "--status", "cancelled", "--limit", "1")
	if code != 0 || json.Unmarshal([]byte(out), &h) != nil || len(h.Orders) != 1 || h.Next == "" {
		t.Fatalf("cancelled page: exit %d, %s", code, out)
	}

	// seqbook order --type fok from the flags.
	code, out, errOut = runCmd(orderMain, append(conn, "--type", "fok", "--market", "ETH/USDT", "--side", "sell", "--quantity", "1", "--price", "1", "--wait")...)
	if code != 0 || !strings.Contains(out, `"order_type": "fok"`) || !strings.Contains(out, "fill-or-kill order cannot be filled in full") {
		t.Fatalf("order --type fok: exit %d, %s %s", code, out, errOut)
	}
}

func TestTradingCommandsUsageErrors(t *testing.T) {
	t.Setenv(envKey, testTraderKey)
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.jsonl")
	_ = os.WriteFile(bad, []byte("{\"market\":\"ETH/USDT\",\"side\":\"buy\",\"quantity\":\"1\"}\n"), 0o644)
	empty := filepath.Join(dir, "empty.jsonl")
	_ = os.WriteFile(empty, []byte("\n# nothing\n"), 0o644)
	for _, tc := range []struct {
		name string
		main func(args []string, stdout, stderr io.Writer) int
		args []string
		want string
	}{
		{"file and flags", orderMain, []string{"--file", bad, "--market", "ETH/USDT"}, "leave out --market"},
		{"file line missing price", orderMain, []string{"--file", bad}, "line 1: price: missing"},
		{"empty file", orderMain, []string{"--file", empty}, "no order in the file"},
		{"file with one nonce", orderMain, []string{"--file", bad, "--nonce", "3"}, "give each line its own"},
		{"cancel all with order", cancelMain, []string{"--all", "--order", "0x12"}, "leave out --order"},
		{"market without all", cancelMain, []string{"--market", "ETH/USDT", "--order", "0x12"}, "--market goes with --all"},
		{"orders without trader", ordersMain, nil, "missing --trader"},
		{"orders bad trader", ordersMain, []string{"--trader", "bob"}, "--trader: not a 0x address"},
	} {
		code, _, errOut := runCmd(tc.main, tc.args...)
		if code != 2 || !strings.Contains(errOut, tc.want) {
			t.Errorf("%s: exit %d, stderr %q, want 2 and %q", tc.name, code, errOut, tc.want)
		}
	}
}

// FuzzParseOrderLine: any line either decodes into order parameters that
// name a market and side with positive amounts, or is refused with a
// message (seeds committed in testdata/fuzz/FuzzParseOrderLine).
func FuzzParseOrderLine(f *testing.F) {
	for _, s := range []string{
		`{"market":"ETH/USDT","side":"buy","type":"fok","quantity":"1.5","price":"2000","nonce":"7"}`,
		`{"market":"ETH/USDT","side":"sell","quantity":1e-6,"price":2000}`,
		`{"market":"ETH/USDT","side":"buy","quantity":"1","price":"1"} {}`,
		`{"quantity":"-1","price":"1.0000001","nonce":"18446744073709551616"}`,
		`{"extra":1}`, `[]`, `null`, ``,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		p, err := parseOrderLine(line)
		if err != nil {
			if err.Error() == "" {
				t.Fatal("empty error")
			}
			return
		}
		if p.Market == "" || p.Side == "" || p.Type == "" || p.Quantity == 0 || p.Price == 0 {
			t.Fatalf("accepted an incomplete order %+v from %q", p, line)
		}
	})
}
