package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/seqbook/seqbook/client/bls"
	"github.com/seqbook/seqbook/client/seqapi"
)

// honestNet is 4 nodes serving 12 batches finalized at 4, 8 and 12.
func honestNet(t *testing.T) *testNet {
	t.Helper()
	tn := newTestNet(t, 4, 3)
	for i := 1; i <= 12; i++ {
		tn.nodes[0].chain.appendBatches(fmt.Sprintf(`{"op":"order","n":%d}`, i))
	}
	for _, idx := range []uint64{4, 8, 12} {
		tn.nodes[0].chain.finalize(idx)
	}
	return tn
}

func testSequencer(tn *testNet, opts ...Option) *Sequencer {
	base := []Option{WithTimeout(5 * time.Second), WithPollInterval(time.Millisecond, 5*time.Millisecond)}
	return NewSequencer(tn.c, append(base, opts...)...)
}

// checkPage asserts that a page holds exactly the chain's batches from..to.
func checkPage(t *testing.T, tn *testNet, page Page, from, to uint64) {
	t.Helper()
	if got := uint64(len(page.Batches)); got != to-from+1 {
		t.Fatalf("page has %d batches, want %d..%d", got, from, to)
	}
	ch := tn.nodes[0].chain
	for i, b := range page.Batches {
		want := ch.batches[from-1+uint64(i)]
		if b.Index != want.Index || string(b.Body) != want.Body || hex32(b.ChainingHash) != want.ChainingHash || b.Timestamp != want.Timestamp {
			t.Fatalf("batch %d differs from the chain: %+v vs %+v", i, b, want)
		}
	}
	if page.Proof == nil || page.Proof.Index != to || page.Proof.ChainingHash != page.Batches[len(page.Batches)-1].ChainingHash {
		t.Fatalf("page proof %+v does not finalize its last batch %d", page.Proof, to)
	}
}

func TestFinalizedHonestPages(t *testing.T) {
	tn := honestNet(t)
	seq := testSequencer(tn)
	ctx := context.Background()

	page, err := seq.Finalized(ctx, testApp, 0, [32]byte{})
	if err != nil {
		t.Fatal(err)
	}
	checkPage(t, tn, page, 1, 12)

	// From the middle of the chain, with the right previous chaining hash.
	page, err = seq.Finalized(ctx, testApp, 4, page.Batches[3].ChainingHash)
	if err != nil {
		t.Fatal(err)
	}
	checkPage(t, tn, page, 5, 12)

	// Nothing after the head yet: an empty page, no error.
	page, err = seq.Finalized(ctx, testApp, 12, page.Batches[7].ChainingHash)
	if err != nil || len(page.Batches) != 0 || page.Proof != nil {
		t.Fatalf("after the head: page %+v, err %v; want empty", page, err)
	}

	// A page cut at the highest proof it can reach.
	for _, n := range tn.nodes {
		n.pageMax = 6
	}
	page, err = seq.Finalized(ctx, testApp, 0, [32]byte{})
	if err != nil {
		t.Fatal(err)
	}
	checkPage(t, tn, page, 1, 4)
}

func TestFinalizedWrongPrevIsRefused(t *testing.T) {
	tn := honestNet(t)
	seq := testSequencer(tn)
	// A caller's wrong starting point must not verify on any node.
	_, err := seq.Finalized(context.Background(), testApp, 4, [32]byte{1})
	if !errors.Is(err, ErrChainingHash) {
		t.Fatalf("got %v, want ErrChainingHash from every node", err)
	}
	var nf *NodesFailedError
	if !errors.As(err, &nf) || len(nf.Errs) != 4 {
		t.Fatalf("want a NodesFailedError naming all 4 nodes, got %v", err)
	}
}

func TestFinalizedProofBeyondPage(t *testing.T) {
	tn := newTestNet(t, 4, 1)
	ch := tn.nodes[0].chain
	for i := 1; i <= 25; i++ {
		ch.appendBatches(fmt.Sprintf("b%d", i))
	}
	ch.finalize(25) // the only proof: pages of 10 must be chained to reach it
	for _, n := range tn.nodes {
		n.pageMax = 10
	}
	page, err := testSequencer(tn).Finalized(context.Background(), testApp, 0, [32]byte{})
	if err != nil {
		t.Fatal(err)
	}
	checkPage(t, tn, page, 1, 25)

	// Bounded: with at most 2 pages per proof the proof is out of reach.
	_, err = testSequencer(tn, WithChainPagesMax(2)).Finalized(context.Background(), testApp, 0, [32]byte{})
	if err == nil || !strings.Contains(err.Error(), "more than 2 pages") {
		t.Fatalf("got %v, want the pages bound to refuse", err)
	}
}

