package load

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/seqbook/seqbook/client"
	"github.com/seqbook/seqbook/client/obapi"
)

// Tracker follows every replica's applied index and remembers when each
// one was first seen at or past each index. Latency "order applied on all
// replicas" is then: the latest, over replicas, of the first time the
// replica's applied index reached the order's batch index.
//
// Follow takes the index from each replica's live feed (the finality
// channel: one message per applied batch, sent once its page is
// committed), so the time recorded is when the replica said so, within
// the loopback's delivery time. Run polls instead, and its resolution is
// the poll interval: a batch is seen on average half an interval after it
// was applied.
//
// Polling reads the index from GET /depth?levels=1 (HTTP.AppliedIndex), not
// GET /state: /state computes the state digest whenever the index moved,
// a walk over the whole state (milliseconds with tens of thousands of
// remembered nonces), and polling that every few milliseconds on every
// replica loaded the replicas more than the orders being measured.
type Tracker struct {
	h    *HTTP
	urls []string

	mu     sync.Mutex
	points [][]point // per replica, applied index strictly increasing
	last   []uint64  // per replica, the latest applied index
	ok     []bool    // per replica, whether the latest poll answered
}

type point struct {
	index uint64
	at    time.Time
}

// pointsMax bounds the history per replica: at the 2 ms poll interval the
// benchmarks use it covers ten minutes of one index change per poll; older
// points are dropped (AppliedAt then answers "not known").
const pointsMax = 300_000

// NewTracker tracks the replicas at these base URLs.
func NewTracker(h *HTTP, replicaURLs []string) *Tracker {
	n := len(replicaURLs)
	return &Tracker{h: h, urls: replicaURLs, points: make([][]point, n), last: make([]uint64, n), ok: make([]bool, n)}
}

// Run polls until ctx ends, each replica in its own goroutine.
func (t *Tracker) Run(ctx context.Context, interval time.Duration) {
	var wg sync.WaitGroup
	for r := range t.urls {
		wg.Add(1)
		go func(r int) {
			defer wg.Done()
			tick := time.NewTicker(interval)
			defer tick.Stop()
			for {
				t.Poll(ctx, r)
				select {
				case <-ctx.Done():
					return
				case <-tick.C:
				}
			}
		}(r)
	}
	wg.Wait()
}

// Follow follows every replica's live feed (GET /ws, the finality
// channel) until ctx ends, each replica in its own goroutine; a dropped
// connection is made again (client.Orderbook.Subscribe). Answered reports
// when every replica's subscription has answered.
func (t *Tracker) Follow(ctx context.Context) error {
	obs := make([]*client.Orderbook, len(t.urls))
	for r, u := range t.urls {
		ob, err := client.NewOrderbook(u)
		if err != nil {
			return err
		}
		obs[r] = ob
	}
	var wg sync.WaitGroup
	errs := make([]error, len(obs))
	for r, ob := range obs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := ob.Subscribe(ctx, []obapi.WSRequest{{Channel: obapi.ChannelFinality}}, func(e client.FeedEvent) error {
				f, err := e.Finality()
				if err != nil {
					return err
				}
				t.record(r, f.Index, time.Now(), nil)
				return nil
			})
			if ctx.Err() == nil {
				errs[r] = fmt.Errorf("%s: live feed: %w", t.urls[r], err)
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// Answered reports whether every replica has answered (a poll, or its
// live feed subscription).
func (t *Tracker) Answered() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, ok := range t.ok {
		if !ok {
			return false
		}
	}
	return true
}

// Poll asks replica r once and records the answer.
func (t *Tracker) Poll(ctx context.Context, r int) {
	qctx, cancel := context.WithTimeout(ctx, time.Second)
	index, err := t.h.AppliedIndex(qctx, t.urls[r])
	cancel()
	t.record(r, index, time.Now(), err)
}

// record notes replica r at index, seen at now (err: it could not say).
func (t *Tracker) record(r int, index uint64, now time.Time, err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.ok[r] = err == nil
	if err != nil {
		return
	}
	t.last[r] = index
	ps := t.points[r]
	if len(ps) == 0 || index > ps[len(ps)-1].index {
		if len(ps) >= pointsMax {
			ps = append(ps[:0], ps[len(ps)/2:]...)
		}
		t.points[r] = append(ps, point{index, now})
	}
}

// AppliedAt returns the first time replica r was seen at or past index.
func (t *Tracker) AppliedAt(r int, index uint64) (time.Time, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	ps := t.points[r]
	i := sort.Search(len(ps), func(i int) bool { return ps[i].index >= index })
	if i == len(ps) {
		return time.Time{}, false
	}
	return ps[i].at, true
}

// AppliedEverywhere returns when the last replica reached index.
func (t *Tracker) AppliedEverywhere(index uint64) (time.Time, bool) {
	var latest time.Time
	for r := range t.urls {
		at, ok := t.AppliedAt(r, index)
		if !ok {
			return time.Time{}, false
		}
		if at.After(latest) {
			latest = at
		}
	}
	return latest, true
}

// Last returns replica r's latest applied index and whether its latest
// poll succeeded.
func (t *Tracker) Last(r int) (uint64, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.last[r], t.ok[r]
}

// MinApplied is the lowest applied index among the replicas' latest
// answers (0 if one has not answered yet).
func (t *Tracker) MinApplied() uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	var m uint64
	for r := range t.urls {
		if !t.ok[r] {
			return 0
		}
		if r == 0 || t.last[r] < m {
			m = t.last[r]
		}
	}
	return m
}

