#!/usr/bin/python3
"""Writes the PyTorch fixtures the C++ tests load (test_parity_layers, test_parity_resnet, and interop/ for
test_safetensors and test_classify_preprocess).

Run with Debian's PyTorch (torch 1.13, torchvision 0.14):  /usr/bin/python3 tools/make_fixtures.py
It rewrites every file in tests/fixtures/ (or the directory given with --out), or only those of the groups named
with --group (layer, network, interop, bf16, family), and is deterministic: seeded, one thread, so a re-run gives
byte-identical files on the same machine.

Files are safetensors, written by tools/export_torchvision.py's writer (plain Python, no package beyond torch):
an 8-byte little-endian header length, a JSON header {key: {"dtype", "shape", "data_offsets"}, "__metadata__":
{string: string}}, then the raw little-endian data. The metadata holds each case's configuration (module
arguments), so the C++ tests build their modules from the same numbers as this script.

Layer fixtures (one file per case): the input, the module's parameters and buffers under their own names, a
random grad_output, and what PyTorch computes from them: output, grad_input, "grad.<parameter>" and, for
BatchNorm2d, "after.<buffer>" (the buffers after the forward). All float32, computed in float32.

Whole-network fixtures (resnet18_<case>.safetensors in float32, resnet18_<case>_f64.safetensors in float64):
weights, buffers and inputs come from a closed-form formula that tests/support/formula_weights.hpp computes
identically (integer hash -> double -> float, bit for bit), so no weights are stored. See formula_unit /
formula_value below, and the comments above run_network and NETWORK_CASES.

Interop fixtures (interop/): a torchvision resnet18 exported by tools/export_torchvision.py, identified by its
header, size and CRC-32 (the 47 MB file itself is rebuilt by the C++ test from the formula), with PyTorch's
eval-mode logits; every dtype the loader reads; a torchvision BasicBlock exported in BF16; torchvision's image
preprocessing. See make_interop_fixtures.

bf16 fixtures (bf16/): torch.autocast("cpu", dtype=torch.bfloat16), what Precision::BF16 follows. Layer cases
(Conv2d, Linear) as the layer fixtures, from bf16-representable operands; and for resnet18 with each stem, one
train-mode step's float64 logits and loss and autocast's relative L2 error against float64 of the logits, the
loss, the eval-mode logits and every parameter gradient ("autocast_error/..."), the accuracy the C++ bf16 mode
must reach. See make_bf16_fixtures.

family fixtures (family/): the network cases for the rest of the ResNet family (ResNet50, a Wide ResNet's
Bottleneck, a small ResNeXt, the pre-activation ResNet-18 and a WRN of tools/preact_resnet.py), as the network
ones. See make_family_fixtures.

--measure-float-noise N writes nothing; it runs every network case on N other inputs in float32 and float64 and
prints the worst float32 error of each stored quantity: the rounding noise test_parity_resnet.cpp's float
bounds are set from.
"""

import argparse
import json
import math
import os
import struct
import subprocess
import sys
import tempfile
import zlib

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import export_torchvision  # noqa: E402  (the one safetensors writer: fixtures and user exports alike)
import preact_resnet  # noqa: E402  (the pre-activation models, as users build them)

write_safetensors = export_torchvision.write_safetensors


# ---------------------------------------------------------------------------------------------------------------
# Layer fixtures


def randn(*shape, scale=1.0, offset=0.0):
    return torch.randn(*shape) * scale + offset


def layer_case(out_dir, name, module, x, metadata, grad_output=True, after_buffers=False):
    """Runs module forward and backward on x and writes everything a C++ test needs to repeat it."""
    tensors = {"input": x.clone()}
    for n, p in module.named_parameters():
        tensors[n] = p.detach().clone()
    for n, b in module.named_buffers():
        tensors[n] = b.detach().clone()
    x = x.clone().requires_grad_(True)
    y = module(x)
    g = torch.randn_like(y)
    tensors["grad_output"] = g
    y.backward(g)
    tensors["output"] = y.detach()
    tensors["grad_input"] = x.grad
    for n, p in module.named_parameters():
        tensors["grad." + n] = p.grad.clone()
    if after_buffers:
        for n, b in module.named_buffers():
            tensors["after." + n] = b.detach().clone()
    write_safetensors(os.path.join(out_dir, name + ".safetensors"), tensors, metadata)


# Conv2d: (case, in, out, kernel, stride, padding, bias, input shape). Batch 3, odd and non-square sizes.
CONV_CASES = [
    ("conv2d_3x3_s1_p1", 5, 6, 3, 1, 1, True, (3, 5, 9, 7)),
    ("conv2d_3x3_s2_p1", 4, 7, 3, 2, 1, True, (3, 4, 11, 8)),
    ("conv2d_1x1_s2_nobias", 6, 8, 1, 2, 0, False, (3, 6, 9, 10)),
    ("conv2d_7x7_s2_p3", 3, 5, 7, 2, 3, True, (3, 3, 23, 19)),
    ("conv2d_1x1_s1", 8, 4, 1, 1, 0, True, (3, 8, 5, 6)),
    # The last input row and column fall outside every window: their grad_input must be exactly zero.
    ("conv2d_3x3_s2_p0_nobias", 3, 4, 3, 2, 0, False, (3, 3, 10, 9)),
]


