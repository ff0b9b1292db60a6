package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/ethclient"

	"github.com/seqbook/seqbook/bridge"
	"github.com/seqbook/seqbook/client"
	"github.com/seqbook/seqbook/client/cluster"
	"github.com/seqbook/seqbook/client/ethsig"
)

func init() {
	register(command{
		name:    "bridge",
		summary: "the EVM bridge: deploy its contract, relay deposits (see docs/bridge.md)",
		run:     func(args []string) int { return bridgeMain(args, os.Stdout, os.Stderr) },
	})
}

func bridgeUsage(w io.Writer) {
	fmt.Fprintln(w, "Usage: seqbook bridge <deploy|relay> [flags]   (seqbook bridge <command> --help)")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "  deploy   deploy SeqbookBridge for a cluster file on an Ethereum node")
	fmt.Fprintln(w, "  relay    credit the contract's Deposit events on the orderbook, each exactly once")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Withdrawals are claimed with 'seqbook withdraw --claim ID'.")
}

func bridgeMain(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		bridgeUsage(stderr)
		return 2
	}
	switch args[0] {
	case "-h", "--help", "help":
		bridgeUsage(stdout)
		return 0
	case "deploy":
		return bridgeDeployMain(args[1:], stdout, stderr)
	case "relay":
		return bridgeRelayMain(args[1:], stdout, stderr)
	}
	fmt.Fprintf(stderr, "seqbook bridge: unknown command %q\n\n", args[0])
	bridgeUsage(stderr)
	return 2
}

// helpOutput sends --help text to stdout and flag errors to stderr.
func helpOutput(fs *flag.FlagSet, args []string, stdout, stderr io.Writer) {
	fs.SetOutput(stderr)
	for _, a := range args {
		if a == "-h" || a == "--help" || a == "-help" {
			fs.SetOutput(stdout)
		}
		if a == "--" {
			break
		}
	}
}

// chainFlags are the flags of every command that talks to the chain.
type chainFlags struct {
	rpc         *string
	clusterPath *string
	timeout     *time.Duration
}

func addChainFlags(fs *flag.FlagSet, timeout time.Duration) *chainFlags {
	return &chainFlags{
		rpc:         fs.String("rpc", "", "Ethereum JSON-RPC URL of the chain holding the bridge (required)"),
		clusterPath: fs.String("cluster", "", "cluster file (required)"),
		timeout:     fs.Duration("timeout", timeout, "give up after this long"),
	}
}

func (cf *chainFlags) open(ctx context.Context) (*ethclient.Client, *cluster.Cluster, error) {
	if err := requireFlags("rpc", *cf.rpc, "cluster", *cf.clusterPath); err != nil {
		return nil, nil, err
	}
	c, err := cluster.Load(*cf.clusterPath)
	if err != nil {
		return nil, nil, err
	}
	ec, err := ethclient.DialContext(ctx, *cf.rpc)
	if err != nil {
		return nil, nil, fmt.Errorf("--rpc %s: %w", *cf.rpc, err)
	}
	return ec, c, nil
}

// listFlag is a repeatable flag.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(s string) error { *l = append(*l, s); return nil }

