# seqbook — build, test and run the local network.
# `make demo` is the main job; `make test` is what CI runs.

GO        ?= go
BIN       := bin
TUTORIALS := step1-centralized step2-signatures step3-replicated step4-verifiable
# Packages with goroutines: these also run under the race detector.
RACE_PKGS := ./sequencer/... ./replica/... ./aggregator/... ./client/... ./internal/localnet/... ./tutorial/... ./bridge/
SEEDS     ?= 5000
# Seeds each mutation canary may take (make canaries stops at the first
# that catches it; every canary is caught within its first 12 seeds today).
CANARY_SEEDS ?= 50

.PHONY: all build test test-short test-wan race lint fmt vet demo localnet bench sim canaries fuzz clean help bridge-check bridge-build

all: build

help:
	@echo "make build      binaries into bin/ (seqbook and the four tutorial steps)"
	@echo "make demo       build, run a local network, place scripted orders, verify a balance proof"
	@echo "make test       lint, unit + simulator + fuzz-seed + integration tests, race detector"
	@echo "make test-short the fast tests only (no real processes)"
	@echo "make test-wan   the multi-host test: one network namespace per process, 25 ms links (root; skips otherwise)"
	@echo "make bench      go benchmarks + 'seqbook bench' targets"
	@echo "make sim        the consensus simulator over SEEDS=$(SEEDS) seeds"
	@echo "make canaries   every mutation of 'seqbook sim --list-mutations' must be caught"
	@echo "make localnet   run a local network in ./localnet until Ctrl-C"
	@echo "make lint       gofmt check + go vet + go.mod tidy check"
	@echo "make bridge-build  recompile bridge/contracts with the pinned solc (needs npm ci in bridge/)"

build:
	@mkdir -p $(BIN)
	$(GO) build -o $(BIN)/seqbook ./cmd/seqbook
	@for t in $(TUTORIALS); do \
		if [ -d tutorial/$$t ]; then echo "$(GO) build -o $(BIN)/$$t ./tutorial/$$t"; $(GO) build -o $(BIN)/$$t ./tutorial/$$t || exit 1; fi; \
	done

fmt:
	gofmt -w $$(git ls-files '*.go')

lint: vet
	@out=$$(gofmt -l $$(git ls-files '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi
	@$(GO) mod tidy -diff >/dev/null || { echo "go.mod/go.sum are not tidy: run 'go mod tidy'"; $(GO) mod tidy -diff; exit 1; }
	@echo "lint: ok"

vet:
	$(GO) vet ./...

# The bridge's committed ABI and bytecode must be what the pinned solc
# makes of bridge/contracts (npm ci in bridge/ installs it).
bridge-check:
	@test -d bridge/node_modules/solc || { echo "bridge-check: run 'npm ci' in bridge/ first (pinned solc)"; exit 1; }
	node bridge/build.js --check

bridge-build:
	node bridge/build.js

test: lint bridge-check build
	$(GO) test -count=1 -timeout 20m ./...
	$(GO) test -count=1 -race -short -timeout 20m $(RACE_PKGS)
	$(MAKE) canaries
	$(MAKE) test-wan

# Every mutation the binary lists must be caught breaking safety (a name
# the simulator cannot run is reported NOT caught and fails the target).
canaries: build
	@names=$$($(BIN)/seqbook sim --list-mutations) || exit 1; \
	test -n "$$names" || { echo "canaries: no mutation listed"; exit 1; }; \
	failed=""; \
	for m in $$names; do \
		out=$$($(BIN)/seqbook sim --mutation $$m --seeds $(CANARY_SEEDS) --until-caught --workers 2 --real-bls-every 0 2>/dev/null); \
		code=$$?; \
		echo "$$m: $$(echo "$$out" | tail -n 2 | head -n 1)"; \
		last=$$(echo "$$out" | tail -n 1); \
		if [ $$code -ne 0 ] || [ "$$last" != "caught" ]; then echo "$$m: $$last"; failed="$$failed $$m"; fi; \
	done; \
	if [ -n "$$failed" ]; then echo "canaries NOT caught:$$failed"; exit 1; fi; \
	echo "canaries: all caught"

# The multi-host test (docs/operations.md, "Measured across namespaces"):
# needs root and network namespaces, and skips with the reason otherwise.
test-wan:
	SEQBOOK_WAN=1 $(GO) test -count=1 -v -timeout 10m -run 'TestSwitch|TestWAN' ./internal/wan/

test-short:
	$(GO) test -short ./...

race:
	$(GO) test -race -short $(RACE_PKGS)

demo: build
	$(BIN)/seqbook demo

localnet: build
	$(BIN)/seqbook localnet --dir localnet

bench: build
	$(GO) test -run '^$$' -bench . -benchtime 1x ./internal/matcher/ ./replica/...
	$(BIN)/seqbook bench matcher
	$(BIN)/seqbook bench sequencer
	$(BIN)/seqbook bench proofs
	$(BIN)/seqbook bench

sim: build
	$(BIN)/seqbook sim --seeds $(SEEDS)

clean:
	rm -rf $(BIN)