# Grouped Conv2d: (case, in, out, kernel, stride, padding, bias, groups, input shape): two groups of a
# pointwise conv, four of a strided 3x3 one, and a depthwise conv (one channel per group).
GROUPED_CONV_CASES = [
    ("conv2d_3x3_s2_p1_g4", 8, 12, 3, 2, 1, True, 4, (3, 8, 9, 7)),
    ("conv2d_1x1_s1_g2_nobias", 6, 4, 1, 1, 0, False, 2, (3, 6, 5, 6)),
    ("conv2d_3x3_s1_p1_depthwise", 6, 6, 3, 1, 1, False, 6, (3, 6, 7, 8)),
]


def conv_meta(cin, cout, k, s, p, bias, groups=1):
    meta = dict(module="Conv2d", in_channels=cin, out_channels=cout, kernel_size=k, stride=s, padding=p,
                bias=int(bias))
    return dict(meta, groups=groups) if groups != 1 else meta


def make_layer_fixtures(out_dir):
    for case, cin, cout, k, s, p, bias, shape in CONV_CASES:
        m = nn.Conv2d(cin, cout, k, s, p, bias=bias)
        layer_case(out_dir, case, m, randn(*shape), conv_meta(cin, cout, k, s, p, bias))

    for case, fin, fout, bias, n in [("linear", 17, 10, True, 3), ("linear_nobias", 9, 5, False, 3)]:
        m = nn.Linear(fin, fout, bias=bias)
        layer_case(out_dir, case, m, randn(n, fin),
                   dict(module="Linear", in_features=fin, out_features=fout, bias=int(bias)))

    # BatchNorm2d: non-trivial affine parameters and running stats; inputs with a per-channel mean far from 0 and
    # a spread unlike 1, so one-pass variance formulas and a wrong (unbiased) normalisation both show.
    def batchnorm(c, eps, momentum):
        m = nn.BatchNorm2d(c, eps=eps, momentum=momentum)
        with torch.no_grad():
            m.weight.copy_(1 + 0.2 * torch.randn(c))
            m.bias.copy_(0.1 * torch.randn(c))
            m.running_mean.copy_(0.5 * torch.randn(c))
            m.running_var.copy_(torch.rand(c) * 1.5 + 0.5)
            m.num_batches_tracked.fill_(5)
        return m

    def channel_offsets(shape):
        c = shape[1]
        return randn(*shape) * (torch.rand(1, c, 1, 1) * 2 + 0.5) + torch.randn(1, c, 1, 1) * 3

    for case, c, eps, momentum, shape in [("batchnorm2d_train", 5, 1e-5, 0.1, (3, 5, 7, 6)),
                                          ("batchnorm2d_train_eps_momentum", 4, 1e-3, 0.25, (2, 4, 3, 5))]:
        m = batchnorm(c, eps, momentum).train()
        meta = dict(module="BatchNorm2d", num_features=c, eps=repr(eps), momentum=repr(momentum), training=1)
        layer_case(out_dir, case, m, channel_offsets(shape), meta, after_buffers=True)

    # Eval mode uses the running stats; our modules cache nothing in eval, so only the output is compared.
    m = batchnorm(5, 1e-5, 0.1).eval()
    x = channel_offsets((3, 5, 7, 6))
    tensors = {"input": x}
    tensors.update({n: p.detach().clone() for n, p in m.named_parameters()})
    tensors.update({n: b.detach().clone() for n, b in m.named_buffers()})
    with torch.no_grad():
        tensors["output"] = m(x)
    write_safetensors(os.path.join(out_dir, "batchnorm2d_eval.safetensors"), tensors,
                      dict(module="BatchNorm2d", num_features=5, eps=repr(1e-5), momentum=repr(0.1), training=0))

    layer_case(out_dir, "relu", nn.ReLU(), randn(3, 4, 5, 6), dict(module="ReLU"))

    # MaxPool2d. The "ties" case feeds ReLU'd integers, so many windows hold equal maxima (all zeros, as after a
    # ReLU in the ImageNet stem): PyTorch sends the gradient to the first maximum in row-major window order.
    ties = torch.relu(torch.round(randn(3, 4, 10, 9, scale=1.5)))
    for case, k, s, p, x in [("maxpool2d_3x3_s2_p1", 3, 2, 1, randn(3, 4, 11, 9)),
                             ("maxpool2d_2x2_s2", 2, 2, 0, randn(3, 4, 9, 8)),
                             ("maxpool2d_3x3_s2_p1_ties", 3, 2, 1, ties)]:
        layer_case(out_dir, case, nn.MaxPool2d(k, s, p), x,
                   dict(module="MaxPool2d", kernel_size=k, stride=s, padding=p))

    # AdaptiveAvgPool2d: (3, 2) from 7x5 gives overlapping windows of unequal size.
    for case, oh, ow, shape in [("adaptive_avg_pool2d_1x1", 1, 1, (3, 5, 7, 6)),
                                ("adaptive_avg_pool2d_3x2", 3, 2, (3, 4, 7, 5))]:
        layer_case(out_dir, case, nn.AdaptiveAvgPool2d((oh, ow)), randn(*shape),
                   dict(module="AdaptiveAvgPool2d", output_h=oh, output_w=ow))

    # CrossEntropyLoss (mean over the batch): output is the scalar loss, grad_input is d loss / d logits. The
    # large-logits case overflows a naive exp() in float, so it checks the log-sum-exp shift.
    for case, smoothing, scale in [("cross_entropy", 0.0, 2.0), ("cross_entropy_smoothing", 0.1, 2.0),
                                   ("cross_entropy_large_logits", 0.0, 60.0)]:
        logits = randn(5, 7, scale=scale).requires_grad_(True)
        targets = torch.randint(0, 7, (5,))
        loss = F.cross_entropy(logits, targets, label_smoothing=smoothing)
        loss.backward()
        write_safetensors(os.path.join(out_dir, case + ".safetensors"),
                          {"input": logits.detach(), "targets": targets, "output": loss.detach(),
                           "grad_input": logits.grad},
                          dict(module="CrossEntropyLoss", label_smoothing=repr(smoothing)))

    # Last, so that they drew nothing the cases above draw.
    for case, cin, cout, k, s, p, bias, groups, shape in GROUPED_CONV_CASES:
        m = nn.Conv2d(cin, cout, k, s, p, bias=bias, groups=groups)
        layer_case(out_dir, case, m, randn(*shape), conv_meta(cin, cout, k, s, p, bias, groups))


