package localnet

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/ethereum/go-ethereum/crypto"

	"github.com/seqbook/seqbook/client/bls"
	"github.com/seqbook/seqbook/client/cluster"
	"github.com/seqbook/seqbook/client/eip712"
	"github.com/seqbook/seqbook/client/ethsig"
	"github.com/seqbook/seqbook/client/keys"
)

// App is the sequencer app name of the orderbook (DESIGN §7).
const App = "orderbook"

// Component is one process of the network.
type Component struct {
	ID      string // node1…, replica1…, "aggregator"
	Kind    string // KindSequencer, KindReplica, KindAggregator
	HTTP    string // host:port of its HTTP API
	KeyPath string // BLS secret key file ("" for the aggregator)
	DataDir string // its own state folder ("" for the aggregator)
	LogPath string
}

// URL is the component's HTTP base URL.
func (c Component) URL() string { return "http://" + c.HTTP }

// Layout is a prepared data folder: every file a network needs exists.
type Layout struct {
	Dir         string
	ClusterPath string
	GenesisPath string
	BridgeKey   string // path of the bridge's secp256k1 key
	Cluster     *cluster.Cluster
	// Components in start order: nodes, replicas, aggregator.
	Components []Component
}

// Component returns the component with this id.
func (l *Layout) Component(id string) (Component, bool) {
	for _, c := range l.Components {
		if c.ID == id {
			return c, true
		}
	}
	return Component{}, false
}

// ReplicaURLs returns the replicas' base URLs in cluster order.
func (l *Layout) ReplicaURLs() []string {
	out := make([]string, len(l.Cluster.Replicas))
	for i, r := range l.Cluster.Replicas {
		out[i] = "http://" + r.HTTP
	}
	return out
}

// NodeURLs returns the sequencer nodes' base URLs in cluster order.
func (l *Layout) NodeURLs() []string {
	out := make([]string, len(l.Cluster.Nodes))
	for i, n := range l.Cluster.Nodes {
		out[i] = "http://" + n.HTTP
	}
	return out
}

// AggregatorURL returns the aggregator's base URL.
func (l *Layout) AggregatorURL() string { return "http://" + l.Cluster.Aggregator.HTTP }

const (
	clusterFile = "cluster.json"
	genesisFile = "genesis.json"
	bridgeFile  = "bridge.key"
)

// Prepare makes sure cfg.Dir holds a complete network: on first use it
// generates the BLS keys, the bridge key, the genesis and the cluster file
// (written last, so its presence marks a finished setup); later it reuses
// them and checks they still fit together.
func Prepare(cfg Config) (*Layout, error) {
	if err := cfg.ValidateBasic(); err != nil {
		return nil, err
	}
	dir, err := filepath.Abs(cfg.Dir)
	if err != nil {
		return nil, err
	}
	for _, sub := range []string{"", "keys", "data", "logs"} {
		mode := os.FileMode(0o755)
		if sub == "keys" {
			mode = 0o700
		}
		if err := os.MkdirAll(filepath.Join(dir, sub), mode); err != nil {
			return nil, fmt.Errorf("localnet: %w", err)
		}
	}
	l := &Layout{
		Dir:         dir,
		ClusterPath: filepath.Join(dir, clusterFile),
		GenesisPath: filepath.Join(dir, genesisFile),
		BridgeKey:   filepath.Join(dir, "keys", bridgeFile),
	}
	if _, err := os.Stat(l.ClusterPath); errors.Is(err, os.ErrNotExist) {
		if err := generate(cfg, l); err != nil {
			return nil, err
		}
	} else if err != nil {
		return nil, fmt.Errorf("localnet: %w", err)
	}
	if l.Cluster, err = cluster.Load(l.ClusterPath); err != nil {
		return nil, fmt.Errorf("localnet: %w", err)
	}
	if len(l.Cluster.Nodes) != cfg.Nodes || len(l.Cluster.Replicas) != cfg.Replicas {
		return nil, fmt.Errorf("localnet: %s was made for %d nodes and %d replicas, not %d and %d; use another folder",
			dir, len(l.Cluster.Nodes), len(l.Cluster.Replicas), cfg.Nodes, cfg.Replicas)
	}
	if _, err := os.Stat(l.GenesisPath); err != nil {
		return nil, fmt.Errorf("localnet: %w", err)
	}
	l.Components = components(l)
	for _, c := range l.Components {
		if c.KeyPath != "" {
			if err := checkKey(l.Cluster, c); err != nil {
				return nil, err
			}
		}
		if c.DataDir != "" {
			if err := os.MkdirAll(c.DataDir, 0o755); err != nil {
				return nil, fmt.Errorf("localnet: %w", err)
			}
		}
	}
	return l, nil
}

func components(l *Layout) []Component {
	var out []Component
	add := func(id, kind, http string, keyed bool) {
		c := Component{ID: id, Kind: kind, HTTP: http, LogPath: filepath.Join(l.Dir, "logs", id+".log")}
		if keyed {
			c.KeyPath = filepath.Join(l.Dir, "keys", id+".bls")
			c.DataDir = filepath.Join(l.Dir, "data", id)
		}
		out = append(out, c)
	}
	for _, n := range l.Cluster.Nodes {
		add(n.ID, KindSequencer, n.HTTP, true)
	}
	for _, r := range l.Cluster.Replicas {
		add(r.ID, KindReplica, r.HTTP, true)
	}
	add(AggregatorID, KindAggregator, l.Cluster.Aggregator.HTTP, false)
	return out
}

