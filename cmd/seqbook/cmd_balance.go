package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/ethereum/go-ethereum/common"

	"github.com/seqbook/seqbook/client"
	"github.com/seqbook/seqbook/client/cluster"
	"github.com/seqbook/seqbook/client/ethsig"
)

func init() {
	register(command{
		name:    "balance",
		summary: "read a signed balance from a replica, or a quorum proof from the aggregator",
		run:     func(args []string) int { return balanceMain(args, os.Stdout, os.Stderr) },
	})
}

func balanceMain(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("balance", flag.ContinueOnError)
	fs.SetOutput(stderr)
	replica := fs.String("replica", defaultReplica, "replica HTTP address to read the signed balance from")
	aggregator := fs.String("aggregator", "", "aggregator HTTP address: fetch a quorum proof instead (e.g. 127.0.0.1:8001)")
	address := fs.String("address", "", "account address (default: the address of --key / $"+envKey+")")
	keyPath := addKeyFlag(fs)
	token := fs.String("token", "", "token, e.g. ETH (required)")
	index := fs.Uint64("index", 0, "balance as of this applied index (replica only; 0: latest)")
	clusterPath := fs.String("cluster", "", "cluster file: also verify the answer's signature(s) with it")
	timeout := fs.Duration("timeout", 30*time.Second, "give up after this long")
	setUsage(fs, "Usage: seqbook balance --address 0x… --token ETH [--index N] [--replica URL | --aggregator URL] [--cluster FILE]",
		"Prints the replica's BLS-signed balance answer, or with --aggregator the quorum proof",
		"(save it and check it anywhere with `seqbook verify`). With --cluster the signature is",
		"checked here too, and a failed check exits 1.",
	)
	if code, done := parseCommandFlags(fs, args, 0, stdout); done {
		return code
	}
	err := func() error {
		if err := requireFlags("token", *token); err != nil {
			return err
		}
		acct, err := balanceAccount(*address, *keyPath)
		if err != nil {
			return err
		}
		if *aggregator != "" && *index != 0 {
			return errUsage("--index is for --replica: the aggregator picks the index a quorum has applied")
		}
		var c *cluster.Cluster
		if *clusterPath != "" {
			if c, err = cluster.Load(*clusterPath); err != nil {
				return err
			}
		}
		ctx, stop := interruptContext()
		defer stop()
		opts := []client.Option{client.WithTimeout(*timeout)}
		if *aggregator != "" {
			agg, err := client.NewAggregator(*aggregator, opts...)
			if err != nil {
				return err
			}
			p, err := agg.BalanceProof(ctx, acct, *token)
			if err != nil {
				return err
			}
			if err := emitJSON(stdout, p); err != nil {
				return err
			}
			if c != nil {
				if err := client.VerifyBalanceProof(c, p); err != nil {
					return fmt.Errorf("proof NOT verified: %w", err)
				}
				fmt.Fprintf(stderr, "verified: balance %s %s of %s at index %d, signed by %s (threshold %d)\n",
					p.Balance, p.Token, p.Address, p.Index, strings.Join(p.Signers, ","), p.Threshold)
			}
			return nil
		}
		ob, err := client.NewOrderbook(*replica, opts...)
		if err != nil {
			return err
		}
		b, err := ob.Balance(ctx, acct, *token, *index)
		if err != nil {
			return err
		}
		if err := emitJSON(stdout, b); err != nil {
			return err
		}
		if c != nil {
			if err := client.VerifyBalanceSignature(c, "", b); err != nil {
				return fmt.Errorf("signature NOT verified: %w", err)
			}
			fmt.Fprintf(stderr, "verified: %s signed balance %s %s of %s at index %d\n", b.Replica, b.Balance, b.Token, b.Address, b.Index)
		}
		return nil
	}()
	if err != nil {
		return exitWith(stderr, "balance", err)
	}
	return 0
}

// balanceAccount is --address, or the address of the trader key.
func balanceAccount(address, keyPath string) (common.Address, error) {
	if address != "" {
		a, err := client.ParseAddress(address)
		if err != nil {
			return a, errUsage("--address: " + err.Error())
		}
		return a, nil
	}
	if keyPath == "" && os.Getenv(envKey) == "" {
		return common.Address{}, errUsage("missing --address (or --key / $" + envKey + " to use the key's address)")
	}
	k, err := loadTraderKey(keyPath)
	if err != nil {
		return common.Address{}, err
	}
	return ethsig.Address(k), nil
}