# ---------------------------------------------------------------------------------------------------------------
# Whole-network fixtures. The formula (mirrored in tests/support/formula_weights.hpp; change both together):
#   unit(tag, j) = splitmix64(tag * 2^32 + j) -> top 53 bits -> [-1, 1), exact in double
#   parameter t of named_parameters has tag t; buffer t of named_buffers has tag 1000 + t; the input of step s
#   has tag 2000 + s
#   conv weight [O, I, k, k]: unit * sqrt(6 / (O k k))   (uniform with Kaiming's fan_out std sqrt(2 / (O k k)))
#   linear weight [out, in]:  unit * sqrt(3 / in)        (std 1 / sqrt(in))
#   batch-norm weight:        1 + 0.1 unit;   any bias: 0.05 unit
#   running_mean: 0.1 unit;   running_var: 1 + 0.2 unit;   num_batches_tracked: 0;   input: unit
# Each value is computed in double and rounded once to float.

PARAMETER_TAG, BUFFER_TAG, INPUT_TAG = 0, 1000, 2000


def formula_unit(tag, n):
    z = (np.uint64(tag) << np.uint64(32)) + np.arange(n, dtype=np.uint64)
    with np.errstate(over="ignore"):
        z = z + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(11)).astype(np.float64) * 2.0 ** -52 - 1.0


def formula_value(name, shape, is_buffer, u):
    leaf = name.rsplit(".", 1)[-1]
    if is_buffer:
        if leaf == "running_mean":
            return 0.1 * u
        if leaf == "running_var":
            return 1.0 + 0.2 * u
        if leaf == "num_batches_tracked":
            return 0.0 * u
    elif leaf == "weight" and len(shape) == 4:
        return u * math.sqrt(6.0 / (shape[0] * shape[2] * shape[3]))
    elif leaf == "weight" and len(shape) == 2:
        return u * math.sqrt(3.0 / shape[1])
    elif leaf == "weight" and len(shape) == 1:
        return 1.0 + 0.1 * u
    elif leaf == "bias":
        return 0.05 * u
    raise ValueError("no formula for %s %s" % (name, shape))


def formula_tensor(tag, name, shape, is_buffer):
    n = int(np.prod(shape, dtype=np.int64))
    values = formula_value(name, shape, is_buffer, formula_unit(tag, n)).astype(np.float32)
    return torch.from_numpy(values.reshape(shape))


def apply_formula_weights(model):
    with torch.no_grad():
        for t, (name, p) in enumerate(model.named_parameters()):
            p.copy_(formula_tensor(PARAMETER_TAG + t, name, tuple(p.shape), False))
        for t, (name, b) in enumerate(model.named_buffers()):
            b.copy_(formula_tensor(BUFFER_TAG + t, name, tuple(b.shape), True).to(b.dtype))


SAMPLES = 16


def sample_indices(numel):
    return torch.tensor([(k * 7919 + 13) % numel for k in range(SAMPLES)])


def formula_input(step, shape, input_tag=INPUT_TAG):
    return torch.from_numpy(formula_unit(input_tag + step, int(np.prod(shape))).astype(np.float32).reshape(shape))


# Two SGD steps, each forward/backward/step on its own batch (input tags 2000 and 2001; the second batch also
# catches a layer that reuses a stale cache). lr 0.01, not 0.1: with batch 2, lr 0.1 moves some parameters by
# up to 2.7x their own norm in the first step (max lr |g| / |w|), and in that blown-up state float32 rounding
# alone changes PyTorch's own second-step gradients by up to 2e-2 (measured against the same run in float64),
# so no tolerance could both pass a correct float implementation and catch a wrong one. At lr 0.01 (max
# lr |g| / |w| 0.27) the run is well conditioned, and the update still carries a clear signature of each SGD
# option (dropping weight decay changes some update by ~10%).
LR, MOMENTUM, WEIGHT_DECAY = 0.01, 0.9, 5e-4