func bridgeDeployMain(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("bridge deploy", flag.ContinueOnError)
	helpOutput(fs, args, stdout, stderr)
	cf := addChainFlags(fs, 2*time.Minute)
	keyPath := addKeyFlag(fs)
	var tokens, testTokens listFlag
	fs.Var(&tokens, "token", "list an ERC-20: SYMBOL=0xADDRESS (repeatable; ETH is always listed)")
	fs.Var(&testTokens, "test-token", "deploy a test ERC-20 minted by --key and list it: SYMBOL:DECIMALS (repeatable)")
	anyChain := fs.Bool("any-chain", false, "deploy even if the node's chain id is not the cluster's chain_id")
	setUsage(fs, "Usage: seqbook bridge deploy --rpc URL --cluster FILE --key FILE [--token USDT=0x…] [flags]",
		"Deploys SeqbookBridge for the cluster: its app, chain id, replica threshold and the",
		"replicas' BLS keys, uncompressed off-chain (each checked to compress back to the cluster",
		"file's key, whose proof of possession is checked when the file is read), then reads the",
		"keys back from the chain. ETH is always listed; --token lists ERC-20s by their orderbook",
		"symbol. --key pays for the deployment. Prints the contract address and deployment block",
		"as JSON (the relayer starts scanning at that block).",
	)
	if code, done := parseCommandFlags(fs, args, 0, stdout); done {
		return code
	}
	err := func() error {
		ctx, cancel := context.WithTimeout(context.Background(), *cf.timeout)
		defer cancel()
		ec, c, err := cf.open(ctx)
		if err != nil {
			return err
		}
		defer ec.Close()
		key, err := loadTraderKey(*keyPath)
		if err != nil {
			return err
		}
		s, err := bridge.NewSender(ctx, ec, key)
		if err != nil {
			return err
		}
		if s.ChainID.Uint64() != c.ChainID && !*anyChain {
			return fmt.Errorf("the node's chain id is %s, the cluster's chain_id is %d: proofs are signed for the cluster's (pass --any-chain to deploy anyway)", s.ChainID, c.ChainID)
		}
		listed := []bridge.Listing{{Symbol: "ETH"}}
		for _, t := range tokens {
			sym, addr, ok := strings.Cut(t, "=")
			if !ok || sym == "" || !common.IsHexAddress(addr) {
				return errUsage(fmt.Sprintf("--token %q: want SYMBOL=0xADDRESS", t))
			}
			listed = append(listed, bridge.Listing{Symbol: sym, Token: common.HexToAddress(addr)})
		}
		for _, t := range testTokens {
			sym, dec, ok := strings.Cut(t, ":")
			d, err := strconv.ParseUint(dec, 10, 8)
			if !ok || sym == "" || err != nil {
				return errUsage(fmt.Sprintf("--test-token %q: want SYMBOL:DECIMALS", t))
			}
			tok, err := bridge.DeployToken(ctx, s, "seqbook test "+sym, sym, uint8(d))
			if err != nil {
				return err
			}
			listed = append(listed, bridge.Listing{Symbol: sym, Token: tok.Address})
		}
		k, r, err := bridge.Deploy(ctx, s, c, listed)
		if err != nil {
			return err
		}
		out := struct {
			Contract string            `json:"contract"`
			Block    uint64            `json:"block"`
			Tx       string            `json:"tx"`
			GasUsed  uint64            `json:"gas_used"`
			ChainID  uint64            `json:"chain_id"`
			Tokens   map[string]string `json:"tokens"`
		}{k.Address.Hex(), r.BlockNumber.Uint64(), r.TxHash.Hex(), r.GasUsed, s.ChainID.Uint64(), map[string]string{}}
		for _, l := range listed {
			out.Tokens[l.Symbol] = l.Token.Hex()
		}
		return emitJSON(stdout, out)
	}()
	if err != nil {
		return exitWith(stderr, "bridge deploy", err)
	}
	return 0
}

func bridgeRelayMain(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("bridge relay", flag.ContinueOnError)
	helpOutput(fs, args, stdout, stderr)
	cf := addChainFlags(fs, 0)
	def := bridge.DefaultRelayConfig()
	contract := fs.String("contract", "", "SeqbookBridge address (required)")
	bridgeKey := fs.String("bridge-key", "", "the cluster's bridge key file (localnet: keys/bridge.key) (required)")
	replica := fs.String("replica", defaultReplica, "replica to send deposits to (host:port or URL)")
	state := fs.String("state", "", "state file: where to resume after a restart (required)")
	confirmations := fs.Uint64("confirmations", def.Confirmations, "blocks on top of a deposit's block before it is relayed")
	fromBlock := fs.Uint64("from-block", 0, "first block to scan when the state file does not exist yet: the deployment block (never blocks relayed more than an hour ago: see docs/bridge.md)")
	poll := fs.Duration("poll", def.Poll, "pause between two scans of the chain")
	once := fs.Bool("once", false, "scan and settle once, then exit (non-zero if a deposit is still pending)")
	setUsage(fs, "Usage: seqbook bridge relay --rpc URL --cluster FILE --contract 0x… --bridge-key FILE --state FILE [flags]",
		"Watches the bridge's Deposit events and, once a deposit's block has --confirmations",
		"blocks on top, sends a deposit operation signed by the cluster's bridge key to the",
		"replica, with the contract's deposit id as its nonce. It keeps each signed operation in",
		"the state file before sending it and forgets it only once GET /ops/{id} reports it",
		"applied, so a restart resends the same operation and every deposit is credited exactly",
		"once. Runs until interrupted (--timeout 0), logging each deposit.",
	)
	if code, done := parseCommandFlags(fs, args, 0, stdout); done {
		return code
	}
	err := func() error {
		if err := requireFlags("contract", *contract, "bridge-key", *bridgeKey, "state", *state); err != nil {
			return err
		}
		if !common.IsHexAddress(*contract) {
			return errUsage("--contract must be an address")
		}
		ctx, stop := interruptContext()
		defer stop()
		if *cf.timeout > 0 {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, *cf.timeout)
			defer cancel()
		}
		ec, c, err := cf.open(ctx)
		if err != nil {
			return err
		}
		defer ec.Close()
		key, err := ethsig.LoadKey(*bridgeKey)
		if err != nil {
			return fmt.Errorf("--bridge-key: %w", err)
		}
		ob, err := client.NewOrderbook(*replica, client.WithTimeout(10*time.Second))
		if err != nil {
			return err
		}
		cfg := def
		cfg.Chain, cfg.Contract, cfg.Cluster, cfg.BridgeKey, cfg.Replica = ec, common.HexToAddress(*contract), c, key, ob
		cfg.StatePath, cfg.Confirmations, cfg.StartBlock, cfg.Poll = *state, *confirmations, *fromBlock, *poll
		cfg.Logger = slog.New(slog.NewTextHandler(stderr, nil))
		if err := bridge.At(ec, cfg.Contract).CheckCluster(ctx, c); err != nil {
			return err
		}
		r, err := bridge.NewRelayer(cfg)
		if err != nil {
			return err
		}
		if *once {
			if err := r.Step(ctx); err != nil {
				return err
			}
			st := r.State()
			if err := emitJSON(stdout, st); err != nil {
				return err
			}
			if len(st.Pending) > 0 {
				return fmt.Errorf("%d deposits are still pending", len(st.Pending))
			}
			return nil
		}
		return r.Run(ctx)
	}()
	if err != nil {
		return exitWith(stderr, "bridge relay", err)
	}
	return 0
}