// rechain recomputes every batch hash and chaining hash of a page from its
// timestamps and bodies, as a careful liar would.
func rechain(p *seqapi.FinalizedPage, prev [32]byte) {
	for i := range p.Batches {
		b := &p.Batches[i]
		h := BatchHash(b.Timestamp, []byte(b.Body))
		prev = NextChainingHash(prev, h)
		b.Hash, b.ChainingHash = hex32(h), hex32(prev)
	}
}

// resign replaces the proof with one for the page's last batch signed by
// the given nodes.
func resign(tn *testNet, p *seqapi.FinalizedPage, app string, signers ...int) {
	last := p.Batches[len(p.Batches)-1]
	ch, _ := parseHash32("", last.ChainingHash)
	sig, ids := tn.signFinalize(app, 3, last.Index, ch, signers...)
	p.Finalized = &seqapi.FinalizedProof{Index: last.Index, ChainingHash: last.ChainingHash, View: 3, Signature: sig, Signers: ids}
}

// lies are the ways a node can serve a page it should not; each must be
// refused with its own error.
func lies(t *testing.T, tn *testNet) []struct {
	name   string
	tamper func(p *seqapi.FinalizedPage)
	want   error
} {
	outsider := mustKey(t)
	return []struct {
		name   string
		tamper func(p *seqapi.FinalizedPage)
		want   error
	}{
		{"tampered body", func(p *seqapi.FinalizedPage) { p.Batches[1].Body += " " }, ErrBatchHash},
		{"tampered body with its hash", func(p *seqapi.FinalizedPage) {
			p.Batches[1].Body = `{"op":"order","n":999}`
			p.Batches[1].Hash = hex32(BatchHash(p.Batches[1].Timestamp, []byte(p.Batches[1].Body)))
		}, ErrChainingHash},
		{"tampered timestamp", func(p *seqapi.FinalizedPage) { p.Batches[2].Timestamp++ }, ErrBatchHash},
		{"rewritten chain under the real proof", func(p *seqapi.FinalizedPage) {
			p.Batches[1].Body = "forged"
			rechain(p, [32]byte{})
		}, ErrProofMismatch},
		{"rewritten chain with its chaining hash in the proof", func(p *seqapi.FinalizedPage) {
			p.Batches[1].Body = "forged"
			rechain(p, [32]byte{})
			p.Finalized.ChainingHash = p.Batches[len(p.Batches)-1].ChainingHash
		}, ErrFinalitySignature},
		{"wrong chaining hash of the last batch", func(p *seqapi.FinalizedPage) {
			p.Batches[len(p.Batches)-1].ChainingHash = hex32([32]byte{7})
		}, ErrChainingHash},
		{"wrong signer list", func(p *seqapi.FinalizedPage) {
			p.Finalized.Signers = []string{"node2", "node3", "node4"}
		}, ErrFinalitySignature},
		{"unknown signer", func(p *seqapi.FinalizedPage) {
			p.Finalized.Signers = []string{"node1", "node2", "node9"}
		}, ErrFinalitySignature},
		{"duplicate signer", func(p *seqapi.FinalizedPage) {
			sig, _ := tn.signFinalize(testApp, 3, p.Finalized.Index, mustHash(p.Finalized.ChainingHash), 0, 1, 1)
			p.Finalized.Signature, p.Finalized.Signers = sig, []string{"node1", "node2", "node2"}
		}, ErrFinalitySignature},
		{"too few signers", func(p *seqapi.FinalizedPage) { resign(tn, p, testApp, 0, 1) }, ErrFinalitySignature},
		{"proof for another index", func(p *seqapi.FinalizedPage) { p.Finalized.Index-- }, ErrProofMismatch},
		{"proof from another view", func(p *seqapi.FinalizedPage) { p.Finalized.View++ }, ErrFinalitySignature},
		{"proof for another app", func(p *seqapi.FinalizedPage) { resign(tn, p, "otherapp", 0, 1, 2) }, ErrFinalitySignature},
		{"forged signature", func(p *seqapi.FinalizedPage) {
			ch := mustHash(p.Finalized.ChainingHash)
			d := tn.c.Domain.Digest(finalizeMsg(testApp, p.Finalized.View, p.Finalized.Index, ch))
			p.Finalized.Signature = bls.Aggregate([]*bls.Signature{outsider.Sign(d), outsider.Sign(d), outsider.Sign(d)}).Hex()
		}, ErrFinalitySignature},
		{"signature not a curve point", func(p *seqapi.FinalizedPage) {
			p.Finalized.Signature = "0x" + strings.Repeat("ab", 96)
		}, ErrMalformedPage},
		{"gap in the batches", func(p *seqapi.FinalizedPage) {
			p.Batches = append(p.Batches[:2:2], p.Batches[3:]...)
		}, ErrNotContiguous},
		{"batches without proof", func(p *seqapi.FinalizedPage) { p.Finalized = nil }, ErrNoProof},
		{"withheld batches", func(p *seqapi.FinalizedPage) { p.Batches = nil }, ErrWithheld},
		{"malformed hash", func(p *seqapi.FinalizedPage) { p.Batches[0].Hash = "0x1234" }, ErrMalformedPage},
		{"timestamps decrease, even signed by a quorum", func(p *seqapi.FinalizedPage) {
			p.Batches[2].Timestamp = p.Batches[1].Timestamp - 1
			rechain(p, [32]byte{})
			resign(tn, p, testApp, 0, 1, 2)
		}, ErrTimestampOrder},
	}
}

