package bridge

import (
	"context"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"strconv"
	"time"

	"github.com/ethereum/go-ethereum"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"

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

// ClaimResult is a paid withdrawal.
type ClaimResult struct {
	Proof   *client.WithdrawalProof
	Claim   *Claim
	Receipt *types.Receipt
}

// ClaimWithdrawal fetches the quorum proof of withdrawal id from the
// aggregator (asking again while no quorum of replicas knows it yet, until
// ctx ends), checks it off-chain against the cluster file, and sends it to
// the bridge, which checks it again and pays the signed recipient. Anyone
// may send a claim: the payout goes where the trader signed.
func ClaimWithdrawal(ctx context.Context, s *Sender, k *Contract, c *cluster.Cluster, agg *client.Aggregator, id [32]byte) (*ClaimResult, error) {
	if paid, err := k.Paid(ctx, id); err != nil {
		return nil, err
	} else if paid {
		return nil, fmt.Errorf("withdrawal %x was already paid by bridge %s", id, k.Address.Hex())
	}
	var p *client.WithdrawalProof
	for {
		var err error
		p, err = agg.WithdrawalProof(ctx, id)
		var apiErr *client.APIError
		if err == nil {
			break
		}
		if !errors.As(err, &apiErr) || apiErr.Status != http.StatusNotFound {
			return nil, fmt.Errorf("aggregator: %w", err)
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("aggregator: %w (gave up: %v)", err, ctx.Err())
		case <-time.After(proofPoll):
		}
	}
	cl, err := NewClaim(c, p)
	if err != nil {
		return nil, fmt.Errorf("the aggregator's proof does not verify against the cluster file: %w", err)
	}
	r, err := k.Withdraw(ctx, s, cl)
	if err != nil {
		return nil, err
	}
	return &ClaimResult{Proof: p, Claim: cl, Receipt: r}, nil
}

// proofPoll is how often a claim asks the aggregator again for a
// withdrawal that no quorum of replicas has applied yet.
const proofPoll = 200 * time.Millisecond
