package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	"github.com/seqbook/seqbook/client"
	"github.com/seqbook/seqbook/client/amount"
	"github.com/seqbook/seqbook/client/obapi"
)

func init() {
	register(command{
		name:    "watch",
		summary: "print a market's live book and trades from a replica's WebSocket feed",
		run: func(args []string) int {
			ctx, cancel := interruptContext()
			defer cancel()
			return watchMain(ctx, args, os.Stdout, os.Stderr, isTerminal(os.Stdout))
		},
	})
}

// isTerminal reports whether f is a character device (a terminal), where
// watch redraws the screen instead of printing line after line.
func isTerminal(f *os.File) bool {
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

func watchMain(ctx context.Context, args []string, stdout, stderr io.Writer, terminal bool) int {
	fs := flag.NewFlagSet("watch", flag.ContinueOnError)
	fs.SetOutput(stdout)
	replica := fs.String("replica", defaultReplica, "replica HTTP address whose GET /ws to follow")
	market := fs.String("market", "", "market, e.g. ETH/USDT (required)")
	levels := fs.Int("levels", 10, "book levels shown per side")
	tradesShown := fs.Int("trades", 10, "recent trades shown")
	count := fs.Int("count", 0, "stop after this many feed messages (0: until Ctrl-C)")
	plain := fs.Bool("plain", false, "print each update as lines instead of redrawing the screen (the default when stdout is not a terminal)")
	setUsage(fs, "Usage: seqbook watch --market ETH/USDT [--replica URL] [--levels N] [--trades N] [--count N] [--plain]",
		"Follows the replica's live feed (GET /ws: the book and trades channels) and prints the",
		"book's top levels and the latest trades as they are applied, each update tagged with",
		"its applied index. Reconnects and resumes when the connection drops. Ctrl-C stops.",
	)
	if code, done := parseCommandFlags(fs, args, 0, stdout); done {
		return code
	}
	if *market == "" {
		fmt.Fprintln(stderr, "seqbook watch: --market is required (e.g. --market ETH/USDT)")
		return 2
	}
	if *levels < 1 || *tradesShown < 0 || *count < 0 {
		fmt.Fprintln(stderr, "seqbook watch: --levels must be at least 1, --trades and --count at least 0")
		return 2
	}
	ob, err := client.NewOrderbook(*replica)
	if err != nil {
		return fail("watch", err)
	}
	w := &watcher{out: stdout, redraw: terminal && !*plain, levels: *levels, tradesMax: *tradesShown,
		bids: map[string]obapi.Level{}, asks: map[string]obapi.Level{}}
	seen := 0
	errEnough := errors.New("enough")
	err = ob.Subscribe(ctx, []obapi.WSRequest{
		{Channel: obapi.ChannelBook, Market: *market},
		{Channel: obapi.ChannelTrades, Market: *market},
	}, func(e client.FeedEvent) error {
		if err := w.apply(e); err != nil {
			return err
		}
		w.print(e.Index)
		if seen++; *count > 0 && seen >= *count {
			return errEnough
		}
		return nil
	})
	switch {
	case errors.Is(err, errEnough), errors.Is(err, context.Canceled):
		return 0
	default:
		return fail("watch", err)
	}
}

// watcher holds the book and trades a terminal shows.
type watcher struct {
	out        io.Writer
	redraw     bool
	levels     int
	tradesMax  int
	market     string
	bids, asks map[string]obapi.Level // by price text
	trades     []obapi.Trade
}

func (w *watcher) apply(e client.FeedEvent) error {
	switch e.Channel {
	case obapi.ChannelBook:
		b, err := e.Book()
		if err != nil {
			return err
		}
		w.market = b.Market
		if b.Snapshot {
			clear(w.bids)
			clear(w.asks)
		}
		for _, l := range b.Bids {
			setLevel(w.bids, l)
		}
		for _, l := range b.Asks {
			setLevel(w.asks, l)
		}
	case obapi.ChannelTrades:
		t, err := e.Trades()
		if err != nil {
			return err
		}
		if t.Snapshot && e.Resumed {
			w.trades = w.trades[:0]
		}
		w.trades = append(w.trades, t.Trades...)
		if len(w.trades) > w.tradesMax {
			w.trades = w.trades[len(w.trades)-w.tradesMax:]
		}
	}
	return nil
}

func setLevel(side map[string]obapi.Level, l obapi.Level) {
	if q, err := amount.Parse(l.Quantity); err == nil && q == 0 {
		delete(side, l.Price)
		return
	}
	side[l.Price] = l
}

// sorted returns a side's levels best first.
func sorted(side map[string]obapi.Level, bestHigh bool, n int) []obapi.Level {
	out := make([]obapi.Level, 0, len(side))
	for _, l := range side {
		out = append(out, l)
	}
	price := func(l obapi.Level) uint64 { p, _ := amount.Parse(l.Price); return p }
	sort.Slice(out, func(i, j int) bool {
		if bestHigh {
			return price(out[i]) > price(out[j])
		}
		return price(out[i]) < price(out[j])
	})
	if len(out) > n {
		out = out[:n]
	}
	return out
}

func (w *watcher) print(index uint64) {
	var b strings.Builder
	fmt.Fprintf(&b, "%s at index %d\n", w.market, index)
	asks := sorted(w.asks, false, w.levels)
	fmt.Fprintf(&b, "%14s %14s %7s\n", "ASK PRICE", "QUANTITY", "ORDERS")
	for i := len(asks) - 1; i >= 0; i-- {
		fmt.Fprintf(&b, "%14s %14s %7d\n", asks[i].Price, asks[i].Quantity, asks[i].Orders)
	}
	fmt.Fprintln(&b, strings.Repeat("-", 37))
	for _, l := range sorted(w.bids, true, w.levels) {
		fmt.Fprintf(&b, "%14s %14s %7d\n", l.Price, l.Quantity, l.Orders)
	}
	fmt.Fprintf(&b, "%14s %14s %7s\n", "BID PRICE", "QUANTITY", "ORDERS")
	if w.tradesMax > 0 {
		fmt.Fprintln(&b, "\nTRADES (newest last)")
		for _, t := range w.trades {
			fmt.Fprintf(&b, "  #%-8d %-4s %12s @ %-12s index %d\n", t.Seq, t.TakerSide, t.Quantity, t.Price, t.Index)
		}
	}
	if w.redraw {
		fmt.Fprint(w.out, "\x1b[H\x1b[2J"+b.String())
		return
	}
	fmt.Fprintln(w.out, b.String())
}
