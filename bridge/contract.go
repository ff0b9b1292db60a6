package bridge

import (
	"context"
	"crypto/ecdsa"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"time"

	"github.com/ethereum/go-ethereum"
	"github.com/ethereum/go-ethereum/accounts/abi"
	bind "github.com/ethereum/go-ethereum/accounts/abi/bind/v2"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/common/hexutil"
	"github.com/ethereum/go-ethereum/core/types"
	"github.com/ethereum/go-ethereum/rpc"

	"github.com/seqbook/seqbook/client/ethsig"
)

// Backend is what the bridge needs of an Ethereum node: an
// *ethclient.Client (a real node over RPC) or the simulated chain's client.
type Backend interface {
	bind.ContractBackend
	ethereum.TransactionReader
	ethereum.ChainIDReader
	ethereum.BlockNumberReader
	BalanceAt(ctx context.Context, account common.Address, blockNumber *big.Int) (*big.Int, error)
}

// receiptPoll is how often a sent transaction's receipt is asked for.
const receiptPoll = 50 * time.Millisecond

// Sender signs and sends transactions from one key, waiting for each to be
// mined.
type Sender struct {
	Backend Backend
	Key     *ecdsa.PrivateKey
	ChainID *big.Int
}

// NewSender reads the chain id from the backend.
func NewSender(ctx context.Context, b Backend, key *ecdsa.PrivateKey) (*Sender, error) {
	id, err := b.ChainID(ctx)
	if err != nil {
		return nil, fmt.Errorf("bridge: chain id: %w", err)
	}
	return &Sender{Backend: b, Key: key, ChainID: id}, nil
}

// Address is the sending account.
func (s *Sender) Address() common.Address { return ethsig.Address(s.Key) }

func (s *Sender) opts(ctx context.Context, value *big.Int) *bind.TransactOpts {
	o := bind.NewKeyedTransactor(s.Key, s.ChainID)
	o.Context = ctx
	o.Value = value
	return o
}

// Transact calls a contract method in a transaction and waits for its
// receipt. A call that would revert fails before sending, with the
// contract's reason (RevertReason); a mined transaction that failed is an
// error too.
func (s *Sender) Transact(ctx context.Context, c *bind.BoundContract, value *big.Int, method string, args ...any) (*types.Receipt, error) {
	tx, err := c.Transact(s.opts(ctx, value), method, args...)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", method, revertError(err))
	}
	return s.wait(ctx, method, tx)
}

// Deploy creates a contract and waits for it to be mined.
func (s *Sender) Deploy(ctx context.Context, a abi.ABI, code []byte, args ...any) (common.Address, *types.Receipt, error) {
	input, err := a.Pack("", args...)
	if err != nil {
		return common.Address{}, nil, fmt.Errorf("bridge: constructor arguments: %w", err)
	}
	addr, tx, err := bind.DeployContract(s.opts(ctx, nil), code, s.Backend, input)
	if err != nil {
		return common.Address{}, nil, fmt.Errorf("deploy: %w", revertError(err))
	}
	r, err := s.wait(ctx, "deploy", tx)
	return addr, r, err
}

func (s *Sender) wait(ctx context.Context, what string, tx *types.Transaction) (*types.Receipt, error) {
	t := time.NewTicker(receiptPoll)
	defer t.Stop()
	for {
		r, err := s.Backend.TransactionReceipt(ctx, tx.Hash())
		if err == nil {
			if r.Status != types.ReceiptStatusSuccessful {
				return r, fmt.Errorf("%s: transaction %s failed (gas used %d)", what, tx.Hash().Hex(), r.GasUsed)
			}
			return r, nil
		}
		// A node still indexing transactions (a fresh one) says so; ask
		// again as for one not yet mined.
		if !errors.Is(err, ethereum.NotFound) && !strings.Contains(err.Error(), "indexing is in progress") {
			return nil, fmt.Errorf("%s: receipt of %s: %w", what, tx.Hash().Hex(), err)
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("%s: transaction %s not mined: %w", what, tx.Hash().Hex(), ctx.Err())
		case <-t.C:
		}
	}
}

// call runs a view method and unpacks its results.
func call(ctx context.Context, c *bind.BoundContract, method string, args ...any) ([]any, error) {
	var out []any
	if err := c.Call(&bind.CallOpts{Context: ctx}, &out, method, args...); err != nil {
		return nil, fmt.Errorf("%s: %w", method, revertError(err))
	}
	return out, nil
}

// RevertError is a call the contract refused, with its reason.
type RevertError struct {
	Reason string
}

func (e *RevertError) Error() string { return "reverted: " + e.Reason }

// RevertReason returns the contract's revert reason carried by err, or ""
// if err is not a revert.
func RevertReason(err error) string {
	var re *RevertError
	if errors.As(err, &re) {
		return re.Reason
	}
	return ""
}

// revertError turns a node's "execution reverted" error into a
// *RevertError with the decoded Error(string) reason.
func revertError(err error) error {
	var de rpc.DataError
	if errors.As(err, &de) {
		if s, ok := de.ErrorData().(string); ok {
			if data, derr := hexutil.Decode(s); derr == nil {
				if reason, uerr := abi.UnpackRevert(data); uerr == nil {
					return &RevertError{Reason: reason}
				}
			}
		}
	}
	if msg := err.Error(); strings.Contains(msg, "execution reverted: ") {
		return &RevertError{Reason: msg[strings.Index(msg, "execution reverted: ")+len("execution reverted: "):]}
	}
	return err
}
