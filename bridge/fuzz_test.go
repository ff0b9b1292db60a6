package bridge

import (
	"math/big"
	"testing"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"
)

// FuzzParseDeposit decodes arbitrary Deposit logs: it never panics, and
// what it accepts is exactly what the log's topics and data encode.
func FuzzParseDeposit(f *testing.F) {
	ev := BridgeABI.Events["Deposit"].ID
	good := append(append(append(ev.Bytes(), common.LeftPadBytes([]byte{0xaa}, 32)...), make([]byte, 32)...), common.LeftPadBytes([]byte{7}, 32)...)
	f.Add(good, common.LeftPadBytes([]byte{0x0f, 0x42, 0x40}, 32))
	f.Add(good[:96], []byte{1})
	f.Fuzz(func(t *testing.T, topics, data []byte) {
		l := types.Log{Data: data}
		for i := 0; i+32 <= len(topics); i += 32 {
			l.Topics = append(l.Topics, common.BytesToHash(topics[i:i+32]))
		}
		d, err := parseDeposit(l)
		if err != nil {
			return
		}
		if len(l.Topics) != 4 || len(data) != 32 {
			t.Fatalf("accepted %d topics and %d data bytes", len(l.Topics), len(data))
		}
		if new(big.Int).SetBytes(data).Uint64() != d.Units || new(big.Int).SetBytes(l.Topics[3][:]).Uint64() != d.ID ||
			common.BytesToAddress(l.Topics[1][:]) != d.Account || common.BytesToAddress(l.Topics[2][:]) != d.Token {
			t.Fatalf("decoded %+v from %x / %x", d, topics, data)
		}
	})
}

// FuzzParseRelayState decodes arbitrary state files: it never panics, and
// every pending deposit it accepts can be acted on.
func FuzzParseRelayState(f *testing.F) {
	f.Add([]byte(`{"contract":"0x5FbDB2315678afecb367f032d93F642f64180aa3","next_block":12,"last_deposit_id":2,"pending":[{"deposit_id":2,"block":9,"tx":"0x01","op_id":"0x` +
		"1111111111111111111111111111111111111111111111111111111111111111" + `","request":{"account":"0x7F3b0b1530A0d0Ce3D721a6e976C7eA4296A0f5d","token":"ETH","amount":"2000000","nonce":"2","expiry":"1800000000","signature":"0x00"}}],"credited":1}`))
	f.Add([]byte(`{"contract":"0x5FbDB2315678afecb367f032d93F642f64180aa3","next_block":0,"last_deposit_id":0,"pending":[],"credited":0}`))
	f.Add([]byte(`{"contract":"nope"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		st, err := ParseRelayState(b)
		if err != nil {
			return
		}
		for _, p := range st.Pending {
			if numberU64(p.Request.Nonce) != p.DepositID || p.DepositID > st.LastDepositID {
				t.Fatalf("accepted pending deposit %+v", p)
			}
		}
	})
}
