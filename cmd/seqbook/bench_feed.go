package main

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/seqbook/seqbook/client"
	"github.com/seqbook/seqbook/client/obapi"
	"github.com/seqbook/seqbook/internal/localnet/load"
)

// feedSubscribers are live feed clients (GET /ws) kept open during a
// benchmark, spread over the replicas, each following the bench market's
// book and trades: what a crowd of market watchers costs the replicas.
type feedSubscribers struct {
	n        int
	messages atomic.Int64 // feed messages received
	updates  atomic.Int64 // book levels changed plus trades received
	bad      atomic.Int64 // messages that did not decode
	cancel   context.CancelFunc
	wg       sync.WaitGroup
	started  time.Time
}

// startFeedSubscribers opens n subscribers and returns once every one has
// its first messages (the book and trades snapshots).
func startFeedSubscribers(ctx context.Context, urls []string, n int) (*feedSubscribers, error) {
	ctx, cancel := context.WithCancel(ctx)
	f := &feedSubscribers{n: n, cancel: cancel}
	var ready sync.WaitGroup
	ready.Add(n)
	for i := range n {
		ob, err := client.NewOrderbook(urls[i%len(urls)])
		if err != nil {
			cancel()
			return nil, err
		}
		f.wg.Add(1)
		go func() {
			defer f.wg.Done()
			snapshots := 0
			err := ob.Subscribe(ctx, []obapi.WSRequest{
				{Channel: obapi.ChannelBook, Market: load.Market},
				{Channel: obapi.ChannelTrades, Market: load.Market},
			}, func(e client.FeedEvent) error {
				f.messages.Add(1)
				switch e.Channel {
				case obapi.ChannelBook:
					b, err := e.Book()
					if err != nil {
						f.bad.Add(1)
					}
					if b.Snapshot {
						if snapshots++; snapshots == 1 {
							ready.Done()
						}
						return nil
					}
					f.updates.Add(int64(len(b.Bids) + len(b.Asks)))
				case obapi.ChannelTrades:
					t, err := e.Trades()
					if err != nil {
						f.bad.Add(1)
					}
					if !t.Snapshot {
						f.updates.Add(int64(len(t.Trades)))
					}
				}
				return nil
			})
			if err != nil && !errors.Is(err, context.Canceled) && snapshots == 0 {
				ready.Done()
			}
		}()
	}
	done := make(chan struct{})
	go func() { ready.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		cancel()
		return nil, fmt.Errorf("bench: %d live feed subscribers did not all get their first message within 30s", n)
	}
	f.started = time.Now()
	return f, nil
}

// reset starts counting again (the phase measured starts now).
func (f *feedSubscribers) reset() {
	f.messages.Store(0)
	f.updates.Store(0)
	f.started = time.Now()
}

// report describes what the subscribers received since reset.
func (f *feedSubscribers) report() string {
	secs := time.Since(f.started).Seconds()
	return fmt.Sprintf("feed: %d subscribers received %d messages carrying %d updates (book levels and trades) in %.1fs: %.0f updates/s fanned out, %.0f messages/s",
		f.n, f.messages.Load(), f.updates.Load(), secs, float64(f.updates.Load())/secs, float64(f.messages.Load())/secs)
}

func (f *feedSubscribers) stop() {
	f.cancel()
	f.wg.Wait()
}
