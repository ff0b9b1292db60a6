package main

import (
	"encoding/json"
	"io"
	"net"
	"strings"
	"testing"
)

// The tutorial buyer's key (testdata/vectors): a public test key.
const testTraderKey = "0x4b7f4de058ab4d3629f438c1728ac77bea7f4ab0099218be77242f8ba099cca7"

func TestOrderCommand(t *testing.T) {
	tn := newClientTestNet(t)
	srv := fakeReplicaForCLI(t, tn)
	t.Setenv(envKey, testTraderKey)

	code, out, errOut := runCmd(orderMain, "--replica", srv.URL, "--chain-id", "31337",
		"--market", "ETH/USDT", "--side", "buy", "--quantity", "1.5", "--price", "2000")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var got struct {
		OrderID string `json:"order_id"`
		Trader  string `json:"trader"`
		Answer  struct {
			OrderID string `json:"order_id"`
		} `json:"answer"`
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, out)
	}
	if got.OrderID == "" || got.OrderID != got.Answer.OrderID || got.Trader != buyer.Hex() {
		t.Fatalf("output %+v", got)
	}
}

func TestClientCommandsUsageErrors(t *testing.T) {
	t.Setenv(envKey, "")
	cases := []struct {
		name string
		main func(args []string, stdout, stderr io.Writer) int
		args []string
		want string
	}{
		{"order without flags", orderMain, nil, "missing --market, --side, --quantity, --price"},
		{"order too precise", orderMain, []string{"--market", "ETH/USDT", "--side", "buy", "--quantity", "1.1234567", "--price", "1"}, "--quantity: more than 6 decimals"},
		{"order negative price", orderMain, []string{"--market", "ETH/USDT", "--side", "buy", "--quantity", "1", "--price", "-1"}, "--price: negative"},
		{"order without key", orderMain, []string{"--market", "ETH/USDT", "--side", "buy", "--quantity", "1", "--price", "1"}, "--key FILE or $SEQBOOK_KEY"},
		{"order stray argument", orderMain, []string{"extra"}, "unexpected arguments"},
		{"cancel without order", cancelMain, nil, "missing --order"},
		{"cancel bad order id", cancelMain, []string{"--order", "0x12"}, "--order:"},
		{"withdraw without flags", withdrawMain, nil, "missing --token, --amount"},
		{"withdraw bad recipient", withdrawMain, []string{"--token", "ETH", "--amount", "1", "--recipient", "0x1"}, "--recipient:"},
		{"balance without token", balanceMain, nil, "missing --token"},
		{"balance without address", balanceMain, []string{"--token", "ETH"}, "missing --address"},
		{"balance index with aggregator", balanceMain, []string{"--token", "ETH", "--address", buyer.Hex(), "--aggregator", "127.0.0.1:1", "--index", "3"}, "--index is for --replica"},
	}
	for _, tc := range cases {
		code, _, errOut := runCmd(tc.main, tc.args...)
		if code != 2 || !strings.Contains(errOut, tc.want) {
			t.Errorf("%s: exit %d, stderr %q, want 2 and %q", tc.name, code, errOut, tc.want)
		}
	}
	// --help is not an error.
	// --help is not an error: it goes to stdout, with real placeholders.
	code, out, errOut := runCmd(orderMain, "--help")
	if code != 0 || errOut != "" || !strings.Contains(out, "Usage: seqbook order") || !strings.Contains(out, "-key FILE") {
		t.Fatalf("--help: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
}

func TestBalanceCommandVerifies(t *testing.T) {
	tn := newClientTestNet(t)
	srv := fakeReplicaForCLI(t, tn)
	t.Setenv(envKey, testTraderKey) // the address comes from the key
	code, out, errOut := runCmd(balanceMain, "--replica", srv.URL, "--token", "ETH", "--cluster", tn.path)
	if code != 0 || !strings.Contains(out, `"balance": "5"`) || !strings.Contains(errOut, "verified: replica1 signed balance 5 ETH of "+buyer.Hex()+" at index 3") {
		t.Fatalf("exit %d, out %q, err %q", code, out, errOut)
	}
	// Against another cluster's keys the signature does not verify.
	other := newClientTestNet(t)
	code, _, errOut = runCmd(balanceMain, "--replica", srv.URL, "--token", "ETH", "--cluster", other.path)
	if code != 1 || !strings.Contains(errOut, "signature NOT verified") {
		t.Fatalf("other cluster: exit %d, %q", code, errOut)
	}
}

// TestNetworkDownSaysWhatAndHow: a replica or aggregator that is not
// running is named with its address and how to start one, not a raw
// "dial tcp" error.
func TestNetworkDownSaysWhatAndHow(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	t.Setenv(envKey, testTraderKey)
	for _, tc := range []struct {
		main func(args []string, stdout, stderr io.Writer) int
		args []string
		want []string
	}{
		{balanceMain, []string{"--replica", addr, "--token", "ETH"}, []string{"the replica at http://" + addr + " is not reachable", "seqbook localnet"}},
		{balanceMain, []string{"--aggregator", addr, "--token", "ETH"}, []string{"the aggregator at http://" + addr + " is not reachable", "--aggregator HOST:PORT"}},
		{orderMain, []string{"--replica", addr, "--market", "ETH/USDT", "--side", "buy", "--quantity", "1", "--price", "1"}, []string{"the replica at http://" + addr + " is not reachable", "--replica HOST:PORT"}},
	} {
		code, _, errOut := runCmd(tc.main, tc.args...)
		for _, w := range tc.want {
			if code != 1 || !strings.Contains(errOut, w) {
				t.Errorf("%v: exit %d, stderr %q, want %q", tc.args, code, errOut, w)
			}
		}
		if strings.Contains(errOut, "dial tcp") {
			t.Errorf("%v: raw transport error: %q", tc.args, errOut)
		}
	}
}
