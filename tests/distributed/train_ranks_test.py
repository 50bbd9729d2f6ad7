#!/usr/bin/env python3
"""train_cifar10 under mpirun, on generated CIFAR-format data (tools/fake_cifar10.py):

1. 2 ranks with --sync-bn end where 1 process with the same global batch ends: every tensor of the final
   checkpoint (weights, BatchNorm statistics, momentum) within float rounding of the 1-process run's, and the
   same test accuracy;
2. without --sync-bn the 2-rank run is a different run (per-rank BatchNorm statistics, as DDP);
3. a checkpoint of a 2-rank run refuses to resume on 1 process, naming the ranks to use;
4. a rank killed with SIGKILL (no chance to call MPI_Abort) ends the whole job, non-zero, without a hang.

Usage: train_ranks_test.py MPIEXEC TRAIN_CIFAR10
"""
import os
import re
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "tools"))
from kill_resume_test import checkpoints, read_safetensors  # noqa: E402


def floats(raw):
    return struct.unpack(f"<{len(raw) // 4}f", raw)


def largest_difference(a, b):
    """max |a - b| over every tensor, and max |a|, of two final checkpoints."""
    _, ta = read_safetensors(checkpoints(a)[-1])
    _, tb = read_safetensors(checkpoints(b)[-1])
    assert ta.keys() == tb.keys(), "different tensor names"
    worst = largest = 0.0
    for name in ta:
        if name.endswith("num_batches_tracked"):
            assert ta[name] == tb[name], name
            continue
        for x, y in zip(floats(ta[name]), floats(tb[name])):
            worst = max(worst, abs(x - y))
            largest = max(largest, abs(x))
    return worst, largest


def ranks_of(train, marker):
    """The pids of the running `train` processes whose command line holds `marker`."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if argv and argv[0] == train.encode() and marker.encode() in argv:
            pids.append(int(entry))
    return sorted(pids)


def main():
    mpiexec, train = sys.argv[1], sys.argv[2]
    mpirun = [mpiexec, "--allow-run-as-root", "--oversubscribe", "-np", "2"]
    work = tempfile.mkdtemp(prefix="resnet_train_ranks_")
    data = os.path.join(work, "data")
    subprocess.run([sys.executable, os.path.join(HERE, "..", "..", "tools", "fake_cifar10.py"), data, "32"],
                   check=True, stdout=subprocess.DEVNULL)
    env = dict(os.environ, OMP_NUM_THREADS="1")

    def run(launcher, run_dir, *extra, expect_ok=True):
        # 41 images in batches of 32: an update on 16 + 16 images, then one on 5 + 4 (the uneven last batch)
        command = launcher + [train, "--data", data, "--train-subset", "41", "--epochs", "1", "--batch-size", "32",
                              "--width", "8", "--lr", "0.05", "--schedule", "constant", "--precision", "fp32", "--threads", "1",
                              "--no-progress",
                              "--checkpoint-dir", os.path.join(work, run_dir), *extra]
        done = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, text=True,
                              timeout=600)
        if expect_ok and done.returncode != 0:
            raise AssertionError(f"{' '.join(command)} exited {done.returncode}:\n{done.stdout}")
        return done

    try:
        one = run([], "one", "--sync-bn")
        synced = run(mpirun, "synced", "--sync-bn")
        per_rank = run(mpirun, "per_rank")
        accuracy = re.compile(r"Test accuracy: ([0-9.]+)%")
        worst, largest = largest_difference(os.path.join(work, "one"), os.path.join(work, "synced"))
        print(f"2 ranks with --sync-bn against 1 process, after 2 updates: largest difference {worst:.3g} "
              f"(largest value {largest:.3g})")
        # Float rounding: the ranks sum the same products in another order. It grows with the updates, and
        # once a ReLU input lies within rounding of zero the runs take different branches; after 2 updates
        # it stays many orders below what a different computation gives (below). The longer run is proven
        # in double by tests/distributed/test_distributed.cpp.
        if worst > 1e-4 * largest:
            raise AssertionError(f"the 2-rank run ended {worst} away from the 1-process run")
        if accuracy.search(one.stdout).group(1) != accuracy.search(synced.stdout).group(1):
            raise AssertionError("the 2-rank run's test accuracy differs from the 1-process run's")
        if "Ranks: 2, 16 images each per update, BatchNorm over the whole batch." not in synced.stdout:
            raise AssertionError(f"the 2-rank run did not say how it splits the batch:\n{synced.stdout}")
        if synced.stdout.count("Test accuracy") != 1:
            raise AssertionError(f"the result was not printed once (rank 0 alone):\n{synced.stdout}")
        apart, _ = largest_difference(os.path.join(work, "one"), os.path.join(work, "per_rank"))
        print(f"without --sync-bn (per-rank BatchNorm): largest difference {apart:.3g}")
        if apart < 100 * worst:
            raise AssertionError("per-rank BatchNorm gave the same run as synchronized BatchNorm")

        stopped = run(mpirun, "stopped", "--max-steps", "1")
        resumed = run([], "stopped", "--resume", expect_ok=False)
        if resumed.returncode == 0 or "was written by 2 ranks and this run has 1: resume it with mpirun -np 2" \
                not in resumed.stdout:
            raise AssertionError(f"a 1-process resume of a 2-rank checkpoint was not refused:\n{resumed.stdout}")
        del stopped

        # One rank dies without a word: the launcher sees it and ends the other, which would otherwise wait
        # in its next allreduce forever.
        died = os.path.join(work, "died")
        job = subprocess.Popen(mpirun + [train, "--data", data, "--epochs", "100000", "--width", "8", "--threads",
                                         "1", "--precision", "fp32", "--no-progress", "--checkpoint-dir", died],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, text=True)
        deadline = time.monotonic() + 60
        while len(ranks_of(train, died)) < 2 and time.monotonic() < deadline and job.poll() is None:
            time.sleep(0.1)
        time.sleep(1)  # into training
        ranks = ranks_of(train, died)
        if len(ranks) != 2:
            job.kill()
            raise AssertionError(f"the 2-rank run did not start 2 ranks: {ranks}")
        os.kill(ranks[-1], signal.SIGKILL)
        try:
            job.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            job.kill()
            for pid in ranks_of(train, died):
                os.kill(pid, signal.SIGKILL)
            raise AssertionError("a job whose rank was killed hung for 60 s")
        left = ranks_of(train, died)
        if job.returncode == 0 or left:
            raise AssertionError(f"a job whose rank was killed exited {job.returncode}, ranks left: {left}")
        print(f"a rank killed with SIGKILL: the job exited {job.returncode}, no rank left")
        print("train_ranks_test: PASS")
    except (AssertionError, subprocess.TimeoutExpired) as e:
        print(f"train_ranks_test: FAIL: {e} (work directory kept: {work})", file=sys.stderr)
        return 1
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
