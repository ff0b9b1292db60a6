package keys

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/seqbook/seqbook/client/bls"
)

func TestTutorialKeysControlTheFundedAddresses(t *testing.T) {
	if got := Address(TutorialUser1()); got != TutorialUser1Address || got.Hex() != "0xc66F8Fba940064B5bA8d437d6fF829E60134230E" {
		t.Errorf("user1 key controls %s", got.Hex())
	}
	if got := Address(TutorialUser2()); got != TutorialUser2Address || got.Hex() != "0x7F3b0b1530A0d0Ce3D721a6e976C7eA4296A0f5d" {
		t.Errorf("user2 key controls %s", got.Hex())
	}
}

func TestDeterministicKeys(t *testing.T) {
	a, b := DeterministicTrader("node1"), DeterministicTrader("node1")
	if TraderHex(a) != TraderHex(b) {
		t.Fatal("same seed, different trader keys")
	}
	if TraderHex(a) == TraderHex(DeterministicTrader("node2")) {
		t.Fatal("different seeds, same trader key")
	}
	if DeterministicBLS("node1").Hex() != DeterministicBLS("node1").Hex() {
		t.Fatal("same seed, different BLS keys")
	}
	if DeterministicBLS("node1").Hex() == DeterministicBLS("node2").Hex() {
		t.Fatal("different seeds, same BLS key")
	}
	// Pinned values: other engineers' localnet files and docs depend on
	// these staying put; changing the derivation must be deliberate.
	if got := Address(DeterministicTrader("alice")).Hex(); got != pinnedAlice {
		t.Errorf("DeterministicTrader(alice) = %s, pinned %s", got, pinnedAlice)
	}
	if got := DeterministicBLS("node1").PublicKey().Hex(); got != pinnedNode1 {
		t.Errorf("DeterministicBLS(node1) pubkey = %s, pinned %s", got, pinnedNode1)
	}
	// Many seeds: every derived BLS key is valid and has a valid PoP; the
	// rehash loop is exercised (over half of raw hashes exceed the order).
	for _, seed := range []string{"", "a", "b", "c", "d", "e", "f", "g", "replica1", "replica2", "replica3"} {
		sk := DeterministicBLS(seed)
		if !sk.PublicKey().VerifyPossession(sk.ProvePossession()) {
			t.Fatalf("seed %q: PoP does not verify", seed)
		}
		if DeterministicTrader(seed) == nil {
			t.Fatalf("seed %q: no trader key", seed)
		}
	}
}

// Pinned derivations, computed independently with ethers (keccak256 of the
// prefixed seed as a Wallet key) and noble-curves (rehashed six times for
// node1 until below the BLS12-381 group order, then its G1 public key).
const (
	pinnedAlice = "0xF7713446B314CA5f4f55b5CB2946d1EB1AA8077e"
	pinnedNode1 = "0xb5a62376b1595d2759cae54dd4b5549eac361488b3124a8a208eeeb6938d9f6ceee3adbb4c694fbceeb29a97cfcaddc8"
)

func TestBLSRejectsScalarAboveOrder(t *testing.T) {
	// The rehash loop in derive relies on this refusal.
	if _, err := bls.SecretKeyFromBytes([]byte(strings.Repeat("\xff", 32))); err == nil {
		t.Fatal("a scalar above the group order was accepted")
	}
}

func TestKeyFiles(t *testing.T) {
	dir := t.TempDir()
	tk, err := GenerateTrader()
	if err != nil {
		t.Fatal(err)
	}
	tpath := filepath.Join(dir, "trader.key")
	if err := WriteTrader(tpath, tk); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(tpath)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != FileMode {
		t.Errorf("trader key file mode %v", st.Mode().Perm())
	}
	back, err := LoadTrader(tpath)
	if err != nil || Address(back) != Address(tk) {
		t.Fatalf("LoadTrader: %v", err)
	}
	if err := WriteTrader(tpath, tk); !errors.Is(err, ErrExists) {
		t.Fatalf("overwrite: %v", err)
	}

	sk, err := GenerateBLS()
	if err != nil {
		t.Fatal(err)
	}
	bpath := filepath.Join(dir, "node.bls")
	if err := WriteBLS(bpath, sk); err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(bpath); err != nil || st.Mode().Perm() != FileMode {
		t.Fatalf("bls key file: %v %v", st, err)
	}
	bback, err := LoadBLS(bpath)
	if err != nil || bback.Hex() != sk.Hex() {
		t.Fatalf("LoadBLS: %v", err)
	}
	if err := WriteBLS(bpath, sk); !errors.Is(err, ErrExists) {
		t.Fatalf("overwrite: %v", err)
	}
	// A trader key is not a BLS key file and vice versa, in general; a
	// garbage file is refused by both.
	junk := filepath.Join(dir, "junk")
	if err := os.WriteFile(junk, []byte("not a key\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadBLS(junk); err == nil {
		t.Error("LoadBLS accepted junk")
	}
	if _, err := LoadTrader(junk); err == nil {
		t.Error("LoadTrader accepted junk")
	}
	if _, err := LoadBLS(filepath.Join(dir, "missing")); err == nil {
		t.Error("LoadBLS of a missing file succeeded")
	}
}

func TestBLSKeyFileIsNotATraderKey(t *testing.T) {
	dir := t.TempDir()
	sk := DeterministicBLS("replica1")
	path := filepath.Join(dir, "replica.key")
	if err := WriteBLS(path, sk); err != nil {
		t.Fatal(err)
	}
	got, err := LoadBLS(path)
	if err != nil || got.Hex() != sk.Hex() {
		t.Fatalf("LoadBLS: %v", err)
	}
	if _, err := LoadTrader(path); !errors.Is(err, ErrBLSKeyFile) || !strings.Contains(err.Error(), "seqbook keys trader") {
		t.Fatalf("LoadTrader of a BLS key file: %v", err)
	}
	// A localnet key written before the header: told apart by its name.
	old := filepath.Join(dir, "node1"+BLSFileExt)
	if err := os.WriteFile(old, []byte(sk.Hex()+"\n"), FileMode); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadBLS(old); err != nil {
		t.Fatalf("LoadBLS of a header-less file: %v", err)
	}
	if _, err := LoadTrader(old); !errors.Is(err, ErrBLSKeyFile) {
		t.Fatalf("LoadTrader of %s: %v", old, err)
	}
	// A trader key file still loads.
	tp := filepath.Join(dir, "trader.key")
	if err := WriteTrader(tp, DeterministicTrader("t")); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadTrader(tp); err != nil {
		t.Fatal(err)
	}
}
