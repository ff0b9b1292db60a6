package node

import (
	"time"

	"github.com/seqbook/seqbook/sequencer/core"
)

// tickClock turns wall time into the core's ticks for the loop. While the
// core has work it ticks once per interval, as a ticker would; when the
// core says the coming ticks are idle (core.IdleTicks) the loop sleeps
// until the first one that may act, and any wake-up first brings the
// core's ticks level with the wall clock (skipping the idle ones), so the
// core reads the same time as if it had ticked every interval. An idle
// node wakes for its heartbeats and peers, not 100 times a second.
//
// A process that could not run for a while (a loaded machine) does not
// get the ticks it missed beyond the idle ones, as a ticker drops ticks
// its reader is too slow for: protocol timeouts then stretch rather than
// fire all at once on waking.
//
// The schedule runs on the monotonic clock, as a ticker's would; the
// core's Tick gets the node's wall clock (Deps.Now).
type tickClock struct {
	metrics  *Metrics
	interval time.Duration
	last     time.Time // when the core's last tick was due
	timer    *time.Timer
	at       time.Time // when timer fires; zero when it is not set
}

// sleepMax bounds one sleep however long the core could stay idle (a
// node alone in its cluster has no timer at all).
const sleepMax = time.Minute

func newTickClock(interval time.Duration, m *Metrics) *tickClock {
	now := time.Now()
	return &tickClock{metrics: m, interval: interval, last: now, timer: time.NewTimer(interval), at: now.Add(interval)}
}

// C is the timer's channel: the loop selects on it and then calls fired
// and catchUp.
func (c *tickClock) C() <-chan time.Time { return c.timer.C }

// fired notes that the timer went off (it must be set again).
func (c *tickClock) fired() { c.at = time.Time{} }

// catchUp gives the core the ticks due by now: the idle ones skipped, the
// last one a Tick with the wall clock.
func (c *tickClock) catchUp(cr *core.Node, wall func() time.Time) {
	now := time.Now()
	due := now.Sub(c.last) / c.interval
	if due < 1 {
		return
	}
	missed := uint64(due - 1)
	skip := min(missed, cr.IdleTicks())
	cr.Skip(skip)
	cr.Tick(uint64(wall().UnixMilli()))
	c.metrics.TicksSkipped.Add(skip)
	c.metrics.Ticks.Add(1)
	if skip < missed {
		c.last = now // dropped the ticks that were not idle (see tickClock)
	} else {
		c.last = c.last.Add(due * c.interval)
	}
}

// arm sets the timer for the first tick the core may act on; call it
// after everything that may have changed the core.
func (c *tickClock) arm(cr *core.Node) {
	now := time.Now()
	idle := min(cr.IdleTicks(), uint64(sleepMax/c.interval))
	at := c.last.Add(time.Duration(idle+1) * c.interval)
	if at.Equal(c.at) {
		return
	}
	c.at = at
	c.timer.Reset(max(at.Sub(now), 0))
}

func (c *tickClock) stop() { c.timer.Stop() }
