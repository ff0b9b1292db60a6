package sim

import (
	"bytes"

	"github.com/seqbook/seqbook/sequencer/core"
	"github.com/seqbook/seqbook/sequencer/node/runner"
	"github.com/seqbook/seqbook/sequencer/wire"
)

// The simulated nodes run the node runtime's own Ready handling
// (runner.Runner, what sequencer/node's loop runs), not a copy of it. The
// world plays the runtime's other parts: the clock (Tick with simulated
// time), the saver (it saves a Flight's Persist into the memory store at
// once or a few ticks later, then reports it with Saved) and the
// transport (port below). A recorder per node incarnation watches the
// runner from outside, through the core it drives (watchedCore), the
// store it saves to (watchedStore) and the transport it sends on (port),
// and fails the run when a message of a Ready reaches the transport
// before the save covering that Ready returned, when the core advances
// before that save, when a PUT is answered before its batch is saved, or
// when Persists are saved out of order.

// recorder watches one incarnation of one node (a restart makes a new
// one: what was taken and not sent is lost with the process).
type recorder struct {
	w    *world
	node int
	// needs[k-1] is how many saves must have returned before Ready k's
	// messages may leave: its own save, and every earlier Ready's (they
	// are saved and sent in order).
	needs []int
	// unsaved are the Persists of Readies taken and not saved yet, in the
	// order they must be saved.
	unsaved []*core.Persist
	saves   int // saves returned
	// unsent are messages of Readies taken and not yet seen on the
	// transport, in order.
	unsent []unsentMsg
}

type unsentMsg struct {
	ready int // 1-based
	env   core.Envelope
	data  []byte
}

func newRecorder(w *world, node int) *recorder { return &recorder{w: w, node: node} }

// taken records a Ready the core handed out.
func (r *recorder) taken(rd *core.Ready) {
	need := r.saves + len(r.unsaved)
	if !rd.Persist.IsEmpty() {
		need++
		r.unsaved = append(r.unsaved, &rd.Persist)
	}
	r.needs = append(r.needs, need)
	k := len(r.needs)
	var last wire.Message
	var data []byte
	for _, env := range rd.Messages {
		if env.Msg != last {
			last, data = env.Msg, wire.Encode(env.Msg)
		}
		r.unsent = append(r.unsent, unsentMsg{ready: k, env: env, data: data})
	}
}

// saving checks that p is the Persist of the oldest Ready not yet saved.
func (r *recorder) saving(p *core.Persist) {
	if len(r.unsaved) == 0 || !samePersist(p, r.unsaved[0]) {
		r.w.chk.violate("SAFETY: node %d saved a Persist that is not the next Ready's (%d Readies wait for a save)", r.node, len(r.unsaved))
	}
}

// saved records that the oldest unsaved Persist is durable.
func (r *recorder) saved() {
	if len(r.unsaved) > 0 {
		r.unsaved = r.unsaved[1:]
	}
	r.saves++
}

// sent checks one message handed to the transport and returns the
// envelope of the Ready it belongs to.
func (r *recorder) sent(to int, data []byte) (core.Envelope, bool) {
	for i, m := range r.unsent {
		if m.env.To != to || !bytes.Equal(m.data, data) {
			continue
		}
		if i == 0 {
			r.unsent = r.unsent[1:]
		} else {
			r.unsent = append(r.unsent[:i:i], r.unsent[i+1:]...)
		}
		if need := r.needs[m.ready-1]; r.saves < need {
			r.w.chk.violate("SAFETY: node %d sent a %s of its Ready %d to node %d before the save covering it returned (%d of %d saves done): persist before send",
				r.node, m.env.Msg.Type(), m.ready, to, r.saves, need)
		}
		return m.env, true
	}
	r.w.chk.violate("node %d sent %d bytes to node %d that no Ready of its core holds", r.node, len(data), to)
	return core.Envelope{}, false
}

// advancing checks that every Ready taken is saved when the core advances.
func (r *recorder) advancing() {
	if k := len(r.needs); k > 0 && r.saves < r.needs[k-1] {
		r.w.chk.violate("SAFETY: node %d advanced its core past Ready %d before saving it", r.node, k)
	}
}

// answering checks a PUT answered "accepted": the first Ready taken after
// its Submit (which holds its batch) must be saved.
func (r *recorder) answering(readiesAtSubmit int) {
	k := readiesAtSubmit + 1
	if k > len(r.needs) || r.saves < r.needs[k-1] {
		r.w.chk.violate("SAFETY: node %d answered a PUT before the save of its batch (Ready %d)", r.node, k)
	}
}

// samePersist reports whether a and b are the same Persist value (one
// Ready's, copied): the same hard state and the same app changes.
func samePersist(a, b *core.Persist) bool {
	if a.Hard != b.Hard || len(a.Apps) != len(b.Apps) {
		return false
	}
	return len(a.Apps) == 0 || &a.Apps[0] == &b.Apps[0]
}

// watchedCore is the core as the runner sees it, reporting to a recorder.
type watchedCore struct {
	*core.Node
	rec *recorder
}

var _ runner.Core = watchedCore{}

func (c watchedCore) Ready() core.Ready {
	rd := c.Node.Ready()
	c.rec.taken(&rd)
	return rd
}

func (c watchedCore) Advance() {
	c.rec.advancing()
	c.Node.Advance()
}

// watchedStore is a node's memory store saving under the recorder's eye.
// The store outlives the incarnation; the recorder does not.
type watchedStore struct {
	*core.MemoryStore
	rec *recorder
}

func (s watchedStore) Save(p *core.Persist) error {
	s.rec.saving(p)
	if err := s.MemoryStore.Save(p); err != nil {
		return err
	}
	s.rec.saved()
	return nil
}

// port is a node's transport: it checks each message with the recorder,
// lets a Byzantine node rewrite it, and puts it on the simulated network.
type port struct {
	w  *world
	sn *simNode
}

var _ runner.Sender = port{}

func (p port) Send(to int, data []byte) {
	env, ok := p.sn.rec.sent(to, data)
	if !ok {
		return
	}
	b := p.w.byz[p.sn.id]
	if b == nil {
		p.w.chk.observeMessage(env.Msg)
		p.w.send(p.sn.id, to, data)
		return
	}
	for _, e := range b.outgoing(env) {
		p.w.chk.observeMessage(e.Msg)
		out := data
		if e.Msg != env.Msg {
			out = wire.Encode(e.Msg)
		}
		p.w.send(p.sn.id, e.To, out)
	}
}
