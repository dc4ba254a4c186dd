# tokenbroker: the two commands a newcomer needs are `make dev` and `make test`.
SHELL := /bin/bash
VERSION ?= 0.2.0
PLUGIN := vault-plugin-secrets-tokenbroker
BIN := bin
LDFLAGS := -X github.com/tokenbroker/vault-plugin-secrets-tokenbroker.Version=v$(VERSION)

.PHONY: build release vault fakeprovider dev test test-unit test-e2e test-rules fuzz bench bench-scale vet fmt clean
RELEASE_PLATFORMS := linux/amd64 linux/arm64 darwin/amd64 darwin/arm64

## build: the plugin binary in bin/ and its sha256 in bin/<plugin>.sha256
build:
	CGO_ENABLED=0 go build -trimpath -ldflags "$(LDFLAGS)" -o $(BIN)/$(PLUGIN) ./cmd/$(PLUGIN)
	cd $(BIN) && sha256sum $(PLUGIN) | cut -d' ' -f1 > $(PLUGIN).sha256

## release: cross-built binaries for every platform in dist/, with SHA256SUMS
release:
	rm -rf dist && mkdir -p dist
	for p in $(RELEASE_PLATFORMS); do \
		os=$${p%/*}; arch=$${p#*/}; \
		CGO_ENABLED=0 GOOS=$$os GOARCH=$$arch go build -trimpath -ldflags "$(LDFLAGS)" \
			-o dist/$(PLUGIN)_v$(VERSION)_$${os}_$${arch} ./cmd/$(PLUGIN) || exit 1; \
	done
	cd dist && sha256sum $(PLUGIN)_* > SHA256SUMS && cat SHA256SUMS

## vault: the pinned Vault server (cached in .cache/, rebuilt only when tools/vault/go.mod changes)
vault:
	bash scripts/build-vault.sh

## fakeprovider: the fake upstream used by tests and `make dev`
fakeprovider:
	CGO_ENABLED=0 go build -o $(BIN)/fakeprovider ./cmd/fakeprovider

## dev: a dev Vault with the plugin mounted at tokenbroker/ and a demo config; Ctrl-C cleans up
dev: build vault fakeprovider
	bash scripts/dev.sh

## test: vet, alert-rule tests, unit tests with -race, a short fuzz run, and the end-to-end suite against a real Vault
test: vet test-rules test-unit fuzz test-e2e

## test-rules: check the Prometheus alert rules and run their unit tests (promtool, from Debian's prometheus package)
test-rules:
	@if ! command -v promtool >/dev/null; then \
		if [ -n "$$E2E_REQUIRED" ]; then echo "promtool is required (apt-get install prometheus)"; exit 1; fi; \
		echo "test-rules: skipped, promtool is not installed (apt-get install prometheus)"; exit 0; \
	fi; \
	promtool check rules deploy/prometheus/tokenbroker.rules.yml && \
	cd deploy/prometheus && promtool test rules tokenbroker.rules_test.yml

test-unit:
	go test -race -count=1 ./...
	# The fault-injection trials again without -race, at full N (FAULT lines are the figures).
	set -o pipefail; go test -count=1 -run Fault -v . | grep -E '^(=== RUN|--- |\s+\S*fault_test.go.*FAULT|ok|FAIL|PASS)'

test-e2e: build vault fakeprovider
	go test -tags e2e -count=1 -parallel 4 -timeout 30m ./e2e/...

fuzz:
	bash scripts/fuzz.sh 5s

vet:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt needed"; exit 1; }
	go vet ./...
	go vet -tags e2e ./e2e/...

fmt:
	gofmt -w $$(git ls-files '*.go')

bench: build vault
	bash bench/run.sh

## bench-scale: many chains in one mount on a single-node raft Vault (bench/scale.sh); replaces the Scale section of bench/results.md.
## A quick run: make bench-scale SCALE_ARGS="-names 5000 -duration 2m -lifetime 1m"
bench-scale: build vault
	VERSION=$(VERSION) bash bench/scale.sh $(SCALE_ARGS)

clean:
	rm -rf $(BIN) .cache
