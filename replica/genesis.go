package replica

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
)

// GenesisBytesMax bounds a genesis file read into memory.
const GenesisBytesMax = 64 << 20

// ParseGenesis reads a genesis file. Two layouts are accepted, amounts as
// decimal strings or JSON numbers ("1000", 0.5):
//
//	{"balances": [{"address": "0x…", "token": "USDT", "amount": "1000"}, …]}
//	{"balances": {"0x…": {"USDT": "1000", "ETH": "5"}, …}}
//
// (the first is what seqbook cluster init and localnet write; the second
// is read for older files). The state they give is the same whatever the
// layout or order, and so is the genesis hash.
func ParseGenesis(data []byte) (*Genesis, error) {
	var top struct {
		Balances json.RawMessage `json:"balances"`
	}
	if err := decodeStrict(data, &top); err != nil {
		return nil, fmt.Errorf("genesis: %w", err)
	}
	raw := bytes.TrimSpace(top.Balances)
	g := &Genesis{}
	switch {
	case len(raw) == 0 || string(raw) == "null":
		return g, nil
	case raw[0] == '[':
		var list []GenesisBalance
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&list); err != nil {
			return nil, fmt.Errorf("genesis balances: %w", jsonError(err))
		}
		g.Balances = list
	case raw[0] == '{':
		var m map[string]map[string]json.RawMessage
		if err := json.Unmarshal(raw, &m); err != nil {
			return nil, fmt.Errorf("genesis balances: %w", jsonError(err))
		}
		addrs := make([]string, 0, len(m))
		for a := range m {
			addrs = append(addrs, a)
		}
		slices.Sort(addrs)
		for _, a := range addrs {
			toks := make([]string, 0, len(m[a]))
			for t := range m[a] {
				toks = append(toks, t)
			}
			slices.Sort(toks)
			for _, t := range toks {
				var n GenesisBalance
				if err := json.Unmarshal(m[a][t], &n.Amount); err != nil {
					return nil, fmt.Errorf("genesis balance %s %s: %v", a, t, strings.TrimPrefix(err.Error(), "json: "))
				}
				n.Address, n.Token = a, t
				g.Balances = append(g.Balances, n)
			}
		}
	default:
		return nil, errors.New("genesis: balances must be a list of {address, token, amount} or an object address → token → amount")
	}
	if err := g.ValidateBasic(); err != nil {
		return nil, err
	}
	return g, nil
}

// ValidateBasic checks every balance (addresses, tokens, amounts, supply
// bounds) by crediting them to a scratch ledger.
func (g *Genesis) ValidateBasic() error {
	_, err := NewLedger(DefaultLedgerConfig(), &Domain{App: "genesis-check"}, g)
	if err != nil {
		return fmt.Errorf("genesis: %w", err)
	}
	return nil
}

// LoadGenesis reads and parses a genesis file.
func LoadGenesis(path string) (*Genesis, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("genesis: %w", err)
	}
	defer f.Close()
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(io.LimitReader(f, GenesisBytesMax+1)); err != nil {
		return nil, fmt.Errorf("genesis %s: %w", path, err)
	}
	if buf.Len() > GenesisBytesMax {
		return nil, fmt.Errorf("genesis %s exceeds %d bytes", path, GenesisBytesMax)
	}
	g, err := ParseGenesis(buf.Bytes())
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return g, nil
}
