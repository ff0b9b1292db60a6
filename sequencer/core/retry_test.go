package core_test

import (
	"fmt"
	"testing"

	"github.com/seqbook/seqbook/client/eip712"
	"github.com/seqbook/seqbook/sequencer/core"
	"github.com/seqbook/seqbook/sequencer/wire"
)

// TestRoundRetriesFollowRoundTrips: on links where a vote comes back only
// after more than RetryTicks, the leader measures each follower's round
// trip and stops asking a slow but answering follower again within a
// round, while a silent one (never answering, or answering no more) is
// still asked again at least every RetryTicksMax.
func TestRoundRetriesFollowRoundTrips(t *testing.T) {
	cfg := quiet(core.TestConfig(chain, 4, 0))
	const rtt = 12 // ticks from a Round to its vote: over RetryTicks
	if rtt <= cfg.RetryTicks || rtt >= cfg.RetryTicksMax {
		t.Fatalf("the test needs RetryTicks (%d) < %d < RetryTicksMax (%d)", cfg.RetryTicks, rtt, cfg.RetryTicksMax)
	}
	n, store, now := startNode0(t, cfg)
	tick := 0
	domain := eip712.NewDomain(chain)

	// asks[node][request] lists the ticks the leader asked node for it.
	type request struct {
		kind  string
		index uint64
	}
	asks := map[int]map[request][]int{1: {}, 2: {}, 3: {}}
	first := map[int]map[request]int{1: {}, 2: {}, 3: {}}
	type delivery struct {
		at   int
		from int
		vote *wire.Vote
	}
	var inFlight []delivery
	answering := map[int]bool{1: true, 2: true}
	take := func(rd core.Ready) {
		for _, e := range rd.Messages {
			r, ok := e.Msg.(*wire.Round)
			if !ok || (r.Lock == nil && r.Finalize == nil) {
				continue
			}
			record := func(q request) {
				asks[e.To][q] = append(asks[e.To][q], tick)
				if _, ok := first[e.To][q]; !ok {
					first[e.To][q] = tick
				}
			}
			v := &wire.Vote{App: "ob", View: 0}
			if l := r.Lock; l != nil {
				record(request{"lock", l.Index})
				v.Lock = &wire.SignedTarget{Index: l.Index, ChainingHash: l.ChainingHash,
					Signature: testCrypto{}.sig(e.To, core.LockDigest(domain, "ob", 0, l.Index, l.ChainingHash))}
			}
			if p := r.Finalize; p != nil {
				record(request{"finalize", p.Index})
				v.Finalize = &wire.SignedTarget{Index: p.Index, ChainingHash: p.ChainingHash,
					Signature: testCrypto{}.sig(e.To, core.FinalizeDigest(domain, "ob", 0, p.Index, p.ChainingHash))}
			}
			if answering[e.To] {
				inFlight = append(inFlight, delivery{tick + rtt, e.To, v})
			}
		}
	}
	collect := func() { take(handle(t, n, store)) }
	afterBatch, afterPosts, now := leadFirstBatch(t, n, store, cfg, now, "b0")
	take(afterBatch)
	take(afterPosts)
	run := func(until int) {
		for tick < until {
			tick++
			now += cfg.TickMs
			n.Tick(now)
			collect()
			if tick%4 == 0 {
				if err := n.Submit("ob", []byte(fmt.Sprintf("b%d", tick))); err != nil {
					t.Fatal(err)
				}
				collect()
			}
			var due []delivery
			for k := 0; k < len(inFlight); {
				if inFlight[k].at <= tick {
					due = append(due, inFlight[k])
					inFlight = append(inFlight[:k], inFlight[k+1:]...)
				} else {
					k++
				}
			}
			for _, d := range due {
				if err := n.Step(d.from, d.vote); err != nil {
					t.Fatal(err)
				}
				collect()
			}
		}
	}
	// again counts node's requests first asked in [from, to) that were
	// asked more than once, and checks the gaps between the asks of each.
	again := func(node, from, to int) (count, total int) {
		t.Helper()
		for q, ticks := range asks[node] {
			if f := first[node][q]; f < from || f >= to {
				continue
			}
			total++
			if len(ticks) > 1 {
				count++
			}
			for k := 1; k < len(ticks); k++ {
				if gap := ticks[k] - ticks[k-1]; gap > cfg.RetryTicksMax {
					t.Errorf("node %d asked again for %v after %d ticks, over RetryTicksMax %d", node, q, gap, cfg.RetryTicksMax)
				}
			}
		}
		return count, total
	}

	// Nodes 1 and 2 answer after rtt, node 3 never.
	run(150)
	if c, _ := again(1, 0, 20); c == 0 {
		t.Fatal("the first requests were not asked again before any round trip was measured: the links are not slow enough to test anything")
	}
	for _, node := range []int{1, 2} {
		if c, total := again(node, 50, 140); c > 0 || total < 8 {
			t.Errorf("node %d, answering after %d ticks, asked again for %d of its %d requests (want 0 of at least 8)", node, rtt, c, total)
		}
	}
	st := n.Status()
	if st.Apps[0].Finalized < 10 {
		t.Fatalf("finalized only %d batches", st.Apps[0].Finalized)
	}
	finalized := st.Apps[0].Finalized
	resends := n.Metrics().RoundResends

	// Node 2 stops answering: no quorum, the round stays under way, and
	// nodes 2 and 3 are asked again within RetryTicksMax, over and over.
	answering[2] = false
	start := tick
	run(start + 6*cfg.RetryTicksMax)
	for _, node := range []int{2, 3} {
		asked := 0
		for _, ticks := range asks[node] {
			for _, at := range ticks {
				if at > start+rtt {
					asked++
				}
			}
		}
		if asked < 4 {
			t.Errorf("silent node %d asked %d times in %d ticks; want one ask at least every %d", node, asked, 6*cfg.RetryTicksMax, cfg.RetryTicksMax)
		}
		again(node, 0, tick)
	}
	if n.Metrics().RoundResends <= resends {
		t.Error("RoundResends did not count the requests asked again")
	}
	// Node 2 answers again: the rounds complete.
	answering[2] = true
	run(tick + 4*cfg.RetryTicksMax)
	if got := n.Status().Apps[0].Finalized; got <= finalized {
		t.Errorf("finalized %d after node 2 answered again, %d before", got, finalized)
	}
}
