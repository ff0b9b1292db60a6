package replica

import (
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/ethereum/go-ethereum/common"
)

// The incrementally kept canonical order equals a plain sort of the set
// after any mix of additions (also below the pruning floor), prunes and
// reads.
func TestNonceSetSortedMatchesAFullSort(t *testing.T) {
	for seed := uint64(1); seed <= 20; seed++ {
		rng := rand.New(rand.NewPCG(seed, seed))
		s := newNonceSet()
		var signers []common.Address
		for i := 0; i < 8; i++ {
			var a common.Address
			a[0], a[19] = byte(rng.IntN(256)), byte(i)
			signers = append(signers, a)
		}
		now := uint64(1000)
		for step := 0; step < 2000; step++ {
			switch x := rng.IntN(10); {
			case x < 6:
				k := nonceKey{signers[rng.IntN(len(signers))], uint64(rng.IntN(500))}
				if !s.has(k) {
					// Mostly ahead of the batch time, sometimes behind the
					// pruning floor (what a snapshot restore may add).
					expiry := now + uint64(rng.IntN(50))
					if rng.IntN(20) == 0 {
						expiry = now - uint64(1+rng.IntN(20))
					}
					s.add(k, expiry)
				}
			case x < 8:
				now += uint64(rng.IntN(10))
				s.prune(now)
			default:
				got := s.sorted()
				want := make([]nonceEntry, 0, len(s.used))
				for k, e := range s.used {
					want = append(want, nonceEntry{Signer: k.Signer, Nonce: k.Nonce, Expiry: e})
				}
				slices.SortFunc(want, compareNonceEntries)
				if !slices.Equal(got, want) {
					t.Fatalf("seed %d step %d: incremental order of %d entries differs from a sort of %d", seed, step, len(got), len(want))
				}
			}
		}
	}
}
