package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/crypto"

	"github.com/seqbook/seqbook/bridge"
)

func TestBridgeCommandsHelpAndUsage(t *testing.T) {
	for name, run := range map[string]func(args []string, stdout, stderr *bytes.Buffer) int{
		"bridge deploy": func(a []string, o, e *bytes.Buffer) int { return bridgeMain(append([]string{"deploy"}, a...), o, e) },
		"bridge relay":  func(a []string, o, e *bytes.Buffer) int { return bridgeMain(append([]string{"relay"}, a...), o, e) },
		"withdraw --claim": func(a []string, o, e *bytes.Buffer) int {
			return withdrawMain(append([]string{"--claim", "0x01"}, a...), o, e)
		},
	} {
		var o, e bytes.Buffer
		if code := run([]string{"--help"}, &o, &e); code != 0 || !strings.HasPrefix(o.String(), "Usage: seqbook") {
			t.Errorf("%s --help: exit %d, stdout %q", name, code, o.String())
		}
		o.Reset()
		e.Reset()
		if code := run([]string{"--no-such-flag"}, &o, &e); code != 2 {
			t.Errorf("%s --no-such-flag: exit %d, want 2", name, code)
		}
		e.Reset()
		if code := run(nil, &o, &e); code != 2 || !strings.Contains(e.String(), "missing --") {
			t.Errorf("%s without its required flags: exit %d, stderr %q", name, code, e.String())
		}
	}
	var o, e bytes.Buffer
	if code := bridgeMain([]string{"nope"}, &o, &e); code != 2 || !strings.Contains(e.String(), `unknown command "nope"`) {
		t.Fatalf("bridge nope: exit %d, %q", code, e.String())
	}
}

// bridge deploy against a chain's JSON-RPC endpoint deploys the contract
// and a test token, and the contract holds the cluster's keys.
func TestBridgeDeployCommand(t *testing.T) {
	tn := newClientTestNet(t)
	key, err := crypto.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	chain, err := bridge.NewSimChain(bridge.SimConfig{ChainID: tn.c.ChainID, Funded: [][20]byte{bridge.Fund(key)}, HTTP: true})
	if err != nil {
		t.Fatal(err)
	}
	defer chain.Close()
	keyPath := filepath.Join(t.TempDir(), "deployer.key")
	if err := os.WriteFile(keyPath, []byte(fmt.Sprintf("0x%x", crypto.FromECDSA(key))), 0o600); err != nil {
		t.Fatal(err)
	}
	var o, e bytes.Buffer
	code := bridgeMain([]string{"deploy", "--rpc", chain.RPC, "--cluster", tn.path, "--key", keyPath, "--test-token", "USDT:6"}, &o, &e)
	if code != 0 {
		t.Fatalf("deploy: exit %d: %s", code, e.String())
	}
	var out struct {
		Contract string            `json:"contract"`
		Block    uint64            `json:"block"`
		ChainID  uint64            `json:"chain_id"`
		Tokens   map[string]string `json:"tokens"`
	}
	if err := json.Unmarshal(o.Bytes(), &out); err != nil {
		t.Fatalf("%v: %s", err, o.String())
	}
	if out.ChainID != tn.c.ChainID || out.Block == 0 || out.Tokens["ETH"] == "" || out.Tokens["USDT"] == "" {
		t.Fatalf("deploy printed %+v", out)
	}
	k := bridge.At(chain.Client, common.HexToAddress(out.Contract))
	if err := k.CheckCluster(t.Context(), tn.c); err != nil {
		t.Fatal(err)
	}
	if _, dec, err := k.ListedToken(t.Context(), "USDT"); err != nil || dec != 6 {
		t.Fatalf("USDT listed with %d decimals (%v)", dec, err)
	}

	// A cluster for another chain id is refused unless --any-chain.
	e.Reset()
	other := strings.Replace(string(mustRead(t, tn.path)), `"chain_id":31337`, `"chain_id":1`, 1)
	otherPath := filepath.Join(t.TempDir(), "cluster.json")
	os.WriteFile(otherPath, []byte(other), 0o644)
	if code := bridgeMain([]string{"deploy", "--rpc", chain.RPC, "--cluster", otherPath, "--key", keyPath}, &o, &e); code != 1 || !strings.Contains(e.String(), "--any-chain") {
		t.Fatalf("deploy for another chain id: exit %d: %s", code, e.String())
	}
}

func mustRead(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
