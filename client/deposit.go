package client

import (
	"context"
	"crypto/ecdsa"
	"encoding/hex"
	"fmt"

	"github.com/seqbook/seqbook/client/amount"
	"github.com/seqbook/seqbook/client/ethsig"
	"github.com/seqbook/seqbook/client/obapi"
)

// SignDeposit signs a deposit with the cluster's bridge key (a relayer
// does this for funds locked on-chain) and returns the POST /deposit body
// and the operation's id (the digest signed). Amount is base units. Nonce
// and Expiry are required: a relayer derives the nonce from the chain (the
// contract's deposit id) so a deposit keeps its nonce across restarts.
func SignDeposit(key *ecdsa.PrivateKey, p obapi.Deposit) (obapi.DepositRequest, [32]byte, error) {
	if err := checkToken(p.Token); err != nil {
		return obapi.DepositRequest{}, [32]byte{}, fmt.Errorf("%w: token %q must be 1 to %d bytes", ErrInvalidParams, p.Token, tokenBytesMax)
	}
	if p.Amount == 0 || p.Amount > amount.Max {
		return obapi.DepositRequest{}, [32]byte{}, fmt.Errorf("%w: amount must be between 1 and %d base units", ErrInvalidParams, amount.Max)
	}
	if p.Nonce == 0 || p.Expiry == 0 || p.ChainID == 0 || p.App == "" {
		return obapi.DepositRequest{}, [32]byte{}, fmt.Errorf("%w: a deposit needs its chain id, app, nonce and expiry", ErrInvalidParams)
	}
	digest := p.Digest()
	sig, err := ethsig.Sign(key, digest)
	if err != nil {
		return obapi.DepositRequest{}, [32]byte{}, err
	}
	return obapi.DepositRequest{Account: p.Account.Hex(), Token: p.Token, Amount: obapi.Uint(p.Amount),
		Nonce: obapi.Uint(p.Nonce), Expiry: obapi.Uint(p.Expiry), Signature: "0x" + hex.EncodeToString(sig)}, digest, nil
}

// PostDeposit submits a signed deposit (POST /deposit); id is the digest
// SignDeposit returned, checked against the replica's answer.
func (ob *Orderbook) PostDeposit(ctx context.Context, req obapi.DepositRequest, id [32]byte, wait bool) (*OpResult, error) {
	return ob.submitOp(ctx, "/deposit", req, id, wait)
}
