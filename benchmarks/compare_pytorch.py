#!/usr/bin/env python3
"""Runs the performance table's cases (ResNet18 and ResNet50) in our bench_resnet18 (fp32 and bf16) and in
PyTorch (torchvision's model; fp32 and bf16 autocast, each NCHW and channels_last), alternating A B C A B C ...
in one run, and prints one table: median images/s [min-max], ratios, peak RSS.

Every measurement is a fresh process, so peak RSS (ru_maxrss of that process) is the case's own footprint.
PyTorch runs under Debian's /usr/bin/python3 with torch.set_num_threads set explicitly (its default is 1 on
these machines). Both sides time the same work: forward, (loss, backward, SGD momentum step) on random data.
PyTorch's bf16 is torch.autocast("cpu", dtype=torch.bfloat16) around forward and loss, as a user would run it;
ours is bench_resnet18 --precision=bf16 (set_precision(Precision::BF16)).

  benchmarks/compare_pytorch.py --bench build/benchmarks/bench_resnet18 [--threads 2] [--repeats 3]
                                [--seconds 10] [--cases cifar_train_128,...] [--precisions fp32,bf16]
                                [--baseline OTHER_BENCH]

--baseline adds another build of ours (say, of the commit before a change) to the same alternation, in fp32,
with its column and the ratio of ours to it, so that a change is measured against its base in one run.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

# name: (description, torchvision model, training?, batch, image size, our Google Benchmark case)
CASES = {
    "cifar_train_128": ("CIFAR ResNet18 training step, batch 128", "resnet18", True, 128, 32,
                        "BM_CifarTrainStep/128/"),
    "cifar_train_32": ("CIFAR ResNet18 training step, batch 32", "resnet18", True, 32, 32, "BM_CifarTrainStep/32/"),
    "cifar_eval_128": ("CIFAR ResNet18 eval forward, batch 128", "resnet18", False, 128, 32,
                       "BM_EvalForward/128/32/"),
    "imagenet_eval_1": ("ImageNet ResNet18 eval forward, batch 1", "resnet18", False, 1, 224, "BM_EvalForward/1/224/"),
    "imagenet_eval_16": ("ImageNet ResNet18 eval forward, batch 16", "resnet18", False, 16, 224,
                         "BM_EvalForward/16/224/"),
    "imagenet_train_16": ("ImageNet ResNet18 training step, batch 16", "resnet18", True, 16, 224,
                          "BM_ImageNetTrainStep/16/"),
    "resnet50_eval_1": ("ImageNet ResNet50 eval forward, batch 1", "resnet50", False, 1, 224,
                        "BM_ResNet50EvalForward/1/"),
    "resnet50_eval_16": ("ImageNet ResNet50 eval forward, batch 16", "resnet50", False, 16, 224,
                         "BM_ResNet50EvalForward/16/"),
    "resnet50_train_16": ("ImageNet ResNet50 training step, batch 16", "resnet50", True, 16, 224,
                          "BM_ResNet50TrainStep/16/"),
}
TORCH_PYTHON = "/usr/bin/python3"


def torch_worker(case, memory_format, precision, threads, seconds):
    """Runs in Debian's Python: times one case in PyTorch and prints images/s."""
    import contextlib
    import torch
    import torchvision

    torch.set_num_threads(threads)
    _, model, training, batch, size, _ = CASES[case]
    classes = 10 if size == 32 else 1000
    net = getattr(torchvision.models, model)(num_classes=classes)
    if size == 32:  # the CIFAR stem: 3x3 stride-1 conv, no max-pool
        net.conv1 = torch.nn.Conv2d(3, 64, 3, 1, 1, bias=False)
        net.maxpool = torch.nn.Identity()
    fmt = torch.channels_last if memory_format == "channels_last" else torch.contiguous_format
    net = net.to(memory_format=fmt)
    images = torch.randn(batch, 3, size, size).to(memory_format=fmt)
    labels = torch.arange(batch) % classes
    loss_fn = torch.nn.CrossEntropyLoss()
    sgd = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    net.train(training)

    def autocast():
        if precision == "bf16":
            return torch.autocast("cpu", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def step():
        if training:
            sgd.zero_grad()
            with autocast():
                loss = loss_fn(net(images), labels)
            loss.backward()
            sgd.step()
        else:
            with torch.no_grad(), autocast():
                net(images)

    step()  # warm-up: oneDNN primitive creation, allocator
    steps, start = 0, time.perf_counter()
    while steps < 2 or time.perf_counter() - start < seconds:
        step()
        steps += 1
    print(batch * steps / (time.perf_counter() - start))


def run_process(command):
    """Runs command; returns (stdout, peak RSS of that process in MB)."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(command, stdout=out, stderr=err, text=True)
        _, status, usage = os.wait4(proc.pid, 0)  # wait4 reports this child's own ru_maxrss
        proc.returncode = 0  # reaped here; keep Popen from waiting again
        out.seek(0)
        err.seek(0)
        if status != 0:
            sys.exit(f"{' '.join(command)} failed (status {status}):\n{err.read()}")
        return out.read(), usage.ru_maxrss / 1024.0


def ours(bench, case, precision, threads, seconds):
    # A baseline built before --precision existed runs fp32 and takes no such flag.
    flags = [f"--precision={precision}"] if precision else []
    out, rss = run_process([bench, f"--threads={threads}", *flags, f"--benchmark_filter=^{CASES[case][5]}",
                            f"--benchmark_min_time={seconds}", "--benchmark_format=json"])
    runs = [b for b in json.loads(out)["benchmarks"] if b.get("run_type", "iteration") == "iteration"]
    return runs[0]["images/s"], rss


def pytorch(case, memory_format, precision, threads, seconds):
    out, rss = run_process([TORCH_PYTHON, os.path.abspath(__file__), "--torch-worker", case, memory_format,
                            precision, str(threads), str(seconds)])
    return float(out.strip().splitlines()[-1]), rss


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bench", default="build/benchmarks/bench_resnet18")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=10.0, help="timed seconds per measurement")
    parser.add_argument("--cases", default=",".join(CASES))
    parser.add_argument("--precisions", default="fp32,bf16", help="fp32, bf16 or both, on both sides")
    parser.add_argument("--baseline", help="another bench_resnet18 (e.g. of the previous commit) to alternate with")
    parser.add_argument("--baseline-precision-flag", action="store_true",
                        help="the baseline takes --precision (built at or after the commit that added it)")
    parser.add_argument("--torch-worker", nargs=5, metavar=("CASE", "FORMAT", "PRECISION", "THREADS", "SECONDS"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.torch_worker:
        case, fmt, precision, threads, seconds = args.torch_worker
        torch_worker(case, fmt, precision, int(threads), float(seconds))
        return

    unknown = set(args.cases.split(",")) - set(CASES)
    if unknown:
        parser.error(f"unknown --cases {','.join(sorted(unknown))}; the cases: {','.join(CASES)}")
    precisions = args.precisions.split(",")
    assert set(precisions) <= {"fp32", "bf16"}, "--precisions takes fp32 and bf16"
    # (side name, runner): ours and PyTorch's two formats in each precision, then the baseline.
    sides = []
    for p in precisions:
        sides.append((f"ours_{p}", lambda case, p=p: ours(args.bench, case, p, args.threads, args.seconds)))
        for fmt in ("nchw", "channels_last"):
            sides.append((f"torch_{p}_{fmt}", lambda case, p=p, fmt=fmt: pytorch(case, fmt, p, args.threads,
                                                                                 args.seconds)))
    if args.baseline:
        flag = "fp32" if args.baseline_precision_flag else None
        sides.append(("baseline", lambda case: ours(args.baseline, case, flag, args.threads, args.seconds)))
    results = {}
    for case in args.cases.split(","):
        samples = {side: [] for side, _ in sides}
        for repeat in range(args.repeats):  # A B C A B C ...
            for side, run in sides:
                value = run(case)
                samples[side].append(value)
                print(f"  {case} #{repeat + 1} {side}: {value[0]:.1f} images/s, peak RSS {value[1]:.0f} MB",
                      file=sys.stderr, flush=True)
        results[case] = samples

    def cell(values):
        rates = [v[0] for v in values]
        return f"{statistics.median(rates):.1f} [{min(rates):.1f}-{max(rates):.1f}]"

    print(f"\n{args.threads} threads, {args.repeats} runs each, alternating; medians [min-max] in images/s, "
          f"peak RSS medians in MB. 'best' is PyTorch's faster format in that precision.\n")
    names = [side for side, _ in sides]
    header = ["case"] + names
    for p in precisions:
        header += [f"ours {p} / best {p}", f"RSS ours {p} / best {p}"]
    if "bf16" in precisions:
        header.append("ours bf16 / best PyTorch")
    if args.baseline:
        header.append("ours fp32 / baseline")
    print("| " + " | ".join(header) + " |")
    print("|---" * len(header) + "|")
    for case, samples in results.items():
        med = {side: statistics.median(v[0] for v in samples[side]) for side in names}
        rss = {side: statistics.median(v[1] for v in samples[side]) for side in names}
        row = [CASES[case][0]] + [cell(samples[side]) for side in names]
        for p in precisions:
            best = max((f"torch_{p}_nchw", f"torch_{p}_channels_last"), key=lambda side: med[side])
            row += [f"{med[f'ours_{p}'] / med[best]:.2f}x", f"{rss[f'ours_{p}'] / rss[best]:.2f}x"]
        if "bf16" in precisions:
            fastest = max(med[side] for side in names if side.startswith("torch_"))
            row.append(f"{med['ours_bf16'] / fastest:.2f}x")
        if args.baseline:
            row.append(f"{med['ours_fp32'] / med['baseline']:.2f}x" if "ours_fp32" in med else "-")
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
