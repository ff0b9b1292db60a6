package matcher

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// TestIDIndexAgainstMap drives the open-addressing index through inserts and
// removals, with growth and wrap-around, comparing it with a Go map after
// every step. Tags are squeezed into few bits so collisions and long probe
// runs are the norm, which is where backward-shift deletion can go wrong.
func TestIDIndexAgainstMap(t *testing.T) {
	// orBits set high tag bits: homes at the end of the table, so probe
	// runs wrap around to slot 0.
	for _, c := range []struct {
		tagBits uint
		orBits  uint32
	}{{4, 0}, {12, 0}, {32, 0}, {4, 0xFFFFFFF0}, {32, 0xFFFFFF00}} {
		tagBits := c.tagBits
		rng := rand.New(rand.NewPCG(uint64(tagBits), 7))
		x := newIDIndex()
		orders := make([]order, 1, 5000) // slab: index 0 unused
		ids := make([]string, 1, 5000)
		want := map[string]uint32{}
		var live []uint32
		for step := range 20_000 {
			if len(live) > 0 && (rng.IntN(2) == 0 || len(live) > 3000) {
				k := rng.IntN(len(live))
				i := live[k]
				live[k] = live[len(live)-1]
				live = live[:len(live)-1]
				x.remove(orders[i].tag, i)
				delete(want, ids[i])
				ids[i] = "" // freed
			} else {
				id := fmt.Sprintf("id-%d", step)
				tag := x.tag(id)&(1<<tagBits-1) | c.orBits
				if x.find(ids, id, tag) != 0 {
					t.Fatalf("absent id %s found", id)
				}
				orders = append(orders, order{tag: tag})
				ids = append(ids, id)
				i := uint32(len(orders) - 1)
				x.insert(tag, i)
				want[id] = i
				live = append(live, i)
			}
			if x.n != len(want) {
				t.Fatalf("bits %d step %d: n=%d want %d", tagBits, step, x.n, len(want))
			}
			if step%97 == 0 {
				for _, i := range live {
					if got := x.find(ids, ids[i], orders[i].tag); got != i {
						t.Fatalf("bits %d step %d: find(%s) = %d, want %d", tagBits, step, ids[i], got, i)
					}
				}
			}
		}
	}
}
