package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"text/tabwriter"

	"github.com/seqbook/seqbook/internal/matcher/benchload"
)

func init() {
	registerBench(benchmark{
		name:    "matcher",
		summary: "orders/s through the matcher alone (10K resting, then 1M limit orders)",
		run:     benchMatcher,
	})
}

// benchMatcher is `seqbook bench matcher`: the matcher's single-core
// throughput on the benchload workload, printed as a small table.
func benchMatcher(args []string) int {
	def := benchload.DefaultConfig()
	fs := flag.NewFlagSet("bench matcher", flag.ContinueOnError)
	orders := fs.Int("orders", def.Orders, "orders to time")
	resting := fs.Int("resting", def.Resting, "non-crossing orders placed first (not timed)")
	accounts := fs.Int("accounts", def.Accounts, "funded traders the orders are spread over")
	seed := fs.Uint64("seed", def.Seed, "workload seed")
	setUsage(fs, "Usage: seqbook bench matcher [flags]",
		"Times limit orders through the matcher on one core: half buys, half sells, prices",
		"uniform over 101 ticks 99.50-100.50, 1-10 lots, balances and reservations on.",
		"Order generation is not timed.",
	)
	if code, done := parseOrExit(fs, args); done {
		return code
	}
	if *orders < 1 || *resting < 0 || *accounts < 1 {
		return fail("bench matcher", errors.New("--orders and --accounts must be positive, --resting not negative"))
	}
	cfg := def
	cfg.Orders, cfg.Resting, cfg.Accounts, cfg.Seed = *orders, *resting, *accounts, *seed
	r, err := benchload.Run(cfg)
	if err != nil {
		return fail("bench matcher", err)
	}
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "resting\torders\tseconds\torders/s\tcpu seconds\torders/cpu-s\ttrades\trejected\topen at end\t")
	fmt.Fprintf(tw, "%d\t%d\t%.3f\t%.0f\t%s\t%s\t%d\t%d\t%d\t\n", cfg.Resting, r.Orders, r.Seconds, r.OrdersPerSecond(),
		orNA(r.CPUSeconds > 0, fmt.Sprintf("%.3f", r.CPUSeconds)), orNA(r.CPUSeconds > 0, fmt.Sprintf("%.0f", r.OrdersPerCPUSecond())),
		r.Trades, r.Rejected, r.OpenOrders)
	if err := tw.Flush(); err != nil {
		return fail("bench matcher", err)
	}
	return 0
}

func orNA(ok bool, s string) string {
	if ok {
		return s
	}
	return "n/a"
}
