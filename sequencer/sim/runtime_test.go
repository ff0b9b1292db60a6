package sim

import (
	"strings"
	"testing"

	"github.com/seqbook/seqbook/sequencer/core"
	"github.com/seqbook/seqbook/sequencer/wire"
)

// sendBeforeSaveSeedsMax bounds how many seeds the send-before-save canary
// may take: the broken runner sends before its first save with messages,
// which every seed reaches in its first ticks.
const sendBeforeSaveSeedsMax = 5

// TestCanarySendBeforeSave: the node runtime's runner mutated to send a
// Ready's messages before its save must be caught by the interleaving
// check within a few seeds (TestSim is the control: the same runner
// unmutated passes every seed).
func TestCanarySendBeforeSave(t *testing.T) {
	for s := uint64(1); s <= sendBeforeSaveSeedsMax; s++ {
		r := Run(Options{Seed: s, Mutation: core.MutationSendBeforeSave})
		for _, v := range r.Violations {
			if strings.HasPrefix(v, "SAFETY") && strings.Contains(v, "persist before send") {
				t.Logf("caught at seed %d: %s", s, v)
				return
			}
		}
	}
	t.Fatalf("the simulator did not catch send-before-save in %d seeds", sendBeforeSaveSeedsMax)
}

// TestSimCrashesAroundSends: the fault model really crashes nodes between
// a save and its sends and between sends and the next save, over a few
// seeds that all pass.
func TestSimCrashesAroundSends(t *testing.T) {
	var afterSave, afterSend int
	for s := uint64(1); s <= 40 && (afterSave == 0 || afterSend == 0); s++ {
		r := Run(Options{Seed: s})
		if r.Failed() {
			t.Fatalf("SEED=%d: %s", s, r.Violations[0])
		}
		afterSave += r.Stats.CrashesAfterSave
		afterSend += r.Stats.CrashesAfterSend
	}
	if afterSave == 0 || afterSend == 0 {
		t.Fatalf("crashes after a save: %d, after sends: %d; want both", afterSave, afterSend)
	}
}

// TestRecorderFlags: each ordering rule the recorder watches is reported
// when broken, and nothing is reported when it holds.
func TestRecorderFlags(t *testing.T) {
	post := &wire.Post{App: "a", View: 1}
	data := wire.Encode(post)
	other := wire.Encode(&wire.Post{App: "b", View: 1})
	rd := func() *core.Ready {
		return &core.Ready{Persist: core.Persist{Hard: &core.HardState{View: 1}}, Messages: []core.Envelope{{To: 1, Msg: post}}}
	}
	cases := []struct {
		name string
		run  func(r *recorder)
		want string // "" for no violation
	}{
		{"in order", func(r *recorder) {
			x := rd()
			r.taken(x)
			r.saving(&x.Persist)
			r.saved()
			r.sent(1, data)
			r.answering(0)
			r.advancing()
		}, ""},
		{"send before save", func(r *recorder) {
			x := rd()
			r.taken(x)
			r.sent(1, data)
		}, "persist before send"},
		{"send of a later Ready before an earlier save", func(r *recorder) {
			x, y := rd(), &core.Ready{Messages: []core.Envelope{{To: 1, Msg: post}}}
			r.taken(x)
			r.taken(y) // nothing to persist, but saved and sent in order
			r.sent(1, data)
		}, "persist before send"},
		{"bytes no Ready holds", func(r *recorder) {
			r.sent(1, other)
		}, "no Ready of its core holds"},
		{"advance before save", func(r *recorder) {
			r.taken(rd())
			r.advancing()
		}, "advanced its core"},
		{"PUT answered before save", func(r *recorder) {
			r.taken(rd())
			r.answering(0)
		}, "answered a PUT"},
		{"saves out of order", func(r *recorder) {
			x, y := rd(), rd()
			r.taken(x)
			r.taken(y)
			r.saving(&y.Persist)
		}, "not the next Ready's"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			w := &world{chk: newChecker(4, nil)}
			tc.run(newRecorder(w, 0))
			got := strings.Join(w.chk.violations, "; ")
			if (tc.want == "") != (got == "") || !strings.Contains(got, tc.want) {
				t.Fatalf("violations %q, want one containing %q", got, tc.want)
			}
		})
	}
}