def build_resnet(arch, num_classes, stem):
    """The model `arch` names, with the stem `stem` ("cifar": conv1 3x3/1 and no max-pool; "imagenet"):
    torchvision's model by name; "resnet-bottleneck-<blocks>-w<width_per_group>": ResNet(Bottleneck, blocks,
    width_per_group) at torchvision's base width, a small model of a Wide ResNet's shape;
    "resnext-<blocks>-<groups>x<width_per_group>d": ResNet(Bottleneck, blocks, groups, width_per_group), a small
    ResNeXt; tools/preact_resnet.py's "preact_resnet18" and "wrn-<depth>-<k>", which have the CIFAR stem only."""
    if arch == "preact_resnet18" or arch.startswith("wrn-"):
        if stem != "cifar":
            raise ValueError("%s has the cifar stem only, not %s" % (arch, stem))
        if arch == "preact_resnet18":
            return preact_resnet.preact_resnet18(num_classes)
        depth, k = arch[len("wrn-"):].split("-")
        return preact_resnet.wide_resnet(int(depth), int(k), num_classes)
    resnet = torchvision.models.resnet
    if arch.startswith("resnet-bottleneck-"):
        *counts, width = arch[len("resnet-bottleneck-"):].split("-")
        model = resnet.ResNet(resnet.Bottleneck, [int(c) for c in counts], num_classes=num_classes,
                              width_per_group=int(width[1:]))
    elif arch.startswith("resnext-"):
        *counts, shape = arch[len("resnext-"):].split("-")
        groups, width = shape.rstrip("d").split("x")
        model = resnet.ResNet(resnet.Bottleneck, [int(c) for c in counts], num_classes=num_classes,
                              groups=int(groups), width_per_group=int(width))
    else:
        model = getattr(torchvision.models, arch)(num_classes=num_classes)
    if stem == "cifar":
        model.conv1 = nn.Conv2d(3, 64, 3, 1, 1, bias=False)
        model.maxpool = nn.Identity()
    return model


def run_network(stem, num_classes, input_shape, targets, nesterov, dtype, input_tag=INPUT_TAG, arch="resnet18",
                lr=LR):
    """Trains `arch` (build_resnet; formula weights) for two SGD steps in `dtype`; returns the stored tensors
    and the metadata. The float64 run starts from the same float-rounded weights and inputs as the float32 one.
    input_tag other than INPUT_TAG gives other inputs, for measure_float_noise."""
    model = build_resnet(arch, num_classes, stem)
    apply_formula_weights(model)
    model = model.to(dtype).train()
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=MOMENTUM, weight_decay=WEIGHT_DECAY,
                          nesterov=nesterov)
    params = list(model.named_parameters())
    initial = {n: p.detach().clone() for n, p in params}

    def norm(t):
        return torch.tensor(t.double().norm().item(), dtype=torch.float64)

    def sample(t):
        return t.reshape(-1)[sample_indices(t.numel())].clone()

    tensors = {}
    for step in range(2):
        x, y = formula_input(step, input_shape, input_tag).to(dtype), torch.tensor(targets[step])
        opt.zero_grad()
        logits = model(x)
        loss = F.cross_entropy(logits, y)
        loss.backward()
        tensors["targets_step%d" % step] = y
        tensors["loss_step%d" % step] = loss.detach()
        if step == 0:
            tensors["logits"] = logits.detach()
            for n, p in params:
                tensors["grad_norm/" + n] = norm(p.grad)
                tensors["grad_sample/" + n] = sample(p.grad)
            for n, b in model.named_buffers():
                tensors["after_forward/" + n] = b.detach().clone()
        opt.step()
    for n, p in params:
        # The change from the formula weights, in double (exact for a difference of floats), so that an error
        # in the update itself (weight decay, momentum, Nesterov) is not hidden under the size of the weight.
        delta = p.detach().double() - initial[n].double()
        tensors["param_norm/" + n] = norm(p.detach())
        tensors["param_sample/" + n] = sample(p.detach())
        tensors["delta_norm/" + n] = norm(delta)
        tensors["delta_sample/" + n] = sample(delta)
    for n, b in model.named_buffers():
        tensors["final/" + n] = b.detach().clone()
    model.eval()
    with torch.no_grad():
        tensors["eval_logits"] = model(formula_input(0, input_shape, input_tag).to(dtype))

    meta = dict(stem=stem, num_classes=num_classes, input_shape=json.dumps(list(input_shape)), lr=repr(lr),
                momentum=repr(MOMENTUM), weight_decay=repr(WEIGHT_DECAY), nesterov=int(nesterov),
                samples=SAMPLES, dtype=str(dtype).replace("torch.", ""),
                parameters=json.dumps([[n, list(p.shape)] for n, p in params]),
                buffers=json.dumps([[n, list(b.shape)] for n, b in model.named_buffers()]))
    if arch != "resnet18":
        meta["arch"] = arch
    return tensors, meta


# (name, stem, classes, input shape, targets of each step, nesterov)
NETWORK_CASES = [
    # CIFAR stem: torchvision's resnet18 with conv1 = 3x3/1 and no max-pool, 32x32 inputs, 10 classes.
    ("resnet18_cifar", "cifar", 10, (2, 3, 32, 32), [[3, 7], [5, 1]], False),
    ("resnet18_cifar_nesterov", "cifar", 10, (2, 3, 32, 32), [[3, 7], [5, 1]], True),
    # ImageNet stem at 72x72 instead of 224x224: ~10x cheaper in CI, and the odd sizes it produces
    # (72 -> 36 -> 18 -> 9 -> 5 -> 3) put stride-2 downsampling on odd inputs in layer3 and layer4 and a 3x3
    # average pool, which 224 (-> 7x7, all stride-2 inputs even) never exercises.
    ("resnet18_imagenet", "imagenet", 1000, (2, 3, 72, 72), [[17, 981], [400, 3]], False),
]


