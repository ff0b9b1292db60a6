package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/seqbook/seqbook/client/bls"
	"github.com/seqbook/seqbook/client/cluster"
	"github.com/seqbook/seqbook/client/keys"
	"github.com/seqbook/seqbook/internal/cli"
	"github.com/seqbook/seqbook/sequencer/node"
)

func init() {
	register(command{
		name:    "sequencer",
		summary: "run one sequencer node of a cluster file (QUIC to peers, HTTP to apps)",
		run:     runSequencer,
	})
}

func runSequencer(args []string) int {
	fs := flag.NewFlagSet("sequencer", flag.ContinueOnError)
	clusterPath := fs.String("cluster", "cluster.json", "cluster file (DESIGN §7)")
	id := fs.String("id", "", "this node's id in the cluster file (e.g. node1)")
	keyPath := fs.String("key", "", "file holding this node's BLS secret key as hex")
	dataDir := fs.String("data", "", "data folder (the node's database; created if missing)")
	lf := cli.AddLogFlags(fs)
	httpListen := fs.String("http-listen", "", "address to bind the HTTP API (default: the node's http address in the cluster file)")
	quicListen := fs.String("quic-listen", "", "UDP address to bind QUIC (default: the node's quic address in the cluster file)")
	fast := fs.Bool("test-timeouts", false, "use the short protocol timeouts and small bounds of tests (never in production)")
	setUsage(fs, "Usage: seqbook sequencer --cluster FILE --id NODE --key FILE --data DIR [flags]",
		"Runs one sequencer node: talks QUIC to the other nodes of the cluster file",
		"(mutually authenticated with the nodes' BLS keys) and serves the node HTTP API",
		"(DESIGN §4) to apps. Stops cleanly on SIGINT or SIGTERM. See docs/sequencer-ops.md.",
	)
	if code, done := parseOrExit(fs, args); done {
		return code
	}
	if fs.NArg() > 0 {
		return fail("sequencer", fmt.Errorf("unexpected arguments %q", fs.Args()))
	}
	if *id == "" || *keyPath == "" || *dataDir == "" {
		return fail("sequencer", errors.New("--id, --key and --data are required (see --help)"))
	}
	logger, err := lf.Logger(os.Stderr)
	if err != nil {
		return fail("sequencer", err)
	}
	c, err := cluster.Load(*clusterPath)
	if err != nil {
		return fail("sequencer", err)
	}
	key, err := loadSequencerKey(*keyPath)
	if err != nil {
		return fail("sequencer", err)
	}
	cfg := node.DefaultConfig()
	if *fast {
		cfg = node.TestConfig()
	}
	cfg.Cluster, cfg.NodeID, cfg.Key, cfg.DataDir = c, *id, key, *dataDir
	cfg.HTTPListen, cfg.QUICListen = *httpListen, *quicListen
	cfg.Logger = logger
	n, err := node.New(cfg, node.Deps{})
	if err != nil {
		return fail("sequencer", err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := n.Run(ctx); err != nil {
		return fail("sequencer", err)
	}
	return 0
}

// loadSequencerKey reads a BLS secret key file: hex, with or without 0x,
// surrounding whitespace ignored.
func loadSequencerKey(path string) (*bls.SecretKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("BLS key: %w", err)
	}
	sk, err := keys.ParseBLS(string(b))
	if err != nil {
		return nil, fmt.Errorf("BLS key %s: %w", path, err)
	}
	return sk, nil
}
