package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/ethereum/go-ethereum/crypto"

	"github.com/seqbook/seqbook/client/bls"
	"github.com/seqbook/seqbook/client/cluster"
	"github.com/seqbook/seqbook/client/ethsig"
	"github.com/seqbook/seqbook/client/keys"
	"github.com/seqbook/seqbook/replica"
)

// `seqbook cluster` makes and checks the cluster file of a network whose
// members run on their own hosts (docs/operations.md).

func init() {
	register(command{name: "cluster", summary: "make a multi-host cluster (keys, cluster.json, genesis) or check a cluster file", run: runCluster})
}

func clusterUsage(w io.Writer) {
	fmt.Fprintln(w, `Usage: seqbook cluster <action> [flags]   (seqbook cluster <action> --help)

Actions:
  init   --nodes H:P,… --replicas H:P,… --aggregator H:P --chain-id N --out DIR
         make the keys (one folder per member), cluster.json and genesis.json
  check  [--cluster FILE]
         check a cluster file: proofs of possession, duplicate ids, keys and
         addresses, and what quorum the node count gives

See docs/operations.md, "Running across hosts".`)
}

func runCluster(args []string) int {
	if len(args) == 0 {
		clusterUsage(os.Stderr)
		return 2
	}
	switch args[0] {
	case "-h", "--help", "help":
		clusterUsage(os.Stdout)
		return 0
	case "init":
		return clusterInit(args[1:])
	case "check":
		return clusterCheck(args[1:])
	}
	fmt.Fprintf(os.Stderr, "seqbook cluster: unknown action %q\n\n", args[0])
	clusterUsage(os.Stderr)
	return 2
}

// quicPortOffset gives a node's QUIC port when --nodes names only its HTTP
// port: the default ports are HTTP 6001… and QUIC 7001… (DESIGN §7).
const quicPortOffset = 1000

// parseNodeAddrs reads --nodes: host:http or host:http/quic per node.
func parseNodeAddrs(list string) (http, quic []string, err error) {
	for _, item := range splitList(list) {
		h, q, explicit := strings.Cut(item, "/")
		host, port, err := splitHostPort(h)
		if err != nil {
			return nil, nil, fmt.Errorf("--nodes %q: %v", item, err)
		}
		qport := port + quicPortOffset
		if explicit {
			if qport, err = strconv.Atoi(q); err != nil || qport < 1 || qport > 65535 {
				return nil, nil, fmt.Errorf("--nodes %q: QUIC port %q is not a port number", item, q)
			}
		} else if qport > 65535 {
			return nil, nil, fmt.Errorf("--nodes %q: HTTP port + %d is past 65535; give the QUIC port as host:http/quic", item, quicPortOffset)
		}
		http = append(http, net.JoinHostPort(host, strconv.Itoa(port)))
		quic = append(quic, net.JoinHostPort(host, strconv.Itoa(qport)))
	}
	return http, quic, nil
}

func splitList(s string) []string {
	var out []string
	for _, item := range strings.Split(s, ",") {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	return out
}

func splitHostPort(addr string) (string, int, error) {
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, err
	}
	if host == "" {
		return "", 0, errors.New("no host: other hosts must be able to reach it, so name it")
	}
	port, err := strconv.Atoi(p)
	if err != nil || port < 1 || port > 65535 {
		return "", 0, fmt.Errorf("%q is not a port number", p)
	}
	return host, port, nil
}

func clusterInit(args []string) int {
	fs := flag.NewFlagSet("seqbook cluster init", flag.ContinueOnError)
	nodes := fs.String("nodes", "", "sequencer nodes, comma-separated host:http_port (QUIC on http_port+1000) or host:http_port/quic_port; at least 4 for one fault")
	replicas := fs.String("replicas", "", "replicas, comma-separated host:port")
	aggregator := fs.String("aggregator", "", "the aggregator's host:port")
	chainID := fs.Uint64("chain-id", 0, "EIP-712 chain id traders sign with (required; e.g. 31337 for tests)")
	app := fs.String("app", "orderbook", "sequencer app name of the orderbook")
	bridge := fs.String("bridge", "new", `bridge key: "new" makes one (DIR/bridge/bridge.key), an 0x address uses yours, "none" disables deposits`)
	genesis := fs.String("genesis", "", "genesis balances file to give every replica (default: none, an empty genesis)")
	out := fs.String("out", "", "folder to create (required; must not exist or be empty)")
	setUsage(fs, "Usage: seqbook cluster init --nodes H:P,… --replicas H:P,… --aggregator H:P --chain-id N --out DIR",
		"Makes everything a network on several hosts needs, in DIR:",
		"  cluster.json, genesis.json        the same for every member",
		"  <member>/bls.key                  one folder per node and replica, with its secret key",
		"  <member>/cluster.json, genesis.json copies, so each folder is all its host needs",
		"  bridge/bridge.key                 the bridge's secp256k1 key (with --bridge new)",
		"Copy each member's folder to its host; keep the keys secret. See docs/operations.md.",
	)
	if code, done := parseOrExit(fs, args); done {
		return code
	}
	if fs.NArg() > 0 {
		return fail("cluster init", fmt.Errorf("unexpected argument %q", fs.Arg(0)))
	}
	if *nodes == "" || *replicas == "" || *aggregator == "" || *chainID == 0 || *out == "" {
		return fail("cluster init", errors.New("--nodes, --replicas, --aggregator, --chain-id and --out are required (see --help)"))
	}
	if err := makeCluster(*out, *nodes, *replicas, *aggregator, *chainID, *app, *bridge, *genesis); err != nil {
		return fail("cluster init", err)
	}
	return 0
}

