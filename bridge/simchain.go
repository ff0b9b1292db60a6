package bridge

import (
	"context"
	"crypto/ecdsa"
	"fmt"
	"math/big"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/ethereum/go-ethereum/core"
	"github.com/ethereum/go-ethereum/core/types"
	"github.com/ethereum/go-ethereum/eth/ethconfig"
	"github.com/ethereum/go-ethereum/ethclient/simulated"
	"github.com/ethereum/go-ethereum/node"
	"github.com/ethereum/go-ethereum/params"

	"github.com/seqbook/seqbook/client/ethsig"
)

// SimChain is an in-process Ethereum chain (go-ethereum's simulated
// backend) under Prague rules, with the EIP-2537 precompiles, for tests
// and the demo. It mines a block as soon as a transaction waits (like a
// development node), and Advance mines empty blocks so that deposits gain
// confirmations.
type SimChain struct {
	backend *simulated.Backend
	// Client reaches the chain in-process.
	Client simulated.Client
	// RPC is the chain's JSON-RPC HTTP endpoint ("" unless asked for).
	RPC string

	mu   sync.Mutex // serializes Commit
	stop chan struct{}
	done chan struct{}
}

// SimConfig says how to make a SimChain.
type SimConfig struct {
	// ChainID is the chain id (the cluster's, so proofs verify there).
	ChainID uint64
	// Funded accounts get 10^24 wei each.
	Funded []common20
	// HTTP, when true, serves JSON-RPC on a free loopback port.
	HTTP bool
}

// common20 is an address; a named type keeps SimConfig readable.
type common20 = [20]byte

// autoMinePoll is how often the miner looks for waiting transactions.
const autoMinePoll = 10 * time.Millisecond

// PragueConfig returns a chain configuration with every fork up to Prague
// active from genesis and nothing after it.
func PragueConfig(chainID uint64) *params.ChainConfig {
	c := *params.AllDevChainProtocolChanges
	c.ChainID = new(big.Int).SetUint64(chainID)
	c.OsakaTime = nil
	c.BogotaTime = nil
	return &c
}

// NewSimChain starts a simulated chain; Close stops it.
func NewSimChain(cfg SimConfig) (*SimChain, error) {
	alloc := types.GenesisAlloc{}
	rich := new(big.Int).Exp(big.NewInt(10), big.NewInt(24), nil)
	for _, a := range cfg.Funded {
		alloc[a] = types.Account{Balance: rich}
	}
	var endpoint string
	opts := []func(*node.Config, *ethconfig.Config){func(_ *node.Config, ec *ethconfig.Config) {
		ec.Genesis.Config = PragueConfig(cfg.ChainID)
		ec.Genesis.Alloc = mergeAlloc(core.SystemContractAllocs(), alloc)
	}}
	if cfg.HTTP {
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		endpoint = "http://127.0.0.1:" + strconv.Itoa(port)
		opts = append(opts, func(nc *node.Config, _ *ethconfig.Config) {
			nc.HTTPHost, nc.HTTPPort = "127.0.0.1", port
			nc.HTTPModules = []string{"eth", "net", "web3"}
		})
	}
	b := simulated.NewBackend(alloc, opts...)
	s := &SimChain{backend: b, Client: b.Client(), RPC: endpoint, stop: make(chan struct{}), done: make(chan struct{})}
	id, err := s.Client.ChainID(context.Background())
	if err != nil || id.Uint64() != cfg.ChainID {
		b.Close()
		return nil, fmt.Errorf("bridge: simulated chain id %v, asked %d (%v)", id, cfg.ChainID, err)
	}
	go s.autoMine()
	return s, nil
}

func mergeAlloc(a, b types.GenesisAlloc) types.GenesisAlloc {
	out := types.GenesisAlloc{}
	for k, v := range a {
		out[k] = v
	}
	for k, v := range b {
		out[k] = v
	}
	return out
}

// autoMine commits a block whenever transactions wait in the pool.
func (s *SimChain) autoMine() {
	defer close(s.done)
	t := time.NewTicker(autoMinePoll)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			n, err := s.Client.PendingTransactionCount(context.Background())
			if err == nil && n > 0 {
				s.Advance(1)
			}
		}
	}
}

// Advance mines n blocks.
func (s *SimChain) Advance(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for range n {
		s.backend.Commit()
	}
}

// Close stops the chain.
func (s *SimChain) Close() error {
	close(s.stop)
	<-s.done
	return s.backend.Close()
}

// Fund is an account funded at genesis, for NewSimChain.
func Fund(key *ecdsa.PrivateKey) common20 { return ethsig.Address(key) }

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
