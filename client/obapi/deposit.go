package obapi

import (
	"encoding/binary"

	"github.com/ethereum/go-ethereum/common"

	"github.com/seqbook/seqbook/client/eip712"
)

// DepositTag starts every deposit digest, so a bridge signature over a
// deposit can never be mistaken for any other message its key signs.
const DepositTag = "seqbook-deposit"

// Deposit is the message the bridge key signs to credit an account. DESIGN
// has no EIP-712 type for it (wallets never sign deposits), so it is a
// fixed binary layout hashed once:
//
//	keccak256( "seqbook-deposit"
//	         ‖ uint64be(chainId)
//	         ‖ keccak256(app)
//	         ‖ account (20 bytes)
//	         ‖ keccak256(token)
//	         ‖ uint64be(amount)      base units
//	         ‖ uint64be(nonce)
//	         ‖ uint64be(expiry) )    unix seconds
//
// and the bridge signs that digest directly (r‖s‖v, no EIP-191 prefix),
// e.g. with ethsig.Sign. Strings are hashed so no two field lists share an
// encoding; chainId and app bind the deposit to one cluster and app.
type Deposit struct {
	ChainID uint64
	App     string
	Account common.Address
	Token   string
	Amount  uint64
	Nonce   uint64
	Expiry  uint64
}

// Digest returns the 32 bytes the bridge signs; it is also the deposit's id.
func (d *Deposit) Digest() [32]byte {
	b := make([]byte, 0, len(DepositTag)+8+32+20+32+24)
	b = append(b, DepositTag...)
	b = binary.BigEndian.AppendUint64(b, d.ChainID)
	app := eip712.Keccak256([]byte(d.App))
	b = append(b, app[:]...)
	b = append(b, d.Account[:]...)
	tok := eip712.Keccak256([]byte(d.Token))
	b = append(b, tok[:]...)
	b = binary.BigEndian.AppendUint64(b, d.Amount)
	b = binary.BigEndian.AppendUint64(b, d.Nonce)
	b = binary.BigEndian.AppendUint64(b, d.Expiry)
	return eip712.Keccak256(b)
}
