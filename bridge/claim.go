package bridge

import (
	"fmt"
	"math/big"
	"strconv"

	"github.com/ethereum/go-ethereum"
	"github.com/ethereum/go-ethereum/common"

	"github.com/seqbook/seqbook/client"
	"github.com/seqbook/seqbook/client/bls"
	"github.com/seqbook/seqbook/client/cluster"
)

// Claim is a withdrawal proof in the form the contract's withdraw takes.
type Claim struct {
	Withdrawal WithdrawalArg
	// Signers is the signer bitmap (bit i = replica i of the cluster).
	Signers *big.Int
	// Signature is the aggregate signature uncompressed (EIP-2537 G2).
	Signature []byte
}

// NewClaim checks a withdrawal proof off-chain against the cluster file
// (client.VerifyWithdrawalProof: what the contract will check, with clearer
// errors) and converts it for the contract.
func NewClaim(c *cluster.Cluster, p *client.WithdrawalProof) (*Claim, error) {
	if err := client.VerifyWithdrawalProof(c, p); err != nil {
		return nil, err
	}
	return ClaimOf(c, p)
}

// ClaimOf converts a proof for the contract without verifying it: tests
// use it to send proofs the contract must refuse.
func ClaimOf(c *cluster.Cluster, p *client.WithdrawalProof) (*Claim, error) {
	m, err := p.Message()
	if err != nil {
		return nil, err
	}
	sig, err := bls.SignatureFromHex(p.Signature)
	if err != nil {
		return nil, fmt.Errorf("bridge: proof signature: %w", err)
	}
	enc, err := G2Uncompressed(sig)
	if err != nil {
		return nil, err
	}
	signers, err := SignerBitmap(c, p.Signers)
	if err != nil {
		return nil, err
	}
	return &Claim{
		Withdrawal: WithdrawalArg{Id: m.ID, Trader: m.Trader, Token: m.Token,
			Amount: new(big.Int).SetUint64(m.Amount), Recipient: m.Recipient, Index: m.Index},
		Signers:   signers,
		Signature: enc,
	}, nil
}

// String describes the claim for logs.
func (cl *Claim) String() string {
	return fmt.Sprintf("withdrawal %x: %s base units of %s to %s (index %s, signers %s)",
		cl.Withdrawal.Id[:4], cl.Withdrawal.Amount, cl.Withdrawal.Token, cl.Withdrawal.Recipient.Hex(),
		strconv.FormatUint(cl.Withdrawal.Index, 10), cl.Signers.Text(2))
}

func ethereumCall(from, to common.Address, data []byte) ethereum.CallMsg {
	return ethereum.CallMsg{From: from, To: &to, Data: data}
}
