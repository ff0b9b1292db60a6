package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/ethereum/go-ethereum/common"

	"github.com/seqbook/seqbook/client"
	"github.com/seqbook/seqbook/client/amount"
	"github.com/seqbook/seqbook/client/obapi"
)

// The command line side of the trading API (DESIGN §8): `seqbook order
// --file`, `seqbook cancel --all` and `seqbook orders`.

func init() {
	register(command{
		name:    "orders",
		summary: "list a trader's orders, newest first (open, filled, cancelled, rejected or all)",
		run:     func(args []string) int { return ordersMain(args, os.Stdout, os.Stderr) },
	})
}

// orderLine is one line of `seqbook order --file`: an order in decimals.
type orderLine struct {
	Market   string       `json:"market"`
	Side     string       `json:"side"`
	Type     string       `json:"type"`
	Quantity obapi.Number `json:"quantity"`
	Price    obapi.Number `json:"price"`
	Nonce    obapi.Number `json:"nonce"`
}

// orderLineBytesMax bounds one line of an order file: a real line is about
// 100 bytes.
const orderLineBytesMax = 4096

// parseOrderLine decodes one order-file line into order parameters
// (without expiry), with errors that name the field.
func parseOrderLine(line []byte) (client.OrderParams, error) {
	var l orderLine
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&l); err != nil {
		return client.OrderParams{}, fmt.Errorf("not an order object: %v", strings.TrimPrefix(err.Error(), "json: "))
	}
	if dec.More() {
		return client.OrderParams{}, errors.New("data after the order object")
	}
	p := client.OrderParams{Market: l.Market, Side: strings.ToLower(l.Side), Type: strings.ToLower(l.Type)}
	if p.Type == "" {
		p.Type = "limit"
	}
	for _, f := range []struct {
		name string
		v    string
		dst  *uint64
	}{{"quantity", string(l.Quantity), &p.Quantity}, {"price", string(l.Price), &p.Price}} {
		if f.v == "" {
			return client.OrderParams{}, fmt.Errorf("%s: missing", f.name)
		}
		v, err := amount.ParsePositive(f.v)
		if err != nil {
			return client.OrderParams{}, fmt.Errorf("%s: %v", f.name, err)
		}
		*f.dst = v
	}
	if l.Nonce != "" {
		n, err := parseUintText(string(l.Nonce))
		if err != nil {
			return client.OrderParams{}, fmt.Errorf("nonce: %v", err)
		}
		p.Nonce = n
	}
	switch {
	case p.Market == "":
		return client.OrderParams{}, errors.New("market: missing")
	case p.Side == "":
		return client.OrderParams{}, errors.New("side: missing")
	}
	return p, nil
}

func parseUintText(s string) (uint64, error) {
	var v uint64
	if s == "" || len(s) > 20 {
		return 0, fmt.Errorf("expected a decimal integer, got %q", s)
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return 0, fmt.Errorf("expected a decimal integer, got %q", s)
		}
		d := uint64(c - '0')
		if v > (^uint64(0)-d)/10 {
			return 0, fmt.Errorf("%q exceeds 2^64-1", s)
		}
		v = v*10 + d
	}
	return v, nil
}

// fileResult is what `seqbook order --file` prints per order.
type fileResult struct {
	Line    int    `json:"line"`
	OrderID string `json:"order_id,omitempty"`
	Status  string `json:"status,omitempty"`
	Error   string `json:"error,omitempty"`
}

// readOrderFile reads every order of a file ("-": stdin), by line number.
func readOrderFile(path string, stdin io.Reader) ([]int, []client.OrderParams, error) {
	in := stdin
	if path != "-" {
		f, err := os.Open(path)
		if err != nil {
			return nil, nil, err
		}
		defer f.Close()
		in = f
	}
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 0, orderLineBytesMax), orderLineBytesMax)
	var lines []int
	var orders []client.OrderParams
	for n := 1; sc.Scan(); n++ {
		text := bytes.TrimSpace(sc.Bytes())
		if len(text) == 0 || text[0] == '#' {
			continue
		}
		p, err := parseOrderLine(text)
		if err != nil {
			return nil, nil, errUsage(fmt.Sprintf("%s line %d: %v", path, n, err))
		}
		lines, orders = append(lines, n), append(orders, p)
	}
	if err := sc.Err(); err != nil {
		return nil, nil, fmt.Errorf("%s: %w (lines are at most %d bytes)", path, err, orderLineBytesMax)
	}
	if len(orders) == 0 {
		return nil, nil, errUsage(path + ": no order in the file")
	}
	return lines, orders, nil
}

