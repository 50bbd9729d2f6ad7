#!/usr/bin/env python3
"""The training example's recipe in PyTorch, for comparing accuracy with train_cifar10 on the same data.

Fashion-MNIST from Debian (/usr/share/datasets/fashion-mnist), the first N training images in a seeded shuffle,
no augmentation; torchvision's ResNet18 with the CIFAR stem (3x3 stride-1 conv1, no max-pool) for 1-channel input;
SGD with Nesterov momentum 0.9, weight decay on conv and fc weights only, OneCycleLR over the whole run;
evaluation on all 10,000 test images. Needs Debian's python3-torch and python3-torchvision (/usr/bin/python3).

    /usr/bin/python3 tools/pytorch_train_reference.py --train-subset 10000 --epochs 1 --lr 0.05 --seed 0
"""
import argparse
import gzip
import time

import numpy as np
import torch
import torchvision
from torch import nn

DATA = "/usr/share/datasets/fashion-mnist/"
MEAN, STD = 0.2860, 0.3530  # as data::fashion_mnist_normalization()


def read_idx(name):
    with gzip.open(DATA + name) as f:
        data = f.read()
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(data, np.uint8, offset=4 + 4 * ndim).reshape(dims)


def images(name, count=None):
    x = torch.tensor(read_idx(name)[:count], dtype=torch.float32)[:, None]
    return (x / 255 - MEAN) / STD


def labels(name, count=None):
    return torch.tensor(read_idx(name)[:count], dtype=torch.long)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--train-subset", type=int, default=10000)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--weight-decay", type=float, default=5e-4)
    parser.add_argument("--no-nesterov", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)

    x_train = images("train-images-idx3-ubyte.gz", args.train_subset)
    y_train = labels("train-labels-idx1-ubyte.gz", args.train_subset)
    x_test, y_test = images("t10k-images-idx3-ubyte.gz"), labels("t10k-labels-idx1-ubyte.gz")

    model = torchvision.models.resnet18(num_classes=10)
    model.conv1 = nn.Conv2d(1, 64, 3, 1, 1, bias=False)
    nn.init.kaiming_normal_(model.conv1.weight, mode="fan_out", nonlinearity="relu")
    model.maxpool = nn.Identity()
    decay = [p for p in model.parameters() if p.dim() > 1]
    no_decay = [p for p in model.parameters() if p.dim() <= 1]
    optimizer = torch.optim.SGD([{"params": decay, "weight_decay": args.weight_decay},
                                 {"params": no_decay, "weight_decay": 0.0}],
                                lr=args.lr, momentum=0.9, nesterov=not args.no_nesterov)
    n = len(x_train)
    steps_per_epoch = (n + args.batch_size - 1) // args.batch_size
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=args.lr,
                                                   total_steps=steps_per_epoch * args.epochs)
    start = time.time()
    model.train()
    for _ in range(args.epochs):
        order = torch.randperm(n)
        for step in range(steps_per_epoch):
            batch = order[step * args.batch_size:(step + 1) * args.batch_size]
            loss = nn.functional.cross_entropy(model(x_train[batch]), y_train[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
    seconds = time.time() - start

    model.eval()
    correct = 0
    with torch.no_grad():
        for b in range(0, len(x_test), 500):
            correct += (model(x_test[b:b + 500]).argmax(1) == y_test[b:b + 500]).sum().item()
    print(f"test accuracy {100 * correct / len(x_test):.2f}% after {steps_per_epoch * args.epochs} updates; "
          f"{seconds:.0f} s training, {n * args.epochs / seconds:.1f} images/s on {args.threads} thread(s)")


if __name__ == "__main__":
    main()