// checkKey refuses a key file that does not belong to its cluster entry
// (a folder assembled from two networks would otherwise start and then
// fail obscurely at the first signature check).
func checkKey(c *cluster.Cluster, comp Component) error {
	b, err := os.ReadFile(comp.KeyPath)
	if err != nil {
		return fmt.Errorf("localnet: %w", err)
	}
	sk, err := keys.ParseBLS(string(b))
	if err != nil {
		return fmt.Errorf("localnet: %s: %w", comp.KeyPath, err)
	}
	var want string
	if i, ok := c.NodeIndex(comp.ID); ok && comp.Kind == KindSequencer {
		want = c.Nodes[i].BLSPubkey
	} else if i, ok := c.ReplicaIndex(comp.ID); ok {
		want = c.Replicas[i].BLSPubkey
	}
	if !strings.EqualFold(sk.PublicKey().Hex(), want) {
		return fmt.Errorf("localnet: %s does not hold the key of %s in %s", comp.KeyPath, comp.ID, clusterFile)
	}
	return nil
}

// generate writes a fresh network into l.Dir.
func generate(cfg Config, l *Layout) error {
	// Data left from another network would be replayed against new keys.
	if entries, err := os.ReadDir(filepath.Join(l.Dir, "data")); err == nil && len(entries) > 0 {
		return fmt.Errorf("localnet: %s has component data but no %s; remove it or use another folder", l.Dir, clusterFile)
	}
	p := cfg.Ports
	f := cluster.File{ChainID: eip712.DefaultChainID, App: App}
	for i := 0; i < cfg.Nodes; i++ {
		id := "node" + strconv.Itoa(i+1)
		m, err := newMember(l.Dir, id)
		if err != nil {
			return err
		}
		m.HTTP = hostPort(p.Host, p.NodeHTTP+i)
		m.QUIC = hostPort(p.Host, p.NodeQUIC+i)
		f.Nodes = append(f.Nodes, m)
	}
	for i := 0; i < cfg.Replicas; i++ {
		id := "replica" + strconv.Itoa(i+1)
		m, err := newMember(l.Dir, id)
		if err != nil {
			return err
		}
		m.HTTP = hostPort(p.Host, p.Replica+i)
		f.Replicas = append(f.Replicas, m)
	}
	f.Aggregator.HTTP = hostPort(p.Host, p.Aggregator)
	bridge, err := crypto.GenerateKey()
	if err != nil {
		return fmt.Errorf("localnet: bridge key: %w", err)
	}
	if err := writeSecret(l.BridgeKey, fmt.Sprintf("0x%x", crypto.FromECDSA(bridge))); err != nil {
		return err
	}
	f.Bridge = ethsig.Address(bridge).Hex()
	if _, err := cluster.New(f); err != nil {
		return fmt.Errorf("localnet: generated cluster does not check: %w", err)
	}

	g, err := defaultGenesis(cfg.Traders)
	if err != nil {
		return err
	}
	if cfg.GenesisExtra != "" {
		extra, err := readGenesis(cfg.GenesisExtra)
		if err != nil {
			return err
		}
		if err := g.merge(extra); err != nil {
			return fmt.Errorf("localnet: %s: %w", cfg.GenesisExtra, err)
		}
	}
	gb, err := g.encode()
	if err != nil {
		return err
	}
	if err := writeAtomic(l.GenesisPath, gb, 0o644); err != nil {
		return err
	}
	cb, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return err
	}
	return writeAtomic(l.ClusterPath, append(cb, '\n'), 0o644)
}

func newMember(dir, id string) (cluster.Member, error) {
	sk, err := bls.GenerateKey()
	if err != nil {
		return cluster.Member{}, fmt.Errorf("localnet: %s: %w", id, err)
	}
	if err := writeSecret(filepath.Join(dir, "keys", id+keys.BLSFileExt), keys.BLSFileText(sk)); err != nil {
		return cluster.Member{}, err
	}
	return cluster.Member{ID: id, BLSPubkey: sk.PublicKey().Hex(), BLSPop: sk.ProvePossession().Hex()}, nil
}

func hostPort(host string, port int) string { return host + ":" + strconv.Itoa(port) }

// writeSecret writes a key file readable by its owner only.
func writeSecret(path, hexKey string) error {
	return writeAtomic(path, []byte(hexKey+"\n"), 0o600)
}

// writeAtomic writes through a temporary file and a rename, so a crash
// never leaves a half-written file that a later start would trust.
func writeAtomic(path string, b []byte, mode os.FileMode) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, mode)
	if err != nil {
		return fmt.Errorf("localnet: %w", err)
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return fmt.Errorf("localnet: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("localnet: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("localnet: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("localnet: %w", err)
	}
	return nil
}
