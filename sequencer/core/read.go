package core

import (
	"errors"
	"fmt"

	"github.com/seqbook/seqbook/sequencer/wire"
)

// pageGapBatchesMax bounds a page that has to run past the caller's bounds
// because no finalize proof lies within them. Honest leaders cut rounds at
// RoundBatchesMax and sync replies carry every proof of their range, so a
// gap this large means a store that lost proofs: refuse rather than read an
// unbounded run.
const pageGapBatchesMax = wire.MaxBatchesPerMessage

// ErrNoProofInRange is returned by ReadFinalized when no finalize proof
// exists within pageGapBatchesMax batches after the requested index.
var ErrNoProofInRange = errors.New("no finalize proof near the requested index")

// ReadFinalized returns the finalized batches of app after index after:
// at most batchesMax batches and about bytesMax body bytes, cut at the last
// index for which the store holds a finalize proof, with that proof. If
// the first proof after `after` lies beyond the bounds, the page runs to it
// (one finalization round; rounds are bounded by RoundBatchesMax and
// RoundBytesMax). An empty page carries the app's last proof (nil if none).
// Safe for concurrent use if r is.
func ReadFinalized(r LogReader, app string, after uint64, batchesMax, bytesMax int) (Page, error) {
	page := Page{App: app}
	if batchesMax <= 0 || bytesMax <= 0 {
		return page, errors.New("read finalized: page bounds must be positive")
	}
	last, ok, err := r.LastProof(app)
	if err != nil {
		return page, err
	}
	if !ok {
		return page, nil
	}
	if last.Index <= after {
		page.Proof = &last
		return page, nil
	}
	count := min(uint64(batchesMax), last.Index-after)
	entries, err := r.Entries(app, after+1, int(count), bytesMax)
	if err != nil {
		return page, err
	}
	if len(entries) == 0 {
		return page, fmt.Errorf("read finalized: %s: store has a proof at %d but no entry %d", app, last.Index, after+1)
	}
	end := entries[len(entries)-1].Index
	proofs, err := r.Proofs(app, after+1, end, int(end-after))
	if err != nil {
		return page, err
	}
	if len(proofs) > 0 {
		p := proofs[len(proofs)-1]
		page.Entries = entries[:p.Index-after]
		page.Proof = &p
		return page, nil
	}
	// No proof within the bounds: run to the next one.
	next, err := r.Proofs(app, end+1, last.Index, 1)
	if err != nil {
		return page, err
	}
	if len(next) == 0 || next[0].Index-after > pageGapBatchesMax {
		return page, fmt.Errorf("%w: %s after %d", ErrNoProofInRange, app, after)
	}
	p := next[0]
	entries, err = r.Entries(app, after+1, int(p.Index-after), int(^uint(0)>>1))
	if err != nil {
		return page, err
	}
	if uint64(len(entries)) != p.Index-after {
		return page, fmt.Errorf("read finalized: %s: store misses entries before proof %d", app, p.Index)
	}
	page.Entries = entries
	page.Proof = &p
	return page, nil
}

// LastFinalized returns the app's last finalize proof, nil if nothing is
// final. Safe for concurrent use if r is.
func LastFinalized(r LogReader, app string) (*wire.Proof, error) {
	p, ok, err := r.LastProof(app)
	if err != nil || !ok {
		return nil, err
	}
	return &p, nil
}
