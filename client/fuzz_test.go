package client

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/seqbook/seqbook/client/eip712"
)

// fuzzNet is one fixed cluster and chain for all fuzz runs of a process:
// 12 batches finalized at 4, 8 and 12, from deterministic keys.
var fuzzNet = sync.OnceValue(func() *testNet {
	tn := newFixedNet(&testing.T{}, "fuzz", 4, 3)
	ch := tn.nodes[0].chain
	for i := 1; i <= 12; i++ {
		ch.appendBatches(fmt.Sprintf(`{"op":"order","n":%d}`, i))
	}
	for _, idx := range []uint64{4, 8, 12} {
		ch.finalize(idx)
	}
	return tn
})

// FuzzVerifyPage feeds arbitrary bytes as a node's page answer. It must
// never panic, and whatever it accepts must be the one finalized chain:
// a forged batch could only pass with a forged quorum signature.
func FuzzVerifyPage(f *testing.F) {
	tn := fuzzNet()
	ch := tn.nodes[0].chain
	for _, after := range []uint64{0, 4, 8, 12} {
		p := ch.page(after, 1000)
		raw, _ := json.Marshal(p)
		f.Add(raw, uint8(after))
	}
	f.Add([]byte(`{"batches":[],"finalized":null}`), uint8(0))
	f.Add([]byte(`{"batches":[{"index":1}]}`), uint8(0))
	f.Fuzz(func(t *testing.T, raw []byte, afterByte uint8) {
		after := uint64(afterByte) % 13
		var prev [32]byte
		if after > 0 {
			prev = mustHash(ch.batches[after-1].ChainingHash)
		}
		page, err := verifyOnePage(tn.c, testApp, after, prev, raw)
		if err != nil {
			if len(page.Batches) != 0 || page.Proof != nil {
				t.Fatal("an error came with data")
			}
			return
		}
		if len(page.Batches) == 0 {
			if page.Proof != nil {
				t.Fatal("empty page with a proof")
			}
			return
		}
		for i, b := range page.Batches {
			honest := ch.batches[after+uint64(i)]
			if b.Index != honest.Index || string(b.Body) != honest.Body || b.Timestamp != honest.Timestamp ||
				hex32(b.Hash) != honest.Hash || hex32(b.ChainingHash) != honest.ChainingHash {
				t.Fatalf("accepted batch %d is not the finalized one", b.Index)
			}
		}
		last := page.Batches[len(page.Batches)-1]
		pr := page.Proof
		if pr == nil || pr.Index != last.Index || pr.ChainingHash != last.ChainingHash {
			t.Fatal("accepted page without a proof of its last batch")
		}
		d := tn.c.Domain.Digest(&eip712.Finalize{App: testApp, View: pr.View, Index: pr.Index, ChainingHash: pr.ChainingHash})
		if err := tn.c.VerifyNodeQuorum(d, pr.Signature, pr.Signers); err != nil {
			t.Fatalf("accepted proof does not verify: %v", err)
		}
	})
}

// fuzzProofs are the only replica-signed proofs of the fuzz process.
var fuzzProofs = sync.OnceValues(func() (*BalanceProof, *WithdrawalProof) {
	tn := fuzzNet()
	bp := balanceProof(tn, sampleBalance(), 0, 2)
	wp := withdrawalProof(tn, eip712.Withdrawal{App: testApp, ID: [32]byte{0xab}, Trader: tutorialBuyer, Token: "ETH",
		Amount: 2_500_000, Recipient: tutorialBuyer, Index: 44}, 0, 1, 2)
	return bp, wp
})

// FuzzParseProof feeds arbitrary documents to what `seqbook verify` runs.
// Nothing may panic, and only what replicas signed may verify.
func FuzzParseProof(f *testing.F) {
	tn := fuzzNet()
	bp, wp := fuzzProofs()
	b1, _ := json.Marshal(bp)
	b2, _ := json.Marshal(wp)
	f.Add(b1)
	f.Add(b2)
	f.Add([]byte(`{"address":"0x00"}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		kind, b, w, err := ParseProof(raw)
		if err != nil {
			if b != nil || w != nil {
				t.Fatal("an error came with a proof")
			}
			return
		}
		switch kind {
		case KindBalance:
			if VerifyBalanceProof(tn.c, b) == nil && b.Digest != bp.Digest {
				t.Fatalf("verified a balance nobody signed: %+v", b)
			}
		case KindWithdrawal:
			if VerifyWithdrawalProof(tn.c, w) == nil && w.Digest != wp.Digest {
				t.Fatalf("verified a withdrawal nobody signed: %+v", w)
			}
		default:
			t.Fatalf("kind %d without error", kind)
		}
	})
}

// FuzzParseChainID feeds arbitrary chainId values of a replica's
// GET /eip712 answer.
func FuzzParseChainID(f *testing.F) {
	for _, s := range []string{`31337`, `"0x7a69"`, `"31337"`, `0`, `"0x"`, `-1`, `1e3`, `"18446744073709551616"`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		id, err := parseChainID(raw)
		if err == nil && id == 0 {
			t.Fatal("chain id 0 accepted")
		}
	})
}

// FuzzParseStateProof: the state proof decoder never panics, and what it
// accepts re-encodes to a document it accepts again with the same fields.
func FuzzParseStateProof(f *testing.F) {
	f.Add([]byte(`{"app":"orderbook","index":8,"state_digest":"0x` + strings.Repeat("ab", 32) + `","digest":"0x` + strings.Repeat("cd", 32) + `","signature":"0x00","signers":["replica1"],"non_signers":[],"threshold":2}`))
	f.Add([]byte(`{"app":"orderbook","index":8,"extra":1}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		p, err := ParseStateProof(raw)
		if err != nil {
			return
		}
		again, err := json.Marshal(p)
		if err != nil {
			t.Fatal(err)
		}
		q, err := ParseStateProof(again)
		if err != nil || !reflect.DeepEqual(p, q) {
			t.Fatalf("round trip: %v\n%+v\n%+v", err, p, q)
		}
	})
}