func makeCluster(out, nodes, replicas, aggregator string, chainID uint64, app, bridge, genesisPath string) error {
	nodeHTTP, nodeQUIC, err := parseNodeAddrs(nodes)
	if err != nil {
		return err
	}
	replicaHTTP := splitList(replicas)
	for _, a := range append(append([]string{}, replicaHTTP...), aggregator) {
		if _, _, err := splitHostPort(a); err != nil {
			return fmt.Errorf("address %q: %v", a, err)
		}
	}
	genesis := []byte(`{"balances": []}` + "\n")
	if genesisPath != "" {
		if genesis, err = os.ReadFile(genesisPath); err != nil {
			return err
		}
		if _, err := replica.ParseGenesis(genesis); err != nil {
			return fmt.Errorf("%s: %w", genesisPath, err)
		}
	}
	if entries, err := os.ReadDir(out); err == nil && len(entries) > 0 {
		return fmt.Errorf("%s exists and is not empty: keys are never overwritten", out)
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	f := cluster.File{ChainID: chainID, App: app}
	f.Aggregator.HTTP = aggregator
	secrets := map[string]*bls.SecretKey{}
	member := func(id, http, quic string) (cluster.Member, error) {
		sk, err := keys.GenerateBLS()
		if err != nil {
			return cluster.Member{}, err
		}
		secrets[id] = sk
		return cluster.Member{ID: id, HTTP: http, QUIC: quic, BLSPubkey: sk.PublicKey().Hex(), BLSPop: sk.ProvePossession().Hex()}, nil
	}
	for i := range nodeHTTP {
		m, err := member("node"+strconv.Itoa(i+1), nodeHTTP[i], nodeQUIC[i])
		if err != nil {
			return err
		}
		f.Nodes = append(f.Nodes, m)
	}
	for i, a := range replicaHTTP {
		m, err := member("replica"+strconv.Itoa(i+1), a, "")
		if err != nil {
			return err
		}
		f.Replicas = append(f.Replicas, m)
	}
	switch {
	case bridge == "none":
	case bridge == "new":
		k, err := crypto.GenerateKey()
		if err != nil {
			return err
		}
		if err := os.MkdirAll(filepath.Join(out, "bridge"), 0o700); err != nil {
			return err
		}
		if err := keys.WriteTrader(filepath.Join(out, "bridge", "bridge.key"), k); err != nil {
			return err
		}
		f.Bridge = ethsig.Address(k).Hex()
	default:
		f.Bridge = bridge
	}
	c, err := cluster.New(f)
	if err != nil {
		return err
	}
	if problems := clusterProblems(c); len(problems) > 0 {
		return errors.New(strings.Join(problems, "; "))
	}
	cb, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return err
	}
	cb = append(cb, '\n')
	write := func(path string, b []byte) error { return os.WriteFile(path, b, 0o644) }
	if err := write(filepath.Join(out, "cluster.json"), cb); err != nil {
		return err
	}
	if err := write(filepath.Join(out, "genesis.json"), genesis); err != nil {
		return err
	}
	for _, m := range append(append([]cluster.Member{}, f.Nodes...), f.Replicas...) {
		dir := filepath.Join(out, m.ID)
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return err
		}
		if err := keys.WriteBLS(filepath.Join(dir, "bls.key"), secrets[m.ID]); err != nil {
			return err
		}
		if err := write(filepath.Join(dir, "cluster.json"), cb); err != nil {
			return err
		}
		if strings.HasPrefix(m.ID, "replica") {
			if err := write(filepath.Join(dir, "genesis.json"), genesis); err != nil {
				return err
			}
		}
	}
	fmt.Printf("wrote %s: %d nodes (quorum %d, tolerates %d faulty), %d replicas (threshold %d), chain id %d\n",
		out, len(f.Nodes), c.NodeQuorum(), (len(f.Nodes)-1)/3, len(f.Replicas), c.ReplicaThreshold(), chainID)
	if f.Bridge != "" {
		fmt.Printf("bridge: %s\n", f.Bridge)
	}
	for _, w := range clusterWarnings(c) {
		fmt.Printf("warning: %s\n", w)
	}
	return nil
}

