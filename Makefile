# Knooppunt. `make demo` starts the demo, `make test` runs every test. Both need only Go and gcc.

GO       ?= go
CACHE    ?= $(HOME)/.cache/knooppunt
BIN      := $(CACHE)/bin
SPIRE    := $(CACHE)/spire-v1.13.3
PROTOS   := knooppunt/v1/record.proto knooppunt/v1/policy.proto knooppunt/v1/federation.proto knooppunt/v1/peer.proto knooppunt/v1/command.proto
RACE_PKGS := ./node/... ./federation/... ./policy/...
export CGO_ENABLED := 1

.PHONY: build test test-short demo proto proto-check lint fmt-check vet bench spire clean

build: ## build the knooppunt binary into $(BIN)
	$(GO) build -o $(BIN)/knooppunt ./cmd/knooppunt

test: export KNOOPPUNT_SPIRE_DIR := $(SPIRE)
test: build spire ## every test: unit, API, crash, fuzz smoke, SPIRE integration
	$(GO) test -race -count=1 -timeout 15m ./...
	# A count, not a duration: Go 1.26's fuzz coordinator can report "context deadline exceeded"
	# as a failure when a duration runs out (golang/go#75804, fixed in Go 1.27). 20000 runs take
	# about 5-10 s here.
	$(GO) test -count=1 -run '^$$' -fuzz FuzzCheckPut -fuzztime 20000x ./node/record

test-short: ## the quick tests only
	$(GO) test -short -count=1 ./...

demo: build ## start the demo and list what it loaded
	$(BIN)/knooppunt demo

proto: ## regenerate the Go code from the .proto files, with the pinned generators
	$(GO) build -o $(BIN)/ google.golang.org/protobuf/cmd/protoc-gen-go google.golang.org/grpc/cmd/protoc-gen-go-grpc ./proto/internal/protogen
	$(BIN)/protogen -I proto -plugin-dir $(BIN) -out proto $(PROTOS)

proto-check: proto ## fail when the committed generated code differs from what the .proto files give
	@git diff --exit-code -- proto/ || { echo "proto-check: generated code is stale: run make proto and commit" >&2; exit 1; }
	@test -z "$$(git status --porcelain -- proto/)" || { git status --porcelain -- proto/; echo "proto-check: untracked generated files" >&2; exit 1; }

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go')); test -z "$$out" || { echo "gofmt would change:"; echo "$$out"; exit 1; }

vet:
	$(GO) vet ./...

lint: fmt-check vet ## gofmt and go vet

bench: ## the write-path benchmark against raw SQLite; see docs/performance.md
	$(GO) test -run '^$$' -bench . -benchtime 3x -timeout 30m ./node/bench/...

spire: ## build spire-server and spire-agent v1.13.3 into the cache (about 10 minutes the first time)
	@test -x $(SPIRE)/spire-server -a -x $(SPIRE)/spire-agent || \
		(cd deploy/spire/build && $(GO) build -o $(SPIRE)/ github.com/spiffe/spire/cmd/spire-server github.com/spiffe/spire/cmd/spire-agent)

clean:
	rm -rf $(BIN)
