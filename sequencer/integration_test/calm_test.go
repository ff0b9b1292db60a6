package integration_test

import (
	"fmt"
	"testing"
	"time"
)

// TestNoViewChangeAcrossIdlePeriods: a healthy cluster that alternates
// busy and idle periods (each idle period longer than the 5 s finalize
// timeout) never changes view. The no-progress timer used to run from the
// last finalization, so the first batch after an idle period made every
// follower dispute the leader at once.
func TestNoViewChangeAcrossIdlePeriods(t *testing.T) {
	c, all := startedCluster(t, 4)
	st0, err := c.state(0)
	if err != nil {
		t.Fatal(err)
	}
	const busyPeriods, perPeriod = 3, 8
	// Longer than FinalizeTimeoutTicks (500 ticks of 10 ms) with room for
	// ticks a loaded machine delays.
	idle := 7 * time.Second
	sent := map[string]bool{}
	for p := 0; p < busyPeriods; p++ {
		if p > 0 {
			time.Sleep(idle) // the scenario: nothing happens for a while
		}
		for k := 0; k < perPeriod; k++ {
			body := fmt.Sprintf(`{"period":%d,"k":%d}`, p, k)
			c.put(k%4, body)
			sent[body] = true
		}
		log := c.waitSameLog(all, len(sent), 30*time.Second)
		checkExactlyOnce(t, log, sent)
	}
	for _, i := range all {
		st, err := c.state(i)
		if err != nil {
			t.Fatal(err)
		}
		if st.View != st0.View {
			t.Errorf("node %d moved from view %d to view %d on a healthy cluster", i, st0.View, st.View)
		}
	}
	for _, l := range c.logs() {
		if lines := grepLog(t, l, "disputing the leader"); len(lines) > 0 {
			t.Errorf("%s disputed the leader of a healthy cluster: %s", l, lines[0])
		}
	}
}
