#!/usr/bin/env bash
# The quick start's main job: installs what is missing, builds the training example in Release with
# -march=native, finds data, and trains ResNet18.
#   - CIFAR-10 when data/cifar-10-batches-bin exists (tools/get_cifar10.sh downloads it), else Fashion-MNIST
#     from Debian's dataset-fashion-mnist package, and says so.
#   - Default: a quick run (10,000 training images, 1 epoch at peak lr 0.05 without augmentation, which only
#     pays over several epochs; tested on 2,000 images): minutes on a laptop.
#   - --full: the whole recipe (all training images, 30 epochs, one-cycle, full test set).
# Any other arguments go to train_cifar10 (see --help); later ones override the defaults.
set -euo pipefail
cd "$(dirname "$0")/.."

defaults=(--train-subset 10000 --test-subset 2000 --epochs 1 --lr 0.05 --no-augment)
if [ "${1:-}" = "--full" ]; then
  shift
  defaults=(--epochs 30)
fi

scripts/install_deps.sh dataset-fashion-mnist gnuplot-nox
build_dir=${BUILD_DIR:-build-release}
cmake -S . -B "$build_dir" -DCMAKE_BUILD_TYPE=Release -DRESNET_NATIVE=ON -DRESNET_BUILD_TESTS=OFF \
  -DRESNET_BUILD_BENCHMARKS=OFF >/dev/null
cmake --build "$build_dir" -j "$(nproc)" --target train_cifar10

if [ -f data/cifar-10-batches-bin/test_batch.bin ]; then
  dataset=(--dataset cifar10 --data data/cifar-10-batches-bin --checkpoint-dir runs/cifar10)
else
  echo "CIFAR-10 is not in data/cifar-10-batches-bin (bash tools/get_cifar10.sh downloads it, 163 MB)."
  echo "Training on Fashion-MNIST from Debian's dataset-fashion-mnist package instead."
  dataset=(--dataset fashion-mnist --checkpoint-dir runs/fashion-mnist)
fi
exec "$build_dir/examples/train_cifar10" "${dataset[@]}" "${defaults[@]}" --threads "$(nproc)" "$@"
