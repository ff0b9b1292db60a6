package matcher_test

import (
	"fmt"

	"github.com/seqbook/seqbook/client/amount"
	"github.com/seqbook/seqbook/internal/matcher"
)

// A resting sell, then a buy with a higher limit: the trade is at the
// maker's price and the buyer gets back what it reserved beyond that.
func Example() {
	e := matcher.New(matcher.DefaultConfig())
	must := func(err error) {
		if err != nil {
			panic(err)
		}
	}
	must(e.Deposit("alice", "ETH", 2*amount.Scale))
	must(e.Deposit("bob", "USDT", 1000*amount.Scale))

	_, err := e.Place(matcher.Order{ID: "a1", Account: "alice", Market: "ETH/USDT",
		Side: matcher.Sell, Type: matcher.Limit, Quantity: 1 * amount.Scale, Price: 300 * amount.Scale})
	must(err)
	res, err := e.Place(matcher.Order{ID: "b1", Account: "bob", Market: "ETH/USDT",
		Side: matcher.Buy, Type: matcher.Limit, Quantity: 1500000, Price: 310 * amount.Scale})
	must(err)

	for _, t := range res.Trades {
		fmt.Printf("trade %s<-%s %s ETH at %s\n", t.MakerOrder, t.TakerOrder, amount.Format(t.Quantity), amount.Format(t.Price))
	}
	fmt.Println("b1:", res.Status, "remaining", amount.Format(res.Remaining))
	for _, b := range e.Balances() {
		fmt.Println(b.Account, b.Token, amount.Format(b.Available), amount.Format(b.Reserved))
	}
	// Output:
	// trade a1<-b1 1 ETH at 300
	// b1: partially_filled remaining 0.5
	// alice ETH 1 0
	// alice USDT 300 0
	// bob ETH 1 0
	// bob USDT 545 155
}