func mustHash(s string) [32]byte { h, _ := parseHash32("", s); return h }

func TestFinalizedRefusesLiesAndMovesOn(t *testing.T) {
	tn := honestNet(t)
	for _, lie := range lies(t, tn) {
		t.Run(lie.name, func(t *testing.T) {
			// The lie alone, through the pure verifier.
			p := tn.nodes[0].chain.page(0, 1000)
			lie.tamper(&p)
			raw, _ := json.Marshal(p)
			if page, err := verifyOnePage(tn.c, testApp, 0, [32]byte{}, raw); !errors.Is(err, lie.want) {
				t.Fatalf("verifier: got %v (page of %d batches), want %v", err, len(page.Batches), lie.want)
			}

			// Node1 lies, the others are honest: the Sequencer skips node1.
			tn.nodes[0].setTamper(lie.tamper)
			defer tn.nodes[0].setTamper(nil)
			seq := testSequencer(tn)
			page, err := seq.Finalized(context.Background(), testApp, 0, [32]byte{})
			if err != nil {
				t.Fatal(err)
			}
			if page.Node != "node2" {
				t.Fatalf("page served by %s, want node2", page.Node)
			}
			checkPage(t, tn, page, 1, 12)
			// Node1 is benched: the next read goes to node2 first.
			_, before := tn.nodes[0].counts()
			if _, err := seq.Finalized(context.Background(), testApp, 0, [32]byte{}); err != nil {
				t.Fatal(err)
			}
			if _, after := tn.nodes[0].counts(); after != before {
				t.Fatalf("the lying node was asked again right away")
			}
		})
	}
}

func TestFinalizedProofBelowPageEndDropsTheRest(t *testing.T) {
	tn := honestNet(t)
	// A node serving batches 1..12 under the genuine proof of index 8:
	// only 1..8 are vouched for, so only they come out.
	tn.nodes[0].setTamper(func(p *seqapi.FinalizedPage) {
		pr := tn.nodes[0].chain.proofs[8]
		p.Finalized = &pr
	})
	page, err := testSequencer(tn).Finalized(context.Background(), testApp, 0, [32]byte{})
	if err != nil {
		t.Fatal(err)
	}
	if page.Node != "node1" {
		t.Fatalf("served by %s", page.Node)
	}
	checkPage(t, tn, page, 1, 8)
}

func TestAllNodesLying(t *testing.T) {
	tn := honestNet(t)
	for _, n := range tn.nodes {
		n.setTamper(func(p *seqapi.FinalizedPage) { p.Batches[0].Body = "x" })
	}
	page, err := testSequencer(tn).Finalized(context.Background(), testApp, 0, [32]byte{})
	if err == nil || len(page.Batches) != 0 {
		t.Fatalf("got %d batches, err %v: unverified data must never come out", len(page.Batches), err)
	}
	if !errors.Is(err, ErrBatchHash) {
		t.Fatalf("got %v", err)
	}
}

