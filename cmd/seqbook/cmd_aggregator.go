package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/seqbook/seqbook/aggregator"
	"github.com/seqbook/seqbook/client/cluster"
	"github.com/seqbook/seqbook/internal/cli"
	"github.com/seqbook/seqbook/internal/metrics"
)

func init() {
	register(command{
		name:    "aggregator",
		summary: "serve quorum proofs of balances and withdrawals aggregated from the replicas' BLS signatures",
		run:     runAggregator,
	})
}

// defaultAggregatorListen is DESIGN §7's aggregator port, used when the
// cluster file names no aggregator address.
const defaultAggregatorListen = "127.0.0.1:8001"

func runAggregator(args []string) int {
	fs := flag.NewFlagSet("aggregator", flag.ContinueOnError)
	d := aggregator.DefaultConfig()
	clusterPath := fs.String("cluster", "", "cluster file (required); every replica key in it must carry a valid proof of possession")
	listen := fs.String("listen", "", "HTTP listen address (default: the cluster file's aggregator.http, else "+defaultAggregatorListen+")")
	timeout := fs.Duration("timeout", d.Timeout, "how long to wait for the replicas in each round (applied index, then signed answers)")
	straggler := fs.Duration("straggler-wait", d.StragglerWait, "how long to keep waiting for the other replicas once a quorum agreed")
	inFlight := fs.Int("max-in-flight", d.InFlightMax, "proofs built at once; more requests get 503")
	lf := cli.AddLogFlags(fs)
	setUsage(fs, "Usage: seqbook aggregator --cluster FILE [flags]",
		"Serves GET /aggregate_balance?address=&token= and GET /aggregate_withdrawal?id=:",
		"asks every replica of the cluster file for the same signed value, checks each BLS",
		"signature, and aggregates those of a quorum that agrees (DESIGN §6).",
	)
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	if *clusterPath == "" {
		fmt.Fprintln(os.Stderr, "seqbook aggregator: --cluster is required")
		fs.Usage()
		return 2
	}
	logger, err := lf.Logger(os.Stderr)
	if err != nil {
		return fail("aggregator", err)
	}
	log := logger.With("component", "aggregator")

	cfg := d
	cfg.Timeout, cfg.StragglerWait, cfg.InFlightMax = *timeout, *straggler, *inFlight
	cfg.Metrics = aggregator.PrometheusMetrics(metrics.NewRegistry())
	agg, err := aggregator.Open(*clusterPath, cfg, log)
	if err != nil {
		return fail("aggregator", err)
	}
	addr := listenAddress(*listen, agg.Cluster())
	ctx, cancel := interruptContext()
	defer cancel()
	if err := serveAggregator(ctx, agg, addr, log); err != nil {
		return fail("aggregator", err)
	}
	return 0
}

func listenAddress(flagValue string, c *cluster.Cluster) string {
	switch {
	case flagValue != "":
		return flagValue
	case c.Aggregator.HTTP != "":
		return c.Aggregator.HTTP
	}
	return defaultAggregatorListen
}

// serveAggregator serves until ctx ends, then drains requests in flight.
func serveAggregator(ctx context.Context, agg *aggregator.Aggregator, addr string, log *slog.Logger) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	srv := &http.Server{
		Handler:           agg.Handler(),
		ReadHeaderTimeout: 5 * time.Second,
		// A request only carries a query string.
		MaxHeaderBytes: 16 << 10,
		IdleTimeout:    2 * time.Minute,
	}
	c := agg.Cluster()
	log.Info("aggregator listening", "addr", ln.Addr().String(), "app", c.App, "chain_id", c.ChainID,
		"replicas", len(c.Replicas), "threshold", c.ReplicaThreshold())
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	log.Info("aggregator stopping")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return nil
}
