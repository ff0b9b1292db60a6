package matcher

import (
	"strings"
	"testing"
)

// A state holding a dust resting order (only an older build could make
// one) fails CheckInvariants, and its snapshot is refused on restore with
// the reason, so a replica rebuilds it from history instead of loading an
// order that would block its price level.
func TestDustRestingOrderIsRefused(t *testing.T) {
	e := New(DefaultConfig())
	if err := e.Deposit("alice", "ETH", 10_000_000); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Place(Order{ID: "a1", Account: "alice", Market: "ETH/USDT", Side: Sell, Type: Limit, Quantity: 3_000_000, Price: 500_000}); err != nil {
		t.Fatal(err)
	}
	// What an older build left after a fill of all but one base unit.
	i := e.ids.find(e.orderIDs, "a1", e.ids.tag("a1"))
	lv := &e.markets[0].asks.levels[0]
	lv.total -= e.orders[i].remaining - 1
	e.orders[i].remaining = 1
	b := &e.accounts[0].bal[e.markets[0].base]
	b.available, b.reserved = b.available+2_999_999, 1
	if err := e.CheckInvariants(); err == nil || !strings.Contains(err.Error(), "dust") {
		t.Fatalf("CheckInvariants: %v", err)
	}
	snap, err := e.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	if err := New(DefaultConfig()).UnmarshalBinary(snap); err == nil || !strings.Contains(err.Error(), "dust") {
		t.Fatalf("restore of a dust resting order: %v", err)
	}
}
