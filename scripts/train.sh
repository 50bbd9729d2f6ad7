#!/usr/bin/env bash
# The quick start's main job: installs what is missing, builds the training example in Release with
# -march=native, finds data, and trains ResNet18, evaluating on the whole test set.
#   - CIFAR-10 when data/cifar-10-batches-bin exists (tools/get_cifar10.sh downloads it), else Fashion-MNIST
#     from Debian's dataset-fashion-mnist package, and says so.
#   - Default: the quick recipe, chosen by measurement for a 2-core machine (benchmarks/README.md): ResNet18 at
#     width 16 (channels of the first stage), 3 epochs of one-cycle, flip-only augmentation. On Fashion-MNIST it
#     reaches 90% in under 5 minutes there.
#   - --full: the long recipe. Fashion-MNIST: width 16, 15 epochs, crop and flip (93.4% in 21 minutes on 2
#     cores). CIFAR-10: torchvision's width, 30 epochs, crop and flip.
# Any other arguments go to train_cifar10 (see --help); later ones override the defaults.
set -euo pipefail
cd "$(dirname "$0")/.."

full=0
if [ "${1:-}" = "--full" ]; then
  shift
  full=1
fi

scripts/install_deps.sh dataset-fashion-mnist gnuplot-nox
build_dir=${BUILD_DIR:-build-release}
cmake -S . -B "$build_dir" -DCMAKE_BUILD_TYPE=Release -DRESNET_NATIVE=ON -DRESNET_BUILD_TESTS=OFF \
  -DRESNET_BUILD_BENCHMARKS=OFF >/dev/null
cmake --build "$build_dir" -j "$(nproc)" --target train_cifar10

if [ -f data/cifar-10-batches-bin/test_batch.bin ]; then
  dataset=(--dataset cifar10 --data data/cifar-10-batches-bin)
  full_recipe=(--epochs 30)
else
  echo "CIFAR-10 is not in data/cifar-10-batches-bin (bash tools/get_cifar10.sh downloads it, 163 MB)."
  echo "Training on Fashion-MNIST from Debian's dataset-fashion-mnist package instead."
  dataset=(--dataset fashion-mnist)
  full_recipe=(--width 16 --epochs 15)
fi
# Each recipe has its own run directory (a directory holding another run's checkpoints is refused).
if [ "$full" -eq 1 ]; then
  defaults=("${full_recipe[@]}" --checkpoint-dir "runs/${dataset[1]}-full")
else
  defaults=(--width 16 --epochs 3 --crop-padding 0 --checkpoint-dir "runs/${dataset[1]}")
fi
exec "$build_dir/examples/train_cifar10" "${dataset[@]}" "${defaults[@]}" --threads "$(nproc)" "$@"
