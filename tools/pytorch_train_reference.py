#!/usr/bin/env python3
"""train_cifar10's Fashion-MNIST recipe in PyTorch, for the same wall time: what PyTorch reaches on this machine
in the time our run took.

The recipe, as train_cifar10's options name it: ResNet18 with the CIFAR stem (3x3 stride-1 conv1, no max-pool) for
1-channel input, --width channels in the first stage (torchvision's BasicBlock and initialisation); SGD with
Nesterov momentum 0.9, weight decay on conv and fc weights only; OneCycleLR (pct_start 0.3, div_factor 25,
final_div_factor 1e4, momentum cycled 0.95-0.85) over the whole run; random horizontal flip, and random crop
after zero padding by --crop-padding pixels; label smoothing; optionally an exponential moving average of the
weights (optim/ema.hpp's formula, warm-up included) and test-time flip; evaluation on all 10,000 test images.
With --precision auto it trains under torch.autocast(bfloat16) in channels_last where the CPU multiplies bf16
(AVX512-BF16 or AMX), else in float32.

--seconds S gives PyTorch our run's wall time: after loading the data it times an evaluation pass, and trains for
the rest of S but the final evaluation, with the one-cycle schedule run over that time instead of a number of
updates (the learning rate and momentum at each update are OneCycleLR's at the fraction of the time spent), so
that the run ends annealed however fast the updates go. Without it, --epochs sets the length. Without it, --epochs sets the length. Needs Debian's python3-torch and python3-torchvision
(run it with /usr/bin/python3).

    /usr/bin/python3 tools/pytorch_train_reference.py --width 16 --crop-padding 0 --seconds 225 --seed 0
"""
import argparse
import copy
import gzip
import math
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


