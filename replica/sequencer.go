package replica

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/seqbook/seqbook/client/eip712"
)

// Sequencer is the replica's port to the sequencer cluster (STYLE §3): two
// implementations, the client SDK over HTTP (SDKSequencer) and MemSequencer
// for tests.
type Sequencer interface {
	// Send submits one batch body for the replica's app. A nil error means
	// a node accepted it (it is not sequenced yet). An error wrapping
	// ErrBatchRefused means no node took it, for sure; any other error
	// leaves the outcome unknown (a node may hold the batch).
	Send(ctx context.Context, body []byte) error
	// Finalized returns finalized batches after index `after`, whose
	// chaining hash is prev, verified (hashes, chaining, finality proof):
	// consecutive from after+1. When nothing after `after` is finalized it
	// waits up to wait for a batch to be (a long-poll), then returns
	// empty.
	Finalized(ctx context.Context, after uint64, prev [32]byte, wait time.Duration) ([]Batch, error)
	// FinalizedHead returns the highest index finalized for the replica's
	// app, verified (a quorum's finality proof); 0 when none is. A
	// rebuilding replica signs nothing before it has applied up to it.
	FinalizedHead(ctx context.Context) (uint64, error)
}

// BatchHash is keccak256(uint64be(timestampMs) ‖ body) (DESIGN §4).
func BatchHash(timestampMs uint64, body []byte) [32]byte {
	var ts [8]byte
	binary.BigEndian.PutUint64(ts[:], timestampMs)
	return eip712.Keccak256(ts[:], body)
}

// NextChainingHash is keccak256(prev ‖ batchHash) (DESIGN §4).
func NextChainingHash(prev, batchHash [32]byte) [32]byte {
	return eip712.Keccak256(prev[:], batchHash[:])
}

// ErrBatchRefused marks a failed Send whose batch provably no node took
// (every node tried answered with a refusal), so it will not be sequenced
// unless sent again.
var ErrBatchRefused = errors.New("no sequencer node took the batch")

// errChain reports batches that do not extend what the replica applied.
var errChain = errors.New("sequencer returned batches that do not extend the applied chain")

// checkChain re-checks, cheaply, that batches extend (after, prev): the
// adapter already verified them, but applying a batch that does not follow
// would corrupt the state, so the replica never takes that on trust.
func checkChain(after uint64, prev [32]byte, bs []Batch) error {
	if err := chainBreak(after, prev, bs); err != nil {
		return fmt.Errorf("%w: %v", errChain, err)
	}
	return nil
}

// chainBreak says where bs fails to extend (after, prev), or nil.
func chainBreak(after uint64, prev [32]byte, bs []Batch) error {
	for _, b := range bs {
		if b.Index != after+1 {
			return fmt.Errorf("index %d after %d", b.Index, after)
		}
		want := NextChainingHash(prev, BatchHash(b.Timestamp, b.Body))
		if want != b.ChainingHash {
			return fmt.Errorf("chaining hash at %d", b.Index)
		}
		after, prev = b.Index, b.ChainingHash
	}
	return nil
}

// MemSequencer is an in-memory sequencer: every Send is sequenced and
// finalized at once as the next batch, stamped by a caller-supplied clock.
// Tests drive it (Append adds any body, valid or not; Hold/Release delay
// finality) and share one between several replicas.
type MemSequencer struct {
	mu      sync.Mutex
	clockMs func() uint64
	batches []Batch
	// finalized is how many batches Finalized serves; Hold freezes it.
	finalized int
	held      bool
	sendErr   error
	dropSends bool
	pageMax   int
	// grown is closed (and replaced) when finalized grows, waking
	// Finalized calls that wait.
	grown chan struct{}
}

var _ Sequencer = (*MemSequencer)(nil)

// NewMemSequencer returns an empty sequencer whose batch timestamps come
// from clockMs (clamped never to decrease).
func NewMemSequencer(clockMs func() uint64) *MemSequencer {
	return &MemSequencer{clockMs: clockMs, pageMax: 100, grown: make(chan struct{})}
}

// Send implements Sequencer.
func (s *MemSequencer) Send(ctx context.Context, body []byte) error {
	s.mu.Lock()
	err, drop := s.sendErr, s.dropSends
	s.mu.Unlock()
	if err != nil || drop {
		return err
	}
	s.Append(s.clockMs(), body)
	return nil
}

// DropSends makes Send answer success and lose the batch, like a node that
// accepts a batch and crashes before the leader sequences it.
func (s *MemSequencer) DropSends(drop bool) { s.mu.Lock(); s.dropSends = drop; s.mu.Unlock() }

// Append sequences a body at timestampMs (raised to the previous batch's
// if lower) and returns its index.
func (s *MemSequencer) Append(timestampMs uint64, body []byte) uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	var prev [32]byte
	if n := len(s.batches); n > 0 {
		prev = s.batches[n-1].ChainingHash
		timestampMs = max(timestampMs, s.batches[n-1].Timestamp)
	}
	b := Batch{Index: uint64(len(s.batches) + 1), Timestamp: timestampMs, Body: slices.Clone(body)}
	b.ChainingHash = NextChainingHash(prev, BatchHash(timestampMs, body))
	s.batches = append(s.batches, b)
	if !s.held {
		s.finalizeAllLocked()
	}
	return b.Index
}

// SetPageMax sets how many batches one Finalized call returns at most.
func (s *MemSequencer) SetPageMax(n int) { s.mu.Lock(); s.pageMax = max(1, n); s.mu.Unlock() }

// Hold stops finalizing: later batches are sequenced but not served.
func (s *MemSequencer) Hold() { s.mu.Lock(); s.held = true; s.mu.Unlock() }

// Release finalizes everything sequenced.
func (s *MemSequencer) Release() {
	s.mu.Lock()
	s.held = false
	s.finalizeAllLocked()
	s.mu.Unlock()
}

// FailSends makes Send return err (nil to heal).
func (s *MemSequencer) FailSends(err error) { s.mu.Lock(); s.sendErr = err; s.mu.Unlock() }

// Len returns how many batches were sequenced.
func (s *MemSequencer) Len() int { s.mu.Lock(); defer s.mu.Unlock(); return len(s.batches) }

// Batches returns a copy of every sequenced batch.
func (s *MemSequencer) Batches() []Batch {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.batches)
}

func (s *MemSequencer) finalizeAllLocked() {
	s.finalized = len(s.batches)
	close(s.grown)
	s.grown = make(chan struct{})
}

// FinalizedHead implements Sequencer.
func (s *MemSequencer) FinalizedHead(context.Context) (uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return uint64(s.finalized), nil
}

// Finalized implements Sequencer.
func (s *MemSequencer) Finalized(ctx context.Context, after uint64, prev [32]byte, wait time.Duration) ([]Batch, error) {
	var deadline <-chan time.Time
	if wait > 0 {
		t := time.NewTimer(wait)
		defer t.Stop()
		deadline = t.C
	}
	for {
		s.mu.Lock()
		if after > uint64(s.finalized) {
			s.mu.Unlock()
			return nil, fmt.Errorf("asked after %d, only %d finalized", after, s.finalized)
		}
		if after > 0 && s.batches[after-1].ChainingHash != prev {
			s.mu.Unlock()
			return nil, fmt.Errorf("chaining hash at %d differs from the caller's", after)
		}
		end := min(s.finalized, int(after)+s.pageMax)
		out, grown := slices.Clone(s.batches[after:end]), s.grown
		s.mu.Unlock()
		if len(out) > 0 || deadline == nil {
			return out, nil
		}
		select {
		case <-grown:
		case <-deadline:
			return nil, nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}
