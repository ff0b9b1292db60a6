package main

import (
	"context"
	"crypto/ecdsa"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/seqbook/seqbook/client"
	"github.com/seqbook/seqbook/client/amount"
	"github.com/seqbook/seqbook/client/ethsig"
	"github.com/seqbook/seqbook/client/keys"
	"github.com/seqbook/seqbook/internal/cli"
)

// This file holds `seqbook order` and the pieces the other client
// commands (cancel, withdraw, balance, verify) share.

func init() {
	register(command{
		name:    "order",
		summary: "sign an EIP-712 order with a trader key and place it on a replica",
		run:     func(args []string) int { return orderMain(args, os.Stdout, os.Stderr) },
	})
}

// defaultReplica is replica1 of a localnet (DESIGN §7).
const defaultReplica = "127.0.0.1:5001"

// envKey names the environment variable that may hold a trader key (hex)
// instead of --key FILE, so scripts need not write keys to disk.
const envKey = "SEQBOOK_KEY"

// clientFlags are the flags every command talking to a replica shares.
type clientFlags struct {
	replica *string
	chainID *uint64
	timeout *time.Duration
}

func addClientFlags(fs *flag.FlagSet) *clientFlags {
	return &clientFlags{
		replica: fs.String("replica", defaultReplica, "replica HTTP address (host:port or URL)"),
		chainID: fs.Uint64("chain-id", 0, "EIP-712 chain id to sign for (0: ask the replica's GET /eip712)"),
		timeout: fs.Duration("timeout", 30*time.Second, "give up after this long"),
	}
}

func (cf *clientFlags) orderbook() (*client.Orderbook, error) {
	opts := []client.Option{client.WithTimeout(*cf.timeout)}
	if *cf.chainID != 0 {
		opts = append(opts, client.WithChainID(*cf.chainID))
	}
	return client.NewOrderbook(*cf.replica, opts...)
}

// context is interruptible (Ctrl-C) and bounded by --timeout.
func (cf *clientFlags) context() (context.Context, context.CancelFunc) {
	ctx, stop := interruptContext()
	ctx, cancel := context.WithTimeout(ctx, *cf.timeout)
	return ctx, func() { cancel(); stop() }
}

// keyFlag is --key FILE, falling back to $SEQBOOK_KEY.
func addKeyFlag(fs *flag.FlagSet) *string {
	return fs.String("key", "", "trader key `FILE` (0x hex secp256k1 key, as 'seqbook keys trader' writes); default $"+envKey+" (the key's hex itself)")
}

func loadTraderKey(path string) (*ecdsa.PrivateKey, error) {
	if path != "" {
		return keys.LoadTrader(path)
	}
	env := strings.TrimSpace(os.Getenv(envKey))
	if env == "" {
		return nil, errUsage("a trader key is required: --key FILE or $" + envKey)
	}
	k, err := ethsig.ParseKey(env)
	if err != nil {
		return nil, fmt.Errorf("$%s: %w", envKey, err)
	}
	return k, nil
}

// opFlags are the flags of every command that signs an operation and
// sends it to a replica (order, cancel, withdraw): the replica connection,
// the trader key, the nonce and expiry, and --wait.
type opFlags struct {
	*clientFlags
	keyPath   *string
	nonce     *uint64
	expiresIn *time.Duration
	wait      *bool
}

// addOpFlags adds the signed-operation flags; waitHelp says what --wait
// waits for.
func addOpFlags(fs *flag.FlagSet, waitHelp string) *opFlags {
	return &opFlags{
		clientFlags: addClientFlags(fs),
		keyPath:     addKeyFlag(fs),
		nonce:       fs.Uint64("nonce", 0, "nonce (0: a fresh one from the clock in nanoseconds)"),
		expiresIn:   fs.Duration("expires-in", client.DefaultExpiry, "latest sequencing time, from now"),
		wait:        fs.Bool("wait", false, waitHelp),
	}
}

// opSession is what sending one signed operation needs.
type opSession struct {
	key    *ecdsa.PrivateKey
	ob     *client.Orderbook
	ctx    context.Context
	cancel context.CancelFunc
}

// session checks --expires-in, loads the trader key and connects to the
// replica, in that order, after the command has checked its own flags.
// The caller must call cancel.
func (of *opFlags) session() (*opSession, error) {
	if *of.expiresIn <= 0 {
		return nil, errUsage("--expires-in must be positive")
	}
	key, err := loadTraderKey(*of.keyPath)
	if err != nil {
		return nil, err
	}
	ob, err := of.orderbook()
	if err != nil {
		return nil, err
	}
	ctx, cancel := of.context()
	return &opSession{key: key, ob: ob, ctx: ctx, cancel: cancel}, nil
}

// params is the operation's nonce and its expiry, --expires-in from now.
func (of *opFlags) params() client.OpParams {
	return client.OpParams{Nonce: *of.nonce, Expiry: uint64(time.Now().Add(*of.expiresIn).Unix())}
}

// usageError is a command line mistake: it exits with 2, like flag errors.
type usageError string

func errUsage(msg string) error    { return usageError(msg) }
func (e usageError) Error() string { return string(e) }

// howToStart says how to get a component of a local network running, or
// how to point the command at one that runs.
func howToStart(component string) string {
	switch component {
	case "replica":
		return "Is the network running? Start a local one with 'seqbook localnet --dir DIR' (replicas on " +
			"127.0.0.1:5001-5003; wait for 'localnet: running'), or give --replica HOST:PORT of a running replica."
	case "aggregator":
		return "Is the network running? Start a local one with 'seqbook localnet --dir DIR' (aggregator on " +
			"127.0.0.1:8001; wait for 'localnet: running'), or give --aggregator HOST:PORT of a running aggregator."
	}
	return "Is the network running? Start a local one with 'seqbook localnet --dir DIR'."
}

