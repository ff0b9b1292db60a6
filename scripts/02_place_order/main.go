// Command 02_place_order is the tutorial's step 2 client (the seed's
// 02_place_order.py in Go): it signs orders off-chain with a private key,
// as a wallet would, and posts them to the step 2 service (or any replica
// that takes the legacy form).
//
// With no --key it replays the seed's script: the tutorial's first account
// buys 1 ETH at 200 USDT, the second sells 1 ETH at 200 USDT. With --key it
// places one order signed by that key.
//
//	go run ./scripts/02_place_order [--url http://localhost:5001]
//	go run ./scripts/02_place_order --key 0xHEX --side buy --quantity 0.5 --price 200
//
// The signed text is "Order {side} {quantity} {base} at {price} {quote}"
// with amounts in Python's float repr (client/legacy); the script prints it,
// the signature and the service's answer.
package main

import (
	"bytes"
	"crypto/ecdsa"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/seqbook/seqbook/client/amount"
	"github.com/seqbook/seqbook/client/ethsig"
	"github.com/seqbook/seqbook/client/keys"
	"github.com/seqbook/seqbook/client/legacy"
	"github.com/seqbook/seqbook/internal/cli"
)

type order struct {
	key         *ecdsa.PrivateKey
	side        string
	qty, price  uint64
	base, quote string
	who         string
}

func main() {
	fs := flag.NewFlagSet("02_place_order", flag.ContinueOnError)
	url := fs.String("url", "http://localhost:5001", "the service's base URL")
	keyHex := fs.String("key", "", "private key (hex) to sign one order with; without it, run the seed's two orders with the tutorial keys")
	side := fs.String("side", "buy", "buy or sell (with --key)")
	qty := fs.String("quantity", "1", "quantity of the base token (with --key)")
	price := fs.String("price", "200", "price in quote tokens (with --key)")
	base := fs.String("base", "ETH", "base token (with --key)")
	quote := fs.String("quote", "USDT", "quote token (with --key)")
	if code, done := cli.Parse(fs, os.Args[1:]); done {
		os.Exit(code)
	}

	var orders []order
	if *keyHex == "" {
		fmt.Println("No --key given: placing the seed's two orders with the tutorial's published keys.")
		orders = []order{
			{keys.TutorialUser1(), "buy", amount.Scale, 200 * amount.Scale, "ETH", "USDT", "user1"},
			{keys.TutorialUser2(), "sell", amount.Scale, 200 * amount.Scale, "ETH", "USDT", "user2"},
		}
	} else {
		k, err := ethsig.ParseKey(*keyHex)
		if err != nil {
			fatal(err)
		}
		q, err := amount.ParsePositive(*qty)
		if err != nil {
			fatal(fmt.Errorf("--quantity: %w", err))
		}
		p, err := amount.ParsePositive(*price)
		if err != nil {
			fatal(fmt.Errorf("--price: %w", err))
		}
		if *side != "buy" && *side != "sell" {
			fatal(errors.New("--side must be buy or sell"))
		}
		orders = []order{{k, *side, q, p, *base, *quote, "your key"}}
	}
	client := &http.Client{Timeout: 10 * time.Second}
	failed := false
	for _, o := range orders {
		if err := place(client, strings.TrimRight(*url, "/"), o); err != nil {
			fmt.Fprintln(os.Stderr, "error:", err)
			failed = true
		}
	}
	if failed {
		os.Exit(1)
	}
}

func place(client *http.Client, url string, o order) error {
	sender := keys.Address(o.key).Hex()
	msg := legacy.Message(o.side, o.qty, o.price, o.base, o.quote)
	sig, err := legacy.Sign(o.key, msg)
	if err != nil {
		return err
	}
	fmt.Printf("\n== %s (%s) signs %q\n", o.who, sender, msg)
	fmt.Printf("   signature 0x%s\n", hex.EncodeToString(sig))
	// Amounts go out as JSON numbers with their exact decimal text; the
	// service parses them exactly and rebuilds the same message.
	body, err := json.Marshal(map[string]any{
		"sender":      sender,
		"order_type":  o.side,
		"base_token":  o.base,
		"quote_token": o.quote,
		"quantity":    json.Number(amount.Format(o.qty)),
		"price":       json.Number(amount.Format(o.price)),
		"signature":   "0x" + hex.EncodeToString(sig),
	})
	if err != nil {
		return err
	}
	fmt.Printf("   POST %s/order %s\n", url, body)
	resp, err := client.Post(url+"/order", "application/json", bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("is the service running at %s? %w", url, err)
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return err
	}
	fmt.Printf("   HTTP %d: %s\n", resp.StatusCode, bytes.TrimSpace(answer))
	switch resp.StatusCode {
	case http.StatusOK:
		fmt.Printf("   → the service accepted %s's order\n", o.who)
	case http.StatusConflict:
		return fmt.Errorf("the service refused %s's order (HTTP 409): this exact signed text was used before. "+
			"The legacy text has no nonce, so a signature is accepted once, and in steps 3 and 4 the sequencer "+
			"remembers every order, even across restarts. Start a fresh service (or, in steps 3-4, a localnet in a "+
			"new --dir), or sign a different order: --key 0xHEX --quantity 0.7", o.who)
	default:
		return fmt.Errorf("the service refused %s's order (HTTP %d)", o.who, resp.StatusCode)
	}
	return nil
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "02_place_order:", err)
	os.Exit(2)
}
