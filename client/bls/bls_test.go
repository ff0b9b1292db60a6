package bls

import (
	"encoding/json"
	"os"
	"testing"
)

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

	// Several aggregates at once: all valid pass; one bad member (a
	// missing key, another digest, a single signature in place of the
	// aggregate) fails the whole set.
	d2 := [32]byte{4, 5, 6}
	agg2 := Aggregate([]*Signature{sks[0].Sign(d2), sks[2].Sign(d2)})
	keys2 := []*PublicKey{pks[0], pks[2]}
	if !VerifyAggregates([]*Signature{agg, agg2}, [][]*PublicKey{pks, keys2}, [][32]byte{d, d2}) {
		t.Fatal("two valid aggregates do not verify together")
	}
	bad := map[string]func() bool{
		"missing key": func() bool {
			return VerifyAggregates([]*Signature{agg, agg2}, [][]*PublicKey{pks[:2], keys2}, [][32]byte{d, d2})
		},
		"other digest": func() bool {
			return VerifyAggregates([]*Signature{agg, agg2}, [][]*PublicKey{pks, keys2}, [][32]byte{d, d})
		},
		"one signature for the aggregate": func() bool {
			return VerifyAggregates([]*Signature{agg, sigs[0]}, [][]*PublicKey{pks, keys2}, [][32]byte{d, d2})
		},
		"no keys": func() bool {
			return VerifyAggregates([]*Signature{agg, agg2}, [][]*PublicKey{pks, nil}, [][32]byte{d, d2})
		},
		"lengths differ": func() bool {
			return VerifyAggregates([]*Signature{agg, agg2}, [][]*PublicKey{pks}, [][32]byte{d, d2})
		},
	}
	for name, f := range bad {
		if f() {
			t.Errorf("%s: verified", name)
		}
	}
}

// The vectors in testdata/vectors/bls.json were made by noble-curves
// (testdata/vectorgen/gen.mjs), a BLS12-381 implementation independent of
// herumi and blst: same secret keys must give byte-identical public keys,
// signatures and proofs of possession, and its aggregates must verify here.
type blsVectors struct {
	DSTSignature string `json:"dst_signature"`
	DSTPop       string `json:"dst_pop"`
	Keys         []struct {
		SecretKey  string `json:"secret_key"`
		PublicKey  string `json:"public_key"`
		Pop        string `json:"pop"`
		Signatures []struct {
			Digest    string `json:"digest"`
			Signature string `json:"signature"`
		} `json:"signatures"`
	} `json:"keys"`
	Aggregates []struct {
		Digest       string `json:"digest"`
		Signers      []int  `json:"signers"`
		Signature    string `json:"signature"`
		AggregatePub string `json:"aggregate_public_key"`
	} `json:"aggregates"`
}

func loadBLSVectors(t *testing.T) blsVectors {
	t.Helper()
	b, err := os.ReadFile("../../testdata/vectors/bls.json")
	if err != nil {
		t.Fatal(err)
	}
	var v blsVectors
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	if len(v.Keys) != 3 || len(v.Aggregates) == 0 {
		t.Fatalf("vector file has %d keys, %d aggregates", len(v.Keys), len(v.Aggregates))
	}
	return v
}

func digestOf(t *testing.T, s string) [32]byte {
	t.Helper()
	b, err := decodeHex(s)
	if err != nil || len(b) != 32 {
		t.Fatalf("digest %q", s)
	}
	return [32]byte(b)
}