// exitWith prints err in the common format and picks the exit code: 2 for
// usage mistakes, 1 for everything else.
func exitWith(stderr io.Writer, name string, err error) int {
	fmt.Fprintf(stderr, "seqbook %s: %s\n", name, strings.TrimSpace(err.Error()))
	var unreachable *client.UnreachableError
	if errors.As(err, &unreachable) {
		fmt.Fprintln(stderr, howToStart(unreachable.Component))
	}
	var ue usageError
	if errors.As(err, &ue) {
		fmt.Fprintf(stderr, "(seqbook %s --help lists the flags)\n", name)
		return 2
	}
	return 1
}

// parseCommandFlags parses args; done reports that the command must end
// with code (a flag error, or --help printed to stdout).
func parseCommandFlags(fs *flag.FlagSet, args []string, positionalMax int, stdout io.Writer) (code int, done bool) {
	if code, done := cli.ParseTo(fs, args, stdout); done {
		return code, true
	}
	if fs.NArg() > positionalMax {
		fmt.Fprintf(fs.Output(), "seqbook %s: unexpected arguments %q\n", fs.Name(), fs.Args()[positionalMax:])
		return 2, true
	}
	return 0, false
}

// requireFlags takes name, value pairs and names every empty one.
func requireFlags(nameValues ...string) error {
	var missing []string
	for i := 0; i+1 < len(nameValues); i += 2 {
		if nameValues[i+1] == "" {
			missing = append(missing, "--"+nameValues[i])
		}
	}
	if len(missing) > 0 {
		return errUsage("missing " + strings.Join(missing, ", "))
	}
	return nil
}

// notSequenced says on stderr what an answer without --wait means: the
// replica checked the operation and passed it on, nothing more yet (with no
// sequencer quorum it may stay there).
func notSequenced(stderr io.Writer, what, id string) {
	fmt.Fprintf(stderr, "accepted by the replica, not yet sequenced: the %s %s applies once the sequencer finalizes its batch (--wait waits for that)\n", what, id)
}

func emitJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func orderMain(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("order", flag.ContinueOnError)
	fs.SetOutput(stderr)
	of := addOpFlags(fs, "wait until the order is finalized and applied, and print its fills")
	market := fs.String("market", "", "market BASE/QUOTE, e.g. ETH/USDT (required)")
	side := fs.String("side", "", "buy or sell (required)")
	typ := fs.String("type", "limit", "limit (good till cancelled), market (immediate-or-cancel, --price is the worst price),\nioc (limit, immediate-or-cancel), fok (fill completely at once or not at all),\nor post_only (rejected if it would take liquidity)")
	file := fs.String("file", "", "place the orders of this JSON-lines file (- for stdin) in batches of up to 100,\ninstead of one order from the flags; see the description above")
	quantity := fs.String("quantity", "", "quantity of BASE in decimal, e.g. 1.5 (required)")
	price := fs.String("price", "", "price in QUOTE per BASE, decimal, e.g. 2000 (required)")
	setUsage(fs, "Usage: seqbook order --market ETH/USDT --side buy --quantity 1.5 --price 2000 [--key FILE] [flags]",
		"Signs an EIP-712 order (DESIGN §3.1) with the trader key and POSTs it to the replica.",
		"Amounts are decimals with at most 6 digits after the point. Prints the order id (its",
		"EIP-712 digest, checked against the replica's answer) and the answer as JSON.",
		"",
		"With --file, each line is one order, {\"market\":\"ETH/USDT\",\"side\":\"buy\",",
		"\"type\":\"fok\",\"quantity\":\"1.5\",\"price\":\"2000\"} (type defaults to limit; an",
		"optional \"nonce\" names the order), all signed with the key and sent with POST /orders",
		"in batches of up to 100. It prints one result per line (its order id and status, or",
		"why it was refused) and exits 1 if any order was refused.",
	)
	if code, done := parseCommandFlags(fs, args, 0, stdout); done {
		return code
	}
	if *file != "" {
		if *market != "" || *side != "" || *quantity != "" || *price != "" {
			return exitWith(stderr, "order", errUsage("--file places the orders of the file: leave out --market, --side, --quantity and --price"))
		}
		if *of.nonce != 0 {
			return exitWith(stderr, "order", errUsage("--nonce names one order: with --file give each line its own \"nonce\""))
		}
		return orderFileMain(of, *file, stdout, stderr)
	}
	err := func() error {
		if err := requireFlags("market", *market, "side", *side, "quantity", *quantity, "price", *price); err != nil {
			return err
		}
		q, err := amount.ParsePositive(*quantity)
		if err != nil {
			return errUsage("--quantity: " + err.Error())
		}
		p, err := amount.ParsePositive(*price)
		if err != nil {
			return errUsage("--price: " + err.Error())
		}
		ss, err := of.session()
		if err != nil {
			return err
		}
		defer ss.cancel()
		op := of.params()
		res, err := ss.ob.PlaceOrder(ss.ctx, ss.key, client.OrderParams{
			Market: *market, Side: strings.ToLower(*side), Type: strings.ToLower(*typ), Quantity: q, Price: p,
			Nonce: op.Nonce, Expiry: op.Expiry,
		}, *of.wait)
		if err != nil {
			return err
		}
		if res.Accepted != nil {
			notSequenced(stderr, "order", res.OrderID.String())
		}
		return emitJSON(stdout, struct {
			OrderID client.ID       `json:"order_id"`
			Trader  string          `json:"trader"`
			Answer  json.RawMessage `json:"answer"`
		}{res.OrderID, res.Request.Trader, res.Raw})
	}()
	if err != nil {
		return exitWith(stderr, "order", err)
	}
	return 0
}
