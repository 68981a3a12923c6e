#!/bin/sh
# Builds draftwatch and the sweep benchmark in release mode and runs the benchmark.
#
#   scripts/bench-sweep.sh [DRAFTS...]     # default: 10000
#
# Needs Linux and curl. Everything runs on 127.0.0.1.
set -eu
cd "$(dirname "$0")/.."
cargo build --release --bin draftwatch --example sweep_bench
exec target/release/examples/sweep_bench "$@"
