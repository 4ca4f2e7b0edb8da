"""`make bench`: where transferlab's speed comes from, measured against the tutorial loop.

    python -m transferlab.bench [--repeats 3] [--per-class 10] [--epochs 15] [--out bench.json]
    python -m transferlab.bench --case reference --freeze-depth 4    # one case, once, as JSON
    python -m transferlab.bench --case queue --epochs 3               # a server's memory over 20 comparisons

Side by side, on the same model (ImageNet EfficientNet-Lite0), data (Fashion-MNIST, n images
per class, the fixed 2 000-image test split), epochs, optimiser and device:

- **reference**: the loop of PyTorch's transfer-learning tutorial: a Dataset of PIL images with
  torchvision transforms, a DataLoader, the full forward pass every batch (frozen blocks only
  have `requires_grad=False`), and the full test split evaluated every epoch;
- **transferlab**: `compare(config, arms=["finetune"])`: the frozen prefix computed once,
  tensors resized in batches, channels_last, 15 points of validation curve on a 500-image split
  of the training pool, the full test split once at the end;

at freeze depth k = 0, half the blocks (both neighbours when the count is odd: 4 and 5 of
EfficientNet-Lite0's 9) and all blocks. Each loop also reports its work in counted FLOPs: the
speed-up up to the ratio of the two is doing less work; beyond it, doing the same work faster.
Then the dashboard's default comparison (both arms): seconds to the first plotted point and to the
verdict, and peak memory. On a GPU, training throughput at 224 px next to timm's published RTX
3090 figures.

Every case runs in its own process, so peak resident memory is that case's own. Figures are
medians over `--repeats` runs.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path

# timm's benchmark (RTX 3090, AMP, channels_last, batch 256, 224 px), training images/s.
TIMM_RTX3090_TRAIN = {"resnet18": 3482, "efficientnet_lite0": 2079}


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def forward_flops(model, size: int, k: int) -> tuple[float, float]:
    """FLOPs of one image's forward pass through the frozen prefix (the blocks before k) and
    through the rest (the blocks from k, and the head), counted by torch's FLOP counter."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    was_training = model.training
    model.eval()
    x = torch.zeros(2, 3, size, size, device=next(model.parameters()).device)
    with torch.no_grad(), FlopCounterMode(display=False) as prefix:
        features = model.forward_blocks(x, 0, k)
    with torch.no_grad(), FlopCounterMode(display=False) as rest:
        model(features, start=k)
    model.train(was_training)
    return prefix.get_total_flops() / 2, rest.get_total_flops() / 2


def loop_gflop(flops: tuple[float, float], prefix_images: int, train_images: int, eval_images: int) -> float:
    """A run's work in GFLOP: the prefix's forward for `prefix_images`; forward and backward
    (counted as twice the forward) of the rest for `train_images`; its forward for `eval_images`."""
    prefix, rest = flops
    return (prefix_images * prefix + train_images * 3 * rest + eval_images * rest) / 1e9


def _config(args, k: int):
    from .training.config import ExperimentConfig

    return ExperimentConfig(per_class=args.per_class, epochs=args.epochs, freeze_depth=k, seed=0, device=args.device)


# --- the two loops -------------------------------------------------------------------------


def run_reference(config) -> dict:
    """The PyTorch-tutorial way: PIL images, transforms per sample, full forward, full test eval."""
    import torch
    import torch.nn.functional as F
    import torchvision.transforms as T
    from PIL import Image
    from torch.utils.data import DataLoader, Dataset

    from .device import pick_device
    from .models.freezing import freeze_to
    from .models.registry import create_backbone, get_spec
    from .training.splits import prepare_data

    device = pick_device(config.device)
    data = prepare_data(config, torch.device("cpu"))
    spec = get_spec(config.backbone)
    started = time.perf_counter()

    class PILDataset(Dataset):
        def __init__(self, images, labels, transform):
            self.images = [Image.fromarray(im[0].numpy()) for im in images]
            self.labels = labels.tolist()
            self.transform = transform

        def __len__(self):
            return len(self.labels)

        def __getitem__(self, i):
            return self.transform(self.images[i]), self.labels[i]

    transform = T.Compose([T.Resize(config.size), T.Grayscale(3), T.ToTensor(), T.Normalize(spec.mean, spec.std)])
    train = DataLoader(PILDataset(data.train_images, data.train_labels, transform), config.batch_size, shuffle=True)
    test = DataLoader(PILDataset(data.test_images, data.test_labels, transform), 256)
    torch.manual_seed(config.seed)
    model = create_backbone(config.backbone, data.dataset.num_classes, pretrained=True).to(device)
    freeze_to(model, config.freeze_depth)  # same freezing semantics, so both loops learn the same thing
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    total = config.epochs * len(train)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 0.5 * (1 + math.cos(math.pi * s / total)))
    for _ in range(config.epochs):
        model.train()
        for x, y in train:
            loss = F.cross_entropy(model(x.to(device)), y.to(device))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            scheduler.step()
        model.eval()
        correct = 0
        with torch.no_grad():
            for x, y in test:
                correct += (model(x.to(device)).argmax(1).cpu() == y).sum().item()
        accuracy = correct / len(test.dataset)
    seconds = time.perf_counter() - started
    images, evaluated = len(train.dataset) * config.epochs, len(test.dataset) * config.epochs
    # The full forward pass for every image, every time: the frozen prefix included.
    gflop = loop_gflop(forward_flops(model, config.size, config.freeze_depth), images + evaluated, images, evaluated)
    return {"seconds": seconds, "test_accuracy": accuracy, "train_images": images, "gflop": gflop}


