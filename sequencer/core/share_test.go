package core_test

import (
	"slices"
	"testing"

	"github.com/seqbook/seqbook/client/eip712"
	"github.com/seqbook/seqbook/sequencer/core"
	"github.com/seqbook/seqbook/sequencer/wire"
)

// lockVote and finVote are node i's valid votes for (index, hash) in view 0
// of app "ob".
func lockVote(i int, index uint64, h wire.Hash) *wire.Vote {
	d := core.LockDigest(eip712.NewDomain(chain), "ob", 0, index, h)
	return &wire.Vote{App: "ob", View: 0, Lock: &wire.SignedTarget{Index: index, ChainingHash: h, Signature: testCrypto{}.sig(i, d)}}
}

func finVote(i int, index uint64, h wire.Hash) *wire.Vote {
	d := core.FinalizeDigest(eip712.NewDomain(chain), "ob", 0, index, h)
	return &wire.Vote{App: "ob", View: 0, Finalize: &wire.SignedTarget{Index: index, ChainingHash: h, Signature: testCrypto{}.sig(i, d)}}
}

// finalizeRequests lists the nodes a Ready asks to finalize.
func finalizeRequests(rd core.Ready) []int {
	var to []int
	for _, e := range rd.Messages {
		if r, ok := e.Msg.(*wire.Round); ok && r.Finalize != nil {
			to = append(to, e.To)
		}
	}
	return to
}

// TestSharedLockVotesLeader: a leader that shares lock votes asks for them
// with ShareLock, sends its own lock vote to every node, does not ask for
// the finalize of the lock proof they form (the nodes give it unasked),
// keeps a finalize vote that comes before its own lock proof, and asks for
// the finalize only once a node's retry timeout runs out without it.
func TestSharedLockVotesLeader(t *testing.T) {
	for _, tc := range []struct {
		name string
		// early: node 1's finalize vote comes before the lock votes.
		early bool
		// silent: no finalize vote comes unasked.
		silent bool
	}{{"unasked finalize votes", false, false}, {"a finalize vote before the lock proof", true, false}, {"no unasked vote", false, true}} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := quiet(core.TestConfig(chain, 4, 0))
			cfg.ShareLockVotes = core.ShareAlways
			n, store, now := startNode0(t, cfg)
			_, rd, now := leadFirstBatch(t, n, store, cfg, now, "b1")
			var h wire.Hash
			for _, e := range rd.Messages {
				if r, ok := e.Msg.(*wire.Round); ok && r.Lock != nil {
					if !r.ShareLock {
						t.Fatalf("lock request to %d without ShareLock", e.To)
					}
					h = r.Lock.ChainingHash
				}
			}
			now += cfg.TickMs
			n.Tick(now) // the leader's own signature, deferred past the requests
			var own []int
			for _, e := range append(rd.Messages, handle(t, n, store).Messages...) {
				if v, ok := e.Msg.(*wire.Vote); ok && v.Lock != nil && v.Lock.Index == 1 && v.Lock.Signature == lockVote(0, 1, h).Lock.Signature {
					own = append(own, e.To)
				}
			}
			if !slices.Equal(own, []int{1, 2, 3}) {
				t.Fatalf("the leader's own lock vote went to %v, want [1 2 3]", own)
			}
			if tc.early {
				if err := n.Step(1, finVote(1, 1, h)); err != nil {
					t.Fatal(err)
				}
				handle(t, n, store)
			}
			for _, f := range []int{1, 2} {
				if err := n.Step(f, lockVote(f, 1, h)); err != nil {
					t.Fatal(err)
				}
			}
			if got := finalizeRequests(handle(t, n, store)); len(got) != 0 {
				t.Fatalf("lock proof 1: finalize asked of %v, want nobody (they finalize unasked)", got)
			}
			if st := n.Status().Apps[0]; st.Locked != 1 || st.Finalized != 0 {
				t.Fatalf("locked %d finalized %d, want 1 and 0", st.Locked, st.Finalized)
			}
			if tc.silent {
				var asked []int
				for k := 0; k < cfg.RetryTicksMax+1 && len(asked) == 0; k++ {
					now += cfg.TickMs
					n.Tick(now)
					asked = finalizeRequests(handle(t, n, store))
				}
				if !slices.Equal(asked, []int{1, 2, 3}) {
					t.Fatalf("no unasked finalize vote within the retry timeout: asked %v, want [1 2 3]", asked)
				}
			}
			voters := []int{1, 2}
			if tc.early {
				voters = []int{2} // node 1's came early
			}
			for _, f := range voters {
				if err := n.Step(f, finVote(f, 1, h)); err != nil {
					t.Fatal(err)
				}
			}
			handle(t, n, store)
			if st := n.Status().Apps[0]; st.Finalized != 1 {
				t.Fatalf("finalized %d, want 1", st.Finalized)
			}
		})
	}
}

