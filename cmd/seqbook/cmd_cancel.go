package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/seqbook/seqbook/client"
)

func init() {
	register(command{
		name:    "cancel",
		summary: "sign an EIP-712 cancel of a resting order and send it to a replica",
		run:     func(args []string) int { return cancelMain(args, os.Stdout, os.Stderr) },
	})
}

func cancelMain(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("cancel", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cf := addClientFlags(fs)
	keyPath := addKeyFlag(fs)
	orderID := fs.String("order", "", "id of the order to cancel, 0x + 64 hex digits (required)")
	nonce := fs.Uint64("nonce", 0, "nonce (0: a fresh one from the clock in nanoseconds)")
	expiresIn := fs.Duration("expires-in", client.DefaultExpiry, "latest sequencing time, from now")
	wait := fs.Bool("wait", false, "wait until the cancel is finalized and applied")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "Usage: seqbook cancel --order 0x… [--key FILE] [flags]")
		fmt.Fprintln(fs.Output(), "\nSigns Cancel(trader, orderId, nonce, expiry) with the trader key (the order's own")
		fmt.Fprintln(fs.Output(), "trader) and POSTs it to the replica. Prints the cancel's id and the answer as JSON.")
		fmt.Fprintln(fs.Output(), "\nFlags:")
		fs.PrintDefaults()
	}
	if code, done := parseCommandFlags(fs, args, 0); done {
		return code
	}
	err := func() error {
		if err := requireFlags("order", *orderID); err != nil {
			return err
		}
		id, err := client.ParseHash(*orderID)
		if err != nil {
			return errUsage("--order: " + err.Error())
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
		res, err := ob.Cancel(ctx, key, id, client.OpParams{Nonce: *nonce, Expiry: uint64(time.Now().Add(*expiresIn).Unix())}, *wait)
		if err != nil {
			return err
		}
		return emitJSON(stdout, struct {
			CancelID string          `json:"cancel_id"`
			OrderID  string          `json:"order_id"`
			Answer   json.RawMessage `json:"answer"`
		}{res.ID, *orderID, res.Raw})
	}()
	if err != nil {
		return exitWith(stderr, "cancel", err)
	}
	return 0
}
