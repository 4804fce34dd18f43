"""The ``fastres`` command line: ``train``, ``evaluate`` and ``bench``.

``fastres train`` with no options trains a small ResNet on the MNIST subset that ships inside the
package and prints its test accuracy; every option maps onto ``fastres.solver.fit``.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

__all__ = ["build_parser", "main"]

# The no-option run: ResNet-8 (resnet_cifar depth 8, 1 input channel) for 4 epochs of SGD
# (Nesterov momentum 0.9, peak lr 0.1, batch 64) under a one-cycle schedule on the embedded
# MNIST subset (6000 train / 1000 test). Measured on 2 cores: 3 such epochs gave 96.9% test
# top-1 in 36 s, so 4 epochs is the default.
DEFAULTS = {"model": "resnet8", "dataset": "embedded", "epochs": 4, "batch_size": 64,
            "lr": 0.1, "optimizer": "sgd", "schedule": "onecycle", "augment": "none"}

MODELS = ("resnet8", "resnet14", "resnet20", "resnet32", "resnet44", "resnet56", "resnet110",
          "preact_resnet20", "minimodel", "resnet18", "resnet34", "resnet50")
OPTIMIZERS = ("sgd", "adam", "adamw", "rmsprop")
SCHEDULES = ("none", "step", "multistep", "cosine", "onecycle", "plateau")


class _Formatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    pass


def _checked(convert, ok, what: str):
    """An argparse ``type=`` that converts and checks, with one clear message either way."""
    def parse(s: str):
        try:
            v = convert(s)
        except ValueError:
            v = None
        if v is None or not ok(v):
            raise argparse.ArgumentTypeError(f"expected {what}, got {s!r}")
        return v
    return parse


_positive_int = _checked(int, lambda v: v >= 1, "a positive integer")
_nonneg_int = _checked(int, lambda v: v >= 0, "a non-negative integer")
_positive_float = _checked(float, lambda v: bool(np.isfinite(v)) and v > 0, "a positive number")
_fraction = _checked(float, lambda v: 0.0 <= v < 1.0, "a fraction in [0, 1)")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="fastres", formatter_class=_Formatter,
        description="Train and evaluate residual networks on the CPU.",
        epilog="examples:\n"
               "  fastres train                      # ResNet-8 on the bundled MNIST subset\n"
               "  fastres train --model resnet20 --dataset cifar10 --data-dir ~/data \\\n"
               "      --epochs 160 --lr 0.1 --schedule multistep --augment crop,flip --out run1\n"
               "  fastres train --out run1 --resume  # continue run1 exactly\n"
               "  fastres evaluate run1/best.npz --dataset cifar10 --data-dir ~/data\n"
               "  fastres bench")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    t = sub.add_parser("train", help="train a model", formatter_class=_Formatter,
                       description="Train a model and print its test accuracy. With --out, the "
                       "folder receives history.json/.csv, checkpoint.npz (every epoch), "
                       "best.npz and final.npz.")
    t.add_argument("--model", default=DEFAULTS["model"], choices=MODELS, help="architecture")
    t.add_argument("--dataset", default=DEFAULTS["dataset"],
                   help="embedded, mnist, fashion-mnist, cifar10, cifar100 or folder:PATH")
    t.add_argument("--data-dir", default=None,
                   help="folder holding the datasets (default: $FASTRES_DATA)")
    t.add_argument("--epochs", type=_positive_int, default=DEFAULTS["epochs"])
    t.add_argument("--batch-size", type=_positive_int, default=DEFAULTS["batch_size"])
    t.add_argument("--lr", type=_positive_float, default=None,
                   help="learning rate (peak rate for onecycle); default 0.1 for sgd, 0.001 "
                        "for adam/adamw/rmsprop")
    t.add_argument("--momentum", type=float, default=0.9, help="SGD/RMSprop momentum")
    t.add_argument("--weight-decay", type=float, default=5e-4,
                   help="weight decay (not applied to BN parameters and biases)")
    t.add_argument("--optimizer", default=DEFAULTS["optimizer"], choices=OPTIMIZERS)
    t.add_argument("--schedule", default=DEFAULTS["schedule"], choices=SCHEDULES,
                   help="step: /10 every third of training; multistep: /10 at 50%% and 75%%; "
                        "plateau: /10 when the validation error stalls")
    t.add_argument("--augment", default=DEFAULTS["augment"],
                   help="comma-separated augmentations, e.g. crop,flip, or none")
    t.add_argument("--label-smoothing", type=float, default=0.0)
    t.add_argument("--val-split", type=_fraction, default=0.0,
                   help="fraction of the training set held out for validation")
    t.add_argument("--early-stopping", type=_positive_int, default=None, metavar="PATIENCE",
                   help="stop after this many epochs without a better validation accuracy")
    t.add_argument("--seed", type=_nonneg_int, default=0)
    t.add_argument("--threads", type=_positive_int, default=None,
                   help="kernel threads (default: OMP_NUM_THREADS or all cores)")
    t.add_argument("--out", default=None, metavar="DIR",
                   help="output folder for history, checkpoints and models")
    t.add_argument("--resume", action="store_true",
                   help="continue exactly from DIR/checkpoint.npz (needs --out)")

    e = sub.add_parser("evaluate", help="top-1/top-5 accuracy of a saved model",
                       formatter_class=_Formatter,
                       description="Evaluate a model saved by fastres (final.npz, best.npz or "
                       "fastres.save) on a dataset's test split, normalised with the "
                       "training-set statistics.")
    e.add_argument("model_path", metavar="MODEL.npz")
    e.add_argument("--dataset", default="embedded")
    e.add_argument("--data-dir", default=None)
    e.add_argument("--batch-size", type=_positive_int, default=256)
    e.add_argument("--threads", type=_positive_int, default=None)

    sub.add_parser("bench", help="run the benchmark suite (needs a source checkout)",
                   formatter_class=_Formatter,
                   description="Runs `python -m benchmarks.bench_ops` and "
                   "`python -m benchmarks.bench_train` from a fastres source checkout.")
    return p


def _build_model(name: str, num_classes: int, in_channels: int, seed: int):
    from fastres import models

    if name.startswith("preact_resnet"):
        return models.resnet_cifar(int(name[len("preact_resnet"):]), preact=True,
                                   num_classes=num_classes, in_channels=in_channels, seed=seed)
    if name in ("resnet18", "resnet34", "resnet50"):
        return models.resnet(int(name[6:]), num_classes=num_classes, in_channels=in_channels,
                             seed=seed)
    if name == "minimodel":
        return models.minimodel(num_classes=num_classes, in_channels=in_channels, seed=seed)
    return models.resnet_cifar(int(name[6:]), num_classes=num_classes, in_channels=in_channels,
                               seed=seed)


def _optimizer(args, model):
    from fastres import optim

    named = model.named_parameters()
    wd, flt = args.weight_decay, optim.no_bn_bias
    if args.optimizer == "sgd":
        lr = DEFAULTS["lr"] if args.lr is None else args.lr
        return optim.SGD(named, lr, momentum=args.momentum, nesterov=args.momentum > 0,
                         weight_decay=wd, decay_filter=flt)
    lr = 1e-3 if args.lr is None else args.lr
    if args.optimizer == "adam":
        return optim.Adam(named, lr, weight_decay=wd, decay_filter=flt)
    if args.optimizer == "adamw":
        return optim.AdamW(named, lr, weight_decay=wd, decay_filter=flt)
    return optim.RMSprop(named, lr, momentum=args.momentum, weight_decay=wd, decay_filter=flt)


def _schedule(args, opt, steps_per_epoch: int):
    from fastres import optim

    e = args.epochs
    if args.schedule == "step":
        return optim.StepLR(opt, max(1, e // 3))
    if args.schedule == "multistep":
        return optim.MultiStepLR(opt, sorted({max(1, e // 2), max(1, (3 * e) // 4)}))
    if args.schedule == "cosine":
        return optim.CosineAnnealing(opt, e)
    if args.schedule == "onecycle":
        return optim.OneCycle(opt, max(2, e * steps_per_epoch))
    if args.schedule == "plateau":
        return optim.ReduceLROnPlateau(opt, patience=max(1, e // 10))
    return None


def _load_data(name, data_dir, val_split, seed):
    """(dataset, normalised train/val/test arrays): statistics of the training split."""
    from fastres.data import channel_stats, load_dataset, normalize

    ds = load_dataset(name, data_dir, val_split=val_split, seed=seed)
    mean, std = channel_stats(ds.x_train)

    def norm(x):
        return None if x is None or len(x) == 0 else normalize(x, mean, std)
    return ds, norm(ds.x_train), norm(ds.x_val), norm(ds.x_test)


def _fail(msg: str) -> int:
    print(f"fastres: error: {msg}", file=sys.stderr)
    return 2


def _train(args) -> int:
    import fastres
    from fastres.solver import NonFiniteLossError, evaluate, fit

    if args.resume and args.out is None:
        return _fail("--resume needs --out DIR (the folder holding checkpoint.npz)")
    if args.threads is not None:
        fastres.set_num_threads(args.threads)
    t0 = time.perf_counter()
    ds, x_train, x_val, x_test = _load_data(args.dataset, args.data_dir, args.val_split,
                                            args.seed)
    model = _build_model(args.model, len(ds.classes), x_train.shape[1], args.seed)
    opt = _optimizer(args, model)
    lr = opt.lr  # before a schedule rewrites it (onecycle starts at lr / 25)
    steps = (len(x_train) + args.batch_size - 1) // args.batch_size
    sched = _schedule(args, opt, steps)
    augment = None if args.augment in ("none", "") else args.augment
    val = (x_val, ds.y_val) if x_val is not None else None
    print(f"fastres: training {args.model} ({model.num_parameters():,} parameters) on "
          f"{ds.name}: {len(x_train)} train / {0 if val is None else len(x_val)} val / "
          f"{0 if x_test is None else len(x_test)} test images, {args.epochs} epochs, "
          f"{args.optimizer} lr {lr:g}, schedule {args.schedule}, threads "
          f"{fastres.get_num_threads()}", flush=True)
    tty = sys.stdout.isatty()

    def on_epoch(r):
        if not tty:  # on a terminal fit prints these lines beside its progress bar
            v = "" if r["val_acc"] is None else f"  val_acc {r['val_acc']:.4f}"
            print(f"epoch {r['epoch']}/{args.epochs}  loss {r['train_loss']:.4f}  "
                  f"acc {r['train_acc']:.4f}{v}  lr {r['lr']:.3g}  {r['seconds']:.1f}s",
                  flush=True)
    try:
        hist = fit(model, (x_train, ds.y_train), val, opt, sched, epochs=args.epochs,
                   batch_size=args.batch_size, augment=augment, seed=args.seed,
                   out_dir=args.out, resume=args.resume, early_stopping=args.early_stopping,
                   label_smoothing=args.label_smoothing, on_epoch=on_epoch)
    except KeyboardInterrupt as exc:
        print(f"\nfastres: {exc or 'interrupted'}", file=sys.stderr)
        return 130
    except NonFiniteLossError as exc:
        print(f"fastres: error: {exc}", file=sys.stderr)
        return 1
    except FileExistsError as exc:
        return _fail(f"{exc}")
    if hist.stop_reason == "early_stopping":
        print(f"fastres: early stopping after epoch {len(hist)}")
    if x_test is not None:
        r = evaluate(model, x_test, ds.y_test, max(256, args.batch_size))
        print(f"test accuracy: top-1 {100 * r['top1']:.2f}%  top-5 {100 * r['top5']:.2f}%  "
              f"(loss {r['loss']:.4f}; {len(x_test)} images)")
        if args.out is not None:
            Path(args.out, "test.json").write_text(json.dumps(r))
    print(f"fastres: done in {time.perf_counter() - t0:.1f}s"
          + (f"; outputs in {args.out}" if args.out else ""))
    return 0


def _evaluate(args) -> int:
    import fastres
    from fastres.solver import evaluate

    if args.threads is not None:
        fastres.set_num_threads(args.threads)
    if not os.path.isfile(args.model_path):
        return _fail(f"evaluate: no such model file: {args.model_path}")
    model = fastres.load(args.model_path)
    ds, _, _, x_test = _load_data(args.dataset, args.data_dir, 0.0, 0)
    if x_test is None:
        return _fail(f"evaluate: dataset {args.dataset!r} has no test split")
    if x_test.shape[1:] != ds.x_train.shape[1:]:
        return _fail("evaluate: inconsistent dataset")
    r = evaluate(model, x_test, ds.y_test, args.batch_size)
    print(f"{args.model_path} on {ds.name} test ({len(x_test)} images): "
          f"top-1 {100 * r['top1']:.2f}%  top-5 {100 * r['top5']:.2f}%  loss {r['loss']:.4f}")
    return 0


def _bench(args) -> int:
    if importlib.util.find_spec("benchmarks") is None or \
            importlib.util.find_spec("benchmarks.bench_train") is None:
        print("fastres bench: the benchmarks package is not importable. It lives in the fastres "
              "source checkout (benchmarks/); run `fastres bench` from the repository root.",
              file=sys.stderr)
        return 2
    rc = 0
    for mod in ("benchmarks.bench_ops", "benchmarks.bench_train"):
        print(f"$ {sys.executable} -m {mod}", flush=True)
        rc = subprocess.call([sys.executable, "-m", mod]) or rc
    return rc


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``fastres`` command (and ``python -m fastres``); returns the exit
    status (2 for bad arguments, as argparse)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command == "train":
            return _train(args)
        if args.command == "evaluate":
            return _evaluate(args)
        return _bench(args)
    except (ValueError, TypeError, FileNotFoundError) as exc:
        return _fail(str(exc))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