// claimMain is `seqbook withdraw --claim ID`: fetch the quorum proof and
// send it to the bridge.
func claimMain(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("withdraw --claim", flag.ContinueOnError)
	helpOutput(fs, args, stdout, stderr)
	id := fs.String("claim", "", "withdrawal id to claim (0x + 64 hex digits, as `seqbook withdraw` prints)")
	cf := addChainFlags(fs, 2*time.Minute)
	contract := fs.String("contract", "", "SeqbookBridge address (required)")
	aggregator := fs.String("aggregator", "", "aggregator HTTP address (default: the cluster file's)")
	keyPath := addKeyFlag(fs)
	setUsage(fs, "Usage: seqbook withdraw --claim 0xID --rpc URL --cluster FILE --contract 0x… [--key FILE] [flags]",
		"Fetches the quorum proof of the withdrawal from the aggregator (waiting, up to --timeout,",
		"until a quorum of replicas has applied it), verifies it against the cluster file, and",
		"sends it to the bridge, which verifies it again on-chain and pays the recipient the",
		"trader signed. --key pays the gas (anyone may claim). Prints the transaction as JSON.",
	)
	for _, a := range args {
		if a == "-h" || a == "--help" || a == "-help" {
			fs.Usage()
			return 0
		}
	}
	if code, done := parseCommandFlags(fs, args, 0, stdout); done {
		return code
	}
	err := func() error {
		if err := requireFlags("claim", *id, "contract", *contract); err != nil {
			return err
		}
		wid, err := client.ParseHash(*id)
		if err != nil {
			return errUsage("--claim: " + err.Error())
		}
		if !common.IsHexAddress(*contract) {
			return errUsage("--contract must be an address")
		}
		ctx, stop := interruptContext()
		defer stop()
		ctx, cancel := context.WithTimeout(ctx, *cf.timeout)
		defer cancel()
		ec, c, err := cf.open(ctx)
		if err != nil {
			return err
		}
		defer ec.Close()
		key, err := loadTraderKey(*keyPath)
		if err != nil {
			return err
		}
		aggURL := *aggregator
		if aggURL == "" {
			aggURL = c.Aggregator.HTTP
		}
		agg, err := client.NewAggregator(aggURL, client.WithTimeout(10*time.Second))
		if err != nil {
			return err
		}
		s, err := bridge.NewSender(ctx, ec, key)
		if err != nil {
			return err
		}
		res, err := bridge.ClaimWithdrawal(ctx, s, bridge.At(ec, common.HexToAddress(*contract)), c, agg, wid)
		if err != nil {
			return err
		}
		return emitJSON(stdout, claimOutput(res))
	}()
	if err != nil {
		return exitWith(stderr, "withdraw --claim", err)
	}
	return 0
}

type claimJSON struct {
	WithdrawalID string   `json:"withdrawal_id"`
	Tx           string   `json:"tx"`
	Block        uint64   `json:"block"`
	GasUsed      uint64   `json:"gas_used"`
	Token        string   `json:"token"`
	Amount       string   `json:"amount"`
	Recipient    string   `json:"recipient"`
	Signers      []string `json:"signers"`
}

func claimOutput(res *bridge.ClaimResult) claimJSON {
	return claimJSON{
		WithdrawalID: res.Proof.ID, Tx: res.Receipt.TxHash.Hex(), Block: res.Receipt.BlockNumber.Uint64(),
		GasUsed: res.Receipt.GasUsed, Token: res.Proof.Token, Amount: res.Proof.Amount,
		Recipient: res.Proof.Recipient, Signers: res.Proof.Signers,
	}
}
