#!/usr/bin/env python3
"""Writes tests/fixtures/lr_schedules.csv: learning rates (and one-cycle momenta) that torch.optim.lr_scheduler
gives, stepped once per update, for the cases tests/test_schedule.cpp rebuilds with resnet::optim::Schedule.

Run with Debian's PyTorch: /usr/bin/python3 tools/make_schedule_fixtures.py
"""
import csv
import pathlib

import torch

OUT = pathlib.Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "lr_schedules.csv"


def optimizer(lr, momentum=0.9):
    return torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=lr, momentum=momentum)


def record(name, opt, scheduler, steps, rows):
    for t in range(steps):
        group = opt.param_groups[0]
        rows.append([name, t, repr(group["lr"]), repr(group["momentum"])])
        opt.step()
        scheduler.step()


def main():
    rows = []
    sched = torch.optim.lr_scheduler
    opt = optimizer(0.1)
    record("step", opt, sched.StepLR(opt, step_size=7, gamma=0.5), 30, rows)

    opt = optimizer(0.1)
    warmup = sched.LinearLR(opt, start_factor=1 / 3, total_iters=5)
    cosine = sched.CosineAnnealingLR(opt, T_max=45, eta_min=0.001)
    record("cosine_warmup", opt, sched.SequentialLR(opt, [warmup, cosine], milestones=[5]), 50, rows)

    opt = optimizer(0.05)
    record("cosine", opt, sched.CosineAnnealingLR(opt, T_max=40), 40, rows)

    opt = optimizer(0.2)
    record("onecycle", opt, sched.OneCycleLR(opt, max_lr=0.2, total_steps=100), 100, rows)

    opt = optimizer(0.1)
    record("onecycle_custom", opt,
           sched.OneCycleLR(opt, max_lr=0.1, total_steps=37, pct_start=0.25, div_factor=10,
                            final_div_factor=100, cycle_momentum=False), 37, rows)

    with OUT.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["case", "step", "lr", "momentum"])
        writer.writerows(rows)
    print(f"wrote {len(rows)} rows to {OUT}")


if __name__ == "__main__":
    main()
