package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/seqbook/seqbook/client"
	"github.com/seqbook/seqbook/client/cluster"
	"github.com/seqbook/seqbook/client/keys"
	"github.com/seqbook/seqbook/internal/cli"
	"github.com/seqbook/seqbook/internal/metrics"
	"github.com/seqbook/seqbook/replica"
)

func init() {
	register(command{
		name:    "replica",
		summary: "run one orderbook replica (signed orders in, finalized batches applied, signed reads out)",
		run:     runReplica,
	})
}

func runReplica(args []string) int {
	fs := flag.NewFlagSet("replica", flag.ContinueOnError)
	clusterPath := fs.String("cluster", "cluster.json", "cluster file (DESIGN §7)")
	id := fs.String("id", "", "this replica's id in the cluster file (e.g. replica1)")
	keyPath := fs.String("key", "", "file holding this replica's BLS secret key as hex (its public key must be the cluster file's)")
	dataDir := fs.String("data", "", "data folder (replica.db; created if missing)")
	genesisPath := fs.String("genesis", "", "genesis balances file: {\"balances\":[{\"address\",\"token\",\"amount\"}]} (see docs/api.md)")
	listen := fs.String("listen", "", "address to bind the HTTP API (default: the replica's http address in the cluster file)")
	batchInterval := fs.Duration("batch-interval", 10*time.Millisecond, "shortest gap between two batches under load (at most 10ms); after a quiet gap an operation leaves at once")
	batchIntervalMax := fs.Duration("batch-interval-max", 30*time.Millisecond, "longest gap between two batches: the gap follows the sequencer's answer time up to this")
	batchOpsMax := fs.Int("batch-ops-max", 512, "a batch holding this many operations leaves without waiting for its time")
	snapshotEvery := fs.Uint64("snapshot-every", 10_000, "applied batches between state snapshots at most (batches in between are logged)")
	snapshotOps := fs.Uint64("snapshot-ops", 50_000, "applied operations between state snapshots at most")
	snapshotBytes := fs.Uint64("snapshot-log-bytes", 32<<20, "bytes of logged batch bodies between state snapshots at most")
	noSync := fs.Bool("no-sync", false, "skip fsync on commits (faster; a power loss may tear the database)")
	lf := cli.AddLogFlags(fs)
	attestEvery := fs.Uint64("attest-every", 100, "sign the state digest after every N-th index and compare it with the other replicas' (the same N on every replica of a cluster)")
	onCorruption := fs.String("on-corruption", "rebuild", "when the stored state fails its integrity checks: rebuild (keep the damaged file aside and rebuild from the sequencer's verified history) or refuse (exit, printing the repair command)")
	leaderFirst := fs.Bool("leader-first", true, "send batches to and read finalized batches from the current leader first (saves a network delay each way)")
	attempt := fs.Duration("node-attempt-timeout", client.DefaultAttemptTimeout, "deadline of one request to one sequencer node before the next is tried (several round trips; see docs/operations.md)")
	setUsage(fs, "Usage: seqbook replica --cluster FILE --id REPLICA --key FILE --data DIR [--genesis FILE] [flags]",
		"Runs one orderbook replica: takes EIP-712 (and legacy) signed operations over",
		"HTTP, batches them to the sequencer, follows the finalized batches (verifying",
		"the nodes' quorum signature itself), applies them, persists its state, and",
		"serves reads with BLS-signed balances. Stops cleanly on SIGINT or SIGTERM.",
		"API: docs/api.md.",
	)
	if code, done := parseOrExit(fs, args); done {
		return code
	}
	if fs.NArg() > 0 {
		return fail("replica", fmt.Errorf("unexpected arguments %q", fs.Args()))
	}
	if *id == "" || *keyPath == "" || *dataDir == "" {
		return fail("replica", errors.New("--id, --key and --data are required (see --help)"))
	}
	if *onCorruption != "rebuild" && *onCorruption != "refuse" {
		return fail("replica", fmt.Errorf("--on-corruption %q: want rebuild or refuse", *onCorruption))
	}
	logger, err := lf.Logger(os.Stderr)
	if err != nil {
		return fail("replica", err)
	}
	c, err := cluster.Load(*clusterPath)
	if err != nil {
		return fail("replica", err)
	}
	key, err := keys.LoadBLS(*keyPath)
	if err != nil {
		return fail("replica", err)
	}
	if err := replica.CheckKey(c, *id, key); err != nil {
		return fail("replica", err)
	}
	addr := *listen
	if addr == "" {
		i, _ := c.ReplicaIndex(*id) // CheckKey proved it exists
		addr = c.Replicas[i].HTTP
	}
	cfg := replica.DefaultConfig()
	cfg.ID, cfg.Domain, cfg.Key, cfg.Logger = *id, replica.DomainOf(c), key, logger
	cfg.BatchInterval, cfg.BatchIntervalMax, cfg.BatchOpsMax = *batchInterval, *batchIntervalMax, *batchOpsMax
	cfg.SnapshotEvery, cfg.SnapshotOps, cfg.SnapshotLogBytes = *snapshotEvery, *snapshotOps, *snapshotBytes
	cfg.AttestEvery = *attestEvery
	for i, p := range c.Replicas {
		if p.ID != *id {
			cfg.Peers = append(cfg.Peers, replica.Peer{ID: p.ID, URL: "http://" + p.HTTP, Key: c.ReplicaKey(i)})
		}
	}
	cfg.Metrics = replica.PrometheusMetrics(metrics.NewRegistry())
	cfg.Cluster = c
	if *genesisPath != "" {
		if cfg.Genesis, err = replica.LoadGenesis(*genesisPath); err != nil {
			return fail("replica", err)
		}
	}
	// Replica k starts with node k (spread), and sends to and reads from
	// the leader first (docs/operations.md, "How replicas choose nodes").
	i, _ := c.ReplicaIndex(*id)
	// The stream of finalized pages sends a heartbeat every FollowWait;
	// one silent past it and the hedge delay is left for another node.
	seqOpts := []client.Option{client.WithLogger(logger), client.WithSpread(i), client.WithAttemptTimeout(*attempt),
		client.WithLongPoll(cfg.FollowWait)}
	if *leaderFirst {
		seqOpts = append(seqOpts, client.WithLeaderFirst())
	}
	seq := replica.NewSDKSequencer(c, seqOpts...)
	// open opens the data folder; a non-empty rebuild says why its state
	// is rebuilt from genesis (the replica then signs nothing until the
	// rebuild ends).
	open := func(rebuild string) (*replica.Replica, error) {
		store, err := replica.OpenBoltStore(*dataDir, replica.BoltOptions{NoSync: *noSync})
		if err != nil {
			return nil, err
		}
		rcfg := cfg
		rcfg.Rebuild = rebuild
		r, err := replica.New(rcfg, seq, store)
		if err != nil {
			store.Close()
			return nil, err
		}
		return r, nil
	}
	dbPath := replica.BoltPath(*dataDir)
	// rebuild sets the database aside and opens a fresh one: the replica
	// starts from genesis and rebuilds from the sequencer's verified
	// history.
	rebuild := func(why error) (*replica.Replica, error) {
		aside, err := replica.SetAside(dbPath, time.Now())
		if err != nil {
			return nil, fmt.Errorf("%v; setting %s aside failed: %w", why, dbPath, err)
		}
		logger.Error("rebuilding from the sequencer's verified history", "why", why.Error(), "old_file_kept_as", aside)
		return open(why.Error())
	}
	r, err := open("")
	if replica.IsCorruption(err) {
		if *onCorruption == "refuse" {
			return fail("replica", fmt.Errorf("%v\nTo rebuild this replica from the sequencer's verified history, keep the damaged file aside and start it again:\n  %s", err, replica.RebuildCommand(dbPath)))
		}
		r, err = rebuild(err)
	}
	if err != nil {
		return fail("replica", err)
	}
	// The HTTP server outlives a rebuild: it serves whichever replica runs.
	var current atomic.Pointer[replica.Replica]
	current.Store(r)
	defer func() { current.Load().Close() }()
	handler := http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) { current.Load().Handler().ServeHTTP(w, req) })

	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fail("replica", err)
	}
	// WriteTimeout exceeds the longest ?wait=finalized (cfg.WaitMax).
	srv := &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second,
		WriteTimeout: cfg.WaitMax + 30*time.Second, IdleTimeout: 2 * time.Minute, MaxHeaderBytes: 64 << 10}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	index, digest := r.StateDigest()
	logger.Info("replica started", "replica", *id, "app", c.App, "listen", ln.Addr().String(), "applied", index,
		"state_digest", fmt.Sprintf("%x", digest))

	runErr := make(chan error, 1)
	go func() {
		for rebuilt := false; ; rebuilt = true {
			err := current.Load().Run(ctx)
			if !errors.Is(err, replica.ErrDiverged) || ctx.Err() != nil {
				runErr <- err
				return
			}
			if rebuilt {
				// Rebuilt from the sequencer's history and still not the
				// quorum's state: the cause is not the stored state (another
				// genesis, another build). Rebuilding again would loop.
				runErr <- fmt.Errorf("%w again after rebuilding from the sequencer's history: check that this replica runs with the cluster's genesis file and version; not rebuilding again", err)
				return
			}
			// A quorum of replicas attested another state digest: this
			// replica's state is wrong. Rebuild it from the sequencer.
			old := current.Load()
			if cerr := old.Close(); cerr != nil {
				runErr <- cerr
				return
			}
			next, err := rebuild(err)
			if err != nil {
				runErr <- err
				return
			}
			current.Store(next)
		}
	}()
	var failure error
	select {
	case <-ctx.Done():
	case err := <-serveErr:
		failure = fmt.Errorf("http server: %w", err)
	case err := <-runErr:
		failure = err
		runErr <- nil
	}
	stop()
	shutCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = srv.Shutdown(shutCtx)
	if err := <-runErr; err != nil && failure == nil {
		failure = err
	}
	if failure != nil {
		return fail("replica", failure)
	}
	logger.Info("replica stopped", "replica", *id)
	return 0
}
