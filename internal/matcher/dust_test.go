package matcher_test

import (
	"testing"

	"github.com/seqbook/seqbook/internal/matcher"
)

// The dust rule: no fill may pay zero quote units. A quantity q is dust at a
// price p when floor(q × p / 10^6) is 0.

// A taker whose (remaining) quantity would pay nothing at the best maker's
// price stops matching there; its remainder is cancelled, whatever its type,
// because resting it would cross the book.
func TestDustTakerStopsAndIsCancelled(t *testing.T) {
	for _, typ := range []string{"limit", "ioc", "market", "post_only"} {
		t.Run(typ, func(t *testing.T) {
			b := newBook(t)
			// 2 ETH at 0.5 USDT: pays 1 quote unit, a valid order.
			b.place("a1", "alice", "sell", "limit", "2", "0.5")
			if typ == "post_only" {
				if _, err := b.e.Place(order("t1", "bob", "buy", typ, "0.000001", "1")); err != matcher.ErrWouldTakeLiquidity {
					t.Fatalf("post-only crossing: %v", err)
				}
				return
			}
			// 0.000001 ETH (1 base unit) at limit 1 USDT: the order pays 1
			// quote unit at its own price, so it passes intake, but a fill
			// at the maker's 0.5 would pay 0.
			r := b.place("t1", "bob", "buy", typ, "0.000001", "1")
			if len(r.Trades) != 0 {
				t.Fatalf("dust fill happened: %+v", r.Trades)
			}
			if r.Status != matcher.StatusCancelled || !r.RemainderDust || r.Remaining != 1 || r.Rested() {
				t.Fatalf("result %+v, want the dust remainder cancelled", r)
			}
			b.wantBal("bob", "USDT", "100000/0")
			b.wantBal("bob", "ETH", "100/0")
			if _, ok := b.e.Order("t1"); ok {
				t.Fatal("dust remainder rests in the book")
			}
		})
	}
}

// A fill that leaves the maker with a remainder too small to pay one quote
// unit at its price closes the maker: the dust is released and reported.
func TestDustMakerRemainderReleased(t *testing.T) {
	for _, makerSide := range []string{"sell", "buy"} {
		t.Run(makerSide, func(t *testing.T) {
			b := newBook(t)
			takerSide := "buy"
			if makerSide == "buy" {
				takerSide = "sell"
			}
			// 3.000001 ETH at 0.5: after 3 ETH fill, 1 base unit is left,
			// which would pay floor(1 × 0.5) = 0 quote units.
			b.place("m1", "alice", makerSide, "limit", "3.000001", "0.5")
			r := b.place("t1", "bob", takerSide, "limit", "3", "0.5")
			if fills(r) != "m1>t1 3@0.5" || r.Status != matcher.StatusFilled {
				t.Fatalf("fills %q status %v", fills(r), r.Status)
			}
			if len(r.DustCancelled) != 1 || r.DustCancelled[0].ID != "m1" || r.DustCancelled[0].Remaining != 1 ||
				r.DustCancelled[0].Status != matcher.StatusCancelled {
				t.Fatalf("dust cancels %+v", r.DustCancelled)
			}
			if _, ok := b.e.Order("m1"); ok {
				t.Fatal("dust maker remainder still rests")
			}
			if makerSide == "sell" {
				b.wantBal("alice", "ETH", "97/0")
				b.wantBal("alice", "USDT", "100001.5/0")
			} else {
				b.wantBal("alice", "ETH", "103/0")
				b.wantBal("alice", "USDT", "99998.5/0")
			}
		})
	}
}

// A limit order partly filled whose remainder is dust at its own limit does
// not rest: it is cancelled, and what it held is released.
func TestDustLimitRemainderDoesNotRest(t *testing.T) {
	b := newBook(t)
	b.place("a1", "alice", "sell", "limit", "1", "0.5")
	// 1.000001 ETH at 0.5: fills 1 ETH, the last base unit pays 0 at 0.5.
	r := b.place("t1", "bob", "buy", "limit", "1.000001", "0.5")
	if fills(r) != "a1>t1 1@0.5" || r.Status != matcher.StatusCancelled || !r.RemainderDust || r.Remaining != 1 {
		t.Fatalf("fills %q result %+v", fills(r), r)
	}
	b.wantBal("bob", "USDT", "99999.5/0")
	if _, ok := b.e.Order("t1"); ok {
		t.Fatal("dust remainder rests in the book")
	}
	// The same remainder at a price where it pays rests as usual.
	b.place("a2", "alice", "sell", "limit", "1", "2")
	r = b.place("t2", "bob", "buy", "limit", "1.000001", "2")
	if r.Status != matcher.StatusPartiallyFilled || r.RemainderDust || !r.Rested() {
		t.Fatalf("non-dust remainder: %+v", r)
	}
}

// Fill-or-kill counts only what it could fill without a dust fill: the same
// stop as the match.
func TestDustFillOrKill(t *testing.T) {
	b := newBook(t)
	b.place("a1", "alice", "sell", "limit", "1", "0.5")
	b.place("a2", "carol", "sell", "limit", "5", "0.5")
	before := b.e.Digest()
	// 1.000001 ETH: 1 ETH from a1, then 1 base unit from a2 would pay 0.
	if _, err := b.e.Place(order("f1", "bob", "buy", "fok", "1.000001", "0.5")); err != matcher.ErrCannotFillInFull {
		t.Fatalf("fok with a dust tail: %v", err)
	}
	if b.e.Digest() != before {
		t.Fatal("refused fill-or-kill changed the state")
	}
	r := b.place("f2", "bob", "buy", "fok", "1.000002", "0.5")
	if fills(r) != "a1>f2 1@0.5 a2>f2 0.000002@0.5" || r.Status != matcher.StatusFilled {
		t.Fatalf("fok: %q %v", fills(r), r.Status)
	}
}
