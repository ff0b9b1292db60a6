package aggregator

import (
	"context"
	"time"
)

// answer is one replica's reply in a round (or its absence).
type answer[T any] struct {
	val  T
	err  error
	done bool // false: no answer before the round ended
}

// roundEnd says why a round stopped waiting.
type roundEnd int

const (
	endAll      roundEnd = iota // every replica answered
	endSettled                  // settled, and the straggler wait ran out
	endDeadline                 // the round's timeout (or the caller) ended it
)

// gather asks every replica at once and collects the answers in cluster
// order. It stops when all have answered, at the timeout, or StragglerWait
// after settled first reports that the answers in hand decide the round.
// Replicas still being asked then have their requests cancelled; their
// answers have done == false.
func gather[T any](ctx context.Context, n int, timeout, stragglerWait time.Duration,
	ask func(ctx context.Context, i int) (T, error), settled func([]answer[T]) bool) ([]answer[T], roundEnd) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	type reply struct {
		i int
		a answer[T]
	}
	// Buffered for every replica, so askers never block after we stop
	// listening.
	replies := make(chan reply, n)
	for i := 0; i < n; i++ {
		go func(i int) {
			v, err := ask(ctx, i)
			replies <- reply{i, answer[T]{val: v, err: err, done: true}}
		}(i)
	}
	out := make([]answer[T], n)
	var grace <-chan time.Time
	for got := 0; got < n; {
		select {
		case r := <-replies:
			out[r.i] = r.a
			got++
			if grace == nil && got < n && settled(out) {
				if stragglerWait <= 0 {
					return out, endSettled
				}
				t := time.NewTimer(stragglerWait)
				defer t.Stop()
				grace = t.C
			}
		case <-grace:
			return out, endSettled
		case <-ctx.Done():
			return out, endDeadline
		}
	}
	return out, endAll
}
