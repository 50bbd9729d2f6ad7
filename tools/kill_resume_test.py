#!/usr/bin/env python3
"""Kills train_cifar10 with SIGKILL at random moments and restarts it with --resume, again and again, on generated
CIFAR-format data (tools/fake_cifar10.py) and a tiny width. Checks the issue's criterion: killing training at any
moment and starting it again with --resume loses at most the current epoch and never corrupts the checkpoint.
After every kill, every checkpoint left loads (complete safetensors, every tensor's bytes present), the newest
never goes back, and it is at most one epoch behind evaluations.csv (which is written just before it). Every run
that reaches the end, and the last one, must end bitwise where an uninterrupted run does (same tensors in the final
checkpoint, same losses, accuracies and learning rates in metrics.csv and evaluations.csv). Standard library only.

With --launcher (say "mpirun --allow-run-as-root --oversubscribe -np 2") every run is a data-parallel job of
that many ranks, and a kill is a SIGKILL to the launcher and every rank at once (its whole process group), as
when a job's allocation ends.

Usage: python3 tools/kill_resume_test.py --train build/examples/train_cifar10 [--kills 20] [--seed 1] [--epochs 4]
                                         [--launcher "mpirun -np 2"]
"""
import argparse
import collections
import json
import os
import random
import re
import shlex
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time

DTYPE_BYTES = {"F16": 2, "BF16": 2, "F32": 4, "F64": 8, "I64": 8}
CHECKPOINT = re.compile(r"checkpoint-(\d{10})\.safetensors$")
# metadata that holds wall-clock times (the logs' deterministic columns are compared on their own)
TIMING_KEYS = {"epoch_sums", "window_sums", "elapsed_seconds", "metrics", "evaluations"}


def read_safetensors(path):
    """Returns (metadata, {name: raw bytes}); raises ValueError unless the file is complete and consistent."""
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 8:
        raise ValueError(f"{path}: {len(data)} bytes, shorter than the header length")
    (length,) = struct.unpack("<Q", data[:8])
    if 8 + length > len(data):
        raise ValueError(f"{path}: header of {length} bytes in a {len(data)}-byte file")
    header = json.loads(data[8 : 8 + length])
    body = data[8 + length :]
    metadata = header.pop("__metadata__", {})
    tensors, end = {}, 0
    for name, entry in header.items():
        begin, stop = entry["data_offsets"]
        count = 1
        for size in entry["shape"]:
            count *= size
        if stop - begin != count * DTYPE_BYTES[entry["dtype"]] or stop > len(body):
            raise ValueError(f"{path}: tensor {name} has offsets {begin}..{stop} in a {len(body)}-byte body")
        tensors[name] = body[begin:stop]
        end = max(end, stop)
    if end != len(body):
        raise ValueError(f"{path}: tensors end at {end}, the body has {len(body)} bytes")
    return metadata, tensors


def checkpoints(run_dir):
    """Checkpoint paths, oldest first, named as training.hpp names them (temporary files do not match)."""
    if not os.path.isdir(run_dir):
        return []
    return [os.path.join(run_dir, n) for n in sorted(os.listdir(run_dir)) if CHECKPOINT.match(n)]


def temporaries(run_dir):
    """Files a save killed before its rename left behind (io/atomic_file.hpp names them <target>.tmp-...)."""
    return {n for n in os.listdir(run_dir) if ".tmp-" in n} if os.path.isdir(run_dir) else set()


def deterministic(csv):
    """The rows of a metrics.csv or evaluations.csv without their last two columns (images/s, seconds)."""
    return [tuple(line.split(",")[:-2]) for line in csv.splitlines()[1:]]


def log_rows(run_dir, name):
    path = os.path.join(run_dir, name)
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return deterministic(f.read())


def metrics_rows(run_dir):
    return log_rows(run_dir, "metrics.csv") + log_rows(run_dir, "evaluations.csv")


def history_rows(metadata):
    return deterministic(metadata["metrics"]) + deterministic(metadata["evaluations"])


def final_state(run_dir):
    """Tensors, non-timing metadata and metrics of the newest checkpoint of a finished run."""
    newest = checkpoints(run_dir)[-1]
    metadata, tensors = read_safetensors(newest)
    fixed = {k: v for k, v in metadata.items() if k not in TIMING_KEYS}
    return os.path.basename(newest), tensors, fixed, history_rows(metadata), metrics_rows(run_dir)


def same_as_reference(run_dir, reference):
    name, tensors, fixed, history, metrics = final_state(run_dir)
    ref_name, ref_tensors, ref_fixed, ref_history, ref_metrics = reference
    problems = []
    if name != ref_name:
        problems.append(f"final checkpoint {name}, the uninterrupted run's is {ref_name}")
    if tensors.keys() != ref_tensors.keys():
        problems.append("different tensor names")
    different = [n for n in ref_tensors if tensors.get(n) != ref_tensors[n]]
    if different:
        problems.append(f"{len(different)} tensors differ, e.g. {different[0]}")
    if fixed != ref_fixed:
        problems.append(f"metadata differs: {set(fixed.items()) ^ set(ref_fixed.items())}")
    if history != ref_history or metrics != ref_metrics:
        problems.append("losses or accuracies differ")
    return problems


