#!/usr/bin/env bash
# Run a local seqbook network (4 sequencer nodes, 3 replicas, the aggregator)
# on loopback until Ctrl-C. Builds bin/seqbook first. Extra arguments go to
# `seqbook localnet` (e.g. --dir /tmp/net --genesis extra.json).
#
#   scripts/localnet.sh                 # data in ./localnet, DESIGN's ports
#   scripts/localnet.sh --dir /tmp/n2   # another network (stop the first one)
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p bin
go build -o bin/seqbook ./cmd/seqbook
has_dir=0
for a in "$@"; do
	case "$a" in --dir|--dir=*|-dir|-dir=*) has_dir=1 ;; esac
done
if [ "$has_dir" = 0 ]; then
	set -- --dir localnet "$@"
fi
exec bin/seqbook localnet "$@"