def resnet18(width, classes=10):
    """torchvision's ResNet18 with the CIFAR stem, `width` channels in the first stage, 1 input channel."""
    block = torchvision.models.resnet.BasicBlock
    layers, planes = [], width
    for stage, stride in enumerate([1, 2, 2, 2]):
        outputs = width << stage
        downsample = None
        if stride != 1 or planes != outputs:
            downsample = nn.Sequential(nn.Conv2d(planes, outputs, 1, stride, bias=False), nn.BatchNorm2d(outputs))
        layers.append(nn.Sequential(block(planes, outputs, stride, downsample), block(outputs, outputs)))
        planes = outputs
    model = nn.Sequential(nn.Conv2d(1, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU(inplace=True),
                          *layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(planes, classes))
    for m in model.modules():  # torchvision's initialisation
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
    return model


def cpu_has_bf16():
    with open("/proc/cpuinfo") as f:
        flags = f.read()
    return "avx512_bf16" in flags or "amx_bf16" in flags


def augment(x, crop_padding, flip, generator):
    if flip:
        mirror = torch.rand(len(x), generator=generator) < 0.5
        x = torch.where(mirror[:, None, None, None], x.flip(3), x)
    if crop_padding:
        h, w = x.shape[2:]
        padded = nn.functional.pad(x, [crop_padding] * 4, value=(0 - MEAN) / STD)  # black, normalised
        dy = torch.randint(0, 2 * crop_padding + 1, (len(x),), generator=generator)
        dx = torch.randint(0, 2 * crop_padding + 1, (len(x),), generator=generator)
        x = torch.stack([padded[i, :, dy[i]:dy[i] + h, dx[i]:dx[i] + w] for i in range(len(x))])
    return x


class Trainer:
    def __init__(self, model, args, bf16):
        self.model, self.args, self.bf16 = model, args, bf16
        decay = [p for p in model.parameters() if p.dim() > 1]
        no_decay = [p for p in model.parameters() if p.dim() <= 1]
        self.optimizer = torch.optim.SGD([{"params": decay, "weight_decay": args.weight_decay},
                                          {"params": no_decay, "weight_decay": 0.0}],
                                         lr=args.lr, momentum=0.9, nesterov=True)
        self.loss = nn.CrossEntropyLoss(label_smoothing=args.label_smoothing)
        self.average = copy.deepcopy(model) if args.ema else None
        self.averaged = 0

    def set_progress(self, p):
        """OneCycleLR's learning rate and momentum (cosine phases, pct_start 0.3, div_factor 25,
        final_div_factor 1e4, momentum 0.95 -> 0.85 -> 0.95) at the fraction p of the run."""
        def cos(start, end, t):
            return end + (start - end) / 2 * (math.cos(math.pi * t) + 1)
        top, first, last = self.args.lr, self.args.lr / 25, self.args.lr / 25 / 1e4
        if p < 0.3:
            lr, momentum = cos(first, top, p / 0.3), cos(0.95, 0.85, p / 0.3)
        else:
            lr, momentum = cos(top, last, min(1.0, (p - 0.3) / 0.7)), cos(0.85, 0.95, min(1.0, (p - 0.3) / 0.7))
        for group in self.optimizer.param_groups:
            group["lr"], group["momentum"] = lr, momentum

    def step(self, x, y):
        self.model.train()
        if self.bf16:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.bf16):
            loss = self.loss(self.model(x), y)
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        if self.average is not None:  # optim/ema.hpp: parameters and buffers, num_batches_tracked copied
            d = min(self.args.ema, (1 + self.averaged) / (10 + self.averaged))
            with torch.no_grad():
                for a, v in zip(self.average.state_dict().values(), self.model.state_dict().values()):
                    if a.dtype.is_floating_point:
                        a.mul_(d).add_(v, alpha=1 - d)
                    else:
                        a.copy_(v)
            self.averaged += 1

    def evaluate(self, x_test, y_test, flip):
        model = self.average if self.average is not None else self.model
        model.eval()
        correct = 0
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.bf16):
            for b in range(0, len(x_test), 500):
                x = x_test[b:b + 500]
                if self.bf16:
                    x = x.contiguous(memory_format=torch.channels_last)
                logits = model(x).float()
                if flip:
                    logits = (logits + model(x.flip(3)).float()) / 2
                correct += (logits.argmax(1) == y_test[b:b + 500]).sum().item()
        return correct / len(x_test)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=0, help="wall time to fit the run in (0: use --epochs)")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--width", type=int, default=16)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=0.1)
    parser.add_argument("--weight-decay", type=float, default=5e-4)
    parser.add_argument("--label-smoothing", type=float, default=0)
    parser.add_argument("--crop-padding", type=int, default=4)
    parser.add_argument("--no-flip", action="store_true")
    parser.add_argument("--ema", type=float, default=0)
    parser.add_argument("--test-flip", action="store_true")
    parser.add_argument("--precision", choices=["auto", "fp32", "bf16"], default="auto")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    generator = torch.Generator().manual_seed(args.seed)
    bf16 = args.precision == "bf16" or (args.precision == "auto" and cpu_has_bf16())

    x_train, y_train = images("train-images-idx3-ubyte.gz"), labels("train-labels-idx1-ubyte.gz")
    x_test, y_test = images("t10k-images-idx3-ubyte.gz"), labels("t10k-labels-idx1-ubyte.gz")
    model = resnet18(args.width)
    if bf16:
        model = model.to(memory_format=torch.channels_last)
    n = len(x_train)
    steps_per_epoch = math.ceil(n / args.batch_size)
    start = time.time()

    trainer = Trainer(model, args, bf16)
    evaluation = 0
    if args.seconds:  # one evaluation pass timed (on the untrained model), to leave time for the last one
        begin = time.time()
        trainer.evaluate(x_test, y_test, args.test_flip)
        evaluation = time.time() - begin
    budget = args.seconds - (time.time() - start) - evaluation  # for training
    if args.seconds and budget <= 0:
        raise SystemExit(f"--seconds {args.seconds:g} leaves no time to train: an evaluation takes {evaluation:.1f} s")
    training_start = time.time()
    updates = steps_per_epoch * args.epochs
    done, finished = 0, False
    while not finished:
        order = torch.randperm(n, generator=generator)
        for step in range(steps_per_epoch):
            # The schedule runs over the run's length: updates, or with --seconds the training time left.
            progress = (time.time() - training_start) / budget if args.seconds else done / updates
            finished = progress >= 1
            if finished:
                break
            trainer.set_progress(progress)
            batch = order[step * args.batch_size:(step + 1) * args.batch_size]
            trainer.step(augment(x_train[batch], args.crop_padding, not args.no_flip, generator), y_train[batch])
            done += 1
    updates = done
    accuracy = trainer.evaluate(x_test, y_test, args.test_flip)
    seconds = time.time() - start
    print(f"test accuracy {100 * accuracy:.2f}% after {updates} updates ({updates / steps_per_epoch:.2f} epochs), "
          f"{seconds:.0f} s after loading the data; {'bf16 autocast, channels_last' if bf16 else 'fp32'}, "
          f"{args.threads} threads")


if __name__ == "__main__":
    main()
