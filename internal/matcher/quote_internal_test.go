package matcher

import (
	"math/rand/v2"
	"testing"

	"github.com/seqbook/seqbook/client/amount"
)

// quoteOf is the hot-path copy of amount.Quote; they must agree wherever
// amount.Quote succeeds.
func TestQuoteOfMatchesAmountQuote(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	edges := []uint64{0, 1, 999_999, 1_000_000, 1_000_001, 1 << 32, 1<<44 - 1, 1 << 44, amount.Max / 1_000_000, amount.Max}
	check := func(q, p uint64) {
		want, err := amount.Quote(q, p)
		if err != nil {
			return
		}
		if got := quoteOf(q, p); got != want {
			t.Fatalf("quoteOf(%d, %d) = %d, amount.Quote = %d", q, p, got, want)
		}
	}
	for _, q := range edges {
		for _, p := range edges {
			check(q, p)
		}
	}
	for range 200_000 {
		check(rng.Uint64N(amount.Max)>>rng.UintN(63), rng.Uint64N(amount.Max)>>rng.UintN(63))
	}
}
