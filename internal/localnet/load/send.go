package load

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// Outcome is what happened to one posted order.
type Outcome struct {
	// Scheduled is when the order was due (open loop) or taken (closed
	// loop); Answered when the replica's answer arrived.
	Scheduled time.Time
	Answered  time.Time
	Replica   int
	Accepted  bool
	// Code is the HTTP status of a refusal (0 for a network error).
	Code int
	Err  string
	// Index is the batch that carried the order (waited posts only).
	Index  uint64
	Status string
	// Resent counts the resends after a broken connection (docs/api.md,
	// "Retrying").
	Resent int
}

// Counters are live totals for progress lines.
type Counters struct {
	Sent, Accepted, Refused atomic.Int64
}

// Sender posts pre-signed orders to replicas, spreading them round-robin.
type Sender struct {
	H        *HTTP
	Replicas []string
	// Wait posts with ?wait=finalized (the answer carries the index).
	Wait bool
	// InFlightMax bounds concurrent requests; an open-loop run whose
	// replicas fall behind waits for a slot (its latency then counts the
	// wait, from the scheduled time).
	InFlightMax int
	Counters    Counters
}

// resendsMax bounds the resends of one order after broken connections.
const resendsMax = 3

// post sends order k and fills out[k]. It follows the client rule of
// docs/api.md: after a broken connection (no answer at all) it resends
// the same signed body, and a 409 to a resend means the first send
// reached the replica (the order is taken; its fate is the replica's to
// tell, and the exactly-once checks of the callers look it up).
func (s *Sender) post(ctx context.Context, k int, o Signed, scheduled time.Time, out []Outcome) {
	r := k % len(s.Replicas)
	res := Outcome{Scheduled: scheduled, Replica: r}
	s.Counters.Sent.Add(1)
	var err error
	for {
		if s.Wait {
			var ord orderAnswer
			ord, err = s.postWait(ctx, s.Replicas[r], o.Body)
			res.Index, res.Status = ord.Index, ord.Status
		} else {
			_, err = s.H.PostOrder(ctx, s.Replicas[r], o.Body)
		}
		var se *StatusError
		if res.Resent > 0 && errors.As(err, &se) && se.Code == http.StatusConflict {
			err, res.Status = nil, "resent: already taken"
		}
		if err == nil || errors.As(err, &se) || ctx.Err() != nil || res.Resent == resendsMax {
			break
		}
		res.Resent++
		select {
		case <-ctx.Done():
		case <-time.After(50 * time.Millisecond):
		}
	}
	res.Answered = time.Now()
	if err == nil {
		res.Accepted = true
		s.Counters.Accepted.Add(1)
	} else {
		s.Counters.Refused.Add(1)
		res.Err = err.Error()
		var se *StatusError
		if errors.As(err, &se) {
			res.Code = se.Code
		}
	}
	out[k] = res
}

type orderAnswer struct {
	Index  uint64
	Status string
}

func (s *Sender) postWait(ctx context.Context, url string, body []byte) (orderAnswer, error) {
	o, err := s.H.PostOrderFinalized(ctx, url, body)
	return orderAnswer{o.Index, o.Status}, err
}

// ClosedLoop posts orders as fast as InFlightMax concurrent requests allow,
// until all are sent or stop passes. It returns how many it sent (a
// prefix of orders) and their outcomes.
func (s *Sender) ClosedLoop(ctx context.Context, orders []Signed, stop time.Time) (int, []Outcome) {
	out := make([]Outcome, len(orders))
	var next atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < s.InFlightMax; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil && time.Now().Before(stop) {
				k := int(next.Add(1) - 1)
				if k >= len(orders) {
					return
				}
				s.post(ctx, k, orders[k], time.Now(), out)
			}
		}()
	}
	wg.Wait()
	sent := int(next.Load())
	if sent > len(orders) {
		sent = len(orders)
	}
	// Workers stop taking orders at the deadline; every taken order was
	// posted, so the taken ones are a prefix.
	return sent, out[:sent]
}

// OpenLoop posts order k at start + k/rate whatever the replicas' speed
// (open loop: a slow system is not given a slower schedule), until all are
// sent or ctx ends. It returns the outcomes of the orders it sent.
func (s *Sender) OpenLoop(ctx context.Context, orders []Signed, rate float64) []Outcome {
	out := make([]Outcome, len(orders))
	slots := make(chan struct{}, s.InFlightMax)
	var wg sync.WaitGroup
	start := time.Now()
	sent := 0
	for k := range orders {
		due := start.Add(time.Duration(float64(k) / rate * float64(time.Second)))
		if d := time.Until(due); d > 0 {
			t := time.NewTimer(d)
			select {
			case <-ctx.Done():
				t.Stop()
			case <-t.C:
			}
		}
		if ctx.Err() != nil {
			break
		}
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		wg.Add(1)
		go func(k int) {
			defer wg.Done()
			defer func() { <-slots }()
			s.post(ctx, k, orders[k], due, out)
		}(k)
		sent++
	}
	wg.Wait()
	return out[:sent]
}
