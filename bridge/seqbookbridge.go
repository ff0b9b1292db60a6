package bridge

import (
	"context"
	"fmt"
	"math/big"

	"github.com/ethereum/go-ethereum"
	bind "github.com/ethereum/go-ethereum/accounts/abi/bind/v2"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"

	"github.com/seqbook/seqbook/client/cluster"
)

// Contract is a deployed SeqbookBridge.
type Contract struct {
	Address common.Address
	b       Backend
	c       *bind.BoundContract
}

// At binds the SeqbookBridge at addr.
func At(b Backend, addr common.Address) *Contract {
	return &Contract{Address: addr, b: b, c: bind.NewBoundContract(addr, BridgeABI, b, b, b)}
}

// Listing is a token the bridge holds: its orderbook symbol and its ERC-20
// contract (the zero address for ETH).
type Listing struct {
	Symbol string
	Token  common.Address
}

// ConstructorArgs are a cluster's deployment arguments: app, chain id,
// threshold, the replicas' keys uncompressed (each checked to compress
// back to the cluster file's key, whose proof of possession cluster.Parse
// checked) and the listed tokens.
func ConstructorArgs(c *cluster.Cluster, tokens []Listing) ([]any, error) {
	if len(c.Replicas) == 0 {
		return nil, fmt.Errorf("bridge: the cluster has no replicas")
	}
	keys := make([][]byte, len(c.Replicas))
	for i := range c.Replicas {
		k, err := G1Uncompressed(c.ReplicaKey(i))
		if err != nil {
			return nil, fmt.Errorf("replica %s: %w", c.Replicas[i].ID, err)
		}
		keys[i] = k
	}
	syms := make([]string, len(tokens))
	addrs := make([]common.Address, len(tokens))
	for i, t := range tokens {
		syms[i], addrs[i] = t.Symbol, t.Token
	}
	return []any{c.App, new(big.Int).SetUint64(c.ChainID), big.NewInt(int64(c.ReplicaThreshold())), keys, syms, addrs}, nil
}

// Deploy deploys a SeqbookBridge for a cluster and checks what the chain
// holds afterwards: every replica key reads back and compresses to the
// cluster file's key.
func Deploy(ctx context.Context, s *Sender, c *cluster.Cluster, tokens []Listing) (*Contract, *types.Receipt, error) {
	args, err := ConstructorArgs(c, tokens)
	if err != nil {
		return nil, nil, err
	}
	addr, r, err := s.Deploy(ctx, BridgeABI, BridgeCode, args...)
	if err != nil {
		return nil, r, err
	}
	k := At(s.Backend, addr)
	if err := k.CheckCluster(ctx, c); err != nil {
		return nil, r, err
	}
	return k, r, nil
}

// CheckCluster checks that the contract verifies for this cluster: same
// app, chain id, threshold and replica keys.
func (k *Contract) CheckCluster(ctx context.Context, c *cluster.Cluster) error {
	n, err := k.uint(ctx, "replicaCount")
	if err != nil {
		return err
	}
	if n != uint64(len(c.Replicas)) {
		return fmt.Errorf("bridge %s has %d replicas, the cluster %d", k.Address.Hex(), n, len(c.Replicas))
	}
	if t, err := k.uint(ctx, "threshold"); err != nil || t != uint64(c.ReplicaThreshold()) {
		return fmt.Errorf("bridge %s threshold %d, the cluster's is %d (%v)", k.Address.Hex(), t, c.ReplicaThreshold(), err)
	}
	if id, err := k.uint(ctx, "clusterChainId"); err != nil || id != c.ChainID {
		return fmt.Errorf("bridge %s is for chain id %d, the cluster's is %d (%v)", k.Address.Hex(), id, c.ChainID, err)
	}
	out, err := call(ctx, k.c, "app")
	if err != nil {
		return err
	}
	if app := out[0].(string); app != c.App {
		return fmt.Errorf("bridge %s is for app %q, the cluster's is %q", k.Address.Hex(), app, c.App)
	}
	for i := range c.Replicas {
		out, err := call(ctx, k.c, "replicaKey", big.NewInt(int64(i)))
		if err != nil {
			return err
		}
		want, err := G1Uncompressed(c.ReplicaKey(i))
		if err != nil {
			return err
		}
		if got := out[0].([]byte); string(got) != string(want) {
			return fmt.Errorf("bridge %s holds another key for replica %s", k.Address.Hex(), c.Replicas[i].ID)
		}
	}
	return nil
}

func (k *Contract) uint(ctx context.Context, method string, args ...any) (uint64, error) {
	out, err := call(ctx, k.c, method, args...)
	if err != nil {
		return 0, err
	}
	v := out[0].(*big.Int)
	if !v.IsUint64() {
		return 0, fmt.Errorf("%s: %s does not fit 64 bits", method, v)
	}
	return v.Uint64(), nil
}

// HashToG2 calls the contract's hash to G2 (EIP-2537 encoding).
func (k *Contract) HashToG2(ctx context.Context, digest [32]byte) ([]byte, error) {
	out, err := call(ctx, k.c, "hashToG2", digest)
	if err != nil {
		return nil, err
	}
	return out[0].([]byte), nil
}

// AggregateKey calls the contract's sum of the signers' keys.
func (k *Contract) AggregateKey(ctx context.Context, signers *big.Int) ([]byte, error) {
	out, err := call(ctx, k.c, "aggregateKey", signers)
	if err != nil {
		return nil, err
	}
	return out[0].([]byte), nil
}

// Paid reports whether a withdrawal id has been paid.
func (k *Contract) Paid(ctx context.Context, id [32]byte) (bool, error) {
	out, err := call(ctx, k.c, "paid", id)
	if err != nil {
		return false, err
	}
	return out[0].(bool), nil
}

