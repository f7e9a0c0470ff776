# The two commands of the README:
#   make smoke   run plans/smoke.yaml against the reference stack, reports under reports/
#   make test    run the test suite
# Both install what is missing first (scripts/setup.sh).
.PHONY: setup smoke test build bench

setup:
	bash scripts/setup.sh

build:
	cargo build --release --workspace

smoke: setup build
	./target/release/loadgate run plans/smoke.yaml

test: setup
	cargo build --workspace --bins
	LOADGATE_REQUIRE_GATEWAY=1 cargo nextest run --workspace --no-fail-fast

bench: setup
	cargo build --profile perf -p loadgate
	bash bench/bench.sh
