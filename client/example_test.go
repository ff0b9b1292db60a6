package client_test

// The examples of docs/client.md, compiled with the SDK so that the page
// cannot drift from the API (the doc quotes these bodies). They are not
// run: they need a running network (seqbook localnet).
import (
	"context"
	"fmt"
	"log"
	"log/slog"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/crypto"

	"github.com/seqbook/seqbook/client"
	"github.com/seqbook/seqbook/client/amount"
	"github.com/seqbook/seqbook/client/cluster"
	"github.com/seqbook/seqbook/client/keys"
	"github.com/seqbook/seqbook/client/obapi"
	"github.com/seqbook/seqbook/internal/mdblocks"
)

// Stand-ins for the reader's own storage and state machine.
var (
	loadCursor = func() (uint64, [32]byte) { return 0, [32]byte{} }
	saveCursor = func(index uint64, chainingHash [32]byte) error { return nil }
	apply      = func(index, timestampMs uint64, body []byte) error { return nil }
)

// Following an app's finalized batches, verified, from any node.
func ExampleSequencer_Follow() {
	ctx := context.Background()
	c, err := cluster.Load("cluster.json")
	if err != nil {
		log.Fatal(err)
	}
	seq := client.NewSequencer(c, client.WithLogger(slog.Default()))

	// Resume from what you processed last: the index and chaining hash of that
	// batch (0 and 32 zero bytes to start from the beginning).
	after, prev := loadCursor()
	err = seq.Follow(ctx, "orderbook", after, prev, func(b client.Batch) error {
		if err := apply(b.Index, b.Timestamp, b.Body); err != nil {
			return err // stops Follow
		}
		return saveCursor(b.Index, b.ChainingHash)
	})
	if err != nil {
		log.Fatal(err)
	}
}

// The same, as an iterator.
func ExampleSequencer_Batches() {
	ctx := context.Background()
	c, err := cluster.Load("cluster.json")
	if err != nil {
		log.Fatal(err)
	}
	seq := client.NewSequencer(c)
	after, prev := loadCursor()
	for b, err := range seq.Batches(ctx, "orderbook", after, prev) {
		if err != nil {
			log.Fatal(err) // ctx's error (or an invalid app name) ends the loop
		}
		fmt.Println(b.Index, len(b.Body))
	}
}

// Placing an order, waiting for its outcome, and cancelling what rests of
// it: the id PlaceOrder returns is the type Cancel takes.
func ExampleOrderbook_PlaceOrder() {
	ctx := context.Background()
	ob, err := client.NewOrderbook("127.0.0.1:5001", client.WithChainID(31337))
	if err != nil {
		log.Fatal(err)
	}
	key, err := keys.LoadTrader("trader.key")
	if err != nil {
		log.Fatal(err)
	}
	qty, _ := amount.Parse("0.1") // 100000 base units
	px, _ := amount.Parse("2000") // 2000000000
	res, err := ob.PlaceOrder(ctx, key, client.OrderParams{
		Market: "ETH/USDT", Side: "buy", Type: "limit", Quantity: qty, Price: px,
	}, true) // true: ?wait=finalized, the answer carries the status and fills
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(res.OrderID, res.Order.Status)

	if res.Order.Status == "open" || res.Order.Status == "partially_filled" {
		if _, err := ob.Cancel(ctx, key, res.OrderID, client.OpParams{}, true); err != nil {
			log.Fatal(err)
		}
	}
}

// The trading calls of DESIGN §8: batch placement, naming an order by its
// nonce, cancelling everything in a market, and paging through history.
func ExampleOrderbook_PlaceOrders() {
	ctx := context.Background()
	ob, err := client.NewOrderbook("127.0.0.1:5001", client.WithChainID(31337))
	if err != nil {
		log.Fatal(err)
	}
	key, err := keys.LoadTrader("trader.key")
	if err != nil {
		log.Fatal(err)
	}
	trader := crypto.PubkeyToAddress(key.PublicKey)
	qty, _ := amount.Parse("0.1")
	px, _ := amount.Parse("2000")

	// up to 100 orders in one request; one refused order does not refuse the others
	res, err := ob.PlaceOrders(ctx, key, []client.OrderParams{
		{Market: "ETH/USDT", Side: "buy", Type: "fok", Quantity: qty, Price: px},
		{Market: "ETH/USDT", Side: "sell", Type: "post_only", Quantity: qty, Price: px + 5_000_000, Nonce: 42},
	}, false)
	if err != nil {
		log.Fatal(err)
	}
	for i, r := range res.Results {
		fmt.Println(res.OrderIDs[i], r.Status, r.Error)
	}

	o, err := ob.OrderByNonce(ctx, trader, 42) // named before it is sequenced
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(o.Status)
	ca, err := ob.CancelAll(ctx, key, "ETH/USDT", client.OpParams{}, true) // "" = every market
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(*ca.Result.Cancelled)
	h, err := ob.OrderHistory(ctx, trader, client.HistoryQuery{Status: obapi.HistoryOpen, Limit: 50})
	if err != nil {
		log.Fatal(err)
	}
	h, err = ob.OrderHistory(ctx, trader, client.HistoryQuery{Status: obapi.HistoryOpen, Before: h.Next})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(len(h.Orders))
}

// Fetching a balance quorum proof from the aggregator and checking it
// offline against the cluster file.
func ExampleVerifyBalanceProof() {
	ctx := context.Background()
	c, err := cluster.Load("cluster.json")
	if err != nil {
		log.Fatal(err)
	}
	addr := common.HexToAddress("0xc66F8Fba940064B5bA8d437d6fF829E60134230E")
	agg, err := client.NewAggregator("127.0.0.1:8001")
	if err != nil {
		log.Fatal(err)
	}
	p, err := agg.BalanceProof(ctx, addr, "USDT")
	if err != nil {
		log.Fatal(err)
	}
	if err := client.VerifyBalanceProof(c, p); err != nil {
		log.Fatal(err) // not a threshold of replicas signing exactly this
	}
	fmt.Println(p.Balance, p.Token, "at index", p.Index)
}

// TestClientDocQuotesTheExamples: every Go block of docs/client.md is the
// body of one of the examples above, line for line (indentation aside).
func TestClientDocQuotesTheExamples(t *testing.T) {
	doc, err := os.ReadFile("../docs/client.md")
	if err != nil {
		t.Fatal(err)
	}
	src, err := os.ReadFile("example_test.go")
	if err != nil {
		t.Fatal(err)
	}
	trimmed := func(s string) []string {
		var out []string
		for _, l := range strings.Split(s, "\n") {
			if l = strings.TrimSpace(l); l != "" {
				out = append(out, l)
			}
		}
		return out
	}
	code := trimmed(string(src))
	blocks := mdblocks.Find(string(doc), "go")
	if len(blocks) < 4 {
		t.Fatalf("docs/client.md has %d Go blocks", len(blocks))
	}
	for _, b := range blocks {
		want := trimmed(b.Code)
		found := false
		for i := 0; i+len(want) <= len(code) && !found; i++ {
			found = slices.Equal(code[i:i+len(want)], want)
		}
		if !found {
			t.Errorf("the Go block at line %d of docs/client.md is not an example of client/example_test.go:\n%s", b.Line, b.Code)
		}
	}
}
