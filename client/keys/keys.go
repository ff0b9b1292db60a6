// Package keys makes, stores and loads seqbook's two kinds of keys: a
// trader's secp256k1 key (an Ethereum account) and a node's or replica's
// BLS key. Key files hold the secret as one line of 0x hex, mode 0600; a
// BLS key file starts with a comment line (BLSFileHeader) so that it is
// never taken for a trader key (both are 32 bytes of hex).
//
// It also has deterministic keys for tests and the local network, derived
// from a seed string. They are public knowledge (anyone can derive them from
// the seed) and must never hold real funds or run a real node.
package keys

import (
	"crypto/ecdsa"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/common/hexutil"
	"github.com/ethereum/go-ethereum/crypto"

	"github.com/seqbook/seqbook/client/bls"
	"github.com/seqbook/seqbook/client/eip712"
	"github.com/seqbook/seqbook/client/ethsig"
)

// FileMode is the permission of a key file: readable by its owner only.
const FileMode fs.FileMode = 0o600

// ErrExists is returned when a key file would overwrite an existing file: a
// key lost to a typo in --out cannot be recovered.
var ErrExists = errors.New("key file already exists (refusing to overwrite a key)")

// GenerateTrader makes a new secp256k1 key from the operating system's CSPRNG.
func GenerateTrader() (*ecdsa.PrivateKey, error) { return crypto.GenerateKey() }

// TraderHex returns a trader key as 0x + 64 hex digits, the form wallets
// import and key files hold.
func TraderHex(k *ecdsa.PrivateKey) string { return hexutil.Encode(crypto.FromECDSA(k)) }

// Address returns the account address of a trader key.
func Address(k *ecdsa.PrivateKey) common.Address { return ethsig.Address(k) }

// BLSFileHeader is the first line of a BLS key file: it tells a person what
// the file is, and lets LoadTrader refuse it with a clear message.
const BLSFileHeader = "# seqbook BLS secret key (a sequencer node's or a replica's), not a trader key"

// BLSFileExt is the extension localnet gives BLS key files; a file with it
// is taken for a BLS key even without the header (files written before it).
const BLSFileExt = ".bls"

// ErrBLSKeyFile is LoadTrader's refusal of a BLS key file.
var ErrBLSKeyFile = errors.New("this is a BLS key file (a sequencer node's or a replica's key), not a trader key: " +
	"make a trader key with 'seqbook keys trader --out FILE' (add --seed S for a reproducible test key)")

// IsBLSKeyFile reports whether a key file at path holding content is a BLS
// key file: its header, or localnet's extension.
func IsBLSKeyFile(path, content string) bool {
	return strings.HasPrefix(strings.TrimSpace(content), "#") && strings.Contains(content, "BLS") ||
		strings.HasSuffix(path, BLSFileExt)
}

// WriteTrader writes a trader key file (0600). It refuses to overwrite.
func WriteTrader(path string, k *ecdsa.PrivateKey) error { return writeSecret(path, TraderHex(k)) }

// LoadTrader reads a trader key file.
// It refuses a BLS key file (ErrBLSKeyFile) rather than use its secret as a
// trader key, which would only fail later as an unfunded account.
func LoadTrader(path string) (*ecdsa.PrivateKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if IsBLSKeyFile(path, string(b)) {
		return nil, fmt.Errorf("%s: %w", path, ErrBLSKeyFile)
	}
	k, err := ethsig.ParseKey(string(b))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return k, nil
}

// GenerateBLS makes a new BLS key from the operating system's CSPRNG.
func GenerateBLS() (*bls.SecretKey, error) { return bls.GenerateKey() }

// WriteBLS writes a BLS key file (0600). It refuses to overwrite.
func WriteBLS(path string, sk *bls.SecretKey) error { return writeSecret(path, BLSFileText(sk)) }

// BLSFileText is the content of a BLS key file: the header, then the key.
func BLSFileText(sk *bls.SecretKey) string { return BLSFileHeader + "\n" + sk.Hex() }

// ParseBLS reads the content of a BLS key file: 0x hex, after any comment
// lines (starting with #).
func ParseBLS(content string) (*bls.SecretKey, error) {
	var key []string
	for _, line := range strings.Split(content, "\n") {
		line = strings.TrimSpace(line)
		if line != "" && !strings.HasPrefix(line, "#") {
			key = append(key, line)
		}
	}
	if len(key) != 1 {
		return nil, errors.New("want one line of hex (the BLS secret key) besides # comments")
	}
	return bls.SecretKeyFromHex(key[0])
}

