#!/usr/bin/env bash
# scripts/train.sh passes its defaults before the user's options, so a repeated option must take its last
# value (and --skip, which repeats by design, all of them). Usage: train_options_test.sh TRAIN_CIFAR10 PYTHON
set -euo pipefail
train=$1
python=$2
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
"$python" "$(dirname "$0")/../tools/fake_cifar10.py" "$dir/data" 16 >/dev/null
"$train" --data "$dir/data" --width 4 --threads 1 --no-progress --epochs 5 --epochs 1 --batch-size 8 \
  --batch-size 16 --lr 1 --lr 0.05 --checkpoint-dir "$dir/first" --checkpoint-dir "$dir/last" >"$dir/out"
grep -q "^epoch 1: " "$dir/out" || { cat "$dir/out"; echo "no epoch 1"; exit 1; }
if grep -q "^epoch 2: " "$dir/out"; then echo "--epochs 5 --epochs 1 ran a second epoch"; exit 1; fi
grep -q "after 5 updates" "$dir/out" || { cat "$dir/out"; echo "--batch-size 16 (80 images: 5 updates) lost"; exit 1; }
test -f "$dir/last/metrics.csv" || { echo "the last --checkpoint-dir is not the one used"; exit 1; }
test ! -e "$dir/first" || { echo "the first --checkpoint-dir was used"; exit 1; }
echo "the last value of each repeated option won"
