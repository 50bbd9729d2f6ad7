#!/usr/bin/env python3
"""Writes a small CIFAR-10-format directory (data_batch_1..5.bin, test_batch.bin) of random images, for smoke runs
of train_cifar10 where the real dataset is not available (CI). Standard library only.

Usage: python3 tools/fake_cifar10.py DIR [IMAGES_PER_FILE]
"""
import os
import random
import sys


def main():
    directory = sys.argv[1]
    per_file = int(sys.argv[2]) if len(sys.argv) > 2 else 64
    rng = random.Random(0)
    os.makedirs(directory, exist_ok=True)
    names = [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]
    for name in names:
        with open(os.path.join(directory, name), "wb") as f:
            for _ in range(per_file):
                f.write(bytes([rng.randrange(10)]) + rng.randbytes(3072))
    print(f"wrote {len(names)} files of {per_file} images to {directory}")


if __name__ == "__main__":
    main()