// LoadBLS reads a BLS key file.
func LoadBLS(path string) (*bls.SecretKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	sk, err := ParseBLS(string(b))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return sk, nil
}

// writeSecret creates path exclusively with mode 0600, so the secret is
// never readable by others, not even between create and chmod.
func writeSecret(path, secretHex string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, FileMode)
	if errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("%s: %w", path, ErrExists)
	}
	if err != nil {
		return err
	}
	if _, err := f.WriteString(secretHex + "\n"); err != nil {
		f.Close()
		os.Remove(path)
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		os.Remove(path)
		return err
	}
	return f.Close()
}

// Domain-separation prefixes of the deterministic keys, so a trader key and
// a BLS key from the same seed are unrelated.
const (
	traderSeedPrefix = "seqbook insecure test key v1/trader/"
	blsSeedPrefix    = "seqbook insecure test key v1/bls/"
)

// derive hashes prefix+seed, then rehashes with a counter until accept
// takes the 32 bytes (a scalar of 0 or ≥ the group order is refused).
func derive(prefix, seed string, accept func([]byte) bool) {
	h := eip712.Keccak256([]byte(prefix + seed))
	for i := 0; ; i++ {
		if accept(h[:]) {
			return
		}
		if i > 1000 {
			// Each try fails with probability < 0.6; 1000 failures do not happen.
			panic("keys: no valid scalar derived from seed " + seed)
		}
		h = eip712.Keccak256(h[:])
	}
}

// DeterministicTrader returns the trader key derived from seed:
// keccak256("seqbook insecure test key v1/trader/" + seed), rehashed until it
// is a valid secp256k1 scalar. INSECURE: for tests and the local network
// only; anyone who knows the seed has the key.
func DeterministicTrader(seed string) *ecdsa.PrivateKey {
	var k *ecdsa.PrivateKey
	derive(traderSeedPrefix, seed, func(b []byte) bool {
		var err error
		k, err = crypto.ToECDSA(b)
		return err == nil
	})
	return k
}

// DeterministicBLS returns the BLS key derived from seed:
// keccak256("seqbook insecure test key v1/bls/" + seed), rehashed until it is
// a valid BLS12-381 scalar. INSECURE: for tests and the local network only.
func DeterministicBLS(seed string) *bls.SecretKey {
	var sk *bls.SecretKey
	derive(blsSeedPrefix, seed, func(b []byte) bool {
		var err error
		sk, err = bls.SecretKeyFromBytes(b)
		return err == nil
	})
	return sk
}

// The two accounts of the Zellular orderbook tutorial. Their private keys
// are published in the tutorial's client script (examples/orderbook/
// 02_place_order.py in zellular-xyz/zsequencer), and the tutorial's genesis
// funds their addresses (DESIGN §7). Public, worthless keys: demos only.
const (
	// TutorialUser1Hex controls 0xc66F8Fba940064B5bA8d437d6fF829E60134230E
	// (1000 USDT at genesis).
	TutorialUser1Hex = "0x4b7f4de058ab4d3629f438c1728ac77bea7f4ab0099218be77242f8ba099cca7"
	// TutorialUser2Hex controls 0x7F3b0b1530A0d0Ce3D721a6e976C7eA4296A0f5d
	// (5 ETH at genesis).
	TutorialUser2Hex = "0x28a3947aa36917ca22f56765c67bedc2fdbbd2daf73f8a2cdb1c0dd252cefc3c"
)

// Addresses of the tutorial's two accounts.
var (
	TutorialUser1Address = common.HexToAddress("0xc66F8Fba940064B5bA8d437d6fF829E60134230E")
	TutorialUser2Address = common.HexToAddress("0x7F3b0b1530A0d0Ce3D721a6e976C7eA4296A0f5d")
)

// TutorialUser1 returns the tutorial's first account's key (1000 USDT).
func TutorialUser1() *ecdsa.PrivateKey { return mustKey(TutorialUser1Hex) }

// TutorialUser2 returns the tutorial's second account's key (5 ETH).
func TutorialUser2() *ecdsa.PrivateKey { return mustKey(TutorialUser2Hex) }

func mustKey(h string) *ecdsa.PrivateKey {
	k, err := ethsig.ParseKey(h)
	if err != nil {
		panic("keys: built-in key: " + err.Error())
	}
	return k
}
