package replica

import (
	"context"
	"iter"
	"sync"
	"testing"
	"time"

	"github.com/seqbook/seqbook/client"
)

// pageSource serves pages of one batch each, from a chain of `tip`
// batches, and records where each reader started.
type pageSource struct {
	mu     sync.Mutex
	tip    uint64
	starts []uint64
	grow   chan struct{} // a new batch at the tip
}

func hashOf(i uint64) [32]byte { return [32]byte{byte(i), byte(i >> 8), 0xAB} }

func (s *pageSource) pages(ctx context.Context, after uint64, prev [32]byte) iter.Seq2[client.Page, error] {
	s.mu.Lock()
	s.starts = append(s.starts, after)
	s.mu.Unlock()
	return func(yield func(client.Page, error) bool) {
		for next := after + 1; ; next++ {
			for {
				s.mu.Lock()
				tip := s.tip
				s.mu.Unlock()
				if next <= tip {
					break
				}
				select {
				case <-ctx.Done():
					yield(client.Page{}, ctx.Err())
					return
				case <-s.grow:
				}
			}
			b := client.Batch{Index: next, ChainingHash: hashOf(next)}
			if !yield(client.Page{Batches: []client.Batch{b}, Proof: &client.FinalityProof{Index: next, ChainingHash: b.ChainingHash}}, nil) {
				return
			}
		}
	}
}

func (s *pageSource) extend(k uint64) {
	s.mu.Lock()
	s.tip += k
	s.mu.Unlock()
	for {
		select {
		case s.grow <- struct{}{}:
		default:
			return
		}
	}
}

// TestSDKSequencerReadsAhead: Finalized returns every page read ahead by
// the time it is asked (each page's last batch with its proof), waits up
// to its wait for the first one when none is there, and starts reading
// again from the position it is asked for when that is not where the
// last answer ended.
func TestSDKSequencerReadsAhead(t *testing.T) {
	src := &pageSource{tip: 5, grow: make(chan struct{})}
	q := &SDKSequencer{app: "orderbook", pages: src.pages}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	var got []Batch
	for len(got) < 5 {
		bs, err := q.Finalized(ctx, uint64(len(got)), hashAt(got), time.Second)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, bs...)
	}
	for i, b := range got {
		if b.Index != uint64(i+1) || b.Proof == nil || b.Proof.Index != b.Index {
			t.Fatalf("batch %d: %+v", i, b)
		}
	}
	// Nothing new: the wait passes, an empty answer.
	start := time.Now()
	bs, err := q.Finalized(ctx, 5, hashOf(5), 50*time.Millisecond)
	if err != nil || len(bs) != 0 || time.Since(start) < 50*time.Millisecond {
		t.Fatalf("nothing new: %d batches, %v, after %v", len(bs), err, time.Since(start))
	}
	// A batch while it waits: answered at once.
	go func() { time.Sleep(20 * time.Millisecond); src.extend(1) }()
	bs, err = q.Finalized(ctx, 5, hashOf(5), 10*time.Second)
	if err != nil || len(bs) != 1 || bs[0].Index != 6 {
		t.Fatalf("a new batch: %+v, %v", bs, err)
	}
	// Another position (a rebuild from genesis): a new reader from there.
	bs, err = q.Finalized(ctx, 0, [32]byte{}, time.Second)
	if err != nil || len(bs) == 0 || bs[0].Index != 1 {
		t.Fatalf("from genesis again: %+v, %v", bs, err)
	}
	src.mu.Lock()
	starts := append([]uint64(nil), src.starts...)
	src.mu.Unlock()
	if len(starts) != 2 || starts[0] != 0 || starts[1] != 0 {
		t.Fatalf("readers started at %v, want [0 0] (one, then one again for the new position)", starts)
	}
	// The caller's ctx ends: so does the answer.
	cctx, ccancel := context.WithCancel(ctx)
	ccancel()
	if _, err := q.Finalized(cctx, 99, hashOf(99), time.Second); err == nil {
		t.Fatal("a cancelled call answered without an error")
	}
}

// hashAt is the chaining hash of the last batch of bs (zero for none).
func hashAt(bs []Batch) [32]byte {
	if len(bs) == 0 {
		return [32]byte{}
	}
	return bs[len(bs)-1].ChainingHash
}
