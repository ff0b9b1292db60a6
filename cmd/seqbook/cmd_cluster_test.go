package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/seqbook/seqbook/client/cluster"
	"github.com/seqbook/seqbook/client/keys"
	"github.com/seqbook/seqbook/replica"
)

func TestClusterInitMakesACheckedCluster(t *testing.T) {
	out := filepath.Join(t.TempDir(), "net")
	genesis := filepath.Join(t.TempDir(), "g.json")
	if err := os.WriteFile(genesis, []byte(`{"balances":[{"address":"0xc66F8Fba940064B5bA8d437d6fF829E60134230E","token":"USDT","amount":"1000"}]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	args := []string{"init", "--nodes", "10.0.0.1:6001,10.0.0.2:6001,10.0.0.3:6001/9000,10.0.0.4:6001",
		"--replicas", "10.0.1.1:5001,10.0.1.2:5001,10.0.1.3:5001", "--aggregator", "10.0.2.1:8001",
		"--chain-id", "777", "--genesis", genesis, "--out", out}
	if code := runCluster(args); code != 0 {
		t.Fatalf("init exited %d", code)
	}
	c, err := cluster.Load(filepath.Join(out, "cluster.json"))
	if err != nil {
		t.Fatal(err)
	}
	if c.ChainID != 777 || len(c.Nodes) != 4 || len(c.Replicas) != 3 || c.Nodes[0].QUIC != "10.0.0.1:7001" || c.Nodes[2].QUIC != "10.0.0.3:9000" || c.Bridge == "" {
		t.Fatalf("cluster %+v", c.File)
	}
	// Each member's folder holds its key, matching the cluster file.
	for i, n := range c.Nodes {
		sk, err := keys.LoadBLS(filepath.Join(out, n.ID, "bls.key"))
		if err != nil || !sk.PublicKey().Equal(c.NodeKey(i)) {
			t.Fatalf("%s key: %v", n.ID, err)
		}
	}
	for i, r := range c.Replicas {
		sk, err := keys.LoadBLS(filepath.Join(out, r.ID, "bls.key"))
		if err != nil || replica.CheckKey(c, r.ID, sk) != nil || !sk.PublicKey().Equal(c.ReplicaKey(i)) {
			t.Fatalf("%s key: %v", r.ID, err)
		}
		g, err := replica.LoadGenesis(filepath.Join(out, r.ID, "genesis.json"))
		if err != nil || len(g.Balances) != 1 {
			t.Fatalf("%s genesis: %v", r.ID, err)
		}
	}
	if code := runCluster([]string{"check", "--cluster", filepath.Join(out, "cluster.json")}); code != 0 {
		t.Fatalf("check of a fresh cluster exited %d", code)
	}
	// Never over an existing folder.
	if code := runCluster(args); code != 1 {
		t.Fatalf("init over an existing folder exited %d", code)
	}
}

func TestClusterCheckFindsProblems(t *testing.T) {
	out := filepath.Join(t.TempDir(), "net")
	if code := runCluster([]string{"init", "--nodes", "h1:6001,h2:6001,h3:6001,h4:6001", "--replicas", "r1:5001,r2:5001,r3:5001",
		"--aggregator", "a:8001", "--chain-id", "1", "--bridge", "none", "--out", out}); code != 0 {
		t.Fatalf("init exited %d", code)
	}
	b, _ := os.ReadFile(filepath.Join(out, "cluster.json"))
	var f cluster.File
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatal(err)
	}
	write := func(f cluster.File) string {
		p := filepath.Join(t.TempDir(), "cluster.json")
		b, _ := json.Marshal(f)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	cases := map[string]func(f *cluster.File){
		"duplicate address":  func(f *cluster.File) { f.Replicas[1].HTTP = f.Nodes[0].HTTP },
		"pop of another key": func(f *cluster.File) { f.Nodes[1].BLSPop = f.Nodes[0].BLSPop },
		"key used twice": func(f *cluster.File) {
			f.Replicas[0].BLSPubkey, f.Replicas[0].BLSPop = f.Nodes[0].BLSPubkey, f.Nodes[0].BLSPop
		},
		"duplicate id":         func(f *cluster.File) { f.Nodes[3].ID = "node1" },
		"no chain id":          func(f *cluster.File) { f.ChainID = 0 },
		"quic address missing": func(f *cluster.File) { f.Nodes[2].QUIC = "" },
	}
	for name, tamper := range cases {
		g := f
		g.Nodes = append([]cluster.Member{}, f.Nodes...)
		g.Replicas = append([]cluster.Member{}, f.Replicas...)
		tamper(&g)
		if code := runCluster([]string{"check", "--cluster", write(g)}); code != 1 {
			t.Errorf("%s: check exited %d, want 1", name, code)
		}
	}
	for _, bad := range [][]string{
		{"--nodes", ":6001"}, {"--nodes", "h:70000"}, {"--nodes", "h:65000"}, {"--nodes", "h:1/x"},
	} {
		args := append([]string{"init", "--replicas", "r:1", "--aggregator", "a:1", "--chain-id", "1", "--out", filepath.Join(t.TempDir(), "x")}, bad...)
		if code := runCluster(args); code != 1 {
			t.Errorf("init %v exited %d, want 1", bad, code)
		}
	}
	if code := runCluster([]string{"check", "--help"}); code != 0 || !strings.Contains(clusterHelp(t), "init") {
		t.Fatalf("help")
	}
}

func clusterHelp(t *testing.T) string {
	t.Helper()
	var b strings.Builder
	clusterUsage(&b)
	return b.String()
}

// FuzzParseNodeAddrs: any --nodes text either fails or gives one HTTP and
// one QUIC address per node, each a host:port with a port in range.
func FuzzParseNodeAddrs(f *testing.F) {
	for _, s := range []string{"10.0.0.1:6001,10.0.0.2:6001", "h:1/2", "[::1]:6001/7001", ":1", "h:65535", "a:1,,b:2/3", "x:0/1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		http, quic, err := parseNodeAddrs(s)
		if err != nil {
			return
		}
		if len(http) != len(quic) {
			t.Fatalf("%q: %d http, %d quic", s, len(http), len(quic))
		}
		for i := range http {
			for _, a := range []string{http[i], quic[i]} {
				if _, _, err := splitHostPort(a); err != nil {
					t.Fatalf("%q gave address %q: %v", s, a, err)
				}
			}
		}
	})
}
