package matcher

import "hash/maphash"

// idIndex finds open orders by id. It replaces a map[string]uint32 on the
// hot path: every Place looks its id up, and every resting order is inserted
// and later removed, in a table that holds the whole open book (hundreds of
// thousands of entries, far beyond the CPU caches). A Go map compares keys
// through the string header, one more cache miss per probe; here a slot is
// one uint64 holding a 32-bit hash tag and the slab index, so a lookup for an
// absent id (the common case) touches one cache line, and insertions and
// removals (which know the slab index) never compare strings.
//
// Open addressing with linear probing and backward-shift deletion (no
// tombstones), load factor at most 1/2. The hash seed is random per engine,
// like a Go map's: it changes where entries sit, never what is found, and
// nothing iterates the table, so results stay deterministic; it also keeps
// chosen ids from colliding on purpose.
type idIndex struct {
	slots []uint64 // tag<<32 | slab index; 0 = empty (slab index 0 is never used)
	mask  uint32
	n     int
	seed  maphash.Seed
}

const idIndexSlotsMin = 1024

func newIDIndex() idIndex {
	return idIndex{slots: make([]uint64, idIndexSlotsMin), mask: idIndexSlotsMin - 1, seed: maphash.MakeSeed()}
}

// tag returns the 32-bit hash of an id; its low bits pick the home slot.
func (x *idIndex) tag(id string) uint32 { return uint32(maphash.String(x.seed, id)) }

// find returns the slab index of the open order with this id and tag, or 0.
// ids is the engine's slab of order ids.
func (x *idIndex) find(ids []string, id string, tag uint32) uint32 {
	for p := tag & x.mask; ; p = (p + 1) & x.mask {
		s := x.slots[p]
		if s == 0 {
			return 0
		}
		if uint32(s>>32) == tag && ids[uint32(s)] == id {
			return uint32(s)
		}
	}
}

// insert adds slab index i under tag; the caller knows the id is absent.
func (x *idIndex) insert(tag, i uint32) {
	if 2*(x.n+1) > len(x.slots) {
		x.grow()
	}
	x.put(tag, i)
	x.n++
}

func (x *idIndex) put(tag, i uint32) {
	p := tag & x.mask
	for x.slots[p] != 0 {
		p = (p + 1) & x.mask
	}
	x.slots[p] = uint64(tag)<<32 | uint64(i)
}

func (x *idIndex) grow() {
	old := x.slots
	x.slots = make([]uint64, 2*len(old))
	x.mask = uint32(len(x.slots) - 1)
	for _, s := range old {
		if s != 0 {
			x.put(uint32(s>>32), uint32(s))
		}
	}
}

// remove deletes slab index i (present under tag), then shifts back the
// entries after it that would otherwise become unreachable.
func (x *idIndex) remove(tag, i uint32) {
	want := uint64(tag)<<32 | uint64(i)
	p := tag & x.mask
	for x.slots[p] != want {
		if x.slots[p] == 0 {
			panic("matcher: removing an id that is not indexed")
		}
		p = (p + 1) & x.mask
	}
	x.n--
	for {
		x.slots[p] = 0
		q := p
		for {
			q = (q + 1) & x.mask
			s := x.slots[q]
			if s == 0 {
				return
			}
			// Move s into the hole at p unless its home lies cyclically
			// in (p, q]: then it is still reachable where it is.
			home := uint32(s>>32) & x.mask
			if (q-home)&x.mask >= (q-p)&x.mask {
				x.slots[p] = s
				p = q
				break
			}
		}
	}
}
