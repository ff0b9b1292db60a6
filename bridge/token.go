package bridge

import (
	"context"
	"math/big"

	bind "github.com/ethereum/go-ethereum/accounts/abi/bind/v2"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"
)

// Token is a deployed TestToken, the minimal ERC-20 of the tests and the
// demo (any ERC-20 answers BalanceOf and Approve the same way).
type Token struct {
	Address common.Address
	c       *bind.BoundContract
}

// TokenAt binds an ERC-20 at addr.
func TokenAt(b Backend, addr common.Address) *Token {
	return &Token{Address: addr, c: bind.NewBoundContract(addr, TokenABI, b, b, b)}
}

// DeployToken deploys a TestToken; the sender becomes its minter.
func DeployToken(ctx context.Context, s *Sender, name, symbol string, decimals uint8) (*Token, error) {
	addr, _, err := s.Deploy(ctx, TokenABI, TokenCode, name, symbol, decimals)
	if err != nil {
		return nil, err
	}
	return TokenAt(s.Backend, addr), nil
}

// Mint creates amount for to (the sender must be the minter).
func (t *Token) Mint(ctx context.Context, s *Sender, to common.Address, amount *big.Int) (*types.Receipt, error) {
	return s.Transact(ctx, t.c, nil, "mint", to, amount)
}

// Approve lets spender move amount of the sender's tokens.
func (t *Token) Approve(ctx context.Context, s *Sender, spender common.Address, amount *big.Int) (*types.Receipt, error) {
	return s.Transact(ctx, t.c, nil, "approve", spender, amount)
}

// BalanceOf reads an account's balance in token units.
func (t *Token) BalanceOf(ctx context.Context, who common.Address) (*big.Int, error) {
	out, err := call(ctx, t.c, "balanceOf", who)
	if err != nil {
		return nil, err
	}
	return out[0].(*big.Int), nil
}
