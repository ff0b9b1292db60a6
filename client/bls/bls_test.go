package bls

import "testing"

func TestSignAggregateAndPossession(t *testing.T) {
	var sks []*SecretKey
	var pks []*PublicKey
	var sigs []*Signature
	d := [32]byte{1, 2, 3}
	for i := 0; i < 3; i++ {
		sk, err := GenerateKey()
		if err != nil {
			t.Fatal(err)
		}
		sks = append(sks, sk)
		pks = append(pks, sk.PublicKey())
		sigs = append(sigs, sk.Sign(d))
		if !sk.PublicKey().VerifyPossession(sk.ProvePossession()) {
			t.Fatal("own proof of possession does not verify")
		}
	}
	if pks[0].VerifyPossession(sks[1].ProvePossession()) {
		t.Fatal("another key's proof of possession verified")
	}
	if pks[0].VerifyPossession(sks[0].Sign(d)) {
		t.Fatal("a plain signature passed as a proof of possession")
	}
	agg := Aggregate(sigs)
	if !agg.VerifyAggregate(pks, d) {
		t.Fatal("aggregate does not verify")
	}
	if agg.VerifyAggregate(pks[:2], d) {
		t.Fatal("aggregate verified with a missing key")
	}
	if !agg.Verify(AggregatePublicKeys(pks), d) {
		t.Fatal("aggregate does not verify against the summed key")
	}
	if agg.VerifyAggregate(pks, [32]byte{9}) {
		t.Fatal("aggregate verified on another digest")
	}
	rt, err := SignatureFromBytes(agg.Bytes())
	if err != nil || !rt.VerifyAggregate(pks, d) {
		t.Fatal("signature round trip failed", err)
	}
	if _, err := PublicKeyFromBytes(make([]byte, 48)); err == nil {
		t.Fatal("all-zero public key accepted")
	}
}
