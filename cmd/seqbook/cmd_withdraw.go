package main

import (
	"encoding/json"
	"flag"
	"io"
	"os"
	"strings"

	"github.com/ethereum/go-ethereum/common"

	"github.com/seqbook/seqbook/client"
	"github.com/seqbook/seqbook/client/amount"
)

func init() {
	register(command{
		name:    "withdraw",
		summary: "sign an EIP-712 withdrawal and send it to a replica",
		run:     func(args []string) int { return withdrawMain(args, os.Stdout, os.Stderr) },
	})
}

func withdrawMain(args []string, stdout, stderr io.Writer) int {
	for _, a := range args {
		if a == "--claim" || a == "-claim" || strings.HasPrefix(a, "--claim=") || strings.HasPrefix(a, "-claim=") {
			return claimMain(args, stdout, stderr)
		}
	}
	fs := flag.NewFlagSet("withdraw", flag.ContinueOnError)
	fs.SetOutput(stderr)
	of := addOpFlags(fs, "wait until the withdrawal is finalized and applied")
	token := fs.String("token", "", "token to withdraw, e.g. ETH (required)")
	amt := fs.String("amount", "", "amount in decimal, e.g. 0.5 (required)")
	recipient := fs.String("recipient", "", "address to pay out to (default: the trader's own)")
	setUsage(fs, "Usage: seqbook withdraw --token ETH --amount 0.5 [--recipient 0x…] [--key FILE] [flags]",
		"Signs Withdraw(trader, token, amount, recipient, nonce, expiry) and POSTs it to the",
		"replica. Prints the withdrawal id (what a bridge pays out on, with the aggregator's",
		"quorum proof: GET /aggregate_withdrawal?id=) and the answer as JSON. To be paid on-chain,",
		"claim it from the bridge: seqbook withdraw --claim ID (see seqbook withdraw --claim --help).",
	)
	if code, done := parseCommandFlags(fs, args, 0, stdout); done {
		return code
	}
	err := func() error {
		if err := requireFlags("token", *token, "amount", *amt); err != nil {
			return err
		}
		units, err := amount.ParsePositive(*amt)
		if err != nil {
			return errUsage("--amount: " + err.Error())
		}
		var to common.Address
		if *recipient != "" {
			if to, err = client.ParseAddress(*recipient); err != nil {
				return errUsage("--recipient: " + err.Error())
			}
		}
		ss, err := of.session()
		if err != nil {
			return err
		}
		defer ss.cancel()
		res, err := ss.ob.Withdraw(ss.ctx, ss.key, client.WithdrawParams{
			Token: *token, Amount: units, Recipient: to, OpParams: of.params(),
		}, *of.wait)
		if err != nil {
			return err
		}
		if res.Accepted != nil {
			notSequenced(stderr, "withdrawal", res.ID.String())
		}
		return emitJSON(stdout, struct {
			WithdrawalID client.ID       `json:"withdrawal_id"`
			Answer       json.RawMessage `json:"answer"`
		}{res.ID, res.Raw})
	}()
	if err != nil {
		return exitWith(stderr, "withdraw", err)
	}
	return 0
}
