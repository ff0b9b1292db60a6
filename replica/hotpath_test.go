package replica

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/ethereum/go-ethereum/common"

	"github.com/seqbook/seqbook/internal/matcher"
)

// accountHex gives a.Hex() whether or not the address is cached, and the
// cache stops growing at its bound.
func TestAccountHexIsExactAndBounded(t *testing.T) {
	for i := 0; i < accountHexesMax+100; i++ {
		var a common.Address
		binary.BigEndian.PutUint64(a[4:], uint64(i)*0x9e3779b97f4a7c15)
		for range 2 { // a miss, then a hit (or a miss past the bound)
			if got, want := accountHex(a), a.Hex(); got != want {
				t.Fatalf("accountHex(%x) = %s, want %s", a, got, want)
			}
		}
	}
	if n := accountHexesKept(); n > accountHexesMax {
		t.Fatalf("%d addresses cached, bound %d", n, accountHexesMax)
	}
}

// An order's hand-written wire form is encoding/json's, also for markets
// that encoding/json escapes (they take its path).
func TestWireOrderIsEncodingJSON(t *testing.T) {
	for _, market := range []string{"ETH/USDT", "A&B/C", "<x>/y", "é/USDT", `q"/r`, "tab\t/x", "\x7f/x", ""} {
		op := &Op{Kind: OpOrder, Signer: common.HexToAddress("0x89386eE2ccc6588062fe0B8a9841A0e297Cb423E"),
			Sig: []byte{0, 1, 0xab, 0xff}, Nonce: 18446744073709551615, Expiry: 0, Market: market,
			Side: matcher.Sell, OrderType: matcher.PostOnly, Quantity: 1, Price: 2000_000_000}
		if fast, slow := op.Wire(), op.wireJSON(); !bytes.Equal(fast, slow) {
			t.Errorf("market %q: wire form %s, encoding/json writes %s", market, fast, slow)
		}
	}
}
