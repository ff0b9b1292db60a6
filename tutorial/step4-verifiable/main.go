// Command step4-verifiable is step 4 of the orderbook tutorial: the
// replicated orderbook of step 3 whose balance answers are BLS-signed, plus
// the aggregation step that turns the signed answers of several instances
// into one quorum proof.
//
// An instance (the default mode) takes the tutorial's signed legacy orders
// (DESIGN §3.2, as in step 2), checks them, and sends each to the sequencer
// cluster of --cluster as a batch of the app --app; it applies the app's
// finalized batches in order, after the client SDK has checked the nodes'
// aggregated finality signature, re-checking every order itself. Several
// instances on the same cluster and app compute the same book. The default
// app is not step 3's, so the tutorial's scripted orders can be placed
// again on the network step 3 started.
//
//	POST /order[?wait=applied]  {"sender","order_type","base_token","quote_token","quantity","price","signature"}
//	GET  /balance?address=&token=[&index=N]
//	     → {address, token, balance, balance_units, index, replica, signature}
//	GET  /orders, GET /state (applied index), GET /identity (id, app, BLS key and its PoP)
//
// The /balance signature is BLS (Ethereum/IETF POP ciphersuite) over the
// EIP-712 digest of Balance(string app,address account,string token,
// uint256 balance,uint64 index): what a node "confirmed" in the tutorial,
// made checkable by anyone with the instance's public key, and bound to the
// index so every instance can be asked about the same moment.
//
// With --aggregate it is the aggregator instead: it learns the instances'
// keys from --peers (keeping only keys with a valid proof of possession)
// and serves GET /aggregate_balance?address=&token=, a quorum proof that a
// majority of the instances signed the same balance at the same index, and
// GET /members, the cluster file to verify it with:
//
//	seqbook localnet --dir /tmp/sb &
//	step4-verifiable --cluster /tmp/sb/cluster.json --port 5201 --bls-key /tmp/s4/a.key &
//	step4-verifiable --cluster /tmp/sb/cluster.json --port 5202 --bls-key /tmp/s4/b.key &
//	step4-verifiable --cluster /tmp/sb/cluster.json --port 5203 --bls-key /tmp/s4/c.key &
//	step4-verifiable --aggregate --cluster /tmp/sb/cluster.json --port 5200 \
//	    --peers http://127.0.0.1:5201,http://127.0.0.1:5202,http://127.0.0.1:5203 &
//	curl 'http://127.0.0.1:5200/aggregate_balance?address=0xc66F8Fba940064B5bA8d437d6fF829E60134230E&token=USDT' > proof.json
//	curl http://127.0.0.1:5200/members > members.json
//	seqbook verify --cluster members.json proof.json
//
// The tutorial's two accounts are funded at start, as in steps 1–3.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/seqbook/seqbook/client/bls"
	"github.com/seqbook/seqbook/client/cluster"
	"github.com/seqbook/seqbook/client/keys"
	"github.com/seqbook/seqbook/internal/cli"
	"github.com/seqbook/seqbook/tutorial/internal/tut"
)

// defaultApp is the sequencer app the step 4 instances share. Not step
// 3's: a legacy signature is accepted once per app, so the same scripted
// orders placed again in step 4, on the network of step 3, would be
// refused (409) as replays of step 3's. Not the full system's "orderbook"
// either, whose batches carry other operations. --app tutorial-orderbook
// follows step 3's book instead.
const defaultApp = "tutorial-verifiable"

func main() { os.Exit(run(os.Args[1:])) }