// orderFileMain places the orders of a file in batches of up to 100.
func orderFileMain(of *opFlags, path string, stdout, stderr io.Writer) int {
	refused := 0
	err := func() error {
		lines, orders, err := readOrderFile(path, os.Stdin)
		if err != nil {
			return err
		}
		ss, err := of.session()
		if err != nil {
			return err
		}
		defer ss.cancel()
		expiry := of.params().Expiry
		var out []fileResult
		for start := 0; start < len(orders); start += obapi.OrdersBatchMax {
			end := min(start+obapi.OrdersBatchMax, len(orders))
			chunk := orders[start:end]
			for i := range chunk {
				chunk[i].Expiry = expiry
			}
			res, err := ss.ob.PlaceOrders(ss.ctx, ss.key, chunk, *of.wait)
			if err != nil {
				return fmt.Errorf("orders of lines %d to %d: %w", lines[start], lines[end-1], err)
			}
			for i, r := range res.Results {
				fr := fileResult{Line: lines[start+i], OrderID: r.OrderID, Status: r.Status, Error: r.Error}
				if r.Error != "" {
					refused++
				}
				out = append(out, fr)
			}
		}
		return emitJSON(stdout, struct {
			Orders []fileResult `json:"orders"`
		}{out})
	}()
	if err != nil {
		return exitWith(stderr, "order", err)
	}
	if refused > 0 {
		fmt.Fprintf(stderr, "seqbook order: %d of the file's orders were refused (see \"error\")\n", refused)
		return 1
	}
	return 0
}

// cancelAll signs and sends a CancelAll.
func cancelAll(of *opFlags, orderID, market string, stdout io.Writer) error {
	if orderID != "" {
		return errUsage("--all cancels every order: leave out --order")
	}
	ss, err := of.session()
	if err != nil {
		return err
	}
	defer ss.cancel()
	res, err := ss.ob.CancelAll(ss.ctx, ss.key, market, of.params(), *of.wait)
	if err != nil {
		return err
	}
	return emitJSON(stdout, struct {
		CancelID string          `json:"cancel_id"`
		Market   string          `json:"market"`
		Answer   json.RawMessage `json:"answer"`
	}{res.ID.String(), market, res.Raw})
}

func ordersMain(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("orders", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cf := addClientFlags(fs)
	trader := fs.String("trader", "", "the trader's 0x address (required)")
	status := fs.String("status", "all", "open, filled, cancelled, rejected or all")
	limit := fs.Int("limit", 0, "orders per page (0: the replica's page size)")
	before := fs.String("before", "", "continue after this order id (the \"next\" of the previous page)")
	setUsage(fs, "Usage: seqbook orders --trader 0x… [--status open] [--limit N] [--before 0x…] [flags]",
		"Lists a trader's orders as the replica knows them (GET /orders?trader=&status=),",
		"newest first, as JSON. The answer's \"next\" pages on with --before.",
	)
	if code, done := parseCommandFlags(fs, args, 0, stdout); done {
		return code
	}
	err := func() error {
		if err := requireFlags("trader", *trader); err != nil {
			return err
		}
		if !common.IsHexAddress(*trader) || !strings.HasPrefix(*trader, "0x") {
			return errUsage("--trader: not a 0x address: " + *trader)
		}
		if *limit < 0 {
			return errUsage("--limit must not be negative")
		}
		ob, err := cf.orderbook()
		if err != nil {
			return err
		}
		ctx, cancel := cf.context()
		defer cancel()
		h, err := ob.OrderHistory(ctx, common.HexToAddress(*trader), client.HistoryQuery{Status: *status, Limit: *limit, Before: *before})
		if err != nil {
			return err
		}
		return emitJSON(stdout, h)
	}()
	if err != nil {
		return exitWith(stderr, "orders", err)
	}
	return 0
}
