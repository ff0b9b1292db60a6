package replica

import (
	"encoding/binary"
	"testing"

	"github.com/ethereum/go-ethereum/common"
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
	if n := accountHexesKept.Load(); n > accountHexesMax {
		t.Fatalf("%d addresses cached, bound %d", n, accountHexesMax)
	}
}
