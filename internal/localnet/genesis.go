package localnet

import (
	"encoding/json"
	"fmt"
	"sort"

	"github.com/ethereum/go-ethereum/common"

	"github.com/seqbook/seqbook/client/amount"
	"github.com/seqbook/seqbook/client/ethsig"
	"github.com/seqbook/seqbook/client/obapi"
	"github.com/seqbook/seqbook/replica"
)

// genesis is the opening balances: account (checksummed address) → token →
// base units.
type genesis map[string]map[string]uint64

func defaultGenesis(traders int) (genesis, error) {
	g := genesis{}
	if err := g.add(TutorialUser1Address, "USDT", TutorialUser1USDT); err != nil {
		return nil, err
	}
	if err := g.add(TutorialUser2Address, "ETH", TutorialUser2ETH); err != nil {
		return nil, err
	}
	for i := 0; i < traders; i++ {
		addr := ethsig.Address(TraderKey(i)).Hex()
		if err := g.add(addr, "USDT", TraderUSDT); err != nil {
			return nil, err
		}
		if err := g.add(addr, "ETH", TraderETH); err != nil {
			return nil, err
		}
	}
	return g, nil
}

func (g genesis) add(account, token string, units uint64) error {
	if !common.IsHexAddress(account) {
		return fmt.Errorf("%q is not an address", account)
	}
	if token == "" || len(token) > 16 {
		return fmt.Errorf("token %q: want 1..16 characters", token)
	}
	account = common.HexToAddress(account).Hex()
	if g[account] == nil {
		g[account] = map[string]uint64{}
	}
	sum := g[account][token] + units
	if sum < units || sum > amount.Max {
		return fmt.Errorf("%s %s: balance exceeds 2^63-1 base units", account, token)
	}
	g[account][token] = sum
	return nil
}

func (g genesis) merge(o genesis) error {
	for _, acct := range sortedKeys(o) {
		for _, tok := range sortedKeys(o[acct]) {
			if err := g.add(acct, tok, o[acct][tok]); err != nil {
				return err
			}
		}
	}
	return nil
}

// encode writes the one genesis layout the docs show (the replica's
// list form, replica.Genesis), accounts and tokens sorted, so the file is
// the same for the same balances.
func (g genesis) encode() ([]byte, error) {
	f := replica.Genesis{Balances: []replica.GenesisBalance{}}
	for _, acct := range sortedKeys(g) {
		for _, tok := range sortedKeys(g[acct]) {
			f.Balances = append(f.Balances, replica.GenesisBalance{Address: acct, Token: tok, Amount: obapi.Number(amount.Format(g[acct][tok]))})
		}
	}
	b, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// readGenesis reads a genesis file with the replica's own parser (either
// of its layouts), so an extra file localnet accepts is one the replicas
// accept too.
func readGenesis(path string) (genesis, error) {
	rg, err := replica.LoadGenesis(path)
	if err != nil {
		return nil, fmt.Errorf("localnet: %w", err)
	}
	g := genesis{}
	for _, b := range rg.Balances {
		units, err := amount.Parse(string(b.Amount))
		if err != nil {
			return nil, fmt.Errorf("localnet: genesis %s: %s %s: %w", path, b.Address, b.Token, err)
		}
		if err := g.add(b.Address, b.Token, units); err != nil {
			return nil, fmt.Errorf("localnet: genesis %s: %w", path, err)
		}
	}
	return g, nil
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}