def make_network_fixtures(out_dir):
    # Each case twice: float32 (PyTorch's float numbers, what users run) and float64 (the same computation
    # without rounding noise, so the C++ double run can be held to a tight bound; see test_parity_resnet.cpp
    # for why float32 alone cannot be, past the first forward).
    for name, stem, classes, shape, targets, nesterov in NETWORK_CASES:
        for dtype, suffix in [(torch.float32, ""), (torch.float64, "_f64")]:
            tensors, meta = run_network(stem, classes, shape, targets, nesterov, dtype)
            write_safetensors(os.path.join(out_dir, name + suffix + ".safetensors"), tensors, meta)
            print("%s%s: loss %.4f, %.4f; |logits| %.3g, |eval logits| %.3g" %
                  (name, suffix, tensors["loss_step0"].item(), tensors["loss_step1"].item(),
                   tensors["logits"].norm().item(), tensors["eval_logits"].norm().item()))


# (name, arch, stem, classes, input shape, targets of each step): the ResNet family beyond resnet18, in
# tests/fixtures/family/ (tests/test_parity_resnet.cpp), made from the formula like NETWORK_CASES, so adding
# them changed no other fixture. ResNet50 with the ImageNet stem at 56x56 (-> 28 -> 14 -> 7 -> 4 -> 2: layer4
# downsamples an odd map); a Wide ResNet's block shape (width per group 128) with one block a stage, on the
# CIFAR stem at 16x16.
FAMILY_CASES = [
    ("resnet50_imagenet", "resnet50", "imagenet", 1000, (2, 3, 56, 56), [[17, 981], [400, 3]]),
    ("wide_bottleneck_cifar", "resnet-bottleneck-1-1-1-1-w128", "cifar", 10, (2, 3, 16, 16), [[3, 7], [5, 1]]),
    # The pre-activation models of tools/preact_resnet.py, and a ResNeXt's grouped Bottleneck (32 groups of 4
    # channels per 64 planes) with one block a stage, all at 16x16 (the last stage's map is 2x2 or 4x4).
    ("preact_resnet18_cifar", "preact_resnet18", "cifar", 10, (2, 3, 16, 16), [[3, 7], [5, 1]]),
    ("wrn_16_2_cifar", "wrn-16-2", "cifar", 10, (2, 3, 16, 16), [[3, 7], [5, 1]]),
    ("resnext_cifar", "resnext-1-1-1-1-32x4d", "cifar", 10, (2, 3, 16, 16), [[3, 7], [5, 1]]),
]


def make_family_fixtures(out_dir):
    out_dir = os.path.join(out_dir, "family")
    os.makedirs(out_dir, exist_ok=True)
    for name, arch, stem, classes, shape, targets in FAMILY_CASES:
        for dtype, suffix in [(torch.float32, ""), (torch.float64, "_f64")]:
            tensors, meta = run_network(stem, classes, shape, targets, False, dtype, arch=arch)
            write_safetensors(os.path.join(out_dir, name + suffix + ".safetensors"), tensors, meta)
            print("family/%s%s: loss %.4f, %.4f; |logits| %.3g, |eval logits| %.3g" %
                  (name, suffix, tensors["loss_step0"].item(), tensors["loss_step1"].item(),
                   tensors["logits"].norm().item(), tensors["eval_logits"].norm().item()))


# ---------------------------------------------------------------------------------------------------------------
# Interop fixtures, in tests/fixtures/interop/ (tests/test_safetensors.cpp, tests/test_classify_preprocess.cpp).
# They draw from their own generator, so adding them changed no other fixture.

EXPORTER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "export_torchvision.py")
EXPORT_BATCHES_TRACKED = 7  # num_batches_tracked of every BatchNorm in the exported resnet18
EXPORT_INPUT_SHAPE = (2, 3, 224, 224)


def make_torchvision_export_fixture(out_dir):
    """A full torchvision resnet18 (1000 classes, ImageNet stem: its own layout, unchanged) exported through the
    user's path (torch.save -> tools/export_torchvision.py --state-dict), and PyTorch's eval-mode logits.

    The exported file is 47 MB, too big to commit, so the fixture keeps what identifies it instead: its JSON
    header verbatim, its size and its CRC-32. Its weights are the formula weights (running stats included, so
    eval mode is not the identity) with num_batches_tracked = 7, which the C++ test reproduces: it rebuilds the
    file from the header and the formula, checks that size and CRC-32 match (so the bytes it loads are the
    bytes the exporter wrote), loads it with resnet::io::load_safetensors and compares the logits."""
    model = torchvision.models.resnet18()
    apply_formula_weights(model)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.num_batches_tracked.fill_(EXPORT_BATCHES_TRACKED)
    with tempfile.TemporaryDirectory() as tmp:
        pth = os.path.join(tmp, "resnet18.pth")
        exported = os.path.join(tmp, "resnet18.safetensors")
        torch.save(model.state_dict(), pth)
        subprocess.run([sys.executable, EXPORTER, "--state-dict", pth, exported], check=True)
        with open(exported, "rb") as f:
            blob = f.read()
    (header_size,) = struct.unpack("<Q", blob[:8])
    model.eval()
    x = formula_input(0, EXPORT_INPUT_SHAPE)
    with torch.no_grad():
        logits = model(x)
        logits_f64 = model.double()(x.double())
    write_safetensors(os.path.join(out_dir, "torchvision_resnet18.safetensors"),
                      {"logits": logits, "logits_f64": logits_f64},
                      dict(export_header=blob[8:8 + header_size].decode(), export_size=len(blob),
                           export_crc32=zlib.crc32(blob), num_batches_tracked=EXPORT_BATCHES_TRACKED,
                           input_shape=json.dumps(list(EXPORT_INPUT_SHAPE))))
    print("torchvision_resnet18: export %d bytes, crc32 %08x, |logits| %.3g" %
          (len(blob), zlib.crc32(blob), logits.norm().item()))


