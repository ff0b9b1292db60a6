package node

import (
	"fmt"
	"testing"
	"time"

	"github.com/seqbook/seqbook/sequencer/node/testnet"
)

// TestIdleNodesSleepThroughTicks: once everything is final, the followers'
// loops sleep through most ticks (waking for heartbeats and peers, not
// every TickInterval), and the cluster keeps working afterwards. A loaded
// machine only delays wake-ups, so the condition cannot flake that way.
func TestIdleNodesSleepThroughTicks(t *testing.T) {
	c := startInProcess(t, 4)
	all := []int{0, 1, 2, 3}
	c.put(1, `{"k":0}`)
	c.waitSameFinalized(all, 1, 20*time.Second)
	leader := 0
	for _, i := range all {
		if c.state(i).Leader == c.nodes[i].NodeID() {
			leader = i
		}
	}
	type counts struct{ ticks, skipped uint64 }
	read := func(i int) counts {
		m := c.nodes[i].Metrics()
		return counts{m.Ticks.Load(), m.TicksSkipped.Load()}
	}
	start := map[int]counts{}
	for _, i := range all {
		start[i] = read(i)
	}
	err := testnet.WaitFor(20*time.Second, 50*time.Millisecond, func() error {
		for _, i := range all {
			if i == leader {
				continue // woken by every follower's heartbeat
			}
			now := read(i)
			ticks, skipped := now.ticks-start[i].ticks, now.skipped-start[i].skipped
			if skipped < 50 || skipped < 2*ticks {
				return fmt.Errorf("follower %d: %d ticks run, %d skipped", i, ticks, skipped)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	c.put(2, `{"k":1}`)
	c.waitSameFinalized(all, 2, 20*time.Second)
}
