package localnet

import (
	"crypto/ecdsa"
	"encoding/binary"
	"fmt"

	"github.com/ethereum/go-ethereum/crypto"

	"github.com/seqbook/seqbook/client/eip712"
	"github.com/seqbook/seqbook/client/ethsig"
)

// The tutorial's two accounts (DESIGN §7 funds them in the default
// genesis). Their private keys are the public test keys of the tutorial's
// place-order script (zellular-xyz/zsequencer examples/orderbook), so they
// guard nothing: use them on a local network only.
const (
	TutorialUser1Address = "0xc66F8Fba940064B5bA8d437d6fF829E60134230E"
	TutorialUser2Address = "0x7F3b0b1530A0d0Ce3D721a6e976C7eA4296A0f5d"

	tutorialUser1Key = "0x4b7f4de058ab4d3629f438c1728ac77bea7f4ab0099218be77242f8ba099cca7"
	tutorialUser2Key = "0x28a3947aa36917ca22f56765c67bedc2fdbbd2daf73f8a2cdb1c0dd252cefc3c"
)

// Genesis amounts of the tutorial accounts, in base units (6 decimals).
const (
	TutorialUser1USDT = 1000 * 1_000_000
	TutorialUser2ETH  = 5 * 1_000_000
)

// Genesis amounts of each bench trader: enough for hundreds of thousands of
// bench orders of 0.001 ETH at 2000 USDT each way.
const (
	TraderUSDT = 1_000_000_000 * 1_000_000 // 1e9 USDT
	TraderETH  = 1_000_000 * 1_000_000     // 1e6 ETH
)

// TutorialUser1 returns the key of the tutorial's user1 (1000 USDT).
func TutorialUser1() *ecdsa.PrivateKey { return mustKey(tutorialUser1Key, TutorialUser1Address) }

// TutorialUser2 returns the key of the tutorial's user2 (5 ETH).
func TutorialUser2() *ecdsa.PrivateKey { return mustKey(tutorialUser2Key, TutorialUser2Address) }

func mustKey(hexKey, wantAddr string) *ecdsa.PrivateKey {
	k, err := ethsig.ParseKey(hexKey)
	if err != nil {
		panic("localnet: built-in key: " + err.Error())
	}
	if got := ethsig.Address(k).Hex(); got != wantAddr {
		panic(fmt.Sprintf("localnet: built-in key is for %s, not %s", got, wantAddr))
	}
	return k
}

// TraderKey returns bench trader i's key: keccak256("seqbook bench trader"
// || uint64be(i)) as a secp256k1 scalar. Deterministic so that a genesis
// written once funds the same traders every later bench run signs for.
func TraderKey(i int) *ecdsa.PrivateKey {
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], uint64(i))
	for salt := byte(0); ; salt++ {
		seed := eip712.Keccak256([]byte("seqbook bench trader"), n[:], []byte{salt})
		// A keccak output is a valid scalar except with probability ~2^-128;
		// the salt only exists so this can never loop on a bad one.
		if k, err := crypto.ToECDSA(seed[:]); err == nil {
			return k
		}
	}
}