def run_transferlab(config) -> dict:
    from .data.registry import load_dataset
    from .training.comparison import compare

    load_dataset(config.dataset)  # reading the files is not what is compared: both loops start after it
    started = time.perf_counter()
    result = compare(config, arms=["finetune"])
    seconds = time.perf_counter() - started
    run, data = result.runs["finetune"], result.data
    images = run.images_seen
    evaluated = len(run.plan.eval_steps) * len(data.val_labels) + len(data.test_labels)
    # The prefix once per training, validation and test image when its features are cached, else every time.
    views = config.augment_views if config.augment else 1
    cached = len(data.train_labels) * views + len(data.val_labels) + len(data.test_labels)
    prefixed = cached if run.inputs.cached else images + evaluated
    gflop = loop_gflop(forward_flops(run.model, config.size, run.k), prefixed, images, evaluated)
    return {"seconds": seconds, "test_accuracy": result.accuracy("finetune"), "train_images": images, "gflop": gflop}


def run_dashboard_default(config) -> dict:
    """The dashboard's default comparison (both arms): when the first point and the verdict come."""
    from .data.registry import load_dataset
    from .training.callbacks import Callback
    from .training.comparison import compare

    started = time.perf_counter()
    firsts: dict[str, float] = {}

    class FirstPoint(Callback):
        def on_record(self, run, record):
            if record.split == "val":
                firsts.setdefault(record.arm, time.perf_counter() - started)

    load_dataset(config.dataset)
    result = compare(config, callbacks=[FirstPoint()])
    return {
        "first_point_s": max(firsts.values()),
        "verdict_s": time.perf_counter() - started,
        "finetune_accuracy": result.accuracy("finetune"),
        "scratch_accuracy": result.accuracy("scratch"),
    }


MAP_SIZES = (1, 5, 10, 50, 100)


def run_transfer_map(config) -> dict:
    """The one-seed transfer map: every freeze depth x `MAP_SIZES` images per class, both arms, the
    default budget, in this process (`run_sweep`, a new run store: nothing comes from a previous run)."""
    import tempfile

    from .data.registry import load_dataset
    from .models.registry import get_spec
    from .studies.grid import Grid, run_sweep
    from .training.config import ExperimentConfig
    from .training.store import RunStore

    base = ExperimentConfig(device=config.device)
    grid = Grid(base=base, freeze_depth=range(get_spec(base.backbone).num_blocks + 1), per_class=MAP_SIZES)
    load_dataset(base.dataset)  # as for the loops: reading the files is not what is timed
    with tempfile.TemporaryDirectory() as folder:
        started = time.perf_counter()
        table = run_sweep(grid, RunStore(Path(folder) / "runs.sqlite"), progress=False)
        seconds = time.perf_counter() - started
    finetune = table[table.arm == "finetune"]
    return {
        "seconds": seconds,
        "cells": len(finetune),
        "runs": len(grid.units()),
        "best_gap": float(finetune.gap.max()),
        "worst_gap": float(finetune.gap.min()),
    }


