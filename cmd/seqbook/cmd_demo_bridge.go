package main

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/seqbook/seqbook/bridge"
	"github.com/seqbook/seqbook/client/ethsig"
	"github.com/seqbook/seqbook/internal/bridgeloop"
	"github.com/seqbook/seqbook/internal/localnet"
)

// demoBridge runs the bridge loop (internal/bridgeloop) against the
// network and an in-process simulated chain.
func demoBridge(ctx context.Context, n *localnet.Network, step func(string, ...any)) error {
	bridgeKey, err := ethsig.LoadKey(n.BridgeKey)
	if err != nil {
		return err
	}
	deployer, alice, bob, err := bridgeloop.Keys()
	if err != nil {
		return err
	}
	chain, err := bridge.NewSimChain(bridge.SimConfig{ChainID: n.Cluster.ChainID,
		Funded: [][20]byte{bridge.Fund(deployer), bridge.Fund(alice), bridge.Fund(bob)}})
	if err != nil {
		return err
	}
	defer chain.Close()
	step("simulated chain %d started (Prague rules: EIP-2537 BLS12-381 precompiles); bridge key %s", n.Cluster.ChainID, n.Cluster.BridgeAddr.Hex())
	logf, err := os.Create(filepath.Join(n.Dir, "logs", "relay.log"))
	if err != nil {
		return err
	}
	defer logf.Close()
	_, err = bridgeloop.Run(ctx, bridgeloop.Env{
		Chain: chain, Cluster: n.Cluster, ReplicaURLs: n.ReplicaURLs(), Aggregator: n.AggregatorURL(),
		BridgeKey: bridgeKey, Deployer: deployer, Alice: alice, Bob: bob, Dir: n.Dir,
		Logger: slog.New(slog.NewTextHandler(logf, nil)), Step: step,
	})
	return err
}
