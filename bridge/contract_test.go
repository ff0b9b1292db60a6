package bridge

import (
	"bytes"
	"fmt"
	"math/big"
	"testing"

	"github.com/seqbook/seqbook/client/bls"
	"github.com/seqbook/seqbook/client/eip712"
)

// The contract's hash to G2 (expand_message_xmd over the SHA-256
// precompile, reduction mod p with MODEXP, MAP_FP2_TO_G2 twice, G2ADD) is
// the ciphersuite's: it equals blst's hash_to_curve on several messages,
// and a signature by client/bls (herumi) verifies against it.
func TestHashToG2MatchesBLS(t *testing.T) {
	f := newFixture(t, 3)
	msgs := [][32]byte{{}, eip712.Keccak256([]byte("seqbook")), {0xff, 0xff, 0xff}}
	for i := range 5 {
		msgs = append(msgs, eip712.Keccak256([]byte(fmt.Sprintf("message %d", i))))
	}
	var all [32]byte
	for i := range all {
		all[i] = 0xff
	}
	msgs = append(msgs, all)
	for _, m := range msgs {
		got, err := f.bridge.HashToG2(f.ctx, m)
		if err != nil {
			t.Fatal(err)
		}
		if want := HashToG2(m); !bytes.Equal(got, want) {
			t.Fatalf("hashToG2(%x):\n contract %x\n blst     %x", m, got, want)
		}
		// One replica's signature (herumi) checks out on-chain against the
		// contract's hash: the bitmap 1 has one signer, below a threshold of
		// 2, so check through verifyQuorum with two replicas signing.
		sig := bls.Aggregate([]*bls.Signature{f.sks[0].Sign(m), f.sks[1].Sign(m)})
		enc, err := G2Uncompressed(sig)
		if err != nil {
			t.Fatal(err)
		}
		if err := f.bridge.VerifyQuorum(f.ctx, m, big.NewInt(0b011), enc); err != nil {
			t.Fatalf("verifyQuorum(%x): %v", m, err)
		}
	}
}

// The contract sums the signers' keys as client/bls does.
func TestAggregateKeyMatchesBLS(t *testing.T) {
	f := newFixture(t, 3)
	for mask := 1; mask < 8; mask++ {
		var pks []*bls.PublicKey
		for i := range 3 {
			if mask&(1<<i) != 0 {
				pks = append(pks, f.sks[i].PublicKey())
			}
		}
		want, err := G1Uncompressed(bls.AggregatePublicKeys(pks))
		if err != nil {
			t.Fatal(err)
		}
		got, err := f.bridge.AggregateKey(f.ctx, big.NewInt(int64(mask)))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("aggregateKey(%03b) = %x, want %x", mask, got, want)
		}
	}
}
