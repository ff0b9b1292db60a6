// Package node is the sequencer node runtime: it wires the cluster file,
// the node's BLS key, the deterministic protocol core (sequencer/core), the
// QUIC transport, the bbolt store and the HTTP API together, and runs the
// one goroutine that owns the core.
//
// The run loop, every tick (10 ms by default) and on every event:
//
//	Tick / Step(from, decoded message) / Submit(app, body)
//	if no save is in flight and core.HasReady():
//	    rd := core.Ready()
//	    start store.Save(rd.Persist) on the saver goroutine  // one fsynced bbolt transaction
//	when that save returns nil:
//	    send rd.Messages             // only after Save returned nil
//	    publish rd.Finalized         // logs, metrics
//	    core.Advance()
//	    answer the PUTs whose batches that Save made durable
//
// Events keep reaching the core while a save runs; what they produce is the
// next Ready (group commit: one fsync covers everything that arrived
// during the previous one). The Ready handling itself is
// sequencer/node/runner, which the simulator runs too.
//
// If Save fails the node stops without sending: a signature whose safety
// record is not on disk must never leave the process.
package node

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/seqbook/seqbook/client/bls"
	"github.com/seqbook/seqbook/client/cluster"
	"github.com/seqbook/seqbook/sequencer/core"
	"github.com/seqbook/seqbook/sequencer/transport"
	"github.com/seqbook/seqbook/sequencer/wire"
)

// Config is everything a node runs with. Build it from DefaultConfig (or
// TestConfig), then set Cluster, NodeID, Key and DataDir.
type Config struct {
	// Cluster is the checked cluster file; NodeID names this node in it and
	// Key is its BLS secret key (it must match the file's public key).
	Cluster *cluster.Cluster
	NodeID  string
	Key     *bls.SecretKey
	// DataDir holds the node's database (store.FileName).
	DataDir string
	// HTTPListen and QUICListen override the addresses of the cluster file
	// for binding (behind NAT or in a container the file holds the public
	// address). Empty means the cluster file's.
	HTTPListen string
	QUICListen string

	// Core is the protocol configuration. ChainID, Nodes and Self are
	// filled from the cluster file by New.
	Core core.Config
	// Transport bounds the QUIC transport; Cluster, Self, Key, ListenAddr,
	// Logger and Metrics are filled by New.
	Transport transport.QUICConfig
	// HTTP bounds the HTTP API.
	HTTP HTTPConfig

	// SubmitQueueMax bounds PUTs waiting for the run loop; past it a PUT
	// gets 429 at once instead of piling up goroutines.
	SubmitQueueMax int
	// EventsPerReadyMax bounds how many events (messages, submits) the loop
	// takes before it handles a Ready: batching them amortises the fsync of
	// Save under load, the bound keeps latency and Ready size in check.
	EventsPerReadyMax int
	// ShutdownTimeout bounds the graceful stop of the HTTP server.
	ShutdownTimeout time.Duration

	// Logger receives the node's logs; nil means slog.Default().
	Logger *slog.Logger
}

// DefaultConfig is the production configuration (timeouts of DESIGN §4).
func DefaultConfig() Config {
	t := transport.DefaultQUICConfig()
	t.FrameBytesMax = wire.MaxMessageBytes
	return Config{
		Core:              core.DefaultConfig(0, 0, 0),
		Transport:         t,
		HTTP:              DefaultHTTPConfig(),
		SubmitQueueMax:    1024,
		EventsPerReadyMax: 256,
		ShutdownTimeout:   5 * time.Second,
	}
}

// TestConfig is DefaultConfig with the core's short test timeouts and a
// transport that notices dead peers quickly: for tests on one machine.
func TestConfig() Config {
	c := DefaultConfig()
	c.Core = core.TestConfig(0, 0, 0)
	c.Transport.IdleTimeout = 2 * time.Second
	c.Transport.KeepAlive = 200 * time.Millisecond
	c.Transport.BackoffMin = 10 * time.Millisecond
	c.Transport.BackoffMax = 200 * time.Millisecond
	c.ShutdownTimeout = 2 * time.Second
	return c
}

// complete fills what New derives from the cluster file.
func (c *Config) complete() (self int, err error) {
	if c.Cluster == nil {
		return -1, errors.New("node: no cluster file")
	}
	self, ok := c.Cluster.NodeIndex(c.NodeID)
	if !ok {
		return -1, fmt.Errorf("node: %q is not a node of the cluster file", c.NodeID)
	}
	c.Core.ChainID = c.Cluster.ChainID
	c.Core.Nodes = len(c.Cluster.Nodes)
	c.Core.Self = self
	c.Transport.Cluster = c.Cluster
	c.Transport.Self = self
	c.Transport.Key = c.Key
	c.Transport.ListenAddr = c.QUICListen
	return self, nil
}

// ValidateBasic checks the configuration. Call it after setting Cluster
// and NodeID (New does).
func (c *Config) ValidateBasic() error {
	cc := *c
	self, err := cc.complete()
	if err != nil {
		return err
	}
	if c.Key == nil {
		return errors.New("node: no BLS key")
	}
	if !c.Key.PublicKey().Equal(c.Cluster.NodeKey(self)) {
		return fmt.Errorf("node: the BLS key is not the key of %s in the cluster file", c.NodeID)
	}
	if c.DataDir == "" {
		return errors.New("node: no data folder")
	}
	if err := cc.Core.ValidateBasic(); err != nil {
		return fmt.Errorf("node: core %w", err)
	}
	if err := cc.Transport.ValidateBasic(); err != nil {
		return fmt.Errorf("node: %w", err)
	}
	if cc.Transport.FrameBytesMax < wire.MaxMessageBytes {
		return fmt.Errorf("node: transport frames of %d bytes cannot carry wire messages of %d", cc.Transport.FrameBytesMax, wire.MaxMessageBytes)
	}
	if err := c.HTTP.ValidateBasic(); err != nil {
		return fmt.Errorf("node: %w", err)
	}
	switch {
	case c.SubmitQueueMax < 1:
		return errors.New("node: SubmitQueueMax must be positive")
	case c.EventsPerReadyMax < 1:
		return errors.New("node: EventsPerReadyMax must be positive")
	case c.ShutdownTimeout <= 0:
		return errors.New("node: ShutdownTimeout must be positive")
	}
	return nil
}

// TickInterval is the wall-clock time of one core tick.
func (c *Config) TickInterval() time.Duration { return time.Duration(c.Core.TickMs) * time.Millisecond }
