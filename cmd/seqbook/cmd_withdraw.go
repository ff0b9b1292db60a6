package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

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
	fs := flag.NewFlagSet("withdraw", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cf := addClientFlags(fs)
	keyPath := addKeyFlag(fs)
	token := fs.String("token", "", "token to withdraw, e.g. ETH (required)")
	amt := fs.String("amount", "", "amount in decimal, e.g. 0.5 (required)")
	recipient := fs.String("recipient", "", "address to pay out to (default: the trader's own)")
	nonce := fs.Uint64("nonce", 0, "nonce (0: a fresh one from the clock in nanoseconds)")
	expiresIn := fs.Duration("expires-in", client.DefaultExpiry, "latest sequencing time, from now")
	wait := fs.Bool("wait", false, "wait until the withdrawal is finalized and applied")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "Usage: seqbook withdraw --token ETH --amount 0.5 [--recipient 0x…] [--key FILE] [flags]")
		fmt.Fprintln(fs.Output(), "\nSigns Withdraw(trader, token, amount, recipient, nonce, expiry) and POSTs it to the")
		fmt.Fprintln(fs.Output(), "replica. Prints the withdrawal id (what a bridge pays out on, with the aggregator's")
		fmt.Fprintln(fs.Output(), "quorum proof: GET /aggregate_withdrawal?id=) and the answer as JSON.")
		fmt.Fprintln(fs.Output(), "\nFlags:")
		fs.PrintDefaults()
	}
	if code, done := parseCommandFlags(fs, args, 0); done {
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
		if *expiresIn <= 0 {
			return errUsage("--expires-in must be positive")
		}
		key, err := loadTraderKey(*keyPath)
		if err != nil {
			return err
		}
		ob, err := cf.orderbook()
		if err != nil {
			return err
		}
		ctx, cancel := cf.context()
		defer cancel()
		res, err := ob.Withdraw(ctx, key, client.WithdrawParams{
			Token: *token, Amount: units, Recipient: to,
			OpParams: client.OpParams{Nonce: *nonce, Expiry: uint64(time.Now().Add(*expiresIn).Unix())},
		}, *wait)
		if err != nil {
			return err
		}
		return emitJSON(stdout, struct {
			WithdrawalID string          `json:"withdrawal_id"`
			Answer       json.RawMessage `json:"answer"`
		}{res.ID, res.Raw})
	}()
	if err != nil {
		return exitWith(stderr, "withdraw", err)
	}
	return 0
}
