// Package bridge is the Go side of seqbook's EVM bridge (docs/bridge.md):
// the SeqbookBridge contract's compiled artifacts and bindings, the
// EIP-2537 encodings of the replicas' BLS keys and of proofs' signatures,
// deployment from a cluster file, the deposit relayer and withdrawal
// claims, and a simulated Prague chain for tests and the demo.
//
// The Solidity sources are in contracts/; build.js compiles them with the
// pinned solc from npm into build/, which is committed and embedded here.
// `node bridge/build.js --check` (run by make test) fails when build/ is
// stale.
package bridge

import (
	_ "embed"
	"encoding/hex"
	"fmt"
	"strings"

	"github.com/ethereum/go-ethereum/accounts/abi"
)

var (
	//go:embed build/SeqbookBridge.abi
	bridgeABIJSON string
	//go:embed build/SeqbookBridge.bin
	bridgeBinHex string
	//go:embed build/TestToken.abi
	tokenABIJSON string
	//go:embed build/TestToken.bin
	tokenBinHex string
)

// The parsed ABIs and creation bytecodes.
var (
	BridgeABI  = mustABI("SeqbookBridge", bridgeABIJSON)
	BridgeCode = mustHex("SeqbookBridge", bridgeBinHex)
	TokenABI   = mustABI("TestToken", tokenABIJSON)
	TokenCode  = mustHex("TestToken", tokenBinHex)
)

func mustABI(name, s string) abi.ABI {
	a, err := abi.JSON(strings.NewReader(s))
	if err != nil {
		panic(fmt.Sprintf("bridge: build/%s.abi: %v", name, err))
	}
	return a
}

func mustHex(name, s string) []byte {
	b, err := hex.DecodeString(strings.TrimSpace(s))
	if err != nil || len(b) == 0 {
		panic(fmt.Sprintf("bridge: build/%s.bin is not hex bytecode", name))
	}
	return b
}
