package main

import (
	"flag"
	"io"
	"os"
	"testing"
)

// Every network command builds its flag set without a clash (two flags of
// one name panic at run time) and answers --help with exit 0.
func TestNetworkCommandsHelp(t *testing.T) {
	stderr := os.Stderr
	devnull, _ := os.Open(os.DevNull)
	os.Stderr = devnull
	defer func() { os.Stderr = stderr; devnull.Close() }()
	for name, run := range map[string]func([]string) int{
		"localnet":        runLocalnet,
		"demo":            runDemo,
		"bench e2e":       runBenchE2E,
		"bench sequencer": runBenchSequencer,
		"chaos":           runChaos,
	} {
		if code := run([]string{"--help"}); code != 0 {
			t.Errorf("%s --help: exit %d", name, code)
		}
		if code := run([]string{"--no-such-flag"}); code != 2 {
			t.Errorf("%s --no-such-flag: exit %d, want 2", name, code)
		}
	}
}

func TestNetFlagsFreePorts(t *testing.T) {
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	nf := addNetFlags(fs, "", false)
	if err := fs.Parse(nil); err != nil {
		t.Fatal(err)
	}
	c, err := nf.config(t.TempDir(), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.Ports.NodeHTTP == 0 || c.Ports.Replica == 0 || c.Ports.NodeHTTP == 6001 {
		t.Fatalf("throwaway networks should get free ports, got %+v", c.Ports)
	}
	fs = flag.NewFlagSet("y", flag.ContinueOnError)
	nf = addNetFlags(fs, "localnet", true)
	fs.Parse(nil)
	c, err = nf.config("", io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.Ports.NodeHTTP != 6001 || c.Ports.NodeQUIC != 7001 || c.Ports.Replica != 5001 || c.Ports.Aggregator != 8001 || c.Dir != "localnet" {
		t.Fatalf("localnet defaults %+v %s", c.Ports, c.Dir)
	}
}
