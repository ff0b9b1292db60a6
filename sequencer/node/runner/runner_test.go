package runner

import (
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/seqbook/seqbook/sequencer/core"
	"github.com/seqbook/seqbook/sequencer/wire"
)

// script is a Core whose Readies the test sets, and a Sender; both write
// what happened to one event log, so tests check the order.
type script struct {
	ready  *core.Ready // what the next Ready returns; nil: no output
	out    bool        // a Ready is out, not yet advanced
	events []string
}

func (s *script) Tick(uint64)                  {}
func (s *script) Step(int, wire.Message) error { return nil }
func (s *script) Submit(app string, _ []byte) error {
	s.events = append(s.events, "submit "+app)
	return nil
}
func (s *script) HasReady() bool { return s.ready != nil }
func (s *script) Ready() core.Ready {
	if s.out {
		panic("Ready before Advance")
	}
	rd := *s.ready
	s.ready, s.out = nil, true
	s.events = append(s.events, "ready")
	return rd
}
func (s *script) Advance() {
	if !s.out {
		panic("Advance without Ready")
	}
	s.out = false
	s.events = append(s.events, "advance")
}
func (s *script) Send(to int, data []byte) {
	m, err := wire.Decode(data)
	if err != nil {
		panic(err)
	}
	s.events = append(s.events, fmt.Sprintf("send %s to %d", m.Type(), to))
}
func (s *script) reply(name string) Reply {
	return func(err error) { s.events = append(s.events, fmt.Sprintf("reply %s %v", name, err)) }
}

// readyWith is a Ready with something to persist and a Post broadcast to
// nodes 1 and 2.
func readyWith(persist bool) *core.Ready {
	post := &wire.Post{App: "a", View: 1}
	rd := &core.Ready{Messages: []core.Envelope{{To: 1, Msg: post}, {To: 2, Msg: post}}}
	if persist {
		rd.Persist.Hard = &core.HardState{View: 1}
	}
	return rd
}

func (s *script) expect(t *testing.T, want ...string) {
	t.Helper()
	if !slices.Equal(s.events, want) {
		t.Fatalf("events:\n  got  %q\n  want %q", s.events, want)
	}
	s.events = nil
}

// TestSendsAfterSaved: a Ready's messages leave only once its save is
// reported done; then the core advances and the PUTs are answered.
func TestSendsAfterSaved(t *testing.T) {
	s := &script{}
	r := New(s, s, Options{Finished: func(*Flight) { s.events = append(s.events, "finished") }})
	if err := r.Submit("a", []byte("x"), s.reply("x")); err != nil {
		t.Fatal(err)
	}
	s.ready = readyWith(true)
	f := r.TakeReady()
	if f == nil || f.Ready.Persist.Hard == nil || !r.Saving() {
		t.Fatalf("TakeReady gave %+v", f)
	}
	s.expect(t, "submit a", "ready")
	// While the save runs, the core's next output waits.
	s.ready = readyWith(true)
	if r.TakeReady() != nil {
		t.Fatal("a second Ready taken while a save is in flight")
	}
	s.expect(t)
	if err := r.Saved(nil); err != nil {
		t.Fatal(err)
	}
	s.expect(t, "send Post to 1", "send Post to 2", "finished", "advance", "reply x <nil>")
	if r.Saving() || r.TakeReady() == nil {
		t.Fatal("the next Ready was not taken after the save")
	}
}

// TestSaveFailureSendsNothing: a failed save sends nothing, does not
// advance the core, and Refuse answers its PUTs with the error given.
func TestSaveFailureSendsNothing(t *testing.T) {
	s := &script{}
	r := New(s, s, Options{})
	r.Submit("a", []byte("x"), s.reply("x"))
	s.ready = readyWith(true)
	r.TakeReady()
	r.Submit("a", []byte("y"), s.reply("y"))
	s.expect(t, "submit a", "ready", "submit a")
	disk := errors.New("disk on fire")
	if err := r.Saved(disk); err != disk {
		t.Fatalf("Saved returned %v", err)
	}
	s.expect(t)
	stop := errors.New("stopping")
	r.Refuse(stop)
	s.expect(t, "reply y stopping", "reply x stopping")
}

// TestNothingToPersist: a Ready without a Persist is finished at once.
func TestNothingToPersist(t *testing.T) {
	s := &script{}
	r := New(s, s, Options{})
	s.ready = readyWith(false)
	if f := r.TakeReady(); f != nil || r.Saving() {
		t.Fatalf("TakeReady returned a flight for a Ready with nothing to persist: %+v", f)
	}
	s.expect(t, "ready", "send Post to 1", "send Post to 2", "advance")
}

// TestMutationSendsBeforeSave: the canary's broken order, as the simulator
// must see it: messages leave when the Ready is taken, once.
func TestMutationSendsBeforeSave(t *testing.T) {
	s := &script{}
	r := New(s, s, Options{Mutation: core.MutationSendBeforeSave})
	s.ready = readyWith(true)
	r.TakeReady()
	s.expect(t, "ready", "send Post to 1", "send Post to 2")
	r.Saved(nil)
	s.expect(t, "advance")
}
