package replica

import (
	"errors"
	"fmt"
	"sort"
)

// balanceKey is an (account, token) pair; account is the checksummed hex
// address, as the matcher names accounts.
type balanceKey struct {
	Account string
	Token   string
}

// balanceChange is one batch's effect on one balance (available + reserved).
type balanceChange struct {
	Index         uint64
	Before, After uint64
}

// balanceHistory answers "what was this balance at applied index N" for the
// last WindowIndexes applied indexes (GET /balance?index=N).
//
// Only changes are stored, per key in index order. A key with no change at
// or before N but with later ones had the value Before of its first kept
// change; a key without any kept change has its current value. Why the
// memory bound holds: entries older than the window are dropped every
// batch, so the history holds the changes of the last WindowIndexes batches
// (each batch changes at most a few balances per operation, and a batch is
// at most 1 MiB).
type balanceHistory struct {
	window uint64
	// floor is the oldest index answered: the index the history started at
	// (genesis, or the snapshot a restart resumed from) or applied-window.
	floor   uint64
	changes map[balanceKey][]balanceChange
	// order lists (index, key) of every kept change in index order, so
	// pruning finds the old entries without walking every key.
	order []orderedChange
	head  int
}

type orderedChange struct {
	index uint64
	key   balanceKey
}

func newBalanceHistory(window, start uint64) *balanceHistory {
	return &balanceHistory{window: window, floor: start, changes: map[balanceKey][]balanceChange{}}
}

// record notes a change applied at index. Changes come in index order.
func (h *balanceHistory) record(k balanceKey, index, before, after uint64) {
	h.changes[k] = append(h.changes[k], balanceChange{Index: index, Before: before, After: after})
	h.order = append(h.order, orderedChange{index, k})
}

// advance moves the window after index `applied` was applied.
func (h *balanceHistory) advance(applied uint64) {
	if applied > h.window && applied-h.window > h.floor {
		h.floor = applied - h.window
	}
	// Drop changes at or before the floor: a read at N >= floor that finds
	// no change <= N uses the Before of the first kept change, which equals
	// the After of the dropped one.
	for h.head < len(h.order) && h.order[h.head].index <= h.floor {
		k := h.order[h.head].key
		cs := h.changes[k]
		if len(cs) <= 1 {
			delete(h.changes, k)
		} else {
			h.changes[k] = cs[1:]
		}
		h.order[h.head] = orderedChange{}
		h.head++
	}
	if h.head > 4096 && h.head > len(h.order)/2 {
		h.order = append([]orderedChange(nil), h.order[h.head:]...)
		h.head = 0
	}
}

// Errors of a historical read.
var (
	errIndexAhead = errors.New("index not applied yet")
	errIndexGone  = errors.New("index older than the kept balance history")
)

// at returns the balance of k at index n given its current value and the
// applied index.
func (h *balanceHistory) at(k balanceKey, n, applied, current uint64) (uint64, error) {
	if n > applied {
		return 0, fmt.Errorf("%w: asked %d, applied %d", errIndexAhead, n, applied)
	}
	if n < h.floor {
		return 0, fmt.Errorf("%w: asked %d, history starts at %d (applied %d)", errIndexGone, n, h.floor, applied)
	}
	cs := h.changes[k]
	if len(cs) == 0 {
		return current, nil
	}
	// The last change at or before n.
	i := sort.Search(len(cs), func(i int) bool { return cs[i].Index > n })
	if i == 0 {
		return cs[0].Before, nil
	}
	return cs[i-1].After, nil
}