// clusterProblems lists what makes a parsed cluster unusable beyond what
// cluster.New checks: two members on one address would fight over it.
func clusterProblems(c *cluster.Cluster) []string {
	var problems []string
	seen := map[string]string{}
	use := func(addr, who string) {
		key := strings.ToLower(addr)
		if prev, dup := seen[key]; dup {
			problems = append(problems, fmt.Sprintf("%s and %s both use address %s", prev, who, addr))
			return
		}
		seen[key] = who
	}
	for _, n := range c.Nodes {
		use("tcp/"+n.HTTP, n.ID+" (http)")
		use("udp/"+n.QUIC, n.ID+" (quic)")
	}
	for _, r := range c.Replicas {
		use("tcp/"+r.HTTP, r.ID)
	}
	if c.Aggregator.HTTP != "" {
		use("tcp/"+c.Aggregator.HTTP, "the aggregator")
	}
	for i := range problems {
		problems[i] = strings.NewReplacer("tcp/", "", "udp/", "").Replace(problems[i])
	}
	if len(c.Replicas) == 0 {
		problems = append(problems, "no replicas")
	}
	// cluster.New refuses a key used twice among nodes or among replicas;
	// one key in both roles is refused here: each member has its own.
	for i, n := range c.Nodes {
		for j, r := range c.Replicas {
			if c.NodeKey(i).Equal(c.ReplicaKey(j)) {
				problems = append(problems, fmt.Sprintf("%s and %s use the same BLS key", n.ID, r.ID))
			}
		}
	}
	return problems
}

// clusterWarnings lists what works but is probably not meant.
func clusterWarnings(c *cluster.Cluster) []string {
	var w []string
	n := len(c.Nodes)
	if n < 4 {
		w = append(w, fmt.Sprintf("%d nodes tolerate no faulty node: one down stops finality (4 tolerate one)", n))
	} else if (n-1)%3 != 0 {
		w = append(w, fmt.Sprintf("%d nodes tolerate %d faulty, as %d would: the extra nodes only raise the quorum", n, (n-1)/3, 3*((n-1)/3)+1))
	}
	if len(c.Replicas) < 3 {
		w = append(w, fmt.Sprintf("%d replicas: a balance proof needs %d signatures, so one replica down stops proofs", len(c.Replicas), c.ReplicaThreshold()))
	}
	if c.Bridge == "" {
		w = append(w, "no bridge: deposits are refused")
	}
	return w
}

func clusterCheck(args []string) int {
	fs := flag.NewFlagSet("seqbook cluster check", flag.ContinueOnError)
	path := fs.String("cluster", "cluster.json", "cluster file to check")
	setUsage(fs, "Usage: seqbook cluster check [--cluster FILE]",
		"Checks a cluster file: valid JSON with known fields, ids unique, every BLS key valid",
		"with a valid proof of possession and used once, addresses well formed and none used",
		"twice; prints the node quorum and the faults it tolerates, and warnings. Exits 1 on",
		"any problem.",
	)
	if code, done := parseOrExit(fs, args); done {
		return code
	}
	if fs.NArg() > 0 {
		return fail("cluster check", fmt.Errorf("unexpected argument %q", fs.Arg(0)))
	}
	c, err := cluster.Load(*path)
	if err != nil {
		return fail("cluster check", err)
	}
	if problems := clusterProblems(c); len(problems) > 0 {
		return fail("cluster check", fmt.Errorf("%s: %s", *path, strings.Join(problems, "; ")))
	}
	fmt.Printf("%s: ok: app %q, chain id %d, %d nodes (quorum %d, tolerates %d faulty), %d replicas (threshold %d), proofs of possession valid\n",
		*path, c.App, c.ChainID, len(c.Nodes), c.NodeQuorum(), (len(c.Nodes)-1)/3, len(c.Replicas), c.ReplicaThreshold())
	for _, w := range clusterWarnings(c) {
		fmt.Printf("warning: %s\n", w)
	}
	return 0
}
