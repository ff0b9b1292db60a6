package replica

import (
	"context"
	"fmt"
	"time"

	"github.com/seqbook/seqbook/client"
	"github.com/seqbook/seqbook/client/cluster"
)

// SDKSequencer is the Sequencer over the network: the client SDK's
// trustless follower. It sends batches to any node (trying the others when
// one fails) and reads finalized pages from any node, verifying batch
// hashes, the chaining hash and the quorum's BLS finality signature itself,
// so the replica trusts no single node.
type SDKSequencer struct {
	s   *client.Sequencer
	app string
}

var _ Sequencer = (*SDKSequencer)(nil)

// NewSDKSequencer follows c's app through the client SDK. A replica passes
// client.WithSpread(its index) and client.WithLeaderFirst (see
// docs/operations.md, "How replicas choose nodes").
func NewSDKSequencer(c *cluster.Cluster, opts ...client.Option) *SDKSequencer {
	return &SDKSequencer{s: client.NewSequencer(c, opts...), app: c.App}
}

// Send implements Sequencer.
func (q *SDKSequencer) Send(ctx context.Context, body []byte) error {
	err := q.s.Send(ctx, q.app, body)
	if err != nil && !client.MaybeTaken(err) {
		return fmt.Errorf("%w: %w", ErrBatchRefused, err)
	}
	return err
}

// Finalized implements Sequencer.
func (q *SDKSequencer) Finalized(ctx context.Context, after uint64, prev [32]byte, wait time.Duration) ([]Batch, error) {
	page, err := q.s.FinalizedWait(ctx, q.app, after, prev, wait)
	if err != nil {
		return nil, err
	}
	out := make([]Batch, len(page.Batches))
	for i, b := range page.Batches {
		out[i] = Batch{Index: b.Index, Timestamp: b.Timestamp, Body: b.Body, ChainingHash: b.ChainingHash}
	}
	if p := page.Proof; p != nil && len(out) > 0 {
		out[len(out)-1].Proof = &BatchProof{Index: p.Index, View: p.View, Signers: p.Signers}
	}
	return out, nil
}

// FinalizedHead implements Sequencer: the index of the verified finality
// proof a node offers as its highest (client.Sequencer.LastFinalized).
func (q *SDKSequencer) FinalizedHead(ctx context.Context) (uint64, error) {
	p, err := q.s.LastFinalized(ctx, q.app)
	if err != nil || p == nil {
		return 0, err
	}
	return p.Index, nil
}
