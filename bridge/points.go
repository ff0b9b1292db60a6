package bridge

import (
	"errors"
	"fmt"

	blst "github.com/supranational/blst/bindings/go"

	"github.com/seqbook/seqbook/client/bls"
)

// Sizes of the EIP-2537 encodings: every base-field element is 64 bytes,
// 16 zero bytes then the 48-byte big-endian value.
const (
	FpSize = 64
	G1Size = 2 * FpSize // x, y
	G2Size = 4 * FpSize // x.c0, x.c1, y.c0, y.c1
)

// fpPad writes a 48-byte field element as 64 bytes.
func fpPad(dst, fp48 []byte) {
	clear(dst[:16])
	copy(dst[16:FpSize], fp48)
}

// G1Uncompressed returns a public key as the EIP-2537 precompiles take it,
// computed from its compressed form. The key must be valid (PublicKey
// values always are); the result decompresses back to the same key.
func G1Uncompressed(pk *bls.PublicKey) ([]byte, error) {
	p := new(blst.P1Affine).Uncompress(pk.Bytes())
	if p == nil {
		return nil, errors.New("bridge: public key does not decompress")
	}
	raw := p.Serialize() // x ‖ y, 48 bytes each
	out := make([]byte, G1Size)
	fpPad(out[:FpSize], raw[:48])
	fpPad(out[FpSize:], raw[48:96])
	// Round trip: the uncompressed form must compress to the same key.
	back := new(blst.P1Affine).Deserialize(raw)
	if back == nil || string(back.Compress()) != string(pk.Bytes()) {
		return nil, errors.New("bridge: uncompressed key does not compress back to the key")
	}
	return out, nil
}

// G2Uncompressed returns a signature in the EIP-2537 G2 encoding. blst
// (like the compressed form) writes an Fp2 element c1 first; EIP-2537
// wants c0 first.
func G2Uncompressed(sig *bls.Signature) ([]byte, error) {
	p := new(blst.P2Affine).Uncompress(sig.Bytes())
	if p == nil {
		return nil, errors.New("bridge: signature does not decompress")
	}
	return g2Encode(p.Serialize()), nil
}

// g2Encode turns blst's 192-byte serialization (x.c1 ‖ x.c0 ‖ y.c1 ‖
// y.c0) into the EIP-2537 one.
func g2Encode(raw []byte) []byte {
	out := make([]byte, G2Size)
	fpPad(out[0*FpSize:], raw[48:96])   // x.c0
	fpPad(out[1*FpSize:], raw[0:48])    // x.c1
	fpPad(out[2*FpSize:], raw[144:192]) // y.c0
	fpPad(out[3*FpSize:], raw[96:144])  // y.c1
	return out
}

// HashToG2 is the ciphersuite's hash of a digest to G2 in the EIP-2537
// encoding, computed off-chain with blst: what the contract's hashToG2
// must return.
func HashToG2(digest [32]byte) []byte {
	return g2Encode(blst.HashToG2(digest[:], []byte(bls.DSTSignature)).ToAffine().Serialize())
}

// checkFp reports whether a 64-byte EIP-2537 field element has its 16
// leading zero bytes.
func checkFp(b []byte) error {
	for _, x := range b[:16] {
		if x != 0 {
			return fmt.Errorf("bridge: field element's top 16 bytes are not zero")
		}
	}
	return nil
}