def make_dtype_fixtures(out_dir, g):
    """safetensors_dtypes: the same values stored as F16, BF16, F32, F64 (and integers as I64), each next to
    what PyTorch makes of them in float64 ("expected.<dtype>"): zeros of both signs, subnormals, overflow to
    inf, inf, nan. torchvision_basic_block_bf16: a torchvision BasicBlock (4 -> 8, stride 2, projection
    shortcut, as resnet's _make_layer builds it) exported in BF16 by export_torchvision's own functions; its
    values as float64 are "block/<name>" in safetensors_dtypes."""
    edge = torch.tensor([0.0, -0.0, 1.0, -2.5, math.pi, 1.0009765625, 65504.0, 70000.0, 1e-5, 6e-8, 1e-40, 1e38,
                         3.3e38, -1e30, float("inf"), float("-inf"), float("nan")], dtype=torch.float64)
    tensors = {}
    for name, dtype in [("F16", torch.float16), ("BF16", torch.bfloat16), ("F32", torch.float32),
                        ("F64", torch.float64)]:
        tensors["values." + name] = edge.to(dtype)
        tensors["expected." + name] = edge.to(dtype).double()
    integers = torch.tensor([[0, -1, 7], [2 ** 40 + 3, -(2 ** 52), 123456789]], dtype=torch.int64)
    tensors["values.I64"] = integers
    tensors["expected.I64"] = integers.double()

    block = torchvision.models.resnet.BasicBlock(
        4, 8, stride=2, downsample=nn.Sequential(torchvision.models.resnet.conv1x1(4, 8, 2), nn.BatchNorm2d(8)))
    with torch.no_grad():
        for name, t in list(block.named_parameters()) + list(block.named_buffers()):
            if name.endswith("num_batches_tracked"):
                t.fill_(3)
            elif name.endswith("running_var"):
                t.copy_(torch.rand(t.shape, generator=g) + 0.5)
            else:
                t.copy_(torch.randn(t.shape, generator=g))
    exported = export_torchvision.convert(block.state_dict(), torch.bfloat16)
    write_safetensors(os.path.join(out_dir, "torchvision_basic_block_bf16.safetensors"), exported,
                      {"format": "pt", "source": "torchvision BasicBlock(4, 8, stride=2)"})
    for name, t in exported.items():
        tensors["block/" + name] = t.double()
    write_safetensors(os.path.join(out_dir, "safetensors_dtypes.safetensors"), tensors, {})


IMAGENET_MEAN, IMAGENET_STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]


def make_image_fixtures(out_dir, g):
    """image_preprocess: 8-bit RGB images [H, W, 3] (as stb_image decodes them) through torchvision's
    ToTensor -> Resize(size, bilinear, antialias) -> CenterCrop(crop) -> Normalize(ImageNet mean, std), the
    pipeline examples/classify runs at size 256, crop 224. Cases: downscaling with a centre crop offset of
    6.5 (Python rounds it to 6), upscaling, and an image whose shorter side already has the size (no resize;
    offset 7.5 rounds to 8); the first two with and without antialiasing."""
    import torchvision.transforms as T

    images = {"down": (23, 37), "up": (7, 5), "same": (27, 16)}
    cases = [("down_aa", "down", 16, 12, True), ("down", "down", 16, 12, False), ("up_aa", "up", 12, 10, True),
             ("up", "up", 12, 10, False), ("same", "same", 16, 12, True)]
    tensors = {}
    for name, (h, w) in images.items():
        tensors["image/" + name] = torch.randint(0, 256, (h, w, 3), generator=g, dtype=torch.int64)
    for case, image, size, crop, antialias in cases:
        pixels = tensors["image/" + image].to(torch.uint8).numpy()
        pipeline = T.Compose([T.ToTensor(), T.Resize(size, antialias=antialias), T.CenterCrop(crop),
                              T.Normalize(IMAGENET_MEAN, IMAGENET_STD)])
        tensors["expected/" + case] = pipeline(pixels).unsqueeze(0)
    write_safetensors(os.path.join(out_dir, "image_preprocess.safetensors"), tensors,
                      dict(cases=json.dumps([[c, i, s, k, int(a)] for c, i, s, k, a in cases])))


def make_interop_fixtures(out_dir):
    # In their own directory: test_parity_layers.cpp requires every other file to be a layer case.
    out_dir = os.path.join(out_dir, "interop")
    os.makedirs(out_dir, exist_ok=True)
    g = torch.Generator().manual_seed(5)
    make_torchvision_export_fixture(out_dir)
    make_dtype_fixtures(out_dir, g)
    make_image_fixtures(out_dir, g)


# ---------------------------------------------------------------------------------------------------------------
# bf16 fixtures, in tests/fixtures/bf16/ (tests/test_parity_bf16.cpp): torch.autocast("cpu", dtype=bfloat16), the
# semantics of Precision::BF16 (include/resnet/core/precision.hpp). They draw from their own generator (and the
# network cases from the formula), and are made last, so adding them changed no other fixture; --group bf16
# makes them alone.

BF16_SEED = 16
BF16_TOLERANCE = dict(rtol=1.6e-2, atol=1e-5)  # torch.testing's defaults for bfloat16


def bf16_representable(t):
    """t rounded to the nearest bfloat16 (ties to even) and back: an operand that autocast's rounding leaves as
    it is, so that PyTorch's rounding and ours see the same numbers."""
    return t.to(torch.bfloat16).float()


