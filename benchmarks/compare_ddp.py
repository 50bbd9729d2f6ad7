#!/usr/bin/env python3
"""Data-parallel training speed, ours against PyTorch's DistributedDataParallel, side by side in one run.

The model of bench_data_parallel: ResNet18 with the CIFAR stem on 1 x 28 x 28 input (Fashion-MNIST), 10 classes,
a global batch split over the ranks; forward, loss, backward with the gradients averaged over the ranks, SGD
with momentum. Each configuration (ranks x threads, precision) runs ours (mpirun bench_data_parallel) and
PyTorch's (DDP over gloo, torch.multiprocessing; bf16 is autocast with channels_last, PyTorch's best format
here), alternating, --repeats times, and the table gives median images/s [min-max] and ours / PyTorch.

  benchmarks/compare_ddp.py --bench build-native/benchmarks/bench_data_parallel [--repeats 3] [--steps 6]
                            [--batch 128] [--configs 1x1,2x1,1x2] [--precisions fp32,bf16]

PyTorch runs under Debian's /usr/bin/python3 (the interpreter that has it).
"""
import argparse
import os
import re
import statistics
import subprocess
import sys

TORCH_PYTHON = "/usr/bin/python3"


def torch_rank(rank, ranks, threads, batch, steps, warmup, precision, port, results):
    """One DDP rank: times `steps` training steps after `warmup`, and rank 0 puts the median in results."""
    import time
    import torch
    import torch.distributed as dist
    import torchvision

    torch.set_num_threads(threads)
    os.environ["MASTER_ADDR"], os.environ["MASTER_PORT"] = "127.0.0.1", str(port)
    dist.init_process_group("gloo", rank=rank, world_size=ranks)
    net = torchvision.models.resnet18(num_classes=10)
    net.conv1 = torch.nn.Conv2d(1, 64, 3, 1, 1, bias=False)
    net.maxpool = torch.nn.Identity()
    memory_format = torch.channels_last if precision == "bf16" else torch.contiguous_format
    net = net.to(memory_format=memory_format)
    model = torch.nn.parallel.DistributedDataParallel(net) if ranks > 1 else net
    sgd = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    share = batch // ranks
    x = torch.randn(share, 1, 28, 28).to(memory_format=memory_format)
    y = torch.arange(share) % 10
    times = []
    for i in range(warmup + steps):
        dist.barrier()
        t0 = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
            loss = torch.nn.functional.cross_entropy(model(x), y)
        sgd.zero_grad()
        loss.backward()
        sgd.step()
        dist.barrier()
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    if rank == 0:
        results.put(batch / statistics.median(times))
    dist.destroy_process_group()


def torch_run(ranks, threads, batch, steps, precision, port):
    """Runs in Debian's Python: spawns the ranks and prints images/s."""
    import torch.multiprocessing as mp

    context = mp.get_context("spawn")
    results = context.SimpleQueue()
    mp.start_processes(torch_rank, args=(ranks, threads, batch, steps, 2, precision, port, results), nprocs=ranks,
                       start_method="spawn")
    print(f"images/s {results.get():.2f}")


def ours(bench, ranks, threads, batch, steps, precision):
    command = ["mpirun", "--allow-run-as-root", "--bind-to", "none", "-np", str(ranks), bench, "--threads",
               str(threads), "--batch", str(batch), "--steps", str(steps), "--precision", precision]
    out = subprocess.run(command, check=True, capture_output=True, text=True,
                         env=dict(os.environ, OMP_NUM_THREADS="1")).stdout
    return float(re.search(r": ([0-9.]+) images/s", out).group(1))


def pytorch(ranks, threads, batch, steps, precision, port):
    command = [TORCH_PYTHON, os.path.abspath(__file__), "--torch-worker", f"{ranks},{threads},{batch},{steps},"
               f"{precision},{port}"]
    out = subprocess.run(command, check=True, capture_output=True, text=True,
                         env=dict(os.environ, OMP_NUM_THREADS=str(threads))).stdout
    return float(re.search(r"images/s ([0-9.]+)", out).group(1))


def summary(values):
    return f"{statistics.median(values):.1f} [{min(values):.1f}-{max(values):.1f}]"


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "--torch-worker":
        ranks, threads, batch, steps, precision, port = sys.argv[2].split(",")
        torch_run(int(ranks), int(threads), int(batch), int(steps), precision, int(port))
        return 0
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bench", required=True, help="our bench_data_parallel binary")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--configs", default="1x1,2x1,1x2", help="ranks x threads, comma-separated")
    parser.add_argument("--precisions", default="fp32,bf16")
    args = parser.parse_args()
    rows = []
    port = 29500
    for precision in args.precisions.split(","):
        for config in args.configs.split(","):
            ranks, threads = (int(v) for v in config.split("x"))
            mine, theirs = [], []
            for _ in range(args.repeats):
                mine.append(ours(args.bench, ranks, threads, args.batch, args.steps, precision))
                port += 1
                theirs.append(pytorch(ranks, threads, args.batch, args.steps, precision, port))
            rows.append((f"{ranks} x {threads}", precision, mine, theirs))
            print(f"{config} {precision}: ours {summary(mine)}, PyTorch {summary(theirs)}", flush=True)
    print(f"\nglobal batch {args.batch}, {args.steps} steps a run, {args.repeats} runs each, images/s\n")
    print("| ranks x threads | precision | ours | PyTorch DDP | ours / PyTorch |")
    print("|---|---|---|---|---|")
    for config, precision, mine, theirs in rows:
        ratio = statistics.median(mine) / statistics.median(theirs)
        print(f"| {config} | {precision} | {summary(mine)} | {summary(theirs)} | {ratio:.2f}x |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