def check_after_kill(run_dir, newest_before):
    """Every checkpoint loads, the newest did not go back and is at most one epoch behind evaluations.csv.
    Returns the newest one's update count and completed epochs (-1 and 0 when there is none)."""
    updates, epochs = -1, 0
    for path in checkpoints(run_dir):  # oldest first
        metadata, _ = read_safetensors(path)  # raises on a torn file
        updates, epochs = int(metadata["updates"]), int(metadata["loader_epoch"])
    if updates < newest_before:
        raise AssertionError(f"the newest checkpoint went back from update {newest_before} to {updates}")
    rows = len(log_rows(run_dir, "evaluations.csv"))
    if epochs < rows - 1:
        raise AssertionError(f"evaluations.csv has {rows} epochs, the newest checkpoint only {epochs}")
    return updates, epochs


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--train", default=os.path.join(here, "..", "build", "examples", "train_cifar10"))
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    parser.add_argument("--launcher", default="", help="command before the trainer, e.g. mpirun -np 2")
    args = parser.parse_args()

    work = tempfile.mkdtemp(prefix="resnet_kill_resume_")
    data = os.path.join(work, "data")
    subprocess.run([sys.executable, os.path.join(here, "fake_cifar10.py"), data, "16"], check=True,
                   stdout=subprocess.DEVNULL)
    env = dict(os.environ, OMP_NUM_THREADS="1")

    def command(run_dir):
        # 80 images in batches of 16: 5 updates an epoch
        return shlex.split(args.launcher) + [args.train, "--data", data, "--epochs", str(args.epochs), "--batch-size", "16", "--width", "4",
                "--lr", "0.05", "--threads", "1", "--no-progress", "--checkpoint-dir", run_dir, "--resume"]

    def start(run_dir, log):
        # A session of its own, so that a kill reaches the launcher and every process it started.
        return subprocess.Popen(command(run_dir), stdout=log, stderr=subprocess.STDOUT, env=env,
                                start_new_session=True)

    def kill(process):
        os.killpg(process.pid, signal.SIGKILL)
        code = process.wait()
        for _ in range(500):  # until no process of the group is left to write into the run directory
            try:
                os.killpg(process.pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.01)
        return code

    try:
        whole = os.path.join(work, "whole")
        began = time.monotonic()
        with open(os.path.join(work, "whole.log"), "w") as log:
            if start(whole, log).wait() != 0:
                raise AssertionError(f"the uninterrupted run failed, see {work}/whole.log")
        duration = time.monotonic() - began
        reference = final_state(whole)

        rng = random.Random(args.seed)
        kills = finished = attempts = mid_save = 0
        saved_at_kill = collections.Counter()  # epochs in the newest checkpoint when a kill landed
        newest = -1
        # Delays span one whole uninterrupted run (start-up, training, evaluation, saving, plotting); a run that
        # ends before its kill is compared with the reference and the next one starts in a new directory (a
        # killed run's plotting child may still be writing into the old one).
        run_dir = os.path.join(work, "killed-0")
        while kills < args.kills:
            attempts += 1
            log_path = os.path.join(work, f"attempt-{attempts}.log")
            left_before = temporaries(run_dir)
            with open(log_path, "w") as log:
                process = start(run_dir, log)
                try:
                    code = process.wait(timeout=rng.uniform(0, duration))
                except subprocess.TimeoutExpired:
                    code = kill(process)
            if code == -signal.SIGKILL:
                kills += 1
                newest, epochs = check_after_kill(run_dir, newest)
                saved_at_kill[epochs] += 1
                mid_save += bool(temporaries(run_dir) - left_before)
            elif code == 0:
                problems = same_as_reference(run_dir, reference)
                if problems:
                    raise AssertionError(f"attempt {attempts} finished differently: {'; '.join(problems)}")
                finished += 1
                run_dir = os.path.join(work, f"killed-{finished}")
                newest = -1
            else:
                raise AssertionError(f"attempt {attempts} exited with {code}, see {log_path}")

        with open(os.path.join(work, "last.log"), "w") as log:
            if start(run_dir, log).wait() != 0:
                raise AssertionError(f"the last resume failed, see {work}/last.log")
        problems = same_as_reference(run_dir, reference)
        if problems:
            raise AssertionError(f"the resumed run finished differently: {'; '.join(problems)}")
        spread = ", ".join(f"{count} with {epochs} saved" for epochs, count in sorted(saved_at_kill.items()))
        print(f"kill_resume_test: {kills} kills survived over {attempts} starts ({spread} of {args.epochs} "
              f"epochs; {mid_save} in the middle of a save; {finished} runs reached the end before their "
              f"kill); every run ended bitwise at the "
              f"uninterrupted run's {reference[0]} (one uninterrupted run: {duration:.2f} s)")
    except (AssertionError, ValueError, KeyError) as e:
        print(f"kill_resume_test: FAIL: {e} (work directory kept: {work})", file=sys.stderr)
        return 1
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)  # a killed run's plotting child may still be writing
    return 0


if __name__ == "__main__":
    sys.exit(main())
