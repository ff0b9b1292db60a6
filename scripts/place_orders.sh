#!/usr/bin/env bash
# Scripted order placement against a running local network (the steps of
# `seqbook demo`, one CLI command at a time, so each request and answer is
# visible). Start the network first, in another terminal:
#
#   scripts/localnet.sh                    (data in ./localnet, DESIGN ports)
#   scripts/place_orders.sh [DIR]          (DIR defaults to ./localnet)
#
# user1 (1000 USDT at genesis) buys 1 ETH at 200 USDT through replica1,
# user2 (5 ETH) sells 1 ETH at 200 USDT through replica2; both wait for
# finality. Then replica3 is asked for user1's balance, the aggregator for a
# quorum proof of it, and the proof is verified offline against the cluster
# file. The keys are the tutorial's published test keys: local use only.
#
# Addresses default to DESIGN §7's ports; override with REPLICA1, REPLICA2,
# REPLICA3 and AGGREGATOR (host:port) for a network on other ports.
set -euo pipefail
cd "$(dirname "$0")/.."

DIR="${1:-localnet}"
CLUSTER="$DIR/cluster.json"
REPLICA1="${REPLICA1:-127.0.0.1:5001}"
REPLICA2="${REPLICA2:-127.0.0.1:5002}"
REPLICA3="${REPLICA3:-127.0.0.1:5003}"
AGGREGATOR="${AGGREGATOR:-127.0.0.1:8001}"
# The tutorial's user1 and user2 (zellular-xyz/zsequencer examples/orderbook).
USER1_KEY=0x4b7f4de058ab4d3629f438c1728ac77bea7f4ab0099218be77242f8ba099cca7
USER2_KEY=0x28a3947aa36917ca22f56765c67bedc2fdbbd2daf73f8a2cdb1c0dd252cefc3c

if [ ! -f "$CLUSTER" ]; then
	echo "no $CLUSTER: start the network first (scripts/localnet.sh), or pass its folder" >&2
	exit 1
fi
mkdir -p bin
go build -o bin/seqbook ./cmd/seqbook
SB=bin/seqbook
proof="$(mktemp)"
trap 'rm -f "$proof"' EXIT

echo "== user1 buys 1 ETH at 200 USDT through replica1 ($REPLICA1), waiting for finality"
SEQBOOK_KEY=$USER1_KEY $SB order --replica "$REPLICA1" --market ETH/USDT --side buy --quantity 1 --price 200 --wait

echo
echo "== user2 sells 1 ETH at 200 USDT through replica2 ($REPLICA2), waiting for finality"
SEQBOOK_KEY=$USER2_KEY $SB order --replica "$REPLICA2" --market ETH/USDT --side sell --quantity 1 --price 200 --wait

echo
echo "== replica3 ($REPLICA3), which received neither order, signs user1's ETH balance"
SEQBOOK_KEY=$USER1_KEY $SB balance --replica "$REPLICA3" --token ETH --cluster "$CLUSTER"

echo
echo "== the aggregator ($AGGREGATOR) proves user1's ETH balance with a replica quorum"
SEQBOOK_KEY=$USER1_KEY $SB balance --aggregator "$AGGREGATOR" --token ETH > "$proof"
cat "$proof"

echo
echo "== the proof, verified offline against $CLUSTER"
$SB verify --cluster "$CLUSTER" "$proof"