def autocast_bf16(enabled=True):
    return torch.autocast("cpu", dtype=torch.bfloat16, enabled=enabled)


def bf16_layer_case(out_dir, name, module, x, metadata, g):
    """Conv2d or Linear forward and backward under autocast, from bf16-representable input, parameters and
    grad_output; stored in float32 under layer_case's names. PyTorch rounds the results (output, grad_input and
    the parameter gradients) to bf16, we keep them in float, so the C++ test compares with bf16 tolerances.
    Before writing, the same computation in float64 from the same operands (what an exact float-accumulating
    bf16 implementation approaches) is checked to be within those tolerances of PyTorch's: the fixture can be
    met by a correct implementation."""
    scale = 1 / math.sqrt(module.weight[0].numel())  # PyTorch's own initial bound, 1 / sqrt(fan_in)
    with torch.no_grad():
        for _, p in module.named_parameters():
            p.copy_(bf16_representable(torch.randn(p.shape, generator=g) * scale))
    x = bf16_representable(x)
    tensors = {"input": x.clone()}
    for n, p in module.named_parameters():
        tensors[n] = p.detach().clone()
    exact = {}
    reference = {n: p.detach().double().requires_grad_(True) for n, p in module.named_parameters()}
    x = x.clone().requires_grad_(True)
    x64 = x.detach().double().requires_grad_(True)
    with autocast_bf16():
        y = module(x)
    assert y.dtype == torch.bfloat16, "%s: autocast did not run in bf16" % name
    y = y.float()
    grad = bf16_representable(torch.randn(y.shape, generator=g))
    tensors["grad_output"] = grad
    y.backward(grad)
    tensors["output"] = y.detach()
    tensors["grad_input"] = x.grad
    for n, p in module.named_parameters():
        tensors["grad." + n] = p.grad.clone()

    if isinstance(module, nn.Conv2d):
        y64 = F.conv2d(x64, reference["weight"], reference.get("bias"), module.stride, module.padding,
                       groups=module.groups)
    else:
        y64 = F.linear(x64, reference["weight"], reference.get("bias"))
    y64.backward(grad.double())
    exact["output"], exact["grad_input"] = y64.detach(), x64.grad
    for n, p in reference.items():
        exact["grad." + n] = p.grad
    errors = []
    for key, e in exact.items():
        torch.testing.assert_close(tensors[key].double(), e, **BF16_TOLERANCE, msg=lambda m: name + " " + key + m)
        errors.append("%s %.1e" % (key, ((tensors[key].double() - e).norm() / e.norm()).item()))
    metadata = dict(metadata, precision="bf16", rtol=repr(BF16_TOLERANCE["rtol"]), atol=repr(BF16_TOLERANCE["atol"]))
    write_safetensors(os.path.join(out_dir, name + ".safetensors"), tensors, metadata)
    print("bf16/%s: autocast against float64 of the same operands, rel L2: %s" % (name, ", ".join(errors)))


def relative_l2(actual, expected):
    return torch.tensor(((actual.double() - expected.double()).norm() / expected.double().norm()).item(),
                        dtype=torch.float64)


def bf16_network_case(stem, num_classes, input_shape, targets):
    """One train-mode forward, cross-entropy and backward of torchvision's resnet18 (formula weights, input of
    step 0) under autocast and in float64, from the same float weights; and an eval-mode forward of each from
    the formula weights again. Returns the float64 logits, loss and eval logits, autocast's relative L2 error
    against them and against every parameter's float64 gradient, and the metadata."""
    runs = {}
    for mode, dtype in [("autocast", torch.float32), ("float64", torch.float64)]:
        model = torchvision.models.resnet18(num_classes=num_classes)
        if stem == "cifar":
            model.conv1 = nn.Conv2d(3, 64, 3, 1, 1, bias=False)
            model.maxpool = nn.Identity()
        apply_formula_weights(model)
        model = model.to(dtype).train()
        x, y = formula_input(0, input_shape).to(dtype), torch.tensor(targets)
        with autocast_bf16(mode == "autocast"):
            logits = model(x)
            loss = F.cross_entropy(logits, y)
        loss.backward()
        grads = {n: p.grad.clone() for n, p in model.named_parameters()}
        apply_formula_weights(model)  # the running stats again, which the train-mode forward updated
        model.eval()
        with torch.no_grad(), autocast_bf16(mode == "autocast"):
            eval_logits = model(x)
        runs[mode] = dict(logits=logits.detach(), loss=loss.detach(), eval_logits=eval_logits, grads=grads)
        parameters = [[n, list(p.shape)] for n, p in model.named_parameters()]
    ours, exact = runs["autocast"], runs["float64"]
    assert ours["logits"].dtype == torch.bfloat16, "autocast did not run the network in bf16"
    tensors = {"targets": torch.tensor(targets), "logits": exact["logits"], "loss": exact["loss"],
               "eval_logits": exact["eval_logits"]}
    for key in ("logits", "loss", "eval_logits"):
        tensors["autocast_error/" + key] = relative_l2(ours[key], exact[key])
    for n, g in exact["grads"].items():
        tensors["autocast_error/grad/" + n] = relative_l2(ours["grads"][n], g)
    meta = dict(stem=stem, num_classes=num_classes, input_shape=json.dumps(list(input_shape)), precision="bf16",
                parameters=json.dumps(parameters))
    return tensors, meta


