package bls

import "testing"

// The costs behind the sequencer's per-round CPU: one Sign per vote, one
// VerifyAggregate per proof checked, SignatureFromBytes per received
// signature.

func benchKeys(b *testing.B, n int) ([]*SecretKey, []*PublicKey) {
	b.Helper()
	sks := make([]*SecretKey, n)
	pks := make([]*PublicKey, n)
	for i := range sks {
		sk, err := GenerateKey()
		if err != nil {
			b.Fatal(err)
		}
		sks[i], pks[i] = sk, sk.PublicKey()
	}
	return sks, pks
}

func BenchmarkSign(b *testing.B) {
	sks, _ := benchKeys(b, 1)
	var d [32]byte
	for i := 0; i < b.N; i++ {
		d[0] = byte(i)
		sks[0].Sign(d)
	}
}

func BenchmarkVerify(b *testing.B) {
	sks, pks := benchKeys(b, 1)
	d := [32]byte{1}
	sig := sks[0].Sign(d)
	for i := 0; i < b.N; i++ {
		if !sig.Verify(pks[0], d) {
			b.Fatal("does not verify")
		}
	}
}

func BenchmarkVerifyAggregate3(b *testing.B) {
	sks, pks := benchKeys(b, 3)
	d := [32]byte{1}
	sigs := make([]*Signature, len(sks))
	for i, sk := range sks {
		sigs[i] = sk.Sign(d)
	}
	agg := Aggregate(sigs)
	for i := 0; i < b.N; i++ {
		if !agg.VerifyAggregate(pks, d) {
			b.Fatal("does not verify")
		}
	}
}

func BenchmarkSignatureFromBytes(b *testing.B) {
	sks, _ := benchKeys(b, 1)
	raw := sks[0].Sign([32]byte{1}).Bytes()
	for i := 0; i < b.N; i++ {
		if _, err := SignatureFromBytes(raw); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerifyAggregatesTwo(b *testing.B) {
	sks, pks := benchKeys(b, 3)
	var sigs []*Signature
	var digests [][32]byte
	for j := 0; j < 2; j++ {
		d := [32]byte{byte(j)}
		var parts []*Signature
		for _, sk := range sks {
			parts = append(parts, sk.Sign(d))
		}
		sigs = append(sigs, Aggregate(parts))
		digests = append(digests, d)
	}
	keys := [][]*PublicKey{pks, pks}
	for i := 0; i < b.N; i++ {
		if !VerifyAggregates(sigs, keys, digests) {
			b.Fatal("does not verify")
		}
	}
}
