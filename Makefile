# dohost — the two commands: `make serve` and `make test`.
#
# Everything is built from this repository on a fresh machine: the wasm32-wasip2
# target is added with rustup, the host in release, the guest components with the
# small `guest` profile into target/wasm32-wasip2/guest/.

CARGO  ?= cargo
GUESTS := -p counter -p tenant-db -p chat -p batcher -p leaderboard-player -p leaderboard-board \
          -p hostile -p types-fixture
WASM_TARGET := wasm32-wasip2

.PHONY: all setup build build-host build-guests build-polyglot serve serve-chat serve-cf test lint bench bench-compare torture soak fuzz clean

all: build

setup:
	@rustup target list --installed 2>/dev/null | grep -qx $(WASM_TARGET) || rustup target add $(WASM_TARGET)

build-host:
	$(CARGO) build --release --locked
	$(CARGO) build --release --locked -p dohost-failpoints

build-guests: setup
	$(CARGO) build --locked --profile guest --target $(WASM_TARGET) $(GUESTS)

## JavaScript and Python classes (installs the pinned tools into node_modules/ and .venv/).
build-polyglot:
	scripts/build-polyglot.sh

build: build-host build-guests build-polyglot

## Start the host on the bundled examples (127.0.0.1:8787, data in .dohost/).
serve: build
	./target/release/dohost serve --config dohost.toml

## The chat app (examples/js/chat-app: an entry, a ChatRoom and a RateLimiter) on 127.0.0.1:8788.
serve-chat: build
	./target/release/dohost serve --config examples/js/chat-app/dohost.toml

## A Cloudflare-style TypeScript project (examples/js/cf-hello), built by `dohost build`, on 127.0.0.1:8789.
serve-cf: build
	./target/release/dohost build --project examples/js/cf-hello
	./target/release/dohost serve --config examples/js/cf-hello/.dohost/dohost.toml --listen 127.0.0.1:8789

## Build everything and run every test (unit and black-box).
test: build
	$(CARGO) fmt --all -- --check
	./target/release/dohost check --config tests/polyglot.toml
	$(CARGO) test --release --locked --no-fail-fast -p dohost -p dohost-tests
	tests/sdk-probes.sh target/release/dohost

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --release --locked --all-targets -p dohost -p dohost-tests -- -D warnings
	$(CARGO) clippy --locked --profile guest --target $(WASM_TARGET) $(GUESTS) -p dohost-sdk -- -D warnings

## Print performance numbers (not a test).
bench: build
	$(CARGO) run --release --locked -p dohost-bench

## dohost against workerd (installed from npm into bench/workerd/node_modules), same load, one table.
bench-compare: build
	cd bench/workerd && { [ -f node_modules/.dohost-installed ] && [ node_modules/.dohost-installed -nt package-lock.json ] || { npm ci --no-audit --no-fund --loglevel=error && touch node_modules/.dohost-installed; }; }
	$(CARGO) run --release --locked -p dohost-bench -- compare

## 10 minutes of mixed load; prints throughput, errors, p99 and RSS over time.
soak: build
	SOAK_SECS=$${SOAK_SECS:-600} $(CARGO) run --release --locked -p dohost-bench -- soak

## kill -9 rounds against an acknowledged-write ledger (prints rounds, acknowledged, lost).
torture: build
	TORTURE_ROUNDS=$${TORTURE_ROUNDS:-120} $(CARGO) test --release --locked -p dohost-tests --test crash -- --nocapture

## Fuzz routing, manifest parsing and the value codec (nightly + cargo-fuzz, installed if missing).
FUZZ_SECS ?= 60
fuzz:
	@command -v cargo-fuzz >/dev/null || $(CARGO) install cargo-fuzz --locked
	cd fuzz && for t in route manifest value_codec; do \
	  $(CARGO) +nightly fuzz run $$t -- -max_total_time=$(FUZZ_SECS) || exit 1; done

clean:
	$(CARGO) clean
	rm -rf .dohost
