"""What the experiment scripts share: data (a seeded stratified subset of a real training set,
normalised with its own statistics), one training run written to its folder, and the figures.

Every run folder holds what ``fastres.solver.fit`` writes (history.json/.csv, checkpoint.npz,
best.npz, final.npz) plus ``test.json`` (accuracy on the whole test set at the end). A run whose
folder already holds a finished history is resumed, i.e. not retrained, so a script can be re-run
to redraw its figures or continue after Ctrl-C.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

import fastres
from fastres.data import channel_stats, load_dataset, normalize, split_indices
from fastres.optim import SGD, OneCycle, no_bn_bias
from fastres.solver import evaluate, fit


def parser(doc: str, *, out: str, epochs: int, train_size: int | None) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=doc,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", default=None, help="folder with the official data sets "
                   "(default: $FASTRES_DATA)")
    p.add_argument("--out", default=out, help="folder receiving one subfolder per run")
    p.add_argument("--epochs", type=int, default=epochs)
    p.add_argument("--train-size", type=int, default=train_size,
                   help="train on a seeded stratified subset of this many images (all if omitted)")
    p.add_argument("--curve-test-size", type=int, default=2000,
                   help="test images evaluated after every epoch for the learning curves (the "
                   "whole test set is evaluated once at the end)")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--lr", type=float, default=0.1, help="peak learning rate of the one-cycle "
                   "schedule")
    p.add_argument("--weight-decay", type=float, default=1e-4)
    p.add_argument("--seed", type=int, default=0)
    return p


def load(name: str, args, *, pad: int = 0):
    """Normalised ``(x_train, y_train), (x_curve, y_curve), (x_test, y_test), classes``."""
    ds = load_dataset(name, args.data_dir)
    x, y = ds.x_train, ds.y_train
    if args.train_size is not None and args.train_size < len(y):
        keep, _ = split_indices(y, len(y) - args.train_size, seed=args.seed)
        x, y = x[keep], y[keep]
    xt = ds.x_test
    if pad:  # e.g. MNIST 28x28 -> 32x32 as for LeNet-5
        x, xt = (np.pad(a, ((0, 0), (0, 0), (pad, pad), (pad, pad))) for a in (x, xt))
    mean, std = channel_stats(x)
    x, xt = normalize(x, mean, std), normalize(xt, mean, std)
    _, curve = split_indices(ds.y_test, min(args.curve_test_size, len(xt) - 1), seed=args.seed)
    return (x, y), (xt[curve], ds.y_test[curve]), (xt, ds.y_test), ds.classes


def train(name: str, model, data, args, *, augment: str | None) -> dict:
    """Train ``model`` into ``args.out/name`` (SGD Nesterov momentum 0.9, one-cycle) and return
    ``{"name", "test_top1", "seconds", ...}``, also written to ``test.json``."""
    if args.threads:
        fastres.set_num_threads(args.threads)
    (x, y), curve, (xt, yt), _ = data
    out = Path(args.out, name)
    done = out / "test.json"
    if done.exists():
        print(f"{name}: already trained ({done})")
        return json.loads(done.read_text())
    opt = SGD(model.named_parameters(), args.lr, momentum=0.9, nesterov=True,
              weight_decay=args.weight_decay, decay_filter=no_bn_bias)
    steps = -(-len(y) // 128)
    sched = OneCycle(opt, args.epochs * steps)
    print(f"{name}: {model.num_parameters():,} parameters, {len(y)} training images, "
          f"{args.epochs} epochs, augment={augment}, threads {fastres.get_num_threads()}",
          flush=True)
    t0 = time.perf_counter()
    hist = fit(model, (x, y), curve, opt, sched, epochs=args.epochs, batch_size=128,
               augment=augment, seed=args.seed, out_dir=out, resume=True,
               on_epoch=lambda r: print(f"  {name} epoch {r['epoch']}: train acc "
                                        f"{r['train_acc']:.4f}  test acc {r['val_acc']:.4f}  "
                                        f"{r['seconds']:.0f}s", flush=True))
    r = evaluate(model, xt, yt)
    result = {"name": name, "test_top1": r["top1"], "test_top5": r["top5"],
              "test_loss": r["loss"], "final_train_acc": hist[-1]["train_acc"],
              "epochs": len(hist), "train_seconds": sum(h["seconds"] for h in hist),
              "wall_seconds": time.perf_counter() - t0, "threads": fastres.get_num_threads(),
              "train_size": len(y), "augment": augment}
    done.write_text(json.dumps(result, indent=1))
    print(f"{name}: test top-1 {100 * r['top1']:.2f}% ({len(yt)} images), "
          f"{result['train_seconds']:.0f}s training", flush=True)
    return result


def curves(args, names: list[str], png: str, title: str) -> None:
    """Overlay the learning curves of the finished runs among ``names`` into ``args.out/png``."""
    runs = [Path(args.out, n) for n in names if Path(args.out, n, "history.json").exists()]
    if not runs:
        return
    try:
        from fastres import plots
    except ImportError as exc:
        print(f"(no figure: {exc})")
        return
    path = Path(args.out, png)
    plots.learning_curves(runs, path, title=title)
    print(f"wrote {path}")


def table(args, names: list[str]) -> None:
    """Print a markdown table of the finished runs (for docs/EXPERIMENTS.md)."""
    print("| run | train images | epochs | final train error | test error | training time |")
    print("|---|---:|---:|---:|---:|---:|")
    for n in names:
        f = Path(args.out, n, "test.json")
        if f.exists():
            r = json.loads(f.read_text())
            print(f"| {n} | {r['train_size']} | {r['epochs']} | "
                  f"{100 * (1 - r['final_train_acc']):.2f}% | {100 * (1 - r['test_top1']):.2f}% | "
                  f"{r['train_seconds'] / 60:.1f} min ({r['threads']} thr) |")
