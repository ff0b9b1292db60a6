package main

import (
	"encoding/json"
	"flag"
	"io"
	"os"

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
	of := addOpFlags(fs, "wait until the cancel is finalized and applied")
	orderID := fs.String("order", "", "id of the order to cancel, 0x + 64 hex digits (required unless --all)")
	all := fs.Bool("all", false, "cancel every open order of the key's trader (in --market only, if given)")
	market := fs.String("market", "", "with --all: only this market, BASE/QUOTE (default: every market)")
	setUsage(fs, "Usage: seqbook cancel --order 0x… [--key FILE] [flags]\n       seqbook cancel --all [--market ETH/USDT] [--key FILE] [flags]",
		"Signs Cancel(trader, orderId, nonce, expiry) with the trader key (the order's own",
		"trader) and POSTs it to the replica. Prints the cancel's id and the answer as JSON.",
		"With --all, signs CancelAll(trader, market, nonce, expiry) and POSTs it to",
		"/cancel_all; with --wait the answer's \"cancelled\" is the number of orders cancelled.",
	)
	if code, done := parseCommandFlags(fs, args, 0, stdout); done {
		return code
	}
	err := func() error {
		if *all {
			return cancelAll(of, *orderID, *market, stdout)
		}
		if *market != "" {
			return errUsage("--market goes with --all")
		}
		if err := requireFlags("order", *orderID); err != nil {
			return err
		}
		id, err := client.ParseHash(*orderID)
		if err != nil {
			return errUsage("--order: " + err.Error())
		}
		ss, err := of.session()
		if err != nil {
			return err
		}
		defer ss.cancel()
		res, err := ss.ob.Cancel(ss.ctx, ss.key, id, of.params(), *of.wait)
		if err != nil {
			return err
		}
		if res.Accepted != nil {
			notSequenced(stderr, "cancel", res.ID.String())
		}
		return emitJSON(stdout, struct {
			CancelID client.ID       `json:"cancel_id"`
			OrderID  string          `json:"order_id"`
			Answer   json.RawMessage `json:"answer"`
		}{res.ID, *orderID, res.Raw})
	}()
	if err != nil {
		return exitWith(stderr, "cancel", err)
	}
	return 0
}
