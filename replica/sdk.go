package replica

import (
	"context"
	"fmt"
	"iter"
	"sync"
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
	// pages is where verified pages come from: s.Pages (tests give
	// their own).
	pages func(ctx context.Context, after uint64, prev [32]byte) iter.Seq2[client.Page, error]

	mu  sync.Mutex
	fol *pageFollower // the pages being read ahead; nil before the first Finalized
}

// pageFollower reads verified pages ahead (client.Sequencer.Pages: a
// stream from one node at a time) into pages, from the position after
// the last page Finalized returned.
type pageFollower struct {
	after  uint64
	prev   [32]byte
	pages  chan client.Page
	cancel context.CancelFunc
}

// pagesAhead bounds the pages read ahead of the replica (a page is at
// most about 4 MiB of batch bodies: 32 MiB while catching up).
const pagesAhead = 8

func (q *SDKSequencer) follow(ctx context.Context, after uint64, prev [32]byte) *pageFollower {
	fctx, cancel := context.WithCancel(ctx)
	f := &pageFollower{after: after, prev: prev, pages: make(chan client.Page, pagesAhead), cancel: cancel}
	go func() {
		defer close(f.pages)
		for page, err := range q.pages(fctx, after, prev) {
			if err != nil {
				return // only ctx's: the replica stops, or follows from elsewhere
			}
			select {
			case f.pages <- page:
			case <-fctx.Done():
				return
			}
		}
	}()
	return f
}

var _ Sequencer = (*SDKSequencer)(nil)

// NewSDKSequencer follows c's app through the client SDK. A replica passes
// client.WithSpread(its index) and client.WithLeaderFirst (see
// docs/operations.md, "How replicas choose nodes").
func NewSDKSequencer(c *cluster.Cluster, opts ...client.Option) *SDKSequencer {
	q := &SDKSequencer{s: client.NewSequencer(c, opts...), app: c.App}
	q.pages = func(ctx context.Context, after uint64, prev [32]byte) iter.Seq2[client.Page, error] {
		return q.s.Pages(ctx, q.app, after, prev)
	}
	return q
}

// Send implements Sequencer.
func (q *SDKSequencer) Send(ctx context.Context, body []byte) error {
	err := q.s.Send(ctx, q.app, body)
	if err != nil && !client.MaybeTaken(err) {
		return fmt.Errorf("%w: %w", ErrBatchRefused, err)
	}
	return err
}

// Finalized implements Sequencer. The pages come from a reader that runs
// ahead (a stream of pages, see client.WithStream): it returns every page
// read ahead by now, or waits up to wait for the first one. The reader
// lives as long as the ctx of the call that started it, and is started
// again from (after, prev) when a call asks for another position.
func (q *SDKSequencer) Finalized(ctx context.Context, after uint64, prev [32]byte, wait time.Duration) ([]Batch, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	f := q.fol
	if f == nil || f.after != after || f.prev != prev {
		if f != nil {
			f.cancel()
		}
		f = q.follow(ctx, after, prev)
		q.fol = f
	}
	var out []Batch
	add := func(page client.Page) {
		for _, b := range page.Batches {
			out = append(out, Batch{Index: b.Index, Timestamp: b.Timestamp, Body: b.Body, ChainingHash: b.ChainingHash})
		}
		if p := page.Proof; p != nil {
			out[len(out)-1].Proof = &BatchProof{Index: p.Index, View: p.View, Signers: p.Signers}
		}
		last := page.Batches[len(page.Batches)-1]
		f.after, f.prev = last.Index, last.ChainingHash
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case page, ok := <-f.pages:
		if !ok {
			q.fol = nil // the reader ended with its ctx: the next call starts one
			return nil, ctx.Err()
		}
		add(page)
	case <-t.C:
		return nil, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	for len(out) < pageBatchesTaken {
		select {
		case page, ok := <-f.pages:
			if !ok {
				q.fol = nil
				return out, nil
			}
			add(page)
		default:
			return out, nil
		}
	}
	return out, nil
}

// pageBatchesTaken: Finalized stops taking pages read ahead past this many
// batches (the replica applies what one call returns in one transaction).
const pageBatchesTaken = 1000

// FinalizedHead implements Sequencer: the index of the verified finality
// proof a node offers as its highest (client.Sequencer.LastFinalized).
func (q *SDKSequencer) FinalizedHead(ctx context.Context) (uint64, error) {
	p, err := q.s.LastFinalized(ctx, q.app)
	if err != nil || p == nil {
		return 0, err
	}
	return p.Index, nil
}
