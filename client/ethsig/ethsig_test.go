package ethsig

import (
	"encoding/hex"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"testing"

	"github.com/ethereum/go-ethereum/crypto"
)

// Hardhat/anvil's first dev account: a famous, worthless key.
const devKeyHex = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"
const devAddress = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"

func TestSignRecover(t *testing.T) {
	key, err := ParseKey(devKeyHex)
	if err != nil {
		t.Fatal(err)
	}
	if Address(key).Hex() != devAddress {
		t.Fatalf("Address = %s", Address(key).Hex())
	}
	d := crypto.Keccak256Hash([]byte("digest"))
	sig, err := Sign(key, d)
	if err != nil {
		t.Fatal(err)
	}
	if len(sig) != SignatureSize || (sig[64] != 27 && sig[64] != 28) {
		t.Fatalf("signature %x: want 65 bytes with v 27/28", sig)
	}
	if err := Verify(d, sig, Address(key)); err != nil {
		t.Fatal(err)
	}
	// v as 0/1 (what some libraries emit) is the same signature.
	raw := append([]byte(nil), sig...)
	raw[64] -= 27
	if err := Verify(d, raw, Address(key)); err != nil {
		t.Fatalf("v=%d: %v", raw[64], err)
	}
	other := crypto.Keccak256Hash([]byte("other"))
	if err := Verify(other, sig, Address(key)); !errors.Is(err, ErrMismatch) {
		t.Fatalf("other digest: %v", err)
	}
}

func TestRecoverRefusesHighS(t *testing.T) {
	key, err := ParseKey(devKeyHex)
	if err != nil {
		t.Fatal(err)
	}
	d := crypto.Keccak256Hash([]byte("malleable"))
	sig, err := Sign(key, d)
	if err != nil {
		t.Fatal(err)
	}
	// The twin (r, n-s, v^1) is a valid ECDSA signature of the same digest;
	// it must be refused so one message has one accepted encoding.
	n := crypto.S256().Params().N
	s := new(big.Int).SetBytes(sig[32:64])
	twin := append([]byte(nil), sig...)
	new(big.Int).Sub(n, s).FillBytes(twin[32:64])
	twin[64] = 27 + 28 - twin[64] // the twin has the other parity
	norm := append([]byte(nil), twin...)
	norm[64] -= 27
	if pub, err := crypto.SigToPub(d[:], norm); err != nil || crypto.PubkeyToAddress(*pub) != Address(key) {
		t.Fatalf("the twin is not a valid signature by the key (%v): the test proves nothing", err)
	}
	if _, err := Recover(d, twin); !errors.Is(err, ErrHighS) {
		t.Fatalf("high-s twin: %v", err)
	}
}

func TestRecoverRefusesMalformed(t *testing.T) {
	d := crypto.Keccak256Hash([]byte("x"))
	for name, sig := range map[string][]byte{
		"empty":  nil,
		"short":  make([]byte, 64),
		"long":   make([]byte, 66),
		"v=2":    append(make([]byte, 64), 2),
		"v=29":   append(make([]byte, 64), 29),
		"zero r": append(make([]byte, 64), 27),
	} {
		if _, err := Recover(d, sig); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestParseHex(t *testing.T) {
	good := "0x" + hex.EncodeToString(make([]byte, 65))
	for _, s := range []string{good, good[2:], "0X" + good[2:]} {
		if b, err := ParseHex(s); err != nil || len(b) != 65 {
			t.Errorf("ParseHex(%q…) = %d bytes, %v", s[:6], len(b), err)
		}
	}
	for _, s := range []string{"", "0x", "0x00", good + "00", good[:len(good)-1], "0xzz" + good[4:]} {
		if _, err := ParseHex(s); err == nil {
			t.Errorf("ParseHex(%q) accepted", s)
		}
	}
}

func TestParseAndLoadKey(t *testing.T) {
	for _, s := range []string{devKeyHex, devKeyHex[2:], " " + devKeyHex + "\n"} {
		if k, err := ParseKey(s); err != nil || Address(k).Hex() != devAddress {
			t.Errorf("ParseKey(%q): %v", s, err)
		}
	}
	for _, s := range []string{"", "0x", "0x00", devKeyHex + "00", "0x" + "00" + devKeyHex[4:] + "zz"} {
		if _, err := ParseKey(s); err == nil {
			t.Errorf("ParseKey(%q) accepted", s)
		}
	}
	path := filepath.Join(t.TempDir(), "key")
	if err := os.WriteFile(path, []byte(devKeyHex+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	k, err := LoadKey(path)
	if err != nil || Address(k).Hex() != devAddress {
		t.Fatalf("LoadKey: %v", err)
	}
	if _, err := LoadKey(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Fatal("LoadKey of a missing file succeeded")
	}
}

// FuzzParseHex: the signature decoder never panics, accepts only 65-byte
// values, and recovering whatever it accepts never panics either.
func FuzzParseHex(f *testing.F) {
	key, err := ParseKey(devKeyHex)
	if err != nil {
		f.Fatal(err)
	}
	sig, err := Sign(key, crypto.Keccak256Hash([]byte("seed")))
	if err != nil {
		f.Fatal(err)
	}
	f.Add("0x" + hex.EncodeToString(sig))
	f.Add(hex.EncodeToString(sig))
	f.Add("0x" + hex.EncodeToString(make([]byte, 65)))
	f.Add("0x")
	f.Add("zz")
	f.Fuzz(func(t *testing.T, s string) {
		b, err := ParseHex(s)
		if err != nil {
			return
		}
		if len(b) != SignatureSize {
			t.Fatalf("ParseHex(%q) gave %d bytes", s, len(b))
		}
		addr, err := Recover(crypto.Keccak256Hash([]byte("seed")), b)
		if err == nil && addr == ([20]byte{}) {
			t.Fatalf("recovered the zero address from %q", s)
		}
	})
}