// DepositCount is the id of the last deposit.
func (k *Contract) DepositCount(ctx context.Context) (uint64, error) {
	return k.uint(ctx, "depositCount")
}

// SymbolOf returns the orderbook symbol of a listed token address ("" if
// not listed; the zero address is ETH).
func (k *Contract) SymbolOf(ctx context.Context, token common.Address) (string, error) {
	out, err := call(ctx, k.c, "symbolOf", token)
	if err != nil {
		return "", err
	}
	return out[0].(string), nil
}

// ListedToken returns the token address and decimals of a symbol.
func (k *Contract) ListedToken(ctx context.Context, symbol string) (common.Address, uint8, error) {
	out, err := call(ctx, k.c, "listedToken", symbol)
	if err != nil {
		return common.Address{}, 0, err
	}
	return out[0].(common.Address), out[1].(uint8), nil
}

// DepositETH locks value wei for account.
func (k *Contract) DepositETH(ctx context.Context, s *Sender, account common.Address, wei *big.Int) (*types.Receipt, error) {
	return s.Transact(ctx, k.c, wei, "deposit", account)
}

// DepositToken locks amount (token units) of an ERC-20 for account; the
// sender must have approved the bridge.
func (k *Contract) DepositToken(ctx context.Context, s *Sender, token, account common.Address, amount *big.Int) (*types.Receipt, error) {
	return s.Transact(ctx, k.c, nil, "depositToken", token, account, amount)
}

// WithdrawalArg is the contract's Withdrawal struct.
type WithdrawalArg struct {
	Id        [32]byte //nolint:revive // the ABI field name
	Trader    common.Address
	Token     string
	Amount    *big.Int
	Recipient common.Address
	Index     uint64
}

// Withdraw sends a claim built by NewClaim.
func (k *Contract) Withdraw(ctx context.Context, s *Sender, cl *Claim) (*types.Receipt, error) {
	return s.Transact(ctx, k.c, nil, "withdraw", cl.Withdrawal, cl.Signers, cl.Signature)
}

// CallWithdraw runs withdraw as a call (nothing is sent): nil if the
// contract would pay, else the *RevertError.
func (k *Contract) CallWithdraw(ctx context.Context, from common.Address, cl *Claim) error {
	input, err := BridgeABI.Pack("withdraw", cl.Withdrawal, cl.Signers, cl.Signature)
	if err != nil {
		return err
	}
	_, err = k.b.CallContract(ctx, ethereumCall(from, k.Address, input), nil)
	if err != nil {
		return revertError(err)
	}
	return nil
}

// VerifyQuorum runs the contract's verifyQuorum on a digest as a call.
func (k *Contract) VerifyQuorum(ctx context.Context, digest [32]byte, signers *big.Int, sig []byte) error {
	_, err := call(ctx, k.c, "verifyQuorum", digest, signers, sig)
	return err
}

// SignerBitmap is the contract's signer bitmap of replica ids: bit i for
// the i-th replica of the cluster file.
func SignerBitmap(c *cluster.Cluster, ids []string) (*big.Int, error) {
	m := new(big.Int)
	for _, id := range ids {
		i, ok := c.ReplicaIndex(id)
		if !ok {
			return nil, fmt.Errorf("bridge: %q is not a replica of the cluster", id)
		}
		if m.Bit(i) == 1 {
			return nil, fmt.Errorf("bridge: signer %q listed twice", id)
		}
		m.SetBit(m, i, 1)
	}
	return m, nil
}

// DepositEvent is one Deposit log of the contract.
type DepositEvent struct {
	// Account is credited Units base units (6 decimals) of Token (the zero
	// address for ETH).
	Account common.Address
	Token   common.Address
	Units   uint64
	// ID is the contract's deposit counter, from 1: the deposit
	// operation's nonce.
	ID    uint64
	Block uint64
	Tx    common.Hash
}

// Deposits returns the Deposit events of blocks from..to (inclusive), in
// chain order.
func (k *Contract) Deposits(ctx context.Context, from, to uint64) ([]DepositEvent, error) {
	ev := BridgeABI.Events["Deposit"]
	logs, err := k.b.FilterLogs(ctx, ethereum.FilterQuery{
		FromBlock: new(big.Int).SetUint64(from), ToBlock: new(big.Int).SetUint64(to),
		Addresses: []common.Address{k.Address}, Topics: [][]common.Hash{{ev.ID}},
	})
	if err != nil {
		return nil, fmt.Errorf("bridge: deposit logs of blocks %d..%d: %w", from, to, err)
	}
	out := make([]DepositEvent, 0, len(logs))
	for _, l := range logs {
		if l.Removed {
			continue
		}
		d, err := parseDeposit(l)
		if err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, nil
}

func parseDeposit(l types.Log) (DepositEvent, error) {
	// Deposit(address indexed account, address indexed token, uint256
	// amount, uint256 indexed depositId)
	if len(l.Topics) != 4 || len(l.Data) != 32 {
		return DepositEvent{}, fmt.Errorf("bridge: malformed Deposit log in tx %s", l.TxHash.Hex())
	}
	units := new(big.Int).SetBytes(l.Data)
	id := new(big.Int).SetBytes(l.Topics[3][:])
	if !units.IsUint64() || !id.IsUint64() {
		return DepositEvent{}, fmt.Errorf("bridge: Deposit log in tx %s out of range", l.TxHash.Hex())
	}
	return DepositEvent{
		Account: common.BytesToAddress(l.Topics[1][:]), Token: common.BytesToAddress(l.Topics[2][:]),
		Units: units.Uint64(), ID: id.Uint64(), Block: l.BlockNumber, Tx: l.TxHash,
	}, nil
}