func TestLastFinalized(t *testing.T) {
	tn := newTestNet(t, 4, 1)
	seq := testSequencer(tn)
	proof, err := seq.LastFinalized(context.Background(), testApp)
	if err != nil || proof != nil {
		t.Fatalf("empty chain: proof %v, err %v", proof, err)
	}
	ch := tn.nodes[0].chain
	ch.appendBatches("a", "b", "c")
	ch.finalize(3)
	// Node1 forges a higher head: refused, node2 answers.
	tn.nodes[0].setTamper(func(p *seqapi.FinalizedPage) { p.Finalized.Index = 99 })
	proof, err = seq.LastFinalized(context.Background(), testApp)
	if err != nil {
		t.Fatal(err)
	}
	if proof.Index != 3 || hex32(proof.ChainingHash) != ch.batches[2].ChainingHash {
		t.Fatalf("head %d %x", proof.Index, proof.ChainingHash)
	}
}

func TestSend(t *testing.T) {
	tn := newTestNet(t, 4, 1)
	seq := testSequencer(tn)
	ctx := context.Background()

	// A failing node (5xx) is skipped.
	tn.nodes[0].setStatus(http.StatusInternalServerError)
	if err := seq.Send(ctx, testApp, []byte("hello")); err != nil {
		t.Fatal(err)
	}
	if p, _ := tn.nodes[1].counts(); p != 1 {
		t.Fatalf("node2 got %d PUTs, want 1", p)
	}

	// A node that refuses the batch itself (4xx) gives the final answer.
	tn.nodes[1].setStatus(http.StatusRequestEntityTooLarge)
	err := seq.Send(ctx, testApp, []byte("hello"))
	var ae *APIError
	if !errors.As(err, &ae) || ae.Status != http.StatusRequestEntityTooLarge || ae.Message != "fake failure" {
		t.Fatalf("got %v, want the 413 APIError", err)
	}
	if p, _ := tn.nodes[2].counts(); p != 0 {
		t.Fatalf("a 4xx must not be retried elsewhere; node3 got %d PUTs", p)
	}

	// A node that is gone (connection refused) is skipped.
	tn.nodes[1].setStatus(0)
	tn.servers[1].Close()
	if err := seq.Send(ctx, testApp, []byte("again")); err != nil {
		t.Fatal(err)
	}

	// All down: an error naming each node.
	for _, n := range tn.nodes {
		n.setStatus(http.StatusServiceUnavailable)
	}
	err = seq.Send(ctx, testApp, []byte("x"))
	var nf *NodesFailedError
	if !errors.As(err, &nf) || len(nf.Errs) != 4 {
		t.Fatalf("got %v", err)
	}

	// Refused before any request.
	for _, body := range [][]byte{nil, []byte("\xff\xfe"), make([]byte, seqapi.BatchBytesMax+1)} {
		if err := seq.Send(ctx, testApp, body); err == nil {
			t.Fatalf("batch of %d bytes accepted", len(body))
		}
	}
	if err := seq.Send(ctx, "a/b", []byte("x")); err == nil {
		t.Fatal("app with a slash accepted")
	}
}