def run_queue_memory(config, runs: int = 20) -> dict:
    """Memory of a server's job queue as comparisons pile up: the page server's process (this one,
    holding every finished `Job`, as sessions do) and the worker process, after each comparison."""
    import tempfile

    from .serve.jobs import JobQueue
    from .training.store import RunStore

    def rss_mb(pid: int) -> float:
        status = Path(f"/proc/{pid}/status").read_text()
        return int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS"))) / 1024

    with tempfile.TemporaryDirectory() as folder:
        queue = JobQueue(workers=1, store=RunStore(Path(folder) / "runs.sqlite"))
        jobs, figures = [], {}
        try:
            for i in range(1, runs + 1):
                jobs.append(queue.submit(replace(config, seed=i)))
                jobs[-1].wait()
                if i in (1, 2, 5, 10, 20, 50, 100) or i == runs:
                    figures[f"server_mb_after_{i}"] = rss_mb(os.getpid())
                    figures[f"worker_mb_after_{i}"] = rss_mb(queue.worker_pids()[0])
        finally:
            queue.shutdown()
    return figures


def run_gpu_throughput(backbone: str, steps: int = 30, batch: int = 256, size: int = 224, device: str = "cuda") -> dict:
    """Training images/s at 224 px on CUDA: bf16 autocast, channels_last, synthetic batches.

    `device="cpu"` (with small sizes) runs the same code where there is no GPU, for tests.
    """
    import torch
    import torch.nn.functional as F

    from .models.registry import create_backbone

    model = create_backbone(backbone, 1000, pretrained=False).to(device, memory_format=torch.channels_last).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x = torch.randn(batch, 3, size, size, device=device).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 1000, (batch,), device=device)
    synchronize = torch.cuda.synchronize if device == "cuda" else lambda: None

    def step():
        with torch.autocast(torch.device(device).type, dtype=torch.bfloat16):
            loss = F.cross_entropy(model(x).float(), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    for _ in range(5):
        step()
    synchronize()
    started = time.perf_counter()
    for _ in range(steps):
        step()
    synchronize()
    return {"images_per_s": steps * batch / (time.perf_counter() - started)}


# --- orchestration: one process per case ----------------------------------------------------


def _child(case: str, args, k: int | None = None) -> dict:
    argv = [sys.executable, "-m", "transferlab.bench", "--case", case, "--per-class", str(args.per_class)]
    argv += ["--epochs", str(args.epochs), "--device", args.device]
    if k is not None:
        argv += ["--freeze-depth", str(k)]
    out = subprocess.run(argv, capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"bench case {case} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def transfer_map(args, report: dict) -> None:
    """The one-seed transfer map against one tutorial-style run of its default cell (k = 4, the
    reference loop at the default budget), both timed here, one after the other: the ratio is the
    figure, as these machines differ by 3x or more from one day to the next."""
    reference = _child("reference", args, 4)
    m = _child("map", args)
    ratio = m["seconds"] / reference["seconds"]
    report["transfer_map"] = {**m, "reference_k4_seconds": reference["seconds"], "ratio": ratio}
    print(
        f"\ntransfer map, one seed: {m['cells']:.0f} cells (k = 0-9 x {', '.join(map(str, MAP_SIZES))} per class), "
        f"{m['runs']:.0f} runs, {m['seconds']:.0f} s; one tutorial-style run of k = 4 at the same budget: "
        f"{reference['seconds']:.0f} s; the map takes {ratio:.1f}x that (target: 20x)"
    )


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:2] == ["--case", "class"]:  # a class at size, simulated: options of its own
        from .serve.classroom import main as classroom

        return classroom(argv[2:])
    parser = argparse.ArgumentParser(prog="python -m transferlab.bench", description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--per-class", type=int, default=10)
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--out", default="bench.json")
    parser.add_argument(
        "--case",
        help="run one case once in this process and print its figures as JSON: reference, transferlab, "
        "dashboard, map or gpu:BACKBONE (what each process of the full bench does), or queue (a server's "
        "memory as 20 comparisons pile up)",
    )
    parser.add_argument("--freeze-depth", type=int, default=4, help="k for --case reference or transferlab")
    parser.add_argument("--no-map", action="store_true", help="skip the transfer map (about 50 runs)")
    args = parser.parse_args(argv)

    if args.case:  # inside one case's own process
        if args.case.startswith("gpu:"):
            figures = run_gpu_throughput(args.case[4:])
        else:
            cases = {"reference": run_reference, "transferlab": run_transferlab, "dashboard": run_dashboard_default}
            cases["queue"] = run_queue_memory
            cases["map"] = run_transfer_map
            if args.case not in cases:
                parser.error(f"--case must be one of {', '.join(cases)} or gpu:BACKBONE, not {args.case!r}")
            figures = cases[args.case](_config(args, args.freeze_depth))
        figures = {k: float(v) for k, v in figures.items()}
        figures["peak_rss_mb"] = _peak_rss_mb()
        print(json.dumps(figures))
        return 0

    import torch

    from .device import bf16_passes, device_name, pick_device
    from .models.registry import get_spec

    device = pick_device(args.device)
    n = get_spec("efficientnet_lite0").num_blocks
    config = asdict(replace(_config(args, 0), freeze_depth=-1))
    bf16_train, bf16_infer = bf16_passes(device)
    report = {"device": device_name(device), "torch": torch.__version__, "repeats": args.repeats, "config": config}
    report["bf16"] = {"training": bf16_train, "prefix_and_evaluation": bf16_infer}
    report.update(loops=[], dashboard=None, gpu=[])
    print(
        f"transferlab bench on {report['device']}: EfficientNet-Lite0 (ImageNet), Fashion-MNIST, "
        f"{args.per_class} images/class, {args.epochs} epochs, 2 000 test images, medians of {args.repeats}\n"
        f"transferlab's bfloat16 passes here: training {'yes' if bf16_train else 'no'}, frozen prefix and "
        f"evaluation {'yes' if bf16_infer else 'no'}; the reference runs float32, as the tutorial does\n"
    )
    header = f"{'k':>2} {'loop':<12} {'img/s':>8} {'wall s':>8} {'test acc':>9} {'peak MB':>8} {'GFLOP':>7}"
    header += f" {'speed-up':>9} {'work ratio':>11}"
    print(header)
    for k in sorted({0, n // 2, (n + 1) // 2, n}):
        rows = {}
        for loop in ("reference", "transferlab"):
            runs = [_child(loop, args, k) for _ in range(args.repeats)]
            m = {key: statistics.median(r[key] for r in runs) for key in runs[0]}
            m["images_per_s"] = m["train_images"] / m["seconds"]
            rows[loop] = m
        speedup = rows["reference"]["seconds"] / rows["transferlab"]["seconds"]
        work_ratio = rows["reference"]["gflop"] / rows["transferlab"]["gflop"]
        for loop, m in rows.items():
            ratios = f"{speedup:8.1f}x {work_ratio:10.1f}x" if loop == "transferlab" else ""
            print(
                f"{k:>2} {loop:<12} {m['images_per_s']:8.0f} {m['seconds']:8.1f} {m['test_accuracy']:9.3f} "
                f"{m['peak_rss_mb']:8.0f} {m['gflop']:7.0f} {ratios:>21}"
            )
            report["loops"].append({"freeze_depth": k, "loop": loop, **m, "speedup": speedup, "work_ratio": work_ratio})
    print(
        "\nGFLOP: the loop's counted work (a backward pass as twice its forward). Speed-up up to the work "
        "ratio comes from doing less;\nbeyond it, from doing the same work faster (bf16, channels_last, fused kernels)."
    )

    runs = [_child("dashboard", args) for _ in range(args.repeats)]
    dash = {key: statistics.median(r[key] for r in runs) for key in runs[0]}
    report["dashboard"] = dash
    print(
        f"\ndashboard default (both arms, k=4): first points after {dash['first_point_s']:.1f} s, "
        f"verdict after {dash['verdict_s']:.1f} s, peak memory {dash['peak_rss_mb']:.0f} MB; "
        f"finetune {dash['finetune_accuracy']:.3f} vs scratch {dash['scratch_accuracy']:.3f}"
    )

    if not args.no_map:
        transfer_map(args, report)

    if device.type == "cuda":
        print(f"\n{'backbone':<20} {'train img/s, 224 px':>20} {'timm RTX 3090':>14} {'ratio':>6}")
        for backbone, published in TIMM_RTX3090_TRAIN.items():
            g = _child(f"gpu:{backbone}", args)
            report["gpu"].append({"backbone": backbone, **g, "timm_rtx3090": published})
            print(f"{backbone:<20} {g['images_per_s']:20.0f} {published:14d} {g['images_per_s'] / published:6.2f}")
    else:
        print("\nno CUDA GPU here: the GPU throughput comparison is skipped")

    with open(args.out, "w") as f:
        json.dump(report, f, indent=2)
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    from .__main__ import _reexec_with_tcmalloc

    _reexec_with_tcmalloc("transferlab.bench")  # both loops, and every case's process, use tcmalloc
    sys.exit(main())
