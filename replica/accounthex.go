package replica

import (
	"sync"

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

// A map under a read-write lock rather than a sync.Map: a sync.Map key is
// an interface, and boxing an address allocates on every lookup.
var accountHexes = struct {
	sync.RWMutex
	m map[common.Address]string
}{m: map[common.Address]string{}}

// accountHex is a.Hex(), the EIP-55 checksummed form, cached.
func accountHex(a common.Address) string {
	accountHexes.RLock()
	s, ok := accountHexes.m[a]
	accountHexes.RUnlock()
	if ok {
		return s
	}
	s = a.Hex()
	accountHexes.Lock()
	if len(accountHexes.m) < accountHexesMax {
		accountHexes.m[a] = s
	}
	accountHexes.Unlock()
	return s
}

// accountHexesKept is how many addresses the cache holds.
func accountHexesKept() int {
	accountHexes.RLock()
	defer accountHexes.RUnlock()
	return len(accountHexes.m)
}