func TestFollowSkipsLiarAndStopsOnFnError(t *testing.T) {
	tn := honestNet(t)
	for _, n := range tn.nodes {
		n.pageMax = 5 // pages end at 4, 8, 12
	}
	tn.nodes[0].setTamper(func(p *seqapi.FinalizedPage) {
		if len(p.Batches) > 0 {
			p.Batches[0].Body = "lie"
		}
	})
	seq := testSequencer(tn)
	var got []Batch
	stop := errors.New("enough")
	err := seq.Follow(context.Background(), testApp, 0, [32]byte{}, func(b Batch) error {
		got = append(got, b)
		if b.Index == 12 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) {
		t.Fatalf("Follow returned %v, want fn's error", err)
	}
	checkPage(t, tn, Page{Batches: got, Proof: &FinalityProof{Index: 12, ChainingHash: got[len(got)-1].ChainingHash}}, 1, 12)
	for _, b := range got {
		if string(b.Body) == "lie" {
			t.Fatal("a lie got through")
		}
	}
}

func TestFollowWaitsForNewBatchesAndStopsOnCtx(t *testing.T) {
	tn := honestNet(t)
	seq := testSequencer(tn)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ch := tn.nodes[0].chain
	var got []uint64
	err := seq.Follow(ctx, testApp, 0, [32]byte{}, func(b Batch) error {
		got = append(got, b.Index)
		switch b.Index {
		case 12:
			// The follower has caught up; new batches finalize while it polls.
			go func() { ch.appendBatches("late1", "late2"); ch.finalize(14) }()
		case 14:
			cancel()
		}
		return nil
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
	if len(got) != 14 || got[13] != 14 {
		t.Fatalf("got indexes %v", got)
	}
}

func TestSendAndWait(t *testing.T) {
	tn := honestNet(t)
	tn.nodes[0].chain.finalizeOnPut = true
	tn.nodes[0].setTamper(func(p *seqapi.FinalizedPage) {
		if p.Finalized != nil {
			p.Finalized.View = 42 // node1 lies about every proof
		}
	})
	seq := testSequencer(tn)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	b, err := seq.SendAndWait(ctx, testApp, []byte(`{"op":"mine"}`))
	if err != nil {
		t.Fatal(err)
	}
	if b.Index != 13 || string(b.Body) != `{"op":"mine"}` {
		t.Fatalf("got batch %d %q", b.Index, b.Body)
	}
}

func TestBatchesIteratorBreak(t *testing.T) {
	tn := honestNet(t)
	seq := testSequencer(tn)
	n := 0
	for b, err := range seq.Batches(context.Background(), testApp, 0, [32]byte{}) {
		if err != nil {
			t.Fatal(err)
		}
		n++
		if b.Index == 3 {
			break
		}
	}
	if n != 3 {
		t.Fatalf("iterated %d batches", n)
	}
}

// TestHeldLongPollIsNotRaced: a node that answers a long-poll's status at
// once and holds the page (as nodes do while nothing new is final) is
// alive: the read waits on it alone, however long past the hedge delay,
// instead of asking every other node too (and cancelling them, a new
// connection per poll on an idle network).
func TestHeldLongPollIsNotRaced(t *testing.T) {
	tn := newTestNet(t, 4, 3)
	for _, n := range tn.nodes {
		n.holdLongPolls = true
	}
	seq := testSequencer(tn, WithHedgeAfter(20*time.Millisecond), WithSpread(0))
	page, err := seq.FinalizedWait(context.Background(), testApp, 0, [32]byte{}, 600*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Batches) != 0 {
		t.Fatalf("nothing is final, got %d batches", len(page.Batches))
	}
	asked := 0
	for _, n := range tn.nodes {
		if _, get := n.counts(); get > 0 {
			asked++
		}
	}
	if asked != 1 {
		t.Fatalf("%d nodes asked for one held long-poll, want 1", asked)
	}
}

// TestHeldLongPollCutOffIsRaced: a node that answered a long-poll's
// status and then went silent (cut off from the network while it held the
// poll) owes its page within the wait: past the wait and the hedge delay
// the next node is asked, and the read does not hang until the network
// heals or the HTTP timeout (30 s here, beyond the caller's deadline).
func TestHeldLongPollCutOffIsRaced(t *testing.T) {
	tn := honestNet(t)
	tn.nodes[0].cutOffWhileHolding = true
	seq := testSequencer(tn, WithTimeout(30*time.Second), WithHedgeAfter(20*time.Millisecond), WithSpread(0))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	page, err := seq.FinalizedWait(ctx, testApp, 0, [32]byte{}, 300*time.Millisecond)
	if err != nil {
		t.Fatalf("a node cut off while holding the poll held the read: %v", err)
	}
	checkPage(t, tn, page, 1, 12)
	if _, get := tn.nodes[0].counts(); get != 1 {
		t.Fatalf("node1 asked %d times, want 1 (it was asked first)", get)
	}
}

// TestFinalizedWaitAsksForALongPoll: FinalizedWait passes wait_ms on the
// first page only (later pages of a chain are known to exist), Finalized
// never does.
func TestFinalizedWaitAsksForALongPoll(t *testing.T) {
	tn := newTestNet(t, 4, 3)
	ch := tn.nodes[0].chain
	for i := 1; i <= 12; i++ {
		ch.appendBatches(fmt.Sprintf(`{"n":%d}`, i))
	}
	ch.finalize(12)
	for _, n := range tn.nodes {
		n.pageMax = 5 // the proof at 12 lies two pages beyond the first
	}
	seq := testSequencer(tn)
	page, err := seq.FinalizedWait(context.Background(), testApp, 0, [32]byte{}, 1500*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	checkPage(t, tn, page, 1, 12)
	if _, err := seq.Finalized(context.Background(), testApp, 12, page.Batches[11].ChainingHash); err != nil {
		t.Fatal(err)
	}
	var waits []string
	for _, n := range tn.nodes {
		n.mu.Lock()
		waits = append(waits, n.waits...)
		n.mu.Unlock()
	}
	if strings.Join(waits, ",") != "1500,,," {
		t.Fatalf("wait_ms per request: %q, want 1500 then none", waits)
	}
}

// followLate follows the honest chain until batch 14, appending two
// batches once the follower has caught up at 12; it returns the indexes
// seen and how long the late ones took from their finalization.
func followLate(t *testing.T, tn *testNet, seq *Sequencer) ([]uint64, time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	ch := tn.nodes[0].chain
	var got []uint64
	var finalizedAt time.Time
	var late time.Duration
	err := seq.Follow(ctx, testApp, 0, [32]byte{}, func(b Batch) error {
		got = append(got, b.Index)
		switch b.Index {
		case 12:
			go func() {
				time.Sleep(50 * time.Millisecond) // the follower waits on its stream
				ch.appendBatches("late1", "late2")
				finalizedAt = time.Now()
				ch.finalize(14)
			}()
		case 14:
			late = time.Since(finalizedAt)
			cancel()
		}
		return nil
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Follow ended with %v, want context.Canceled after batch 14 (got %v)", err, got)
	}
	if len(got) != 14 || got[13] != 14 {
		t.Fatalf("got indexes %v", got)
	}
	return got, late
}

// streamsOpened counts the streams the nodes were asked for.
func streamsOpened(nodes []*fakeNode) int {
	k := 0
	for _, n := range nodes {
		n.mu.Lock()
		k += n.streams
		n.mu.Unlock()
	}
	return k
}

// TestFollowReadsOneStream: a follower reads the finalized batches as a
// stream: one request serves the backlog and the batches finalized later,
// and they come without another request's round trip.
func TestFollowReadsOneStream(t *testing.T) {
	tn := honestNet(t)
	seq := testSequencer(tn, WithLongPoll(time.Second), WithSpread(0))
	followLate(t, tn, seq)
	streams, gets := streamsOpened(tn.nodes), 0
	for _, n := range tn.nodes {
		_, get := n.counts()
		gets += get
	}
	if streams != 1 || gets != 1 {
		t.Fatalf("%d streams and %d GETs to follow 14 batches, want one stream and nothing else", streams, gets)
	}
}

// TestFollowLeavesASilentStream: a stream whose node goes silent (cut off
// from the network mid-stream) is left after the long-poll time and the
// hedge delay, and the batches come from another node's stream.
func TestFollowLeavesASilentStream(t *testing.T) {
	tn := honestNet(t)
	tn.nodes[0].streamLines = 1 // the backlog, then silence
	seq := testSequencer(tn, WithLongPoll(200*time.Millisecond), WithHedgeAfter(50*time.Millisecond), WithSpread(0), WithTimeout(30*time.Second))
	_, late := followLate(t, tn, seq)
	if late > 5*time.Second {
		t.Fatalf("the late batches came %v after their finalization: the silent stream held the follower", late)
	}
	others := streamsOpened(tn.nodes[1:])
	if others == 0 {
		t.Fatal("no other node was asked for a stream")
	}
}

// TestFollowReadsNodesWithoutStreams: a node that ignores ?stream=1 (one
// from before streams) answers one page; the follower still gets every
// batch, asking again.
func TestFollowReadsNodesWithoutStreams(t *testing.T) {
	tn := honestNet(t)
	for _, n := range tn.nodes {
		n.noStream = true
	}
	followLate(t, tn, testSequencer(tn, WithLongPoll(200*time.Millisecond)))
}

// TestFollowStreamSkipsLiar: a stream page that fails its check benches
// the node; the follower reads the rest from another node's stream.
func TestFollowStreamSkipsLiar(t *testing.T) {
	tn := honestNet(t)
	tn.nodes[0].setTamper(func(p *seqapi.FinalizedPage) {
		if len(p.Batches) > 0 {
			p.Batches[0].Body = "lie"
		}
	})
	followLate(t, tn, testSequencer(tn, WithLongPoll(200*time.Millisecond), WithSpread(0)))
	others := streamsOpened(tn.nodes[1:])
	if others == 0 {
		t.Fatal("the batches came without another node's stream: the lie was taken")
	}
}
