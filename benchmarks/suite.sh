#!/usr/bin/env bash
# The benchmark runs docs/benchmarks.md reports, one after the other, on the embedded
# model with the cache off (naig bench never uses it). Run it on a quiet machine: every
# figure of time depends on it. Reports go to benchmarks/results/ (not committed).
#   bash benchmarks/suite.sh            # everything (several hours on 2 cores)
#   bash benchmarks/suite.sh builtin    # one part: builtin, retail, envs, shape
set -euo pipefail
cd "$(dirname "$0")/.."
NAIG=.venv/bin/naig
OUT=benchmarks/results
SMALL=(--subtasks 2-2 --steps 1-2 --refine-steps 2 --seed 1)
mkdir -p "$OUT"
part=${1:-all}

if [[ $part == all || $part == builtin ]]; then  # NAIG vs MAS, simulated tools
  $NAIG bench -n 8 "${SMALL[@]}" -o "$OUT/builtin"
fi
if [[ $part == all || $part == retail ]]; then  # NAIG vs MAS, an executing environment
  $NAIG bench -t tau2:retail -n 8 "${SMALL[@]}" -o "$OUT/retail"
fi
if [[ $part == all || $part == envs ]]; then  # NAIG's kept rate on the other environments
  for spec in tau2:airline bfcl:GorillaFileSystem bfcl:TwitterAPI; do
    $NAIG bench -t "$spec" --method naig -n 4 "${SMALL[@]}" -o "$OUT/${spec//:/-}"
  done
fi
if [[ $part == all || $part == shape ]]; then  # the paper's default sizes: dialogue shape
  $NAIG bench --method naig -n 2 --seed 1 -o "$OUT/default-size"
fi
