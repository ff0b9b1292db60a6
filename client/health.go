package client

import (
	"context"
	"encoding/json"
	"net/http"
	"sync"
	"time"

	"github.com/seqbook/seqbook/client/seqapi"
)

// nodeHealth is what a Sequencer knows about one node.
type nodeHealth struct {
	// benchedUntil: the node failed; until then it is tried only after the
	// healthy ones. Past it, the node stays last until a probe answers.
	benchedUntil time.Time
	benched      bool
	// fails counts failures since the node last worked: each one doubles
	// the bench, up to benchMax.
	fails   int
	probing bool
}

// health orders the nodes of a Sequencer for each request: the leader
// first (when leader preference is on and the leader is healthy), then the
// node that answered last, then the other healthy nodes in cluster order,
// then the benched ones. Benched nodes are still tried (last), so a
// cluster whose nodes all failed once is not given up on.
//
// A node that fails is benched for benchTime, doubled at each further
// failure up to benchMax. When the bench ends, a probe (GET /node/ready,
// one attempt) must answer before the node is trusted again, so a node
// that silently drops packets costs each client one attempt per bench, not
// one per request.
type health struct {
	mu        sync.Mutex
	nodes     []nodeHealth
	preferred int // the node that answered last (initially the spread start)
	leader    int // index of the leader a node reported; -1 unknown
	// leaderAsked is when the leader was last asked for (zero: never).
	leaderAsked time.Time
	leaderBusy  bool
}

func newHealth(n, start int) *health {
	return &health{nodes: make([]nodeHealth, n), preferred: start % n, leader: -1}
}

// order lists the node indexes to try, and which benched nodes are due a
// probe (the caller starts them).
func (h *health) order(now time.Time, leaderFirst bool) (order, probe []int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := len(h.nodes)
	order = make([]int, 0, n)
	var benched []int
	healthy := func(i int) bool { return !h.nodes[i].benched }
	if leaderFirst && h.leader >= 0 && healthy(h.leader) {
		order = append(order, h.leader)
	}
	for k := 0; k < n; k++ {
		i := (h.preferred + k) % n
		if leaderFirst && i == h.leader && healthy(i) {
			continue
		}
		if healthy(i) {
			order = append(order, i)
			continue
		}
		benched = append(benched, i)
		nh := &h.nodes[i]
		if !nh.probing && !now.Before(nh.benchedUntil) {
			nh.probing = true
			probe = append(probe, i)
		}
	}
	return append(order, benched...), probe
}

// worked records a success: the node is healthy and preferred.
func (h *health) worked(i int) {
	h.mu.Lock()
	h.preferred = i
	h.nodes[i] = nodeHealth{probing: h.nodes[i].probing}
	h.mu.Unlock()
}

// failed benches node i. It returns the bench length.
func (h *health) failed(i int, now time.Time, base, max time.Duration) time.Duration {
	h.mu.Lock()
	defer h.mu.Unlock()
	nh := &h.nodes[i]
	if nh.benched && now.Before(nh.benchedUntil) {
		// Requests that were under way when the node was benched fail
		// too: one outage, one step of backoff.
		return nh.benchedUntil.Sub(now)
	}
	d := base
	for k := 0; k < nh.fails && d < max; k++ {
		d *= 2
	}
	d = min(d, max)
	nh.fails++
	nh.benched, nh.benchedUntil = true, now.Add(d)
	if h.preferred == i {
		h.preferred = (i + 1) % len(h.nodes)
	}
	if h.leader == i {
		// The leader may have changed; ask again at the next request.
		h.leaderAsked = time.Time{}
	}
	return d
}

// probed ends a probe: a node that answered is healthy again (its failure
// count is kept, so a node that fails again is benched longer); one that
// did not stays benched for another round.
func (h *health) probed(i int, ok bool, now time.Time, base, max time.Duration) {
	if !ok {
		h.failed(i, now, base, max)
	}
	h.mu.Lock()
	nh := &h.nodes[i]
	nh.probing = false
	if ok {
		nh.benched = false
	}
	h.mu.Unlock()
}

// leaderDue reports whether the leader should be asked for now (and marks
// the question as under way).
func (h *health) leaderDue(now time.Time, every time.Duration) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.leaderBusy || (!h.leaderAsked.IsZero() && now.Sub(h.leaderAsked) < every) {
		return false
	}
	h.leaderBusy, h.leaderAsked = true, now
	return true
}

func (h *health) setLeader(i int) {
	h.mu.Lock()
	h.leaderBusy = false
	if i >= 0 {
		h.leader = i
	}
	h.mu.Unlock()
}

// Leader returns the id of the node the Sequencer believes leads, or ""
// when it does not know (leader preference off, or not learned yet).
func (s *Sequencer) Leader() string {
	s.h.mu.Lock()
	defer s.h.mu.Unlock()
	if s.h.leader < 0 {
		return ""
	}
	return s.c.Nodes[s.h.leader].ID
}

// nodeOrder lists node indexes to try and starts the background work the
// order calls for: probes of benched nodes whose bench ended and, with
// leader preference, a refresh of the leader's identity.
func (s *Sequencer) nodeOrder() []int {
	now := s.o.now()
	order, probe := s.h.order(now, s.o.leaderFirst)
	for _, i := range probe {
		go s.probe(i)
	}
	if s.o.leaderFirst && s.h.leaderDue(now, s.o.leaderRefresh) {
		go s.refreshLeader(order)
	}
	return order
}

func (s *Sequencer) nodeWorked(i int) { s.h.worked(i) }

func (s *Sequencer) nodeFailed(i int, op string, err error) {
	d := s.h.failed(i, s.o.now(), s.o.benchTime, s.o.benchMax)
	s.o.logger.Warn("sequencer node benched", "node", s.c.Nodes[i].ID, "op", op, "for", d, "err", err)
}

// probe asks a benched node whether it is ready, within one attempt.
func (s *Sequencer) probe(i int) {
	ctx, cancel := context.WithTimeout(context.Background(), s.o.attemptTimeout)
	defer cancel()
	_, err := exchange(ctx, &s.o, s.c.Nodes[i].ID, http.MethodGet, s.url[i]+"/node/ready", nil, "")
	s.h.probed(i, err == nil, s.o.now(), s.o.benchTime, s.o.benchMax)
	if err == nil {
		s.o.logger.Info("sequencer node answers again", "node", s.c.Nodes[i].ID)
	}
}

// refreshLeader asks the first node of order that answers (one attempt
// each) who leads. Which node leads only steers where requests go first:
// everything read is still verified, and a wrong answer costs latency,
// not safety.
func (s *Sequencer) refreshLeader(order []int) {
	found := -1
	defer func() { s.h.setLeader(found) }()
	for _, i := range order {
		ctx, cancel := context.WithTimeout(context.Background(), s.o.attemptTimeout)
		raw, err := exchange(ctx, &s.o, s.c.Nodes[i].ID, http.MethodGet, s.url[i]+"/node/state", nil, "")
		cancel()
		if err != nil {
			continue
		}
		var st seqapi.NodeState
		if json.Unmarshal(raw, &st) != nil {
			continue
		}
		if l, ok := s.c.NodeIndex(st.Leader); ok {
			found = l
			return
		}
	}
}
