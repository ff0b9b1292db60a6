package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/seqbook/seqbook/internal/cli"
	"github.com/seqbook/seqbook/internal/localnet"
)

func init() {
	register(command{
		name:    "localnet",
		summary: "run the whole network (4 nodes, 3 replicas, aggregator) on loopback until Ctrl-C",
		run:     runLocalnet,
	})
}

// netFlags are the flags shared by every command that starts a local
// network (localnet, demo, bench, chaos).
type netFlags struct {
	dir          *string
	nodes        *int
	replicas     *int
	genesis      *string
	nodePort     *int
	quicPort     *int
	replicaPort  *int
	aggPort      *int
	traders      *int
	binary       *string
	readyTimeout *time.Duration
	log          *cli.LogFlags
}

// addNetFlags registers the shared flags. localnet listens on DESIGN §7's
// ports by default; the commands that start a throwaway network (demo,
// bench, chaos) pass designPorts false and pick free ports unless told
// otherwise, so they run next to a running localnet.
func addNetFlags(fs *flag.FlagSet, defaultDir string, designPorts bool) *netFlags {
	d := localnet.DefaultConfig("", "")
	if !designPorts {
		d.Ports = localnet.Ports{}
	}
	portHelp := ""
	if !designPorts {
		portHelp = " (0: free ports)"
	}
	return &netFlags{
		dir:          fs.String("dir", defaultDir, "data folder: keys, cluster.json, genesis.json, data/, logs/ (reused if it exists)"),
		nodes:        fs.Int("nodes", d.Nodes, "sequencer nodes (3f+1)"),
		replicas:     fs.Int("replicas", d.Replicas, "orderbook replicas"),
		genesis:      fs.String("genesis", "", "extra genesis balances to add on first start (file in genesis.json's format)"),
		nodePort:     fs.Int("node-port", d.Ports.NodeHTTP, "HTTP port of node1 (node i uses port+i-1)"+portHelp),
		quicPort:     fs.Int("quic-port", d.Ports.NodeQUIC, "QUIC port of node1"),
		replicaPort:  fs.Int("replica-port", d.Ports.Replica, "HTTP port of replica1"),
		aggPort:      fs.Int("aggregator-port", d.Ports.Aggregator, "HTTP port of the aggregator"),
		traders:      fs.Int("traders", d.Traders, "deterministic bench traders funded in a new genesis"),
		binary:       fs.String("binary", "", "seqbook executable to start the components with (default: this one)"),
		readyTimeout: fs.Duration("ready-timeout", d.ReadyTimeout, "how long each component may take to become ready"),
		log:          cli.AddLogFlags(fs), // passed to every component: their logs under DIR/logs
	}
}

// config builds the localnet configuration; dir overrides the flag when
// the flag is empty (demo and bench default to a temporary folder).
func (f *netFlags) config(dir string, out io.Writer) (localnet.Config, error) {
	bin := *f.binary
	if bin == "" {
		exe, err := os.Executable()
		if err != nil {
			return localnet.Config{}, fmt.Errorf("finding this executable to start the components: %w", err)
		}
		bin = exe
	}
	if *f.dir != "" {
		dir = *f.dir
	}
	c := localnet.DefaultConfig(dir, bin)
	c.Nodes, c.Replicas, c.GenesisExtra, c.Traders = *f.nodes, *f.replicas, *f.genesis, *f.traders
	c.Ports = localnet.Ports{Host: "127.0.0.1", NodeHTTP: *f.nodePort, NodeQUIC: *f.quicPort, Replica: *f.replicaPort, Aggregator: *f.aggPort}
	if c.Ports.NodeHTTP == 0 && c.Ports.NodeQUIC == 0 && c.Ports.Replica == 0 && c.Ports.Aggregator == 0 {
		p, err := localnet.FreePorts(c.Nodes, c.Replicas)
		if err != nil {
			return c, err
		}
		c.Ports = p
	}
	c.ReadyTimeout = *f.readyTimeout
	if _, err := f.log.Logger(io.Discard); err != nil {
		return c, err // a bad --log-format/--log-level, said once here rather than by every child
	}
	c.LogArgs = f.log.Args()
	c.Out = out
	return c, c.ValidateBasic()
}

// interruptContext is cancelled on SIGINT or SIGTERM.
func interruptContext() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
}

func runLocalnet(args []string) int {
	fs := flag.NewFlagSet("localnet", flag.ContinueOnError)
	nf := addNetFlags(fs, "localnet", true)
	setUsage(fs, "Usage: seqbook localnet [--dir D] [flags]",
		"Starts the sequencer nodes, the replicas and the aggregator as separate processes on",
		"loopback, with keys, cluster.json and genesis.json under D (made on first start,",
		"reused later), and runs until interrupted; then it stops them all.",
	)
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	cfg, err := nf.config("", os.Stdout)
	if err != nil {
		return fail("localnet", err)
	}
	ctx, cancel := interruptContext()
	defer cancel()
	fmt.Printf("localnet: starting %d nodes, %d replicas and the aggregator in %s\n", cfg.Nodes, cfg.Replicas, cfg.Dir)
	n, err := localnet.Start(ctx, cfg)
	if err != nil {
		return fail("localnet", err)
	}
	fmt.Println()
	n.WriteEndpoints(os.Stdout)
	fmt.Printf("\ndata folder   %s\ncluster file  %s\ngenesis       %s\nlogs          %s\n",
		n.Dir, n.ClusterPath, n.GenesisPath, filepath.Join(n.Dir, "logs"))
	fmt.Printf("\ntry:  curl -s %s/state\n      curl -s '%s/aggregate_balance?address=%s&token=USDT'\n",
		n.ReplicaURLs()[0], n.AggregatorURL(), localnet.TutorialUser1Address)
	fmt.Println("\nlocalnet: running; Ctrl-C stops every component")
	<-ctx.Done()
	fmt.Println("\nlocalnet: stopping")
	n.Stop()
	fmt.Println("localnet: stopped")
	return 0
}

// throwawayNet starts the network of a command that runs one (demo, bench,
// chaos): in --dir if given (kept afterwards), else in a new temporary
// folder that done removes unless keep is set. done stops every component.
// tweak, if not nil, adjusts the configuration before the start.
func throwawayNet(ctx context.Context, nf *netFlags, prefix string, keep bool, out io.Writer, tweak func(*localnet.Config)) (n *localnet.Network, done func(), err error) {
	return throwawayNetKeep(ctx, nf, prefix, &keep, out, tweak)
}

// throwawayNetKeep is throwawayNet with keep read when done runs, so a
// command that fails can still decide to keep the folder and its logs.
func throwawayNetKeep(ctx context.Context, nf *netFlags, prefix string, keep *bool, out io.Writer, tweak func(*localnet.Config)) (n *localnet.Network, done func(), err error) {
	dir := *nf.dir
	temp := dir == ""
	if temp {
		if dir, err = os.MkdirTemp("", prefix); err != nil {
			return nil, nil, err
		}
	}
	cleanup := func() {
		if temp && !*keep {
			os.RemoveAll(dir)
		} else {
			fmt.Fprintf(out, "data, keys and logs kept in %s\n", dir)
		}
	}
	cfg, err := nf.config(dir, out)
	if err != nil {
		cleanup()
		return nil, nil, err
	}
	if tweak != nil {
		tweak(&cfg)
	}
	n, err = localnet.Start(ctx, cfg)
	if err != nil {
		// Keep the logs of a network that failed to start: they say why.
		*keep = true
		cleanup()
		return nil, nil, err
	}
	return n, func() { n.Stop(); cleanup() }, nil
}