# (name, stem, classes, input shape, targets): the first step of NETWORK_CASES' resnet18_cifar and
# resnet18_imagenet.
BF16_NETWORK_CASES = [
    ("resnet18_cifar", "cifar", 10, (2, 3, 32, 32), [3, 7]),
    ("resnet18_imagenet", "imagenet", 1000, (2, 3, 72, 72), [17, 981]),
]


def make_bf16_fixtures(out_dir):
    out_dir = os.path.join(out_dir, "bf16")
    os.makedirs(out_dir, exist_ok=True)
    g = torch.Generator().manual_seed(BF16_SEED)

    def randn(*shape):
        return torch.randn(*shape, generator=g)

    # The six conv cases of make_layer_fixtures, and one our Conv2d runs as Winograd in training mode (3x3/1/1,
    # at least 16 channels in and out, N * OH * OW >= 512: kernels::use_winograd), with an odd height so that
    # the last 2x2 output tiles are partial.
    convs = CONV_CASES + [("conv2d_3x3_s1_p1_winograd", 32, 32, 3, 1, 1, True, (2, 32, 15, 18))]
    for case, cin, cout, k, s, p, bias, shape in convs:
        m = nn.Conv2d(cin, cout, k, s, p, bias=bias)
        bf16_layer_case(out_dir, case, m, randn(*shape), conv_meta(cin, cout, k, s, p, bias), g)
    # Larger than make_layer_fixtures' Linear cases: this PyTorch (1.13, Debian's build, no MKL) runs a bf16
    # matrix product with m * k * n <= 16^3 in its own gemm, which accumulates some of them (the backward ones)
    # in bf16 (off by up to ~500 bf16 ulps on a 3x17 -> 10 case), and larger ones in oneDNN, which accumulates
    # in float as autocast means to (within one ulp of the exact product rounded to bf16).
    for case, fin, fout, bias, n in [("linear", 70, 33, True, 3), ("linear_nobias", 37, 29, False, 5)]:
        m = nn.Linear(fin, fout, bias=bias)
        bf16_layer_case(out_dir, case, m, randn(n, fin),
                        dict(module="Linear", in_features=fin, out_features=fout, bias=int(bias)), g)

    for name, stem, classes, shape, targets in BF16_NETWORK_CASES:
        tensors, meta = bf16_network_case(stem, classes, shape, targets)
        write_safetensors(os.path.join(out_dir, name + ".safetensors"), tensors, meta)
        grads = sorted((v.item(), k[len("autocast_error/grad/"):]) for k, v in tensors.items()
                       if k.startswith("autocast_error/grad/"))
        print("bf16/%s: autocast against float64, rel L2: logits %.2e, loss %.2e, eval logits %.2e; parameter "
              "gradients min %.2e (%s), median %.2e, max %.2e (%s)" %
              (name, tensors["autocast_error/logits"].item(), tensors["autocast_error/loss"].item(),
               tensors["autocast_error/eval_logits"].item(), grads[0][0], grads[0][1],
               grads[len(grads) // 2][0], grads[-1][0], grads[-1][1]))

    # Last, so that they drew nothing the cases above draw: the grouped convs of make_layer_fixtures.
    for case, cin, cout, k, s, p, bias, groups, shape in GROUPED_CONV_CASES:
        m = nn.Conv2d(cin, cout, k, s, p, bias=bias, groups=groups)
        bf16_layer_case(out_dir, case, m, randn(*shape), conv_meta(cin, cout, k, s, p, bias, groups), g)


def measure_float_noise(count):
    def rel(a, b):
        return ((a.double() - b.double()).norm() / b.double().norm()).item()

    cases = [(name, "resnet18", stem, classes, shape, targets, nesterov)
             for name, stem, classes, shape, targets, nesterov in NETWORK_CASES]
    cases += [(name, arch, stem, classes, shape, targets, False)
              for name, arch, stem, classes, shape, targets in FAMILY_CASES]
    for name, arch, stem, classes, shape, targets, nesterov in cases:
        worst = {}
        for k in range(1, count + 1):
            runs = [run_network(stem, classes, shape, targets, nesterov, dtype, INPUT_TAG + 10 * k, arch)[0]
                    for dtype in (torch.float32, torch.float64)]
            for key in runs[1]:
                if runs[1][key].is_floating_point() and not key.endswith("num_batches_tracked"):
                    quantity = key.split("/")[0]
                    worst[quantity] = max(worst.get(quantity, 0.0), rel(runs[0][key], runs[1][key]))
        print(name + ": " + ", ".join("%s %.1e" % kv for kv in sorted(worst.items())))


# --group's names, in the order a full run makes them.
GROUPS = {"layer": make_layer_fixtures, "network": make_network_fixtures, "interop": make_interop_fixtures,
          "bf16": make_bf16_fixtures, "family": make_family_fixtures}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    default_out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures")
    parser.add_argument("--out", default=default_out)
    parser.add_argument("--measure-float-noise", type=int, metavar="N", default=0)
    parser.add_argument("--group", action="append", choices=list(GROUPS), metavar="GROUP",
                        help="make only this group of fixtures (%s; repeatable); default all" % ", ".join(GROUPS))
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.measure_float_noise:
        measure_float_noise(args.measure_float_noise)
        return
    os.makedirs(args.out, exist_ok=True)
    groups = args.group or GROUPS
    # The layer group draws from the global generator, seeded here; the others from their own generator or the
    # formula, so any subset gives the same files as a full run.
    torch.manual_seed(0)
    for group, make in GROUPS.items():
        if group in groups:
            make(args.out)


if __name__ == "__main__":
    main()
