#!/usr/bin/env python3
"""Writes a small MNIST-format directory (train-images-idx3-ubyte, train-labels-idx1-ubyte and the t10k pair) of
random 28x28 images and labels, for smoke runs where Fashion-MNIST is not installed. Standard library only.

Usage: python3 tools/fake_mnist.py DIR [TRAIN_IMAGES] [TEST_IMAGES]
"""
import os
import random
import struct
import sys


def write(directory, prefix, count, rng):
    with open(os.path.join(directory, f"{prefix}-images-idx3-ubyte"), "wb") as f:
        f.write(struct.pack(">IIII", 0x803, count, 28, 28) + rng.randbytes(count * 28 * 28))
    with open(os.path.join(directory, f"{prefix}-labels-idx1-ubyte"), "wb") as f:
        f.write(struct.pack(">II", 0x801, count) + bytes(rng.randrange(10) for _ in range(count)))


def main():
    directory = sys.argv[1]
    train = int(sys.argv[2]) if len(sys.argv) > 2 else 256
    test = int(sys.argv[3]) if len(sys.argv) > 3 else 64
    rng = random.Random(0)
    os.makedirs(directory, exist_ok=True)
    write(directory, "train", train, rng)
    write(directory, "t10k", test, rng)
    print(f"wrote {train} training and {test} test images to {directory}")


if __name__ == "__main__":
    main()
