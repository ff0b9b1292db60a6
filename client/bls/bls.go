// Package bls is seqbook's BLS signature scheme: the Ethereum / IETF
// ciphersuite BLS_SIG_BLS12381G2_XMD:SHA-256_SSWU_RO_POP_ over BLS12-381,
// public keys in G1 (48 bytes compressed), signatures in G2 (96 bytes).
// Standard libraries in other languages verify what it signs.
//
// Signing, verification and aggregation use herumi's library in ETH mode.
// Proofs of possession follow the IETF PopProve/PopVerify, which hash under
// their own DST (BLS_POP_...); herumi can only change its DST globally, so
// proofs of possession go through blst, which takes the DST per call.
//
// Everything seqbook signs with BLS is a 32-byte EIP-712 digest.
package bls

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	herumi "github.com/herumi/bls-eth-go-binary/bls"
	blst "github.com/supranational/blst/bindings/go"
)

// Sizes of the serialized forms.
const (
	SecretKeySize = 32
	PublicKeySize = 48
	SignatureSize = 96
)

// Domain separation tags of the ciphersuite.
const (
	DSTSignature = "BLS_SIG_BLS12381G2_XMD:SHA-256_SSWU_RO_POP_"
	DSTPop       = "BLS_POP_BLS12381G2_XMD:SHA-256_SSWU_RO_POP_"
)

func init() {
	if err := herumi.Init(herumi.BLS12_381); err != nil {
		panic("bls: herumi init: " + err.Error())
	}
	if err := herumi.SetETHmode(herumi.EthModeDraft07); err != nil {
		panic("bls: herumi ETH mode: " + err.Error())
	}
	// Refuse points outside the prime-order subgroup when deserializing.
	herumi.VerifyPublicKeyOrder(true)
	herumi.VerifySignatureOrder(true)
}

// SecretKey is a BLS secret key.
type SecretKey struct{ k herumi.SecretKey }

// PublicKey is a BLS public key (a G1 point). Its zero value is invalid.
type PublicKey struct{ p herumi.PublicKey }

// Signature is a BLS signature (a G2 point), possibly an aggregate.
type Signature struct{ s herumi.Sign }

// GenerateKey makes a new secret key from the operating system's CSPRNG.
func GenerateKey() (*SecretKey, error) {
	var b [SecretKeySize]byte
	for {
		if _, err := rand.Read(b[:]); err != nil {
			return nil, fmt.Errorf("bls: reading randomness: %w", err)
		}
		sk, err := SecretKeyFromBytes(b[:])
		if err == nil {
			return sk, nil
		}
		// A value ≥ the group order or zero: draw again.
	}
}

// SecretKeyFromBytes reads a 32-byte big-endian scalar.
func SecretKeyFromBytes(b []byte) (*SecretKey, error) {
	if len(b) != SecretKeySize {
		return nil, fmt.Errorf("bls: secret key must be %d bytes, got %d", SecretKeySize, len(b))
	}
	sk := new(SecretKey)
	if err := sk.k.Deserialize(b); err != nil {
		return nil, errors.New("bls: invalid secret key")
	}
	if sk.k.IsZero() {
		return nil, errors.New("bls: secret key is zero")
	}
	return sk, nil
}

// SecretKeyFromHex reads a secret key as hex, with or without 0x.
func SecretKeyFromHex(s string) (*SecretKey, error) {
	b, err := decodeHex(s)
	if err != nil {
		return nil, fmt.Errorf("bls: secret key: %w", err)
	}
	return SecretKeyFromBytes(b)
}

// Bytes returns the 32-byte big-endian scalar.
func (sk *SecretKey) Bytes() []byte { return sk.k.Serialize() }

// Hex returns the secret key as 0x-prefixed hex.
func (sk *SecretKey) Hex() string { return "0x" + hex.EncodeToString(sk.Bytes()) }

// PublicKey derives the public key.
func (sk *SecretKey) PublicKey() *PublicKey {
	return &PublicKey{p: *sk.k.GetPublicKey()}
}

