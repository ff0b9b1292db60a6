package localnet

import (
	"crypto/ecdsa"
	"strconv"

	"github.com/seqbook/seqbook/client/keys"
)

// The tutorial's two accounts, funded by the default genesis (DESIGN §7);
// their keys are the tutorial's published test keys (client/keys).
var (
	TutorialUser1Address = keys.TutorialUser1Address.Hex()
	TutorialUser2Address = keys.TutorialUser2Address.Hex()
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

// TraderKey returns bench trader i's key, keys.DeterministicTrader of
// "bench-trader-<i>": deterministic, so a genesis written once funds the same
// traders every later demo, bench or chaos run signs for. INSECURE by design.
func TraderKey(i int) *ecdsa.PrivateKey {
	return keys.DeterministicTrader("bench-trader-" + strconv.Itoa(i))
}
