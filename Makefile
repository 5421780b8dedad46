# Knooppunt. `make demo` starts the demo, `make test` runs every test. Both need only Go and gcc.

GO       ?= go
CACHE    ?= $(HOME)/.cache/knooppunt
BIN      := $(CACHE)/bin
SPIRE    := $(CACHE)/spire-v1.13.3
PROTOS   := knooppunt/v1/record.proto knooppunt/v1/policy.proto knooppunt/v1/federation.proto knooppunt/v1/peer.proto knooppunt/v1/command.proto knooppunt/v1/rule.proto knooppunt/v1/webhook.proto knooppunt/v1/attachment.proto
RACE_PKGS := ./node/... ./federation/... ./policy/...
export CGO_ENABLED := 1
# The full-text index needs SQLite's FTS5: every build and test runs with go-sqlite3's tag for it.
export GOFLAGS += -tags=sqlite_fts5

.PHONY: build test test-short demo proto proto-check lint fmt-check vet bench spire clean ui-assets ui-screenshots browser xmllint

build: ## build the knooppunt binary into $(BIN)
	$(GO) build -o $(BIN)/knooppunt ./cmd/knooppunt

test: export KNOOPPUNT_SPIRE_DIR := $(SPIRE)
test: build spire browser xmllint ## every test: unit, API, crash, fuzz smoke, SPIRE integration, browser
	$(GO) test -race -count=1 -timeout 15m ./...
	# A count, not a duration: Go 1.26's fuzz coordinator can report "context deadline exceeded"
	# as a failure when a duration runs out (golang/go#75804, fixed in Go 1.27). 20000 runs take
	# about 5-10 s here.
	$(GO) test -count=1 -run '^$$' -fuzz FuzzCheckPut -fuzztime 20000x ./node/record
	$(GO) test -count=1 -run '^$$' -fuzz FuzzParse -fuzztime 20000x ./node/cap

test-short: ## the quick tests only
	$(GO) test -short -count=1 ./...

demo: build ## start the demo and list what it loaded
	$(BIN)/knooppunt demo

proto: ## regenerate the Go code from the .proto files, with the pinned generators
	$(GO) build -o $(BIN)/ google.golang.org/protobuf/cmd/protoc-gen-go google.golang.org/grpc/cmd/protoc-gen-go-grpc \
		github.com/grpc-ecosystem/grpc-gateway/v2/protoc-gen-grpc-gateway github.com/grpc-ecosystem/grpc-gateway/v2/protoc-gen-openapiv2 ./proto/internal/protogen
	$(BIN)/protogen -I proto -plugin-dir $(BIN) -out proto $(PROTOS)

proto-check: proto ## fail when the committed generated code differs from what the .proto files give
	@git diff --exit-code -- proto/ || { echo "proto-check: generated code is stale: run make proto and commit" >&2; exit 1; }
	@test -z "$$(git status --porcelain -- proto/)" || { git status --porcelain -- proto/; echo "proto-check: untracked generated files" >&2; exit 1; }

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go')); test -z "$$out" || { echo "gofmt would change:"; echo "$$out"; exit 1; }

vet:
	$(GO) vet ./...

lint: fmt-check vet ## gofmt and go vet

bench: ## every benchmark the table of docs/performance.md names, printing its rows (SHORT=1: minutes, small data; ONLY=text: some rows)
	$(GO) run ./node/bench/table $(if $(SHORT),-short) $(if $(ONLY),-only '$(ONLY)')

spire: ## build spire-server and spire-agent v1.13.3 into the cache (about 10 minutes the first time)
	@test -x $(SPIRE)/spire-server -a -x $(SPIRE)/spire-agent || \
		(cd deploy/spire/build && $(GO) build -o $(SPIRE)/ github.com/spiffe/spire/cmd/spire-server github.com/spiffe/spire/cmd/spire-agent)

browser: ## chromium for the web interface's browser tests: apt-get installs it when run as root
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || test -n "$$KNOOPPUNT_CHROMIUM" || { \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
			echo "installing chromium for the browser tests"; \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
		else \
			echo "the browser tests need chromium: sudo apt-get install -y chromium" >&2; exit 1; \
		fi; }

xmllint: ## xmllint (libxml2-utils) checks every CAP 1.2 document the tests write: apt-get installs it when run as root
	@command -v xmllint >/dev/null 2>&1 || { \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
			echo "installing libxml2-utils (xmllint) for the CAP tests"; \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libxml2-utils >/dev/null; \
		else \
			echo "the CAP tests need xmllint: sudo apt-get install -y libxml2-utils" >&2; exit 1; \
		fi; }

ui-screenshots: browser ## the screenshots of docs/ui.md, taken by the browser test
	KNOOPPUNT_UI_SCREENSHOTS=$(CURDIR)/docs/ui $(GO) test -count=1 -run '^TestBrowser' ./node/ui

# The web interface's vendored NL Design System CSS, and axe-core for its accessibility tests
# only, pinned here. Building and testing use the committed copies; only this target needs npm.
UI_VENDOR   := node/ui/assets/vendor
UI_TESTDATA := node/ui/testdata
UI_CSS_VERSION := 9.0.4
UI_AXE_VERSION := 4.14.1
UI_CSS      := @utrecht/component-library-css@$(UI_CSS_VERSION)
UI_AXE      := axe-core@$(UI_AXE_VERSION)

ui-assets: ## refresh the web interface's vendored CSS, and axe-core for its tests (needs npm)
	@command -v npm >/dev/null || { echo "ui-assets: needs npm: apt-get install -y npm" >&2; exit 1; }
	@tmp=$$(mktemp -d) && trap 'rm -rf "$$tmp"' EXIT && \
	(cd "$$tmp" && npm pack --silent $(UI_CSS) $(UI_AXE) >/dev/null) && \
	mkdir -p "$$tmp/css" "$$tmp/axe" && \
	tar -xzf "$$tmp"/utrecht-component-library-css-*.tgz -C "$$tmp/css" && tar -xzf "$$tmp"/axe-core-*.tgz -C "$$tmp/axe" && \
	rm -rf $(UI_VENDOR) $(UI_TESTDATA)/axe-core && \
	mkdir -p $(UI_VENDOR)/utrecht-component-library-css $(UI_TESTDATA)/axe-core && \
	cp "$$tmp/css/package/dist/index.css" "$$tmp/css/package/LICENSE.md" $(UI_VENDOR)/utrecht-component-library-css/ && \
	cp "$$tmp/axe/package/axe.min.js" "$$tmp/axe/package/LICENSE" "$$tmp/axe/package/LICENSE-3RD-PARTY.txt" $(UI_TESTDATA)/axe-core/ && \
	{ echo "# Vendored by make ui-assets; do not edit. package version licence"; \
	  echo "@utrecht/component-library-css $(UI_CSS_VERSION) EUPL-1.2"; } > $(UI_VENDOR)/VERSIONS && \
	{ echo "# Vendored by make ui-assets for the accessibility tests only; not in the binary. package version licence"; \
	  echo "axe-core $(UI_AXE_VERSION) MPL-2.0"; } > $(UI_TESTDATA)/axe-core/VERSIONS && \
	echo "ui-assets: refreshed $(UI_VENDOR) ($(UI_CSS)) and $(UI_TESTDATA)/axe-core ($(UI_AXE))"

clean:
	rm -rf $(BIN)