// Sign signs a 32-byte digest.
func (sk *SecretKey) Sign(digest [32]byte) *Signature {
	return &Signature{s: *sk.k.SignByte(digest[:])}
}

// ProvePossession returns the IETF proof of possession: a signature of the
// compressed public key under DSTPop.
func (sk *SecretKey) ProvePossession() *Signature {
	var b blst.SecretKey
	if b.Deserialize(sk.Bytes()) == nil {
		panic("bls: blst refused a valid secret key")
	}
	defer b.Zeroize()
	pop := new(blst.P2Affine).Sign(&b, sk.PublicKey().Bytes(), []byte(DSTPop))
	sig, err := SignatureFromBytes(pop.Compress())
	if err != nil {
		panic("bls: herumi refused a blst signature: " + err.Error())
	}
	return sig
}

// PublicKeyFromBytes reads a 48-byte compressed G1 point. It refuses the
// point at infinity and points outside the subgroup.
func PublicKeyFromBytes(b []byte) (*PublicKey, error) {
	if len(b) != PublicKeySize {
		return nil, fmt.Errorf("bls: public key must be %d bytes, got %d", PublicKeySize, len(b))
	}
	pk := new(PublicKey)
	if err := pk.p.Deserialize(b); err != nil {
		return nil, errors.New("bls: invalid public key encoding")
	}
	if pk.p.IsZero() {
		return nil, errors.New("bls: public key is the point at infinity")
	}
	return pk, nil
}

// PublicKeyFromHex reads a public key as hex, with or without 0x.
func PublicKeyFromHex(s string) (*PublicKey, error) {
	b, err := decodeHex(s)
	if err != nil {
		return nil, fmt.Errorf("bls: public key: %w", err)
	}
	return PublicKeyFromBytes(b)
}

// Bytes returns the 48-byte compressed form.
func (pk *PublicKey) Bytes() []byte { return pk.p.Serialize() }

// Hex returns the compressed form as 0x-prefixed hex.
func (pk *PublicKey) Hex() string { return "0x" + hex.EncodeToString(pk.Bytes()) }

// Equal reports whether two public keys are the same point.
func (pk *PublicKey) Equal(o *PublicKey) bool { return pk.p.IsEqual(&o.p) }

// VerifyPossession checks an IETF proof of possession for this key. Keys
// are only ever aggregated after this check: it is what makes summing
// public keys safe against rogue-key attacks.
func (pk *PublicKey) VerifyPossession(pop *Signature) bool {
	if pop == nil {
		return false
	}
	bpk := new(blst.P1Affine).Uncompress(pk.Bytes())
	bsig := new(blst.P2Affine).Uncompress(pop.Bytes())
	if bpk == nil || bsig == nil {
		return false
	}
	return bsig.Verify(true, bpk, true, pk.Bytes(), []byte(DSTPop))
}

// SignatureFromBytes reads a 96-byte compressed G2 point, refusing points
// outside the subgroup.
func SignatureFromBytes(b []byte) (*Signature, error) {
	if len(b) != SignatureSize {
		return nil, fmt.Errorf("bls: signature must be %d bytes, got %d", SignatureSize, len(b))
	}
	s := new(Signature)
	if err := s.s.Deserialize(b); err != nil {
		return nil, errors.New("bls: invalid signature encoding")
	}
	return s, nil
}

// SignatureFromHex reads a signature as hex, with or without 0x.
func SignatureFromHex(s string) (*Signature, error) {
	b, err := decodeHex(s)
	if err != nil {
		return nil, fmt.Errorf("bls: signature: %w", err)
	}
	return SignatureFromBytes(b)
}

// Bytes returns the 96-byte compressed form.
func (s *Signature) Bytes() []byte { return s.s.Serialize() }

// Hex returns the compressed form as 0x-prefixed hex.
func (s *Signature) Hex() string { return "0x" + hex.EncodeToString(s.Bytes()) }

// Verify checks a signature of one key on a digest.
func (s *Signature) Verify(pk *PublicKey, digest [32]byte) bool {
	if s == nil || pk == nil {
		return false
	}
	return s.s.VerifyByte(&pk.p, digest[:])
}

