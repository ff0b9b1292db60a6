// Package runner is the part of the sequencer node runtime that handles
// the core's output. It owns a core.Node, steps events into it, takes its
// Readies and sees to the ordering rules of the core's package doc: a
// Ready's Persist is saved before any of its messages leave (persist
// before send), one save at a time, Readies saved and sent in order; then
// it publishes what the Ready finalized, advances the core and answers
// the PUTs whose batches the save made durable.
//
// It has no goroutine, clock, socket or disk, so one piece of code serves
// both places a core runs:
//
//   - the node runtime (sequencer/node) calls it from its loop goroutine,
//     runs each returned Flight's Save on its saver goroutine (one fsynced
//     bbolt transaction) and reports the result with Saved; messages go
//     out over QUIC;
//   - the simulator (sequencer/sim) calls it for every simulated node with
//     a memory store it saves at simulated times, an in-memory network and
//     simulated clocks, and checks from outside that no message of a Ready
//     reaches the network before the save covering that Ready returned.
//
// Use:
//
//	r := runner.New(coreNode, transport, runner.Options{...})
//	r.Tick(nowMs) / r.Step(from, msg) / r.Submit(app, body, reply)
//	if f := r.TakeReady(); f != nil {
//	    err := store.Save(&f.Ready.Persist) // now or on another goroutine
//	    r.Saved(err)                        // on the runner's goroutine
//	}
//
// A Runner is not safe for concurrent use: the goroutine that owns the
// core owns the runner.
package runner

import (
	"time"

	"github.com/seqbook/seqbook/sequencer/core"
	"github.com/seqbook/seqbook/sequencer/wire"
)

// Core is what the runner uses of the protocol core. *core.Node is the
// one implementation; the simulator wraps it to watch the Readies go by.
type Core interface {
	Tick(nowMs uint64)
	Step(from int, msg wire.Message) error
	Submit(app string, body []byte) error
	HasReady() bool
	Ready() core.Ready
	Advance()
}

var _ Core = (*core.Node)(nil)

// Sender is the transport's sending half (transport.Transport has it).
// Send must not block and must not keep or modify data's owner's copy
// beyond what transport.Transport promises.
type Sender interface {
	Send(to int, data []byte)
}

// Reply answers one PUT: nil once its batch is durable, an error when this
// node will not make it durable (the store failed, the node stopped).
type Reply func(error)

// Flight is a Ready on its way: saved, then sent, published and answered.
type Flight struct {
	Ready core.Ready
	// SaveDur is how long its Save took; whoever runs the Save sets it
	// (the node's metrics report it).
	SaveDur time.Duration

	replies []Reply // PUTs whose batches Ready.Persist holds
	sent    bool    // its messages already left (only under the mutation)
}

// Options configure a Runner.
type Options struct {
	// Mutation, when core.MutationSendBeforeSave, deliberately breaks the
	// persist-before-send rule: a Ready's messages leave as soon as the
	// Ready is taken, before its save. It exists only for the simulator's
	// mutation canary; a running node never sets it. Other mutations are
	// the core's and ignored here.
	Mutation core.Mutation
	// Finished, when set, is called for every Ready once its Persist is
	// durable and its messages are handed to the transport, before the core
	// advances: the place to wake readers of what it finalized and to count
	// it.
	Finished func(*Flight)
}

// Runner drives one core.Node. See the package doc.
type Runner struct {
	core    Core
	tr      Sender
	o       Options
	replies []Reply // PUTs whose batches the next Ready's Persist holds
	flight  *Flight // the Ready being saved, nil when none
}

// New returns a runner for c that sends over tr.
func New(c Core, tr Sender, o Options) *Runner {
	return &Runner{core: c, tr: tr, o: o}
}

// Tick hands the core the time (milliseconds of the node's clock).
func (r *Runner) Tick(nowMs uint64) { r.core.Tick(nowMs) }

// Step hands the core a decoded message from peer from. The error says
// why the core refused it (the peer's fault, never the runner's).
func (r *Runner) Step(from int, msg wire.Message) error { return r.core.Step(from, msg) }

// Submit hands the core a client batch. On nil, reply is called later:
// with nil once the save of the next Ready taken made the batch durable
// (the core package's rule), or with Refuse's error. On an error (bad
// batch, backlog full) reply is never called and the caller answers.
func (r *Runner) Submit(app string, body []byte, reply Reply) error {
	if err := r.core.Submit(app, body); err != nil {
		return err
	}
	r.replies = append(r.replies, reply)
	return nil
}

// Saving reports whether a Ready taken by TakeReady waits for Saved.
func (r *Runner) Saving() bool { return r.flight != nil }

// TakeReady takes the core's Ready when no save is in flight and the core
// has output. A Ready with nothing to persist is finished at once and nil
// is returned; otherwise the Ready is returned for its Persist to be saved
// (durably) and the result reported with Saved. Until then TakeReady
// returns nil: the core gathers further output for the next Ready (group
// commit). The core may also hold its output back for a while (HasReady
// false; core.Config.HoldTicksMax) so that the next save covers more.
func (r *Runner) TakeReady() *Flight {
	if r.flight != nil {
		return nil
	}
	if r.core.HasReady() {
		f := &Flight{Ready: r.core.Ready(), replies: r.replies}
		r.replies = nil
		if f.Ready.Persist.IsEmpty() {
			r.finish(f)
			return nil
		}
		if r.o.Mutation == core.MutationSendBeforeSave {
			r.send(f) // the broken order the canary must catch
		}
		r.flight = f
		return f
	}
	// PUTs still waiting are answered by the save of a later Ready: a
	// submit always gives the core something to persist (the batch), which
	// it may hold back a while (core.Config.HoldTicksMax) but never drops.
	return nil
}

// Saved reports the result of the save of the Flight TakeReady returned.
// On nil the Ready is finished: its messages go to the transport, Finished
// is called, the core advances and the PUTs the save made durable are
// answered. On an error nothing of the Ready may leave the process (its
// messages may carry signatures whose safety records did not reach the
// disk): Saved returns the error and the caller must stop the node (after
// Refuse) and never call the runner again.
func (r *Runner) Saved(err error) error {
	f := r.flight
	if f == nil {
		panic("runner: Saved without a save in flight")
	}
	if err != nil {
		return err
	}
	r.flight = nil
	r.finish(f)
	return nil
}

// Refuse answers every PUT still waiting (for the next Ready or for the
// save in flight) with err: the node stops and will not make them durable.
func (r *Runner) Refuse(err error) {
	for _, reply := range r.replies {
		reply(err)
	}
	r.replies = nil
	if f := r.flight; f != nil {
		for _, reply := range f.replies {
			reply(err)
		}
		f.replies = nil
	}
}

// finish handles a Ready whose Persist is durable: send its messages,
// publish, advance the core, answer its PUTs.
func (r *Runner) finish(f *Flight) {
	r.send(f)
	if r.o.Finished != nil {
		r.o.Finished(f)
	}
	r.core.Advance()
	for _, reply := range f.replies {
		reply(nil)
	}
	f.replies = nil
}

// send hands a Ready's messages to the transport, once.
func (r *Runner) send(f *Flight) {
	if f.sent {
		return
	}
	f.sent = true
	// A message broadcast to many peers is one value: encode it once.
	// (The core never addresses itself; the transport would drop and
	// count such a message.)
	var lastMsg wire.Message
	var lastBytes []byte
	for _, env := range f.Ready.Messages {
		if env.Msg != lastMsg {
			lastMsg, lastBytes = env.Msg, wire.Encode(env.Msg)
		}
		r.tr.Send(env.To, lastBytes)
	}
}
