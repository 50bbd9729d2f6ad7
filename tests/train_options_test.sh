#!/usr/bin/env bash
# scripts/train.sh passes its defaults before the user's options, so a repeated option must take its last
# value (and --skip, which repeats by design, all of them); a bad --arch is refused with the valid names.
# Usage: train_options_test.sh TRAIN_CIFAR10 PYTHON
set -euo pipefail
train=$1
python=$2
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
"$python" "$(dirname "$0")/../tools/fake_cifar10.py" "$dir/data" 16 >/dev/null
"$train" --data "$dir/data" --arch resnet50 --arch resnet18 --width 4 --threads 1 --no-progress --epochs 5 --epochs 1 --batch-size 8 \
  --batch-size 16 --lr 1 --lr 0.05 --checkpoint-dir "$dir/first" --checkpoint-dir "$dir/last" >"$dir/out"
grep -q "^Model: resnet18, " "$dir/out" || { cat "$dir/out"; echo "--arch resnet50 --arch resnet18 lost"; exit 1; }
grep -q "^epoch 1: " "$dir/out" || { cat "$dir/out"; echo "no epoch 1"; exit 1; }
if grep -q "^epoch 2: " "$dir/out"; then echo "--epochs 5 --epochs 1 ran a second epoch"; exit 1; fi
grep -q "after 5 updates" "$dir/out" || { cat "$dir/out"; echo "--batch-size 16 (80 images: 5 updates) lost"; exit 1; }
test -f "$dir/last/metrics.csv" || { echo "the last --checkpoint-dir is not the one used"; exit 1; }
test ! -e "$dir/first" || { echo "the first --checkpoint-dir was used"; exit 1; }
echo "the last value of each repeated option won"
# A bad --arch is refused before any data is read, with the valid names.
if "$train" --arch resnet19 --data "$dir/none" >"$dir/bad" 2>&1; then echo "--arch resnet19 was accepted"; exit 1; fi
grep -q "unknown --arch 'resnet19': the architectures are resnet18, resnet34, .*wrn-D-K" "$dir/bad" ||
  { cat "$dir/bad"; echo "--arch resnet19: no list of the valid names"; exit 1; }
echo "a bad --arch is refused with the valid names"
