package replica

import (
	"context"
	"fmt"
	"sync"

	"github.com/seqbook/seqbook/client/obapi"
)

// Rebuilding (docs/verification.md, "While a replica rebuilds"). A replica
// whose stored state failed its integrity checks, or whose state digest
// differs from a quorum's, is started again from genesis with
// Config.Rebuild saying why (cmd/seqbook sets the old database aside).
// Its state is then partial: it serves unsigned reads and says so in
// GET /state, but answers every signed read with 503 until the rebuild
// ends, which is when
//
//   - it has applied every batch finalized when the rebuild began (the
//     sequencer's verified head, read at the start of Run), and
//   - if it has peers and that history reaches an attestation index, a
//     quorum of replicas (itself included) attested the same state digest
//     at that index or a later one.
//
// Its state is then vouched for by the sequencer's finality proofs and, as
// far as attestations go, by the other replicas. The store records that a
// rebuild is under way (Store.SetRebuilding) until it ends, so a replica
// restarted in the middle of one rebuilds on: its partial state passes the
// integrity checks, but it is still not one to sign from. A rebuilt state that
// still differs from a quorum's (another genesis, another build) is thus
// never signed: the attestations catch it first.

// rebuilder is the rebuild's progress. Safe for concurrent use.
type rebuilder struct {
	mu     sync.Mutex
	reason string // why the state is rebuilt; empty when not rebuilding (any more)
	known  bool   // target and attestAt are known
	// target is the sequencer's finalized head when the rebuild began.
	target uint64
	// attestAt is the attestation index a quorum must have agreed on
	// (0: none to wait for).
	attestAt uint64
}

func (b *rebuilder) active() bool { b.mu.Lock(); defer b.mu.Unlock(); return b.reason != "" }

// rebuildStatus returns the rebuild's progress for GET /state, or nil when
// the replica is not rebuilding.
func (r *Replica) rebuildStatus() *obapi.Rebuilding {
	b := &r.rb
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.reason == "" {
		return nil
	}
	return &obapi.Rebuilding{Reason: b.reason, TargetIndex: b.target, AttestIndex: b.attestAt}
}

// rebuildProgress says in words what a rebuild still waits for.
func (r *Replica) rebuildProgress(st *obapi.Rebuilding) string {
	applied := r.Applied()
	switch {
	case st.TargetIndex == 0:
		return fmt.Sprintf("applied index %d; the sequencer's finalized head is not known yet", applied)
	case applied < st.TargetIndex:
		return fmt.Sprintf("applied index %d of %d", applied, st.TargetIndex)
	default:
		return fmt.Sprintf("applied index %d; waiting for a quorum of replicas to attest the same state digest at index %d", applied, st.AttestIndex)
	}
}

// learnRebuildTarget reads the sequencer's finalized head, retrying until
// it answers, and makes it the rebuild's target (Run, while rebuilding).
func (r *Replica) learnRebuildTarget(ctx context.Context) {
	backoff := r.cfg.PollInterval
	for ctx.Err() == nil {
		head, err := r.seq.FinalizedHead(ctx)
		if err == nil {
			var attestAt uint64
			if len(r.cfg.Peers) > 0 {
				attestAt = head - head%r.cfg.AttestEvery
			}
			r.rb.mu.Lock()
			r.rb.target, r.rb.attestAt, r.rb.known = head, attestAt, true
			r.rb.mu.Unlock()
			r.log.Info("rebuilding: signing nothing until the sequencer's finalized head is applied", "head", head, "attest_index", attestAt)
			r.checkRebuilt()
			return
		}
		if ctx.Err() != nil {
			return
		}
		r.log.Warn("rebuilding: reading the sequencer's finalized head", "err", err)
		sleep(ctx, backoff)
		backoff = min(2*backoff, r.cfg.PollBackoffMax)
	}
}

// checkRebuilt ends the rebuild once its conditions hold. It is called
// after each event that can make them hold (the target learned, a page
// applied, an attestation agreed), each time after the event's update, so
// none is missed.
func (r *Replica) checkRebuilt() {
	applied, agreed := r.Applied(), r.att.checkedIndex()
	b := &r.rb
	b.mu.Lock()
	done := b.reason != "" && b.known && applied >= b.target && agreed >= b.attestAt
	if done {
		b.reason = ""
	}
	target := b.target
	b.mu.Unlock()
	if done {
		// A crash before this line rebuilds on after the restart, and
		// finds the conditions hold again as soon as it has reapplied
		// what it had not committed.
		if err := r.store.SetRebuilding(""); err != nil {
			r.log.Warn("rebuilt, but clearing the rebuild marker failed: a restart will wait for the rebuild's conditions again", "err", err)
		}
		r.log.Info("rebuilt from the sequencer's verified history; signing again", "applied", applied, "head_at_start", target, "attested_index", agreed)
	}
}
