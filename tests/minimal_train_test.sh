#!/usr/bin/env bash
# examples/minimal_train on generated Fashion-MNIST-format files (3 batches an epoch, 9 updates): stopped at
# update 2 and run again, it resumes there and ends with the same final checkpoint and metrics logs, byte for
# byte, as a run that never stopped.
# Usage: tests/minimal_train_test.sh MINIMAL_TRAIN PYTHON
set -euo pipefail
train=${1:?usage: minimal_train_test.sh MINIMAL_TRAIN PYTHON}
python=${2:?usage: minimal_train_test.sh MINIMAL_TRAIN PYTHON}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$python" "$(dirname "$0")/../tools/fake_mnist.py" "$work/data" 384 32

"$train" "$work/data" "$work/whole"
"$train" "$work/data" "$work/pieces" 2 | tee "$work/first.log"
grep -q "^stopped: .*/checkpoint-0000000002.safetensors$" "$work/first.log"
"$train" "$work/data" "$work/pieces" | tee "$work/second.log"
grep -q "^resumed from .*/checkpoint-0000000002.safetensors at update 2$" "$work/second.log"
for file in checkpoint-0000000009.safetensors metrics.csv evaluations.csv; do
  cmp "$work/whole/$file" "$work/pieces/$file"
done
[ "$(wc -l <"$work/whole/evaluations.csv")" -eq 4 ] || { echo "evaluations.csv: not one row per epoch"; exit 1; }
echo "minimal_train: resumed run equals the uninterrupted one"