func TestNobleVectors(t *testing.T) {
	v := loadBLSVectors(t)
	if v.DSTSignature != DSTSignature || v.DSTPop != DSTPop {
		t.Fatalf("vector DSTs %q %q differ from ours", v.DSTSignature, v.DSTPop)
	}
	var pks []*PublicKey
	for i, k := range v.Keys {
		sk, err := SecretKeyFromHex(k.SecretKey)
		if err != nil {
			t.Fatal(err)
		}
		if sk.Hex() != k.SecretKey {
			t.Errorf("key %d: secret key round trip %s != %s", i, sk.Hex(), k.SecretKey)
		}
		pk := sk.PublicKey()
		if pk.Hex() != k.PublicKey {
			t.Errorf("key %d: public key %s, noble %s", i, pk.Hex(), k.PublicKey)
		}
		if got := sk.ProvePossession().Hex(); got != k.Pop {
			t.Errorf("key %d: proof of possession %s, noble %s", i, got, k.Pop)
		}
		nobleKey, err := PublicKeyFromHex(k.PublicKey)
		if err != nil {
			t.Fatal(err)
		}
		nobleProof, err := SignatureFromHex(k.Pop)
		if err != nil {
			t.Fatal(err)
		}
		if !nobleKey.VerifyPossession(nobleProof) {
			t.Errorf("key %d: noble's proof of possession does not verify", i)
		}
		for _, s := range k.Signatures {
			d := digestOf(t, s.Digest)
			if got := sk.Sign(d).Hex(); got != s.Signature {
				t.Errorf("key %d digest %s: signature %s, noble %s", i, s.Digest, got, s.Signature)
			}
			sig, err := SignatureFromHex(s.Signature)
			if err != nil {
				t.Fatal(err)
			}
			if !sig.Verify(nobleKey, d) {
				t.Errorf("key %d digest %s: noble's signature does not verify", i, s.Digest)
			}
			if nobleKey.VerifyPossession(sig) {
				t.Errorf("key %d: a plain signature passed as a proof of possession", i)
			}
		}
		pks = append(pks, nobleKey)
	}
	var batch struct {
		sigs    []*Signature
		keys    [][]*PublicKey
		digests [][32]byte
	}
	for _, a := range v.Aggregates {
		d := digestOf(t, a.Digest)
		var signers []*PublicKey
		var ours []*Signature
		for _, i := range a.Signers {
			signers = append(signers, pks[i])
			for _, s := range v.Keys[i].Signatures {
				if s.Digest == a.Digest {
					sig, err := SignatureFromHex(s.Signature)
					if err != nil {
						t.Fatal(err)
					}
					ours = append(ours, sig)
				}
			}
		}
		agg, err := SignatureFromHex(a.Signature)
		if err != nil {
			t.Fatal(err)
		}
		if !agg.VerifyAggregate(signers, d) {
			t.Errorf("digest %s: noble's aggregate does not verify", a.Digest)
		}
		if agg.VerifyAggregate(signers[:len(signers)-1], d) {
			t.Errorf("digest %s: aggregate verified without one signer", a.Digest)
		}
		if got := Aggregate(ours).Hex(); got != a.Signature {
			t.Errorf("digest %s: our aggregate %s, noble %s", a.Digest, got, a.Signature)
		}
		if got := AggregatePublicKeys(signers).Hex(); got != a.AggregatePub {
			t.Errorf("digest %s: our aggregate key %s, noble %s", a.Digest, got, a.AggregatePub)
		}
		batch.sigs = append(batch.sigs, agg)
		batch.keys = append(batch.keys, signers)
		batch.digests = append(batch.digests, d)
	}
	if len(batch.sigs) < 2 {
		t.Fatal("the vectors have fewer than two aggregates")
	}
	if !VerifyAggregates(batch.sigs, batch.keys, batch.digests) {
		t.Error("noble's aggregates do not verify together")
	}
	batch.digests[1], batch.digests[0] = batch.digests[0], batch.digests[1]
	if VerifyAggregates(batch.sigs, batch.keys, batch.digests) {
		t.Error("noble's aggregates verified together with their digests swapped")
	}
}

// FuzzDecode feeds arbitrary bytes to the three decoders: they must never
// panic, and whatever they accept must serialize back to the same bytes.
func FuzzDecode(f *testing.F) {
	sk, err := SecretKeyFromHex("0x6476d6717812bf16cc965cd8bf3d193dc0bfb87d39a42c83f89a557d6a85cec6")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(sk.Bytes())
	f.Add(sk.PublicKey().Bytes())
	f.Add(sk.Sign([32]byte{1}).Bytes())
	f.Add(make([]byte, 48))
	f.Add(make([]byte, 96))
	f.Fuzz(func(t *testing.T, b []byte) {
		if k, err := SecretKeyFromBytes(b); err == nil && string(k.Bytes()) != string(b) {
			t.Fatalf("secret key %x re-serializes to %x", b, k.Bytes())
		}
		if pk, err := PublicKeyFromBytes(b); err == nil && string(pk.Bytes()) != string(b) {
			t.Fatalf("public key %x re-serializes to %x", b, pk.Bytes())
		}
		if s, err := SignatureFromBytes(b); err == nil {
			if string(s.Bytes()) != string(b) {
				t.Fatalf("signature %x re-serializes to %x", b, s.Bytes())
			}
			_ = s.Verify(sk.PublicKey(), [32]byte{1})
		}
	})
}
