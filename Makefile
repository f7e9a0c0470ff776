# The two commands of the README:
#   make predeploy   run plans/predeploy.yaml (the deploy gate) against the reference stack,
#                    reports under reports/
#   make test        run the test suite
# make smoke runs the 20-second plans/smoke.yaml the same way.
# Both install what is missing first (scripts/setup.sh).
.PHONY: setup predeploy smoke test build bench

setup:
	bash scripts/setup.sh

build:
	cargo build --release --workspace

predeploy: setup build
	./target/release/loadgate run plans/predeploy.yaml

smoke: setup build
	./target/release/loadgate run plans/smoke.yaml

test: setup
	cargo build --workspace --bins
	LOADGATE_REQUIRE_GATEWAY=1 cargo nextest run --workspace --no-fail-fast

bench: setup
	cargo build --profile perf -p loadgate
	bash bench/bench.sh
