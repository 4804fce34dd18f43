"""The ``fastres`` command line: ``train``, ``evaluate``, ``bench``, and to look at models and
runs ``plot``, ``saliency``, ``fool`` and ``summary``.

``fastres train`` with no options trains a small ResNet on the MNIST subset that ships inside the
package and prints its test accuracy; every option maps onto ``fastres.solver.fit``. The figure
commands write PNGs with ``fastres.plots`` (needs ``pip install "fastres[plot]"``).
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
          "preact_resnet20", "plain8", "plain14", "plain20", "plain32", "plain44", "plain56",
          "plain110", "minimodel", "resnet18", "resnet34", "resnet50")
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


def _pixels(s: str):
    w, _, h = s.lower().partition("x")
    return int(w), int(h)


_size = _checked(_pixels, lambda v: min(v) >= 16 and max(v) <= 20000,
                 "WIDTHxHEIGHT in pixels, e.g. 800x500")


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
               "  fastres plot runs/plain20 runs/resnet20 --out curves.png\n"
               "  fastres saliency run1/best.npz --dataset embedded --out saliency.png\n"
               "  fastres fool run1/best.npz --dataset embedded --target 3 --out fool.png\n"
               "  fastres summary resnet56\n"
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
    t.add_argument("--test-each-epoch", action="store_true",
                   help="without --val-split, evaluate the test set after every epoch and record "
                   "it as the validation columns of the history (for learning curves like the "
                   "ResNet paper's; best.npz is then chosen on test accuracy)")
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
    _add_analysis_parsers(sub)
    return p


_PLOT_NOTE = 'Needs matplotlib: pip install "fastres[plot]".'


def _add_analysis_parsers(sub) -> None:
    """The parsers of plot, saliency, fool and summary."""
    pl = sub.add_parser(
        "plot", help="learning curves of training runs (PNG)", formatter_class=_Formatter,
        description="Plot training error (dashed) and validation/test error (solid) in % per "
        "epoch for one or more runs, overlaid with one colour each, like the plain-vs-residual "
        "figure of He et al. (2015). Each RUN_DIR is the --out folder of `fastres train` (its "
        "history.json is read). Train with --val-split or --test-each-epoch to get the solid "
        "curves. " + _PLOT_NOTE,
        epilog="example:\n  fastres plot runs/plain20 runs/resnet20 --out curves.png "
        "--title 'CIFAR-10'")
    pl.add_argument("runs", nargs="+", metavar="RUN_DIR")
    pl.add_argument("--out", required=True, metavar="PNG", help="output image")
    pl.add_argument("--title", default=None)
    pl.add_argument("--labels", default=None,
                    help="comma-separated legend names (default: the folder names)")
    pl.add_argument("--size", type=_size, default=(800, 500), metavar="WxH",
                    help="image size in pixels")

    def data_args(q):
        q.add_argument("model_path", metavar="MODEL.npz",
                       help="a model saved by fastres (final.npz, best.npz or fastres.save)")
        q.add_argument("--dataset", default="embedded",
                       help="the model's data set (its test split is used, normalised with the "
                       "training-set statistics): embedded, mnist, fashion-mnist, cifar10, "
                       "cifar100 or folder:PATH")
        q.add_argument("--data-dir", default=None,
                       help="folder holding the datasets (default: $FASTRES_DATA)")
        q.add_argument("--threads", type=_positive_int, default=None)

    sa = sub.add_parser(
        "saliency", help="saliency maps of test images (PNG)", formatter_class=_Formatter,
        description="Saliency maps (Simonyan et al. 2013) of the first N test images: the "
        "largest absolute gradient over channels of the true class's score (the logit) with "
        "respect to each pixel, model in eval mode. Top row the images, bottom row the maps. "
        + _PLOT_NOTE,
        epilog="example:\n  fastres saliency run1/best.npz --dataset embedded --n 8 "
        "--out saliency.png")
    data_args(sa)
    sa.add_argument("--n", type=_positive_int, default=8, help="number of test images")
    sa.add_argument("--out", required=True, metavar="PNG", help="output image")

    fo = sub.add_parser(
        "fool", help="fooling images: push test images to a target class (PNG)",
        formatter_class=_Formatter,
        description="Make fooling images: gradient ascent on the target class's score with "
        "steps of fixed L2 length (as in the CS231n assignment) until the model predicts the "
        "target, starting from the first N test images not of the target class (or from "
        "random noise). Prints the iterations and the size of each change (in normalised "
        "input units) and draws original, fooling image and magnified difference. Exits with "
        "status 1 if an image cannot be pushed to the target within --max-iter steps. "
        + _PLOT_NOTE,
        epilog="example:\n  fastres fool run1/best.npz --dataset embedded --target 3 --n 4 "
        "--out fool.png")
    data_args(fo)
    fo.add_argument("--target", required=True, metavar="CLASS",
                    help="target class: an index or a class name of the data set")
    fo.add_argument("--n", type=_positive_int, default=4, help="number of images")
    fo.add_argument("--from-noise", action="store_true",
                    help="start from standard normal noise (in normalised units) instead of "
                    "test images")
    fo.add_argument("--step-size", type=_positive_float, default=1.0,
                    help="L2 length of each step, in normalised input units")
    fo.add_argument("--max-iter", type=_positive_int, default=100)
    fo.add_argument("--objective", choices=("score", "log_prob"), default="score",
                    help="ascend the target's logit (CS231n) or its log-probability (also "
                    "pushes the other classes down; succeeds where raising the logit raises "
                    "a rival too)")
    fo.add_argument("--seed", type=_nonneg_int, default=0, help="seed of the noise")
    fo.add_argument("--out", required=True, metavar="PNG", help="output image")

    su = sub.add_parser(
        "summary", help="layer table of a model: shapes, parameters, multiply-adds",
        formatter_class=_Formatter,
        description="Print a model's layers with output shapes, parameter counts and "
        "multiply-adds per image, and the totals. MODEL is one of the --model names of "
        "`fastres train` (resnet20, plain56, resnet18, minimodel, ...) or a saved MODEL.npz.",
        epilog="examples:\n  fastres summary resnet56\n  fastres summary resnet18 "
        "--image-size 224\n  fastres summary resnet8 --in-channels 1 --image-size 28")
    su.add_argument("model", metavar="MODEL", help=f"one of {', '.join(MODELS)}, or a .npz file")
    su.add_argument("--num-classes", type=_positive_int, default=None,
                    help="default: 1000 for resnet18/34/50, 10 otherwise")
    su.add_argument("--in-channels", type=_positive_int, default=None,
                    help="default: 3 (the model's own for a .npz)")
    su.add_argument("--image-size", type=_positive_int, default=None,
                    help="input height and width (default: 224 for resnet18/34/50, 32 "
                    "otherwise)")


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
    if name.startswith("plain"):
        return models.plain_cifar(int(name[5:]), num_classes=num_classes, in_channels=in_channels,
                                  seed=seed)
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
    if val is None and args.test_each_epoch and x_test is not None:
        val = (x_test, ds.y_test)
    print(f"fastres: training {args.model} ({model.num_parameters():,} parameters) on "
          f"{ds.name}: {len(x_train)} train / {0 if val is None else len(val[0])} val / "
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


def _plot(args) -> int:
    from fastres import plots

    missing = [r for r in args.runs if not Path(r, "history.json").is_file()
               and not (Path(r).is_file() and r.endswith(".json"))]
    if missing:
        return _fail(f"plot: no history.json in {missing[0]} (expected the --out folder of "
                     "`fastres train`)")
    labels = None if args.labels is None else [s.strip() for s in args.labels.split(",")]
    if labels is not None and len(labels) != len(args.runs):
        return _fail(f"plot: --labels has {len(labels)} names for {len(args.runs)} runs")
    plots.learning_curves(args.runs, args.out, labels=labels, title=args.title,
                          size=args.size)
    print(f"fastres: learning curves of {len(args.runs)} run(s) written to {args.out}")
    return 0


def _model_and_test_images(args, who: str):
    """(model, dataset, normalised test images) for saliency/fool, or an error message."""
    import fastres

    if args.threads is not None:
        fastres.set_num_threads(args.threads)
    if not os.path.isfile(args.model_path):
        return f"{who}: no such model file: {args.model_path}"
    model = fastres.load(args.model_path)
    ds, _, _, x_test = _load_data(args.dataset, args.data_dir, 0.0, 0)
    if x_test is None:
        return f"{who}: dataset {args.dataset!r} has no test split"
    return model, ds, x_test


def _saliency(args) -> int:
    from fastres import analysis, plots

    got = _model_and_test_images(args, "saliency")
    if isinstance(got, str):
        return _fail(got)
    model, ds, x_test = got
    x, y = x_test[:args.n], ds.y_test[:args.n]
    maps = analysis.saliency_map(model, x, y)
    model.eval()
    pred = model.forward(np.ascontiguousarray(x, dtype=model.dtype)).argmax(axis=1)
    names = [str(c) for c in ds.classes]
    titles = [names[t] if p == t else f"{names[t]} (pred {names[p]})" for t, p in zip(y, pred)]
    plots.saliency_grid(x, maps, args.out, titles=titles)
    print(f"fastres: saliency maps of {len(x)} {ds.name} test images written to {args.out}")
    return 0


def _class_index(name: str, classes: list) -> int | None:
    names = [str(c) for c in classes]
    if name in names:
        return names.index(name)
    try:
        k = int(name)
    except ValueError:
        return None
    return k if 0 <= k < len(names) else None


def _fool(args) -> int:
    from fastres import analysis, plots

    got = _model_and_test_images(args, "fool")
    if isinstance(got, str):
        return _fail(got)
    model, ds, x_test = got
    names = [str(c) for c in ds.classes]
    target = _class_index(args.target, names)
    if target is None:
        return _fail(f"fool: --target {args.target!r} is not a class of {ds.name}: expected an "
                     f"index in [0, {len(names)}) or one of {names[:20]}")
    if args.from_noise:
        rng = np.random.default_rng(args.seed)
        starts = rng.standard_normal((args.n, *x_test.shape[1:])).astype(x_test.dtype)
        where = [f"noise {i}" for i in range(args.n)]
    else:
        idx = np.flatnonzero(ds.y_test != target)[:args.n]
        starts = x_test[idx]
        where = [f"test image #{i} (true {names[ds.y_test[i]]})" for i in idx]
    done, rc = [], 0
    for w, x in zip(where, starts):
        try:
            r = analysis.fooling_image(model, x, target, step_size=args.step_size,
                                       max_iter=args.max_iter, objective=args.objective)
        except analysis.FoolingFailed as exc:
            print(f"{w}: FAILED: {exc}", file=sys.stderr)
            rc = 1
            continue
        done.append(r)
        print(f"{w}, predicted {names[r.original_class]} -> {names[target]} "
              f"(p={r.probability:.3f}) in {r.iterations} iterations; change L2 {r.l2:.3f}, "
              f"Linf {r.linf:.3f} (normalised units)")
    if not done:
        print(f"fastres: error: fool: no image reached class {names[target]}; try a larger "
              "--max-iter or --step-size, or --objective log_prob", file=sys.stderr)
        return 1
    titles = [f"{names[r.original_class]} -> {names[r.target]}, {r.iterations} it."
              for r in done]
    plots.fooling_grid(np.stack([r.start for r in done]), np.stack([r.image for r in done]),
                       args.out, titles=titles)
    print(f"fastres: {len(done)} fooling image(s) written to {args.out}")
    return rc


def _summary(args) -> int:
    import fastres
    from fastres.layers import deferred_init

    imagenet = args.model in ("resnet18", "resnet34", "resnet50")
    if args.model.endswith(".npz") or os.path.isfile(args.model):
        if not os.path.isfile(args.model):
            return _fail(f"summary: no such model file: {args.model}")
        model = fastres.load(args.model)
        arch = (getattr(model, "arch", None) or {}).get("kwargs", {})
        in_channels = args.in_channels or arch.get("in_channels", 3)
    elif args.model in MODELS:
        in_channels = args.in_channels or 3
        with deferred_init():  # the table needs shapes only, not initialised weights
            model = _build_model(args.model, args.num_classes or (1000 if imagenet else 10),
                                 in_channels, 0)
    else:
        return _fail(f"summary: unknown model {args.model!r}; expected one of "
                     f"{', '.join(MODELS)} or a .npz file")
    size = args.image_size or (224 if imagenet else 32)
    print(f"{args.model}:")
    model.summary((in_channels, size, size))
    return 0


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
        handler = {"plot": _plot, "saliency": _saliency, "fool": _fool,
                   "summary": _summary}.get(args.command, _bench)
        return handler(args)
    except (ValueError, TypeError, OSError) as exc:  # OSError: e.g. an unwritable --out
        return _fail(str(exc))
    except ImportError as exc:  # matplotlib, an optional extra, for the figure commands
        return _fail(str(exc))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
