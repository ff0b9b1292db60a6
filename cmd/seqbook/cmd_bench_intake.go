package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"text/tabwriter"

	"github.com/seqbook/seqbook/internal/intakebench"
)

func init() {
	registerBench(benchmark{
		name:    "intake",
		summary: "orders placed one per POST /order versus batched in POST /orders: orders/s, requests/s, CPU per order",
		run:     benchIntake,
	})
}

// benchIntake is `seqbook bench intake`: the same signed orders placed on
// one in-process replica one per request and then in batches, alternating
// --rounds times, printed as a table.
func benchIntake(args []string) int {
	def := intakebench.DefaultOptions()
	fs := flag.NewFlagSet("bench intake", flag.ContinueOnError)
	orders := fs.Int("orders", def.Orders, "orders placed per run")
	batch := fs.Int("batch", def.Batch, "orders per POST /orders request (2 to 100)")
	concurrency := fs.Int("concurrency", def.Concurrency, "requests in flight")
	traders := fs.Int("traders", def.Traders, "funded traders the orders are spread over")
	rounds := fs.Int("rounds", 3, "runs of each mode, alternating")
	setUsage(fs, "Usage: seqbook bench intake [flags]",
		"Starts one replica in this process (real HTTP on loopback, in-memory sequencer and store),",
		"signs the orders before the clock starts, then places them one per POST /order and in",
		"batches of --batch per POST /orders, alternating, each run until every order is applied.",
		"cpu-µs/order is this process's CPU (replica and load generator) per order: robust to a",
		"busy machine, unlike orders/s.",
	)
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	if *batch < 2 || *rounds < 1 {
		return fail("bench intake", fmt.Errorf("--batch must be 2 to 100 and --rounds positive"))
	}
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "mode\torders\trequests\tseconds\torders/s\trequests/s\tcpu-µs/order\t")
	for range *rounds {
		for _, b := range []int{1, *batch} {
			o := intakebench.Options{Orders: *orders, Batch: b, Concurrency: *concurrency, Traders: *traders}
			r, err := intakebench.Run(context.Background(), o)
			if err != nil {
				return fail("bench intake", err)
			}
			mode := "POST /order"
			if b > 1 {
				mode = fmt.Sprintf("POST /orders ×%d", b)
			}
			fmt.Fprintf(tw, "%s\t%d\t%d\t%.2f\t%.0f\t%.0f\t%.0f\t\n", mode, r.Orders, r.Requests, r.Seconds,
				r.OrdersPerSecond(), r.RequestsPerSecond(), r.CPUMicrosPerOrder())
		}
	}
	if err := tw.Flush(); err != nil {
		return fail("bench intake", err)
	}
	return 0
}
