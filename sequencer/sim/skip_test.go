package sim

import (
	"fmt"
	"testing"
)

// TestSkipIdleTicksChangesNothing runs each seed twice, once ticking every
// node every tick and once letting each node skip the ticks its core's
// IdleTicks calls idle (as the node runtime sleeps through them): every
// message must be the same, sent at the same tick. A tick IdleTicks
// wrongly called idle (a timer that would have fired, a status that would
// have changed) changes what is sent, or when, and fails the seed; Skip's
// own check panics first when the runtime side is wrong. Calm runs must
// actually skip most ticks, or the test would pass by never skipping.
func TestSkipIdleTicksChangesNothing(t *testing.T) {
	seeds := 40
	if testing.Short() {
		seeds = 8
	}
	for s := uint64(1); s <= uint64(seeds); s++ {
		for _, calm := range []bool{false, true} {
			o := Options{Seed: s, Calm: calm}
			if calm {
				o.Ticks = 1500
			}
			every := Run(o)
			o.SkipIdleTicks = true
			skip := Run(o)
			if every.SentDigest != skip.SentDigest || every.Stats.Messages != skip.Stats.Messages {
				t.Errorf("SEED=%d calm=%v: skipping idle ticks changed the run: %d messages without, %d with (digests differ: %v)",
					s, calm, every.Stats.Messages, skip.Stats.Messages, every.SentDigest != skip.SentDigest)
			}
			if every.Failed() != skip.Failed() {
				t.Errorf("SEED=%d calm=%v: violations without skipping %v, with %v", s, calm, every.Violations, skip.Violations)
			}
			nodeTicks := skip.Stats.Ticks * skip.Nodes
			if calm && skip.Stats.TicksSkipped < nodeTicks/3 {
				t.Errorf("SEED=%d calm: only %d of %d node ticks skipped in a mostly idle run", s, skip.Stats.TicksSkipped, nodeTicks)
			}
			if s == 1 {
				t.Logf("seed 1 calm=%v: %d of %d node ticks skipped", calm, skip.Stats.TicksSkipped, nodeTicks)
			}
		}
	}
}

// TestSkipIdleTicksAcrossFaultsWhileIdle compares the same script with and
// without skipping idle ticks where the idle timers matter: a follower cut
// off while nothing happens (its heartbeats go unanswered, it disputes),
// then the leader crashing on an idle cluster (the followers' leader
// timeout and readiness, the pings of silent peers), and before that the
// leader crashing before any app exists.
func TestSkipIdleTicksAcrossFaultsWhileIdle(t *testing.T) {
	run := func(skip bool) (digest [32]byte, views []uint64, skipped int) {
		c := NewCluster(3, 4)
		c.w.o.SkipIdleTicks = skip
		c.Run(40)
		// No app yet: nothing posts, so only the pings of silent peers and
		// the followers' readiness watch the crashed leader.
		c.Crash(0)
		c.Run(200)
		c.Restart(0)
		c.Run(100)
		for i := 0; i < 4; i++ {
			if err := c.Submit(i, apps[0], fmt.Sprintf(`{"k":%d}`, i)); err != nil {
				t.Fatal(err)
			}
		}
		c.Run(200)
		c.Isolate(2)
		c.Run(300)
		c.Heal()
		c.Run(300)
		leader := int(c.Status(0).Leader)
		c.Crash(leader)
		c.Run(600)
		c.Restart(leader)
		c.Run(300)
		if v := c.Violations(); len(v) > 0 {
			t.Fatalf("skip=%v: %s", skip, v[0])
		}
		for i := 0; i < 4; i++ {
			views = append(views, c.Status(i).View)
		}
		c.w.sent.Sum(digest[:0])
		return digest, views, c.w.stats.TicksSkipped
	}
	every, viewsEvery, _ := run(false)
	skip, viewsSkip, skipped := run(true)
	if every != skip {
		t.Errorf("skipping idle ticks changed the run (views without %v, with %v)", viewsEvery, viewsSkip)
	}
	if skipped == 0 {
		t.Error("no tick was skipped")
	}
	if viewsEvery[0] == 0 {
		t.Error("the script did not change the view: the leader timeout was not exercised")
	}
	t.Logf("%d node ticks skipped; views %v", skipped, viewsSkip)
}
