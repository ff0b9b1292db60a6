// Package localnet runs a whole seqbook network on one machine as separate
// OS processes: N sequencer nodes, the replicas and the aggregator, each a
// child `seqbook <component>` process with its own data folder and log file
// (DESIGN §7). It generates the keys, the cluster file and the genesis on
// first start and reuses them afterwards, waits until every component
// answers, reports any child that dies, and can kill and restart single
// components (the chaos test and the e2e tests use that).
//
// Layout of the data folder D:
//
//	D/cluster.json        the cluster file (DESIGN §7)
//	D/genesis.json        the replicas' genesis
//	D/keys/<id>.bls       BLS secret keys (hex, mode 0600)
//	D/keys/bridge.key     the bridge's secp256k1 key (hex, mode 0600)
//	D/data/<id>/          each component's own state
//	D/logs/<id>.log       each component's stdout and stderr
package localnet

import (
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"time"
)

// Component kinds, also the seqbook subcommand that runs each.
const (
	KindSequencer  = "sequencer"
	KindReplica    = "replica"
	KindAggregator = "aggregator"
)

// AggregatorID is the process id of the aggregator (it has no id in the
// cluster file: there is one).
const AggregatorID = "aggregator"

// Ports says where the components listen: component i of a kind listens on
// base+i. The defaults are DESIGN §7's.
type Ports struct {
	Host       string // every component binds this host; loopback by default
	NodeHTTP   int    // sequencer node i: NodeHTTP+i
	NodeQUIC   int    // sequencer node i: NodeQUIC+i (UDP)
	Replica    int    // replica i: Replica+i
	Aggregator int
}

// DefaultPorts are the ports of DESIGN §7: nodes 6001–6004 (QUIC
// 7001–7004), replicas 5001–5003, aggregator 8001.
func DefaultPorts() Ports {
	return Ports{Host: "127.0.0.1", NodeHTTP: 6001, NodeQUIC: 7001, Replica: 5001, Aggregator: 8001}
}

// Config describes a local network.
type Config struct {
	// Dir holds keys, cluster file, genesis, data and logs. Created if
	// missing; reused (keys, cluster, genesis) if it already holds a
	// network.
	Dir string
	// Nodes and Replicas count the sequencer nodes (3f+1) and replicas.
	Nodes    int
	Replicas int
	// Ports used when the cluster file is first written. Ignored when Dir
	// already has a cluster file: its addresses win.
	Ports Ports
	// Binary is the seqbook executable started for every component.
	Binary string
	// Env is added to the children's environment (tests use it).
	Env []string
	// ReplicaArgs are extra flags given to every replica (tests use them
	// to make snapshots frequent).
	ReplicaArgs []string
	// LogArgs are added to every component's command line: the
	// --log-format and --log-level that localnet itself was given, so the
	// whole network logs in one format.
	LogArgs []string
	// GenesisExtra, if set, is a genesis file whose balances are added to
	// the default genesis when it is first written.
	GenesisExtra string
	// Traders is how many deterministic bench traders (TraderKey(0..n-1))
	// the default genesis funds, so demo, bench and chaos can run against
	// any network this package made.
	Traders int
	// Kinds, if set, limits Start to these component kinds (the sequencer
	// benchmark runs the nodes only). The data folder is always complete.
	Kinds []string
	// ReadyTimeout bounds how long a component may take to answer its
	// readiness probe after it starts.
	ReadyTimeout time.Duration
	// StopGrace is how long Stop waits after SIGTERM before SIGKILL.
	StopGrace time.Duration
	// Out gets human progress lines and reports of dead children; nil
	// means io.Discard.
	Out io.Writer
	// OnExit, if set, is called (from a supervisor goroutine) whenever a
	// child exits without having been asked to. The default reporting to
	// Out happens as well.
	OnExit func(Exit)
}

// DefaultTraders is how many bench traders a default genesis funds.
const DefaultTraders = 256

// DefaultConfig returns DESIGN §7's network in dir, run by binary.
func DefaultConfig(dir, binary string) Config {
	return Config{
		Dir:          dir,
		Nodes:        4,
		Replicas:     3,
		Ports:        DefaultPorts(),
		Binary:       binary,
		Traders:      DefaultTraders,
		ReadyTimeout: 30 * time.Second,
		StopGrace:    5 * time.Second,
	}
}

