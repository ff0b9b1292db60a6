package localnet

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/common"

	"github.com/seqbook/seqbook/client/ethsig"
	"github.com/seqbook/seqbook/client/keys"
)

func testConfig(t *testing.T) Config {
	t.Helper()
	cfg, err := TestConfig(t.TempDir(), os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	cfg.Env = []string{fakeChildEnv + "=1"}
	cfg.Traders = 3
	cfg.ReadyTimeout = 20 * time.Second
	return cfg
}

func keysOf(m map[string]json.RawMessage) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// The cluster file has exactly DESIGN §7's shape: these fields, no others,
// replicas without a quic address, keys whose proofs of possession verify.
func TestPrepareWritesDesignClusterFile(t *testing.T) {
	cfg := testConfig(t)
	l, err := Prepare(cfg)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(cfg.Dir, "cluster.json"))
	if err != nil {
		t.Fatal(err)
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(b, &top); err != nil {
		t.Fatal(err)
	}
	if got, want := keysOf(top), []string{"aggregator", "app", "bridge", "chain_id", "nodes", "replicas"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("top-level fields %v, want %v", got, want)
	}
	if string(top["chain_id"]) != "31337" || string(top["app"]) != `"orderbook"` {
		t.Fatalf("chain_id %s app %s", top["chain_id"], top["app"])
	}
	var nodes, replicas []map[string]json.RawMessage
	json.Unmarshal(top["nodes"], &nodes)
	json.Unmarshal(top["replicas"], &replicas)
	if len(nodes) != 4 || len(replicas) != 3 {
		t.Fatalf("%d nodes, %d replicas", len(nodes), len(replicas))
	}
	for _, n := range nodes {
		if got, want := keysOf(n), []string{"bls_pop", "bls_pubkey", "http", "id", "quic"}; !reflect.DeepEqual(got, want) {
			t.Fatalf("node fields %v, want %v", got, want)
		}
	}
	for _, r := range replicas {
		if got, want := keysOf(r), []string{"bls_pop", "bls_pubkey", "http", "id"}; !reflect.DeepEqual(got, want) {
			t.Fatalf("replica fields %v, want %v", got, want)
		}
	}
	var agg map[string]json.RawMessage
	json.Unmarshal(top["aggregator"], &agg)
	if got := keysOf(agg); !reflect.DeepEqual(got, []string{"http"}) {
		t.Fatalf("aggregator fields %v", got)
	}
	c := l.Cluster
	if c.Nodes[0].ID != "node1" || c.Nodes[3].ID != "node4" || c.Replicas[2].ID != "replica3" {
		t.Fatalf("ids %+v %+v", c.Nodes, c.Replicas)
	}
	p := cfg.Ports
	if c.Nodes[1].HTTP != hostPort(p.Host, p.NodeHTTP+1) || c.Nodes[1].QUIC != hostPort(p.Host, p.NodeQUIC+1) ||
		c.Replicas[2].HTTP != hostPort(p.Host, p.Replica+2) || c.Aggregator.HTTP != hostPort(p.Host, p.Aggregator) {
		t.Fatalf("addresses do not follow the ports: %+v", c.File)
	}
	// The bridge address is the bridge key's.
	bk, err := ethsig.LoadKey(l.BridgeKey)
	if err != nil {
		t.Fatal(err)
	}
	if ethsig.Address(bk) != c.BridgeAddr {
		t.Fatalf("bridge %s, key is for %s", c.BridgeAddr, ethsig.Address(bk))
	}
	// Secrets are the owner's only, and each matches its cluster entry.
	for _, comp := range l.Components {
		if comp.KeyPath == "" {
			continue
		}
		st, err := os.Stat(comp.KeyPath)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != 0o600 {
			t.Fatalf("%s has mode %v", comp.KeyPath, st.Mode().Perm())
		}
		kb, _ := os.ReadFile(comp.KeyPath)
		sk, err := keys.ParseBLS(string(kb))
		if err != nil {
			t.Fatal(err)
		}
		if err := checkKey(c, comp); err != nil || sk == nil {
			t.Fatal(err)
		}
	}
	if st, _ := os.Stat(l.BridgeKey); st.Mode().Perm() != 0o600 {
		t.Fatalf("bridge key mode %v", st.Mode().Perm())
	}
}

func TestPrepareWritesGenesis(t *testing.T) {
	cfg := testConfig(t)
	extra := filepath.Join(t.TempDir(), "extra.json")
	os.WriteFile(extra, []byte(`{"balances":{"0x00000000000000000000000000000000000000aa":{"BTC":"2.5"},
		"0xc66f8fba940064b5ba8d437d6ff829e60134230e":{"USDT":"1"}}}`), 0o644)
	cfg.GenesisExtra = extra
	l, err := Prepare(cfg)
	if err != nil {
		t.Fatal(err)
	}
	g, err := readGenesis(l.GenesisPath)
	if err != nil {
		t.Fatal(err)
	}
	check := func(acct, tok string, want uint64) {
		t.Helper()
		if got := g[common.HexToAddress(acct).Hex()][tok]; got != want {
			t.Errorf("%s %s = %d, want %d", acct, tok, got, want)
		}
	}
	check(TutorialUser1Address, "USDT", TutorialUser1USDT+1_000_000) // extra adds to the default
	check(TutorialUser2Address, "ETH", TutorialUser2ETH)
	check("0x00000000000000000000000000000000000000aA", "BTC", 2_500_000)
	for i := 0; i < cfg.Traders; i++ {
		a := ethsig.Address(TraderKey(i)).Hex()
		check(a, "USDT", TraderUSDT)
		check(a, "ETH", TraderETH)
	}
	if len(g) != 3+cfg.Traders {
		t.Errorf("genesis has %d accounts, want %d", len(g), 3+cfg.Traders)
	}
}

func TestPrepareReusesAndChecks(t *testing.T) {
	cfg := testConfig(t)
	l1, err := Prepare(cfg)
	if err != nil {
		t.Fatal(err)
	}
	cfg2 := cfg
	cfg2.Ports = DefaultPorts() // ignored: the cluster file wins
	l2, err := Prepare(cfg2)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(l1.Cluster.File, l2.Cluster.File) {
		t.Fatal("second Prepare changed the cluster file")
	}

	bad := cfg
	bad.Replicas = 4
	if _, err := Prepare(bad); err == nil || !strings.Contains(err.Error(), "3 replicas") {
		t.Fatalf("size mismatch: %v", err)
	}

	// Swap two key files: the start is refused, naming the file.
	k1 := filepath.Join(cfg.Dir, "keys", "node1.bls")
	k2 := filepath.Join(cfg.Dir, "keys", "node2.bls")
	b1, _ := os.ReadFile(k1)
	b2, _ := os.ReadFile(k2)
	os.WriteFile(k1, b2, 0o600)
	os.WriteFile(k2, b1, 0o600)
	if _, err := Prepare(cfg); err == nil || !strings.Contains(err.Error(), "node1.bls") {
		t.Fatalf("swapped keys: %v", err)
	}
}

func TestPrepareRefusesDataWithoutCluster(t *testing.T) {
	cfg := testConfig(t)
	os.MkdirAll(filepath.Join(cfg.Dir, "data", "node1"), 0o755)
	if _, err := Prepare(cfg); err == nil || !strings.Contains(err.Error(), "no cluster.json") {
		t.Fatalf("got %v", err)
	}
}

func TestConfigValidate(t *testing.T) {
	good := DefaultConfig("d", "bin")
	if err := good.ValidateBasic(); err != nil {
		t.Fatal(err)
	}
	for name, mut := range map[string]func(*Config){
		"no dir":      func(c *Config) { c.Dir = "" },
		"no binary":   func(c *Config) { c.Binary = "" },
		"zero nodes":  func(c *Config) { c.Nodes = 0 },
		"huge":        func(c *Config) { c.Replicas = 1000 },
		"port range":  func(c *Config) { c.Ports.Replica = 65535 },
		"no host":     func(c *Config) { c.Ports.Host = "" },
		"neg traders": func(c *Config) { c.Traders = -1 },
	} {
		c := good
		mut(&c)
		if err := c.ValidateBasic(); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestTraderKeys(t *testing.T) {
	if ethsig.Address(TraderKey(0)) == ethsig.Address(TraderKey(1)) {
		t.Fatal("trader keys repeat")
	}
	if ethsig.Address(TraderKey(7)) != ethsig.Address(TraderKey(7)) {
		t.Fatal("trader keys are not deterministic")
	}
}

// exits collects unexpected exits reported by a network.
type exits struct {
	mu  sync.Mutex
	got []Exit
	ch  chan Exit
}

func newExits() *exits { return &exits{ch: make(chan Exit, 16)} }

func (e *exits) record(x Exit) {
	e.mu.Lock()
	e.got = append(e.got, x)
	e.mu.Unlock()
	e.ch <- x
}

func TestNetworkLifecycle(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	cfg := testConfig(t)
	ex := newExits()
	cfg.OnExit = ex.record
	ctx := context.Background()
	n, err := Start(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer n.Stop()
	for _, c := range n.Components {
		if !n.Running(c.ID) {
			t.Fatalf("%s not running", c.ID)
		}
	}
	var table strings.Builder
	n.WriteEndpoints(&table)
	for _, want := range []string{"node4", "replica3", "aggregator", n.Cluster.Nodes[0].QUIC, n.AggregatorURL()} {
		if !strings.Contains(table.String(), want) {
			t.Fatalf("endpoints table lacks %q:\n%s", want, table.String())
		}
	}

	// Kill is a crash we asked for: not reported.
	if err := n.Kill("node2"); err != nil {
		t.Fatal(err)
	}
	if n.Running("node2") {
		t.Fatal("node2 still running after Kill")
	}
	if err := n.StartComponent(ctx, "node2"); err != nil {
		t.Fatal(err)
	}
	if err := n.StartComponent(ctx, "node2"); err == nil {
		t.Fatal("started node2 twice")
	}
	old := n.PID("replica1")
	if err := n.Restart(ctx, "replica1"); err != nil {
		t.Fatal(err)
	}
	if pid := n.PID("replica1"); pid == 0 || pid == old {
		t.Fatalf("replica1 pid %d after restart, was %d", pid, old)
	}

	// A crash nobody asked for is reported, with the log tail.
	syscall.Kill(n.PID("replica2"), syscall.SIGKILL)
	select {
	case e := <-ex.ch:
		if e.ID != "replica2" || !strings.Contains(e.LogTail, "fake replica2 listening") || !strings.Contains(e.Err.Error(), "killed") {
			t.Fatalf("report %+v", e)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("no report of replica2's death")
	}

	// The log keeps every run: two starts of node2.
	b, _ := os.ReadFile(filepath.Join(cfg.Dir, "logs", "node2.log"))
	if c := strings.Count(string(b), "starting node2"); c != 2 {
		t.Fatalf("node2.log records %d starts, want 2", c)
	}

	n.Stop()
	for _, c := range n.Components {
		if n.Running(c.ID) {
			t.Fatalf("%s still running after Stop", c.ID)
		}
	}
	ex.mu.Lock()
	defer ex.mu.Unlock()
	if len(ex.got) != 1 {
		t.Fatalf("%d unexpected exits reported, want 1 (replica2): %v", len(ex.got), ex.got)
	}
}

func TestStartReportsCrashWithLog(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	cfg := testConfig(t)
	cfg.Env = append(cfg.Env, "FAKE_CRASH=replica2")
	_, err := Start(context.Background(), cfg)
	if err == nil {
		t.Fatal("started with a crashing replica")
	}
	for _, want := range []string{"replica2 exited before it was ready", "boom, crashing on purpose"} {
		if !strings.Contains(err.Error(), want) {
			t.Fatalf("error lacks %q: %v", want, err)
		}
	}
	// Start stopped what it had started: the nodes' ports are free again.
	n, err := Start(context.Background(), testConfigIn(t, cfg.Dir, cfg.Ports))
	if err != nil {
		t.Fatalf("restart in the same folder: %v", err)
	}
	n.Stop()
}

func testConfigIn(t *testing.T, dir string, p Ports) Config {
	cfg := testConfig(t)
	cfg.Dir, cfg.Ports = dir, p
	return cfg
}

func TestStopKillsStubbornChild(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	cfg := testConfig(t)
	cfg.Env = append(cfg.Env, "FAKE_IGNORE_TERM=node3")
	cfg.StopGrace = 300 * time.Millisecond
	n, err := Start(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	n.Stop()
	if n.Running("node3") {
		t.Fatal("node3 survived Stop")
	}
}

func TestStartTimesOutOnNeverReady(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	cfg := testConfig(t)
	cfg.Env = append(cfg.Env, "FAKE_NEVER_READY=node1")
	cfg.ReadyTimeout = 2 * time.Second
	_, err := Start(context.Background(), cfg)
	if err == nil || !strings.Contains(err.Error(), "node1 not ready") {
		t.Fatalf("got %v", err)
	}
}

// TestSecondStartIsRefusedAtOnce: while a network runs, a second one on
// the same folder, or on its ports from another folder, is refused before
// any child starts, with an error saying why.
func TestSecondStartIsRefusedAtOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	cfg := testConfig(t)
	n, err := Start(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer n.Stop()

	same := testConfigIn(t, cfg.Dir, cfg.Ports)
	var out strings.Builder
	same.Out = &out
	if _, err := Start(context.Background(), same); err == nil || !strings.Contains(err.Error(), "in use by another running localnet") {
		t.Fatalf("second start on the same folder: %v", err)
	}

	other := testConfigIn(t, t.TempDir(), cfg.Ports)
	if _, err := Start(context.Background(), other); err == nil || !strings.Contains(err.Error(), cfg.Ports.Host) || !strings.Contains(err.Error(), "is in use") {
		t.Fatalf("second start on the same ports: %v", err)
	}
	if _, err := os.Stat(filepath.Join(other.Dir, "logs", "node1.log")); err == nil {
		t.Fatal("the refused network started node1")
	}
	for _, c := range n.Components {
		if !n.Running(c.ID) {
			t.Fatalf("%s of the first network stopped", c.ID)
		}
	}
	// Once the first network stops, its folder can be started again.
	n.Stop()
	n2, err := Start(context.Background(), testConfigIn(t, cfg.Dir, cfg.Ports))
	if err != nil {
		t.Fatalf("start after the first stopped: %v", err)
	}
	n2.Stop()
}
