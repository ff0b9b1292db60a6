// Package ethsig signs digests with secp256k1 keys and recovers the signer,
// in the 65-byte r‖s‖v form wallets produce. It enforces what DESIGN §3.1
// asks of a trader's signature: v is 27/28 or 0/1, and s is in the lower
// half of the curve order (a high-s twin of a valid signature is refused,
// so one signed message has one accepted encoding).
package ethsig

import (
	"crypto/ecdsa"
	"encoding/hex"
	"errors"
	"fmt"
	"math/big"
	"os"
	"strings"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/crypto"
)

// SignatureSize is the length of an r‖s‖v signature.
const SignatureSize = 65

// Errors a signature check returns.
var (
	ErrLength   = errors.New("signature must be 65 bytes (r||s||v)")
	ErrV        = errors.New("signature v must be 27, 28, 0 or 1")
	ErrHighS    = errors.New("signature s is in the upper half of the curve order (high-s)")
	ErrRecover  = errors.New("signature does not recover to a public key")
	ErrMismatch = errors.New("signature is not the signer's")
)

var secp256k1HalfN = new(big.Int).Rsh(crypto.S256().Params().N, 1)

// Sign signs a 32-byte digest and returns r‖s‖v with v = 27 or 28, the
// form eth_signTypedData_v4 returns.
func Sign(key *ecdsa.PrivateKey, digest [32]byte) ([]byte, error) {
	sig, err := crypto.Sign(digest[:], key)
	if err != nil {
		return nil, err
	}
	sig[64] += 27
	return sig, nil
}

// Recover returns the address that signed digest. It refuses malformed,
// high-s and wrong-v signatures.
func Recover(digest [32]byte, sig []byte) (common.Address, error) {
	if len(sig) != SignatureSize {
		return common.Address{}, fmt.Errorf("%w, got %d", ErrLength, len(sig))
	}
	v := sig[64]
	switch v {
	case 27, 28:
		v -= 27
	case 0, 1:
	default:
		return common.Address{}, fmt.Errorf("%w, got %d", ErrV, sig[64])
	}
	r := new(big.Int).SetBytes(sig[:32])
	s := new(big.Int).SetBytes(sig[32:64])
	if s.Cmp(secp256k1HalfN) > 0 {
		return common.Address{}, ErrHighS
	}
	if !crypto.ValidateSignatureValues(v, r, s, true) {
		return common.Address{}, ErrRecover
	}
	var norm [SignatureSize]byte
	copy(norm[:], sig[:64])
	norm[64] = v
	pub, err := crypto.SigToPub(digest[:], norm[:])
	if err != nil {
		return common.Address{}, ErrRecover
	}
	return crypto.PubkeyToAddress(*pub), nil
}

// Verify checks that sig over digest was made by want.
func Verify(digest [32]byte, sig []byte, want common.Address) error {
	got, err := Recover(digest, sig)
	if err != nil {
		return err
	}
	if got != want {
		return ErrMismatch
	}
	return nil
}

// ParseHex reads a 0x-prefixed (or bare) hex signature.
func ParseHex(s string) ([]byte, error) {
	b, err := hex.DecodeString(strings.TrimPrefix(strings.TrimPrefix(s, "0x"), "0X"))
	if err != nil {
		return nil, errors.New("signature is not valid hex")
	}
	if len(b) != SignatureSize {
		return nil, fmt.Errorf("%w, got %d", ErrLength, len(b))
	}
	return b, nil
}

// ParseKey reads a secp256k1 private key as hex (with or without 0x).
func ParseKey(s string) (*ecdsa.PrivateKey, error) {
	k, err := crypto.HexToECDSA(strings.TrimPrefix(strings.TrimSpace(s), "0x"))
	if err != nil {
		return nil, fmt.Errorf("invalid private key: %w", err)
	}
	return k, nil
}

// LoadKey reads a private key from a file holding its hex form.
func LoadKey(path string) (*ecdsa.PrivateKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	k, err := ParseKey(string(b))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return k, nil
}

// Address returns the address of a private key.
func Address(key *ecdsa.PrivateKey) common.Address { return crypto.PubkeyToAddress(key.PublicKey) }
