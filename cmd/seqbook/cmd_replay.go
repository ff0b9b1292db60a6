package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/seqbook/seqbook/internal/matcher"
	"github.com/seqbook/seqbook/internal/matcher/replay"
)

func init() {
	register(command{
		name:    "replay",
		summary: "run the matcher over JSON-line operations on stdin, print events (DESIGN §7)",
		run:     runReplay,
	})
}

func runReplay(args []string) int {
	fs := flag.NewFlagSet("replay", flag.ContinueOnError)
	openMax := fs.Int("max-open-orders", matcher.DefaultConfig().OpenOrdersPerAccountMax,
		"open orders one account may hold (the replica's bound)")
	setUsage(fs, "Usage: seqbook replay [flags] < ops.jsonl > events.jsonl",
		"Reads deposit/withdraw/order/cancel operations as JSON lines on stdin, applies them",
		"to a fresh matcher, and prints trade and rejected events, then the final non-zero",
		"balances, as JSON lines on stdout. Bad lines are rejected events, not errors.",
	)
	if code, done := parseOrExit(fs, args); done {
		return code
	}
	if fs.NArg() > 0 {
		return fail("replay", fmt.Errorf("unexpected arguments %q: input is read from stdin", fs.Args()))
	}
	cfg := matcher.DefaultConfig()
	cfg.OpenOrdersPerAccountMax = *openMax
	if err := cfg.ValidateBasic(); err != nil {
		return fail("replay", err)
	}
	if _, err := replay.Run(os.Stdin, os.Stdout, cfg); err != nil {
		return fail("replay", err)
	}
	return 0
}
