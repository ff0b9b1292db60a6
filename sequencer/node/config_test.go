package node

import (
	"strings"
	"testing"

	"github.com/seqbook/seqbook/sequencer/node/testnet"
)

func TestConfigValidateBasic(t *testing.T) {
	tn, err := testnet.New(4)
	if err != nil {
		t.Fatal(err)
	}
	good := func() Config {
		c := DefaultConfig()
		c.Cluster, c.NodeID, c.Key, c.DataDir = tn.Cluster, "node3", tn.Keys[2], t.TempDir()
		return c
	}
	for _, mk := range []func() Config{good, func() Config {
		c := TestConfig()
		c.Cluster, c.NodeID, c.Key, c.DataDir = tn.Cluster, "node1", tn.Keys[0], "d"
		return c
	}} {
		c := mk()
		if err := c.ValidateBasic(); err != nil {
			t.Fatalf("valid config refused: %v", err)
		}
		if c.Core.Nodes != 0 {
			t.Fatal("ValidateBasic changed the config")
		}
	}
	cases := []struct {
		name   string
		change func(*Config)
		want   string
	}{
		{"no cluster", func(c *Config) { c.Cluster = nil }, "no cluster"},
		{"unknown id", func(c *Config) { c.NodeID = "node9" }, "not a node"},
		{"no key", func(c *Config) { c.Key = nil }, "no BLS key"},
		{"another node's key", func(c *Config) { c.Key = tn.Keys[0] }, "not the key of node3"},
		{"no data folder", func(c *Config) { c.DataDir = "" }, "data folder"},
		{"bad core timeout", func(c *Config) { c.Core.LeaderTimeoutTicks = 0 }, "LeaderTimeoutTicks"},
		{"frames too small for the wire", func(c *Config) { c.Transport.FrameBytesMax = 1 << 20; c.Transport.QueueBytesMax = 1 << 20 }, "cannot carry"},
		{"bad transport", func(c *Config) { c.Transport.KeepAlive = c.Transport.IdleTimeout }, "KeepAlive"},
		{"body bound over 1 MiB", func(c *Config) { c.HTTP.BodyBytesMax = 2 << 20 }, "BodyBytesMax"},
		{"no submit queue", func(c *Config) { c.SubmitQueueMax = 0 }, "SubmitQueueMax"},
		{"no events per ready", func(c *Config) { c.EventsPerReadyMax = 0 }, "EventsPerReadyMax"},
	}
	for _, tc := range cases {
		c := good()
		tc.change(&c)
		if err := c.ValidateBasic(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want one containing %q", tc.name, err, tc.want)
		}
	}
	// New refuses what ValidateBasic refuses, before touching the disk.
	c := good()
	c.Key = tn.Keys[1]
	if _, err := New(c, Deps{}); err == nil {
		t.Fatal("New accepted another node's key")
	}
}