// TestConfig is DefaultConfig on free loopback ports with fewer funded
// traders and shorter grace periods, for tests.
func TestConfig(dir, binary string) (Config, error) {
	c := DefaultConfig(dir, binary)
	p, err := FreePorts(c.Nodes, c.Replicas)
	if err != nil {
		return c, err
	}
	c.Ports = p
	c.Traders = 16
	c.StopGrace = 3 * time.Second
	return c, nil
}

// componentsMax bounds the network size: the port block of one network and
// the per-process bookkeeping stay small, and a typo (--nodes 4000) is
// refused instead of forking thousands of processes.
const componentsMax = 64

// tradersMax bounds the funded bench traders (genesis size, key
// derivation time at first start).
const tradersMax = 100_000

// ValidateBasic checks the configuration on its own.
func (c Config) ValidateBasic() error {
	if c.Dir == "" {
		return errors.New("localnet: Dir must be set")
	}
	if c.Binary == "" {
		return errors.New("localnet: Binary must be set")
	}
	if c.Nodes < 1 || c.Nodes > componentsMax {
		return fmt.Errorf("localnet: Nodes must be in 1..%d, got %d", componentsMax, c.Nodes)
	}
	if c.Replicas < 1 || c.Replicas > componentsMax {
		return fmt.Errorf("localnet: Replicas must be in 1..%d, got %d", componentsMax, c.Replicas)
	}
	if c.Traders < 0 || c.Traders > tradersMax {
		return fmt.Errorf("localnet: Traders must be in 0..%d, got %d", tradersMax, c.Traders)
	}
	if c.ReadyTimeout <= 0 || c.StopGrace <= 0 {
		return errors.New("localnet: ReadyTimeout and StopGrace must be positive")
	}
	for _, k := range c.Kinds {
		if k != KindSequencer && k != KindReplica && k != KindAggregator {
			return fmt.Errorf("localnet: unknown component kind %q", k)
		}
	}
	p := c.Ports
	if p.Host == "" {
		return errors.New("localnet: Ports.Host must be set")
	}
	for _, r := range [][2]int{{p.NodeHTTP, c.Nodes}, {p.NodeQUIC, c.Nodes}, {p.Replica, c.Replicas}, {p.Aggregator, 1}} {
		if r[0] < 1 || r[0]+r[1]-1 > 65535 {
			return fmt.Errorf("localnet: port range %d..%d is not valid", r[0], r[0]+r[1]-1)
		}
	}
	return nil
}

// FreePorts finds a block of loopback ports that are free right now (TCP
// for HTTP, UDP for QUIC) and lays a network of the given size out on it.
// Another program may still take one before the network starts; tests that
// hit that fail with an "address in use" report from the child, not a hang.
func FreePorts(nodes, replicas int) (Ports, error) {
	need := 2*nodes + replicas + 1
	// Try random bases in a range below the usual ephemeral range (32768+
	// on Linux), where the kernel does not hand out client ports.
	for attempt := 0; attempt < 50; attempt++ {
		base := 20000 + rand.IntN(12000-need)
		if blockFree(base, nodes, need) {
			return Ports{
				Host:       "127.0.0.1",
				NodeHTTP:   base,
				NodeQUIC:   base + nodes,
				Replica:    base + 2*nodes,
				Aggregator: base + 2*nodes + replicas,
			}, nil
		}
	}
	return Ports{}, errors.New("localnet: no free block of loopback ports found")
}

func blockFree(base, nodes, need int) bool {
	var closers []io.Closer
	defer func() {
		for _, c := range closers {
			c.Close()
		}
	}()
	for i := 0; i < need; i++ {
		addr := fmt.Sprintf("127.0.0.1:%d", base+i)
		if i >= nodes && i < 2*nodes {
			pc, err := net.ListenPacket("udp", addr)
			if err != nil {
				return false
			}
			closers = append(closers, pc)
			continue
		}
		l, err := net.Listen("tcp", addr)
		if err != nil {
			return false
		}
		closers = append(closers, l)
	}
	return true
}