// followerWithBatch is node 1 (startFollower, with tweaks) in view 0
// holding one batch, and that batch's chaining hash.
func followerWithBatch(t *testing.T, tweaks ...func(*core.Config)) (*core.Node, core.Store, wire.Hash) {
	t.Helper()
	n, store, _, now := startFollower(t, tweaks...)
	if err := n.Step(0, &wire.NewView{App: "ob", View: 0}); err != nil {
		t.Fatal(err)
	}
	handle(t, n, store)
	b := []wire.Batch{{Index: 1, Timestamp: now, Origin: 0, Seq: 1, Body: []byte("a")}}
	if err := n.Step(0, &wire.PostReply{App: "ob", View: 0, After: 0, Batches: b}); err != nil {
		t.Fatal(err)
	}
	handle(t, n, store)
	h1 := core.ChainHash(wire.Hash{}, core.BatchHash(now, []byte("a")))
	return n, store, h1
}

// TestSharedLockVotesFollower: a follower asked with ShareLock sends its
// lock vote to the leader and to every other node, takes the others' votes
// for the Lock it signed (and only that one), drops a bad signature
// without losing the good ones, and once a quorum's valid votes aggregate
// into a lock proof it raises its lock (rule 3) and sends the leader its
// Finalize vote unasked.
func TestSharedLockVotesFollower(t *testing.T) {
	n, store, h1 := followerWithBatch(t)

	if err := n.Step(0, &wire.Round{App: "ob", View: 0, Lock: &wire.LockTarget{Index: 1, ChainingHash: h1}, ShareLock: true}); err != nil {
		t.Fatal(err)
	}
	want := lockVote(1, 1, h1).Lock.Signature
	var shared []int
	for _, e := range handle(t, n, store).Messages {
		v, ok := e.Msg.(*wire.Vote)
		if !ok || v.Lock == nil || v.Lock.Signature != want {
			t.Fatalf("unexpected message to %d: %#v", e.To, e.Msg)
		}
		shared = append(shared, e.To)
	}
	if slices.Sort(shared); !slices.Equal(shared, []int{0, 2, 3}) {
		t.Fatalf("lock vote sent to %v, want the leader and nodes 2, 3", shared)
	}

	step := func(from int, v *wire.Vote) core.Ready {
		t.Helper()
		if err := n.Step(from, v); err != nil {
			t.Fatal(err)
		}
		return handle(t, n, store)
	}
	// A vote for a Lock it did not sign, and a bad signature: no proof.
	other := h1
	other[0] ^= 1
	if rd := step(2, lockVote(2, 1, other)); len(rd.Messages) != 0 {
		t.Fatalf("a vote for another chain: %v", rd.Messages)
	}
	bad := lockVote(3, 1, h1)
	bad.Lock.Signature[0] ^= 1
	step(3, bad)
	if rd := step(2, lockVote(2, 1, h1)); len(rd.Messages) != 0 || n.Status().Apps[0].Locked != 0 {
		t.Fatalf("two valid votes and a bad one made a proof: %v, locked %d", rd.Messages, n.Status().Apps[0].Locked)
	}
	rd := step(0, lockVote(0, 1, h1))
	if len(rd.Messages) != 1 || rd.Messages[0].To != 0 {
		t.Fatalf("after a quorum of valid lock votes: %v, want one vote to the leader", rd.Messages)
	}
	v, ok := rd.Messages[0].Msg.(*wire.Vote)
	if !ok || v.Lock != nil || v.Finalize == nil || v.Finalize.Signature != finVote(1, 1, h1).Finalize.Signature {
		t.Fatalf("after a quorum of valid lock votes: %#v, want the Finalize vote", rd.Messages[0].Msg)
	}
	if st := n.Status().Apps[0]; st.Locked != 1 {
		t.Fatalf("locked %d, want 1: the aggregated lock proof is the node's lock", st.Locked)
	}
	// A late vote for the same Lock changes nothing.
	if rd := step(3, lockVote(3, 1, h1)); len(rd.Messages) != 0 {
		t.Fatalf("a late vote: %v", rd.Messages)
	}
}

// TestNoSharingWithoutShareLock: a plain round's lock vote goes to the
// leader alone, and votes from other nodes are ignored.
func TestNoSharingWithoutShareLock(t *testing.T) {
	n, store, h1 := followerWithBatch(t)
	if err := n.Step(0, &wire.Round{App: "ob", View: 0, Lock: &wire.LockTarget{Index: 1, ChainingHash: h1}}); err != nil {
		t.Fatal(err)
	}
	if rd := handle(t, n, store); len(rd.Messages) != 1 || rd.Messages[0].To != 0 {
		t.Fatalf("plain round: %v, want one vote to the leader", rd.Messages)
	}
	for _, f := range []int{0, 2, 3} {
		if err := n.Step(f, lockVote(f, 1, h1)); err != nil {
			t.Fatal(err)
		}
	}
	if rd := handle(t, n, store); len(rd.Messages) != 0 || n.Status().Apps[0].Locked != 0 {
		t.Fatalf("votes after a plain round: %v, locked %d", rd.Messages, n.Status().Apps[0].Locked)
	}
}