// VerifyAggregate checks an aggregate signature of several keys on the same
// digest (FastAggregateVerify). The keys must have had their proofs of
// possession checked. An empty key list never verifies.
func (s *Signature) VerifyAggregate(pks []*PublicKey, digest [32]byte) bool {
	if s == nil || len(pks) == 0 {
		return false
	}
	vec := make([]herumi.PublicKey, len(pks))
	for i, pk := range pks {
		if pk == nil {
			return false
		}
		vec[i] = pk.p
	}
	return s.s.FastAggregateVerify(vec, digest[:])
}

// VerifyAggregates checks several aggregate signatures at once, each by its
// own keys on its own digest, as FastAggregateVerify would one by one:
// with random 64-bit coefficients r_i it checks
//
//	e(g1, Σ r_i·σ_i) = Π e(r_i·pk_i, H(m_i))
//
// (pk_i the sum of the i-th keys, H the ciphersuite's hash to G2) with one
// multi-Miller loop and one final exponentiation, so a set with any
// invalid member passes with probability at most 2^-64, and two checks
// cost about as much as one alone. (herumi's own MultiVerify does the same
// but converts integers back to pointers, which Go's checkptr, on under
// -race, refuses.) The keys must have had their proofs of possession
// checked; an empty key set, or mismatched lengths, never verify.
func VerifyAggregates(sigs []*Signature, keys [][]*PublicKey, digests [][32]byte) bool {
	n := len(sigs)
	if n == 0 || len(keys) != n || len(digests) != n {
		return false
	}
	g1s := make([]herumi.G1, n+1)
	g2s := make([]herumi.G2, n+1)
	sigPts := make([]herumi.G2, n)
	coefs := make([]herumi.Fr, n)
	var rnd [8]byte
	for i := range sigs {
		if sigs[i] == nil || len(keys[i]) == 0 {
			return false
		}
		for _, pk := range keys[i] {
			if pk == nil {
				return false
			}
		}
		if _, err := rand.Read(rnd[:]); err != nil {
			return false
		}
		rnd[7] |= 0x80 // never zero
		if err := coefs[i].SetLittleEndian(rnd[:]); err != nil {
			return false
		}
		sigPts[i] = *herumi.CastFromSign(&sigs[i].s)
		herumi.G1Mul(&g1s[i+1], herumi.CastFromPublicKey(&AggregatePublicKeys(keys[i]).p), &coefs[i])
		if err := g2s[i+1].HashAndMapTo(digests[i][:]); err != nil {
			return false
		}
	}
	var gen herumi.PublicKey
	herumi.GetGeneratorOfPublicKey(&gen)
	herumi.G1Neg(&g1s[0], herumi.CastFromPublicKey(&gen))
	herumi.G2MulVec(&g2s[0], sigPts, coefs)
	var e herumi.GT
	herumi.MillerLoopVec(&e, g1s, g2s)
	herumi.FinalExp(&e, &e)
	return e.IsOne()
}

// Aggregate sums signatures into one. It panics on an empty list, which is
// a programmer error: callers aggregate a quorum.
func Aggregate(sigs []*Signature) *Signature {
	if len(sigs) == 0 {
		panic("bls: aggregate of no signatures")
	}
	vec := make([]herumi.Sign, len(sigs))
	for i, s := range sigs {
		vec[i] = s.s
	}
	out := new(Signature)
	out.s.Aggregate(vec)
	return out
}

// AggregatePublicKeys sums public keys (what a verifier does with the keys
// of a proof's signers before one pairing check).
func AggregatePublicKeys(pks []*PublicKey) *PublicKey {
	if len(pks) == 0 {
		panic("bls: aggregate of no public keys")
	}
	out := &PublicKey{p: pks[0].p}
	for _, pk := range pks[1:] {
		out.p.Add(&pk.p)
	}
	return out
}

func decodeHex(s string) ([]byte, error) {
	s = strings.TrimPrefix(strings.TrimPrefix(s, "0x"), "0X")
	b, err := hex.DecodeString(s)
	if err != nil {
		return nil, errors.New("not valid hex")
	}
	return b, nil
}
