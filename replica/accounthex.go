package replica

import (
	"sync"
	"sync/atomic"

	"github.com/ethereum/go-ethereum/common"
)

// The matcher keys accounts by their checksummed hex (EIP-55), and every
// order needs it several times: at intake (balance and open-order checks,
// the batch entry) and on every replica's apply path. The checksum is a
// keccak of the address, so the strings of the traders seen are kept.
//
// Why it stays bounded: at most accountHexesMax addresses are kept (the
// first ones seen); past that the checksum is computed on every call, as
// before. The cache changes no result, only the cost.
const accountHexesMax = 1 << 14

var (
	accountHexes     sync.Map // common.Address → string
	accountHexesKept atomic.Int64
)

// accountHex is a.Hex(), the EIP-55 checksummed form, cached.
func accountHex(a common.Address) string {
	if s, ok := accountHexes.Load(a); ok {
		return s.(string)
	}
	s := a.Hex()
	if accountHexesKept.Load() < accountHexesMax {
		if _, loaded := accountHexes.LoadOrStore(a, s); !loaded {
			accountHexesKept.Add(1)
		}
	}
	return s
}