func run(args []string) int {
	fs := flag.NewFlagSet("step4-verifiable", flag.ContinueOnError)
	port := fs.Int("port", 5001, "TCP port to listen on")
	host := fs.String("host", "127.0.0.1", "address to listen on")
	clusterPath := fs.String("cluster", "", "cluster `FILE` of the sequencer nodes (required), e.g. the one 'seqbook localnet' writes")
	app := fs.String("app", defaultApp, "sequencer app the instances share")
	keyPath := fs.String("bls-key", "", "this instance's BLS secret key file (0x hex); created if missing (required for an instance)")
	id := fs.String("id", "", "this instance's name in its signed answers (default step4-PORT)")
	aggregate := fs.Bool("aggregate", false, "run the aggregator over --peers instead of an instance")
	peers := fs.String("peers", "", "with --aggregate: the instances' base URLs, comma-separated")
	lf := cli.AddLogFlags(fs)
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "step4-verifiable: tutorial step 4, a replicated orderbook with BLS-signed balances (instance),")
		fmt.Fprintln(fs.Output(), "or with --aggregate the aggregator of several instances' signed balances into quorum proofs.")
		fs.PrintDefaults()
	}
	if code, done := cli.Parse(fs, args); done {
		return code
	}
	if _, err := lf.SetDefault(os.Stderr); err != nil {
		fmt.Fprintf(os.Stderr, "step4-verifiable: %v\n", err)
		return 2
	}
	if *clusterPath == "" || fs.NArg() > 0 {
		fmt.Fprintln(os.Stderr, "step4-verifiable: --cluster is required (and no other arguments)")
		return 2
	}
	c, err := cluster.Load(*clusterPath)
	if err != nil {
		slog.Error("start", "err", err)
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	log := slog.Default()

	if *aggregate {
		startCtx, cancel := context.WithTimeout(ctx, 60*time.Second)
		defer cancel()
		m, err := members(startCtx, c, splitPeers(*peers))
		if err != nil {
			slog.Error("learning the instances' keys", "err", err)
			return 1
		}
		for _, r := range m.Replicas {
			log.Info("instance key pinned (proof of possession verified)", "instance", r.ID, "http", r.HTTP, "bls_pubkey", r.BLSPubkey)
		}
		h, err := aggregatorHandler(m, log)
		if err != nil {
			slog.Error("start", "err", err)
			return 1
		}
		log.Info("aggregating", "instances", len(m.Replicas), "threshold", m.ReplicaThreshold(), "app", m.App)
		return tut.Serve("step4-verifiable aggregator", *host, *port, h)
	}

	if *keyPath == "" {
		fmt.Fprintln(os.Stderr, "step4-verifiable: --bls-key is required for an instance")
		return 2
	}
	key, err := loadOrCreateKey(*keyPath)
	if err != nil {
		slog.Error("BLS key", "err", err)
		return 1
	}
	name := *id
	if name == "" {
		name = "step4-" + strconv.Itoa(*port)
	}
	s, err := newInstance(c, *app, name, key, tut.TutorialGenesis(keys.TutorialUser1Address.Hex(), keys.TutorialUser2Address.Hex()), log.With("instance", name))
	if err != nil {
		slog.Error("start", "err", err)
		return 1
	}
	log.Info("instance", "id", name, cli.KeyApp, *app, "bls_pubkey", key.PublicKey().Hex())
	go func() {
		if err := s.follow(ctx); err != nil && ctx.Err() == nil {
			slog.Error("following the sequencer stopped", "err", err)
			stop()
		}
	}()
	return tut.Serve("step4-verifiable", *host, *port, s.routes())
}

func splitPeers(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimRight(strings.TrimSpace(p), "/"); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// loadOrCreateKey reads a BLS key file, or makes a new key and writes it
// (mode 0600) when the file does not exist yet.
func loadOrCreateKey(path string) (*bls.SecretKey, error) {
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		sk, err := keys.GenerateBLS()
		if err != nil {
			return nil, err
		}
		// The folder too: on a fresh machine /tmp/s4 of the tutorial does
		// not exist yet.
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return nil, err
		}
		if err := keys.WriteBLS(path, sk); err != nil {
			return nil, err
		}
		slog.Info("new BLS key written", "path", path)
		return sk, nil
	}
	return keys.LoadBLS(path)
}