// Converged is the agreement of all replicas at one applied index.
type Converged struct {
	Index  uint64
	Digest string
	States []obapi.State
}

// WaitConverged polls every replica until all answer with nothing pending,
// the same applied index and the same state digest, and that index is at
// least minIndex. It fails at the deadline of ctx, describing where each
// replica stands.
//
// GET /state computes the state digest, whose cost grows with the state,
// and a benchmark measures the replicas' CPU while it waits here; so each
// poll first reads the applied indexes cheaply (AppliedIndex) and asks for
// the states only once every replica is at the same index as at the
// previous poll. A replica that cannot answer AppliedIndex is asked for
// its state at once.
func WaitConverged(ctx context.Context, h *HTTP, replicaURLs []string, minIndex uint64) (Converged, error) {
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	var last []string
	var prevIndex uint64
	for {
		at, equal, err := sameAppliedIndex(ctx, h, replicaURLs)
		if err == nil && (!equal || at != prevIndex || at < minIndex) {
			prevIndex = at
			if !equal {
				prevIndex = 0
			}
			last = []string{fmt.Sprintf("applied indexes not yet equal and settled (last read %d)", at)}
			select {
			case <-ctx.Done():
				return Converged{}, errors.New("replicas did not converge: " + strings.Join(last, "; "))
			case <-tick.C:
			}
			continue
		}
		states := make([]obapi.State, len(replicaURLs))
		agree := true
		last = last[:0]
		for r, u := range replicaURLs {
			qctx, cancel := context.WithTimeout(ctx, time.Second)
			s, err := h.State(qctx, u)
			cancel()
			if err != nil {
				agree = false
				last = append(last, fmt.Sprintf("%s: %v", u, err))
				continue
			}
			states[r] = s
			last = append(last, fmt.Sprintf("%s: index %d digest %s pending %d", s.Replica, s.AppliedIndex, ShortHash(s.StateDigest), s.Pending))
			if s.Pending != 0 || s.AppliedIndex < minIndex ||
				s.AppliedIndex != states[0].AppliedIndex || s.StateDigest != states[0].StateDigest {
				agree = false
			}
		}
		if agree {
			return Converged{Index: states[0].AppliedIndex, Digest: states[0].StateDigest, States: states}, nil
		}
		select {
		case <-ctx.Done():
			return Converged{}, errors.New("replicas did not converge: " + strings.Join(last, "; "))
		case <-tick.C:
		}
	}
}

// sameAppliedIndex reads every replica's applied index: equal says they
// all answered the same one (index). An error means a replica could not
// say; the caller then asks for the states.
func sameAppliedIndex(ctx context.Context, h *HTTP, replicaURLs []string) (index uint64, equal bool, err error) {
	equal = true
	for r, u := range replicaURLs {
		qctx, cancel := context.WithTimeout(ctx, time.Second)
		i, err := h.AppliedIndex(qctx, u)
		cancel()
		if err != nil {
			return 0, false, err
		}
		if r > 0 && i != index {
			equal = false
		}
		index = i
	}
	return index, equal, nil
}

// ShortHash abbreviates a 0x hash for progress lines: "0x1234abcd…".
func ShortHash(h string) string {
	if len(h) > 12 {
		return h[:10] + "…"
	}
	return h
}

// Percentile returns the p-th percentile (0..100) of sorted durations by
// the nearest-rank method.
func Percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(math.Ceil(p/100*float64(len(sorted)))) - 1
	if rank < 0 {
		rank = 0
	}
	if rank >= len(sorted) {
		rank = len(sorted) - 1
	}
	return sorted[rank]
}

// MaxGap is the longest time replica r's applied index stood still within
// [from, to] (a pause under way at `to` counts up to `to`), as seen at the
// tracker's poll resolution.
func (t *Tracker) MaxGap(r int, from, to time.Time) time.Duration {
	gap, _ := t.longestPause(r, from, to)
	return gap
}

// MaxGapEnd is when the longest pause of MaxGap(r, from, to) ended (to
// when it was still under way): after a fault at `from`, when the
// replica applied again once the fault's pause was over.
func (t *Tracker) MaxGapEnd(r int, from, to time.Time) time.Time {
	_, end := t.longestPause(r, from, to)
	return end
}

func (t *Tracker) longestPause(r int, from, to time.Time) (time.Duration, time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	var gap time.Duration
	var end time.Time
	prev := from
	for _, p := range t.points[r] {
		if p.at.Before(from) {
			continue
		}
		if p.at.After(to) {
			break
		}
		if d := p.at.Sub(prev); d > gap {
			gap, end = d, p.at
		}
		prev = p.at
	}
	if d := to.Sub(prev); d > gap || end.IsZero() {
		gap, end = max(gap, d), to
	}
	return gap, end
}
