# argomap developer commands. `make test` is what CI runs (through .ci/run).
SHELL := /bin/bash
CARGO ?= cargo

.PHONY: test lint fmt-check clippy unit crds build bench

## Everything CI checks: formatting, lints, then every test.
test: lint unit

lint: fmt-check clippy

fmt-check:
	$(CARGO) fmt --all -- --check

clippy:
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings

## Unit, contract, client, mocked-controller and CLI tests (no cluster needed).
unit:
	$(CARGO) test --workspace --locked

## Regenerates crds/ from the Rust types (a test fails when they drift).
crds:
	$(CARGO) run --quiet --locked -- crds --dir crds

build:
	$(CARGO) build --release --locked

## Decode + attribution throughput (figures in BENCHMARKS.md).
bench:
	$(CARGO) bench --bench attribution
