"""Whole training steps and inference: fastres vs PyTorch on the same cores.

    python -m benchmarks.bench_train [--models resnet20,resnet56,minimodel] [--threads 1,2]
                                     [--batch 128] [--repeats 5] [--breakdown] [--scaling]
                                     [--memory] [--optim] [--json PATH]

A training step is forward (train mode), softmax cross-entropy, backward and an SGD update
(momentum 0.9) of every parameter; inference is an eval-mode forward. Reported: median images/s
over repeats and, when torch is importable, the same model written in
PyTorch (eager NCHW and eager channels_last), timed in the same process in interleaved rounds
(one call of each per round, so that load from elsewhere on the machine hits all of them alike),
with ratios (fastres / torch images/s: above 1 means fastres is faster). ``--breakdown`` prints
where one fastres training step spends its time, per layer type. The models are resnet20,
resnet56 and minimodel on 32x32 inputs, and resnet18 and resnet50 (ImageNet's, 1000 classes) on
112x112 inputs.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from collections import defaultdict

import numpy as np

import fastres
import fastres.functional as F
from benchmarks._common import (
    machine_info, median_ms, print_table, rounds_ms, try_torch, write_json,
)
from fastres import models
from fastres.layers.fused import BatchNormAct
from fastres.optim import SGD


def fastres_step(model, x, y, lr=0.01, momentum=0.9):
    """One SGD step with fastres.optim.SGD (as torch.optim.SGD on the PyTorch side); returns a
    closure, so the momentum buffers persist across repeats."""
    opt = SGD(model.parameters(), lr, momentum=momentum)

    def step():
        model.train()
        model.zero_grad()
        logits = model.forward(x)
        loss, dlogits = F.softmax_cross_entropy(logits, y)
        model.backward(dlogits, input_grad=False)  # as PyTorch: the images need no gradient
        opt.step()
        return loss

    return step


def fastres_infer(model, x):
    """Eval-mode forward passes. Give it a model that the timed training steps do not update:
    after a weight change the first eval forward rebuilds the folded conv + BN weights (a
    one-off per change, which timing rounds that alternate training and inference on one model
    would charge to every inference: ResNet-18, batch 32, 157 -> 188-215 ms)."""
    def infer():
        model.eval()
        return model.forward(x)
    return infer


# ---- the same networks in PyTorch (only built when torch is importable) ----------------------
def torch_models(torch):
    nn = torch.nn
    tf = torch.nn.functional

    class Basic(nn.Module):  # CIFAR ResNet basic block, option A shortcut
        def __init__(self, cin, cout, stride):
            super().__init__()
            self.c1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
            self.b1 = nn.BatchNorm2d(cout)
            self.c2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
            self.b2 = nn.BatchNorm2d(cout)
            self.pad = cout - cin
            self.stride = stride

        def forward(self, x):
            out = tf.relu(self.b1(self.c1(x)))
            out = self.b2(self.c2(out))
            sc = x
            if self.stride != 1 or self.pad:
                sc = x[:, :, ::2, ::2]
                sc = tf.pad(sc, (0, 0, 0, 0, self.pad // 2, self.pad - self.pad // 2))
            return tf.relu(out + sc)

    class CifarResNet(nn.Module):
        def __init__(self, depth):
            super().__init__()
            n = (depth - 2) // 6
            self.conv = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
            self.bn = nn.BatchNorm2d(16)
            layers, cin = [], 16
            for i, cout in enumerate((16, 32, 64)):
                for j in range(n):
                    layers.append(Basic(cin, cout, 2 if (i > 0 and j == 0) else 1))
                    cin = cout
            self.layers = nn.Sequential(*layers)
            self.fc = nn.Linear(64, 10)

        def forward(self, x):
            x = tf.relu(self.bn(self.conv(x)))
            x = self.layers(x)
            return self.fc(x.mean((2, 3)))

    class Unit(nn.Module):  # the Keras tutorial's pre-activation unit
        def __init__(self, cin, cout, pool):
            super().__init__()
            self.pool = pool
            self.sc = nn.Conv2d(cin, cout, 1, 2) if pool else None
            self.b1 = nn.BatchNorm2d(cin)
            self.c1 = nn.Conv2d(cin, cout, 3, 1, 1)
            self.b2 = nn.BatchNorm2d(cout)
            self.c2 = nn.Conv2d(cout, cout, 3, 1, 1)

        def forward(self, x):
            res = x
            if self.pool:
                x = tf.max_pool2d(x, 2)
                res = self.sc(res)
            out = self.c1(tf.relu(self.b1(x)))
            out = self.c2(tf.relu(self.b2(out)))
            return out + res

    class MiniModel(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 32, 3, 1, 1)
            units, cin = [], 32
            for s in range(4):
                cout = 32 * 2 ** s
                for i in range(3):
                    units.append(Unit(cin, cout, s > 0 and i == 0))
                    cin = cout
            self.units = nn.Sequential(*units)
            self.bn = nn.BatchNorm2d(cin)
            self.drop = nn.Dropout(0.25)
            self.fc = nn.Linear(cin, 10)

        def forward(self, x):
            x = self.units(self.conv(x))
            x = self.drop(tf.relu(self.bn(x)))
            return self.fc(tf.avg_pool2d(x, 4).flatten(1))

    class Block(Basic):  # torchvision's basic block: a 1x1 projection on downsampling
        def __init__(self, cin, cout, stride):
            super().__init__(cin, cout, stride)
            self.down = None
            if stride != 1 or cin != cout:
                self.down = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False),
                                          nn.BatchNorm2d(cout))

        def forward(self, x):
            out = self.b2(self.c2(tf.relu(self.b1(self.c1(x)))))
            return tf.relu(out + (x if self.down is None else self.down(x)))

    class Bottleneck(nn.Module):  # torchvision's (v1.5: the stride on the 3x3 convolution)
        def __init__(self, cin, mid, stride):
            super().__init__()
            self.c1 = nn.Conv2d(cin, mid, 1, bias=False)
            self.b1 = nn.BatchNorm2d(mid)
            self.c2 = nn.Conv2d(mid, mid, 3, stride, 1, bias=False)
            self.b2 = nn.BatchNorm2d(mid)
            self.c3 = nn.Conv2d(mid, 4 * mid, 1, bias=False)
            self.b3 = nn.BatchNorm2d(4 * mid)
            self.down = None
            if stride != 1 or cin != 4 * mid:
                self.down = nn.Sequential(nn.Conv2d(cin, 4 * mid, 1, stride, bias=False),
                                          nn.BatchNorm2d(4 * mid))

        def forward(self, x):
            out = tf.relu(self.b2(self.c2(tf.relu(self.b1(self.c1(x))))))
            return tf.relu(self.b3(self.c3(out)) + (x if self.down is None else self.down(x)))

    class ImageNetResNet(nn.Module):
        def __init__(self, bottleneck, depths):
            super().__init__()
            self.stem = nn.Sequential(nn.Conv2d(3, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64),
                                      nn.ReLU(), nn.MaxPool2d(3, 2, 1))
            blocks, cin = [], 64
            for i, (width, depth) in enumerate(zip((64, 128, 256, 512), depths)):
                for j in range(depth):
                    stride = 2 if i and not j else 1
                    blocks.append(Bottleneck(cin, width, stride) if bottleneck
                                  else Block(cin, width, stride))
                    cin = 4 * width if bottleneck else width
            self.blocks = nn.Sequential(*blocks)
            self.fc = nn.Linear(cin, 1000)

        def forward(self, x):
            return self.fc(self.blocks(self.stem(x)).mean((2, 3)))

    return {"resnet20": lambda: CifarResNet(20), "resnet56": lambda: CifarResNet(56),
            "minimodel": MiniModel,
            "resnet18": lambda: ImageNetResNet(False, (2, 2, 2, 2)),
            "resnet50": lambda: ImageNetResNet(True, (3, 4, 6, 3))}


def torch_step(torch, net, x, y):
    opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)

    def step():
        net.train()
        opt.zero_grad(set_to_none=True)
        loss = torch.nn.functional.cross_entropy(net(x), y)
        loss.backward()
        opt.step()
        return loss

    return step


def torch_infer(torch, net, x):
    def infer():
        net.eval()
        with torch.no_grad():
            return net(x)
    return infer


# ---- per-layer breakdown ----------------------------------------------------------------------
def breakdown(model, x, y, repeats=3) -> list[tuple[str, float, float]]:
    """(layer type, forward ms, backward ms) per step, summed over the leaf layers and the fused
    runners of the training plan (a BatchNorm2D fused with its add and ReLU counts as
    "BatchNorm2D+act"; a conv that adds a residual or applies a ReLU's gradient stays
    "Conv2D"). Nested timed calls count once, in the outermost."""
    times = defaultdict(lambda: [0.0, 0.0])
    depth = [0]

    def wrap(obj, kind):
        for i, attr in enumerate(("forward", "backward")):
            fn = getattr(obj, attr)

            def timed(*a, fn=fn, i=i, **kw):
                depth[0] += 1
                t0 = time.perf_counter()
                try:
                    return fn(*a, **kw)
                finally:
                    depth[0] -= 1
                    if depth[0] == 0:
                        times[kind][i] += time.perf_counter() - t0
            setattr(obj, attr, timed)
        return obj

    step = fastres_step(model, x, y)
    step()  # builds the containers' plans
    wrapped = [wrap(m, type(m).__name__) for m in model.modules() if not list(m.children())]
    for m in model.modules():
        for plan in (getattr(m, "_plan", None) or {}).values():
            for s in plan:
                runner = s[1] if isinstance(s, tuple) else s
                if isinstance(runner, BatchNormAct):
                    wrapped.append(wrap(runner, "BatchNorm2D+act"))
    step()
    times.clear()
    t0 = time.perf_counter()
    for _ in range(repeats):
        step()
    total = (time.perf_counter() - t0) / repeats * 1e3
    for obj in wrapped:
        del obj.forward, obj.backward  # back to the class methods
    rows = sorted(((k, v[0] / repeats * 1e3, v[1] / repeats * 1e3) for k, v in times.items()),
                  key=lambda r: -(r[1] + r[2]))
    rows.append(("(rest: loss, update, containers)",
                 total - sum(r[1] + r[2] for r in rows), 0.0))
    rows.append(("total step", total, 0.0))
    return rows


def peak_rss_mb() -> float:
    """Peak RSS of this process image: VmHWM (ru_maxrss would include the parent's RSS at fork
    when this process was started from a big one)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def current_rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


def _rss_child(spec: str, batch: int) -> None:
    """In a fresh process: build one model (``fastres:NAME`` or ``torch-nchw|torch-cl:NAME``),
    run 2 training steps, print {"base": RSS before the first step, "peak": peak RSS} as JSON."""
    kind, name = spec.split(":")
    x, y = _data(name, batch)
    if kind == "fastres":
        step = fastres_step(getattr(models, name)(seed=0), x, y)
    else:
        torch = try_torch()
        fmt = torch.channels_last if kind == "torch-cl" else torch.contiguous_format
        net = torch_models(torch)[name]().to(memory_format=fmt)
        step = torch_step(torch, net, torch.from_numpy(x).contiguous(memory_format=fmt),
                          torch.from_numpy(y))
    base = current_rss_mb()
    step()
    step()
    print(json.dumps({"base": base, "peak": peak_rss_mb()}))


def memory_table(names, batch, threads) -> dict:
    """Peak RSS of a training step, every framework/model in its own process."""
    kinds = ["fastres"] + (["torch-nchw", "torch-cl"] if try_torch() else [])
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # holds benchmarks/
    # The children import the fastres this process runs (an installed one, or a source tree
    # built in place), not whatever the repository root holds: they start in its folder.
    where = os.path.dirname(os.path.dirname(os.path.abspath(fastres.__file__)))
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), PYTHONPATH=os.pathsep.join(
        filter(None, [where, root, os.environ.get("PYTHONPATH")])))
    rows, found = [], {}
    for name in names:
        cells = [name]
        for kind in kinds:
            out = subprocess.run([sys.executable, "-m", "benchmarks.bench_train", "--rss-child",
                                  f"{kind}:{name}", "--batch", str(batch)], env=env, cwd=where,
                                 capture_output=True, text=True, check=True).stdout
            r = found[f"{kind}:{name}"] = json.loads(out.strip().splitlines()[-1])
            cells.append(f"{r['peak']:.0f} (+{r['peak'] - r['base']:.0f})")
        rows.append(cells)
    print(f"\npeak RSS MB of a training step, batch {batch}, each in a fresh process "
          "(in brackets: added by the step over imports + model)")
    print_table(["model"] + kinds, rows)
    return found


# Input size and classes per model: the CIFAR-sized ones 32x32, 10 classes; ResNet-18 and -50
# on 112x112 images, 1000 classes (224x224 takes ~3.3x as long a step).
_INPUT = {"resnet18": (112, 1000), "resnet50": (112, 1000)}


def _data(name, batch):
    """One batch of inputs and labels for the model."""
    size, classes = _INPUT.get(name, (32, 10))
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch, 3, size, size), dtype=np.float32)
    return x, rng.integers(0, classes, batch)


def _setup():
    """torch (or None) and its models."""
    torch = try_torch()
    return torch, torch_models(torch) if torch else {}


def run(names, threads_list, batch, repeats, show_breakdown, json_path):
    torch, tmodels = _setup()
    results = []
    for name in names:
        x, y = _data(name, batch)
        model = getattr(models, name)(seed=0)
        frozen = getattr(models, name)(seed=0)  # the same weights, for inference (see above)
        for t in threads_list:
            row = {"model": name, "threads": t, "batch": batch}
            runs = {"train_img_s": fastres_step(model, x, y),
                    "infer_img_s": fastres_infer(frozen, x)}
            if torch:
                for fmt, tag in ((torch.contiguous_format, "nchw"), (torch.channels_last, "cl")):
                    net = tmodels[name]().to(memory_format=fmt)
                    xx = torch.from_numpy(x).contiguous(memory_format=fmt)
                    runs[f"torch_{tag}_train_img_s"] = torch_step(torch, net, xx,
                                                                  torch.from_numpy(y))
                    runs[f"torch_{tag}_infer_img_s"] = torch_infer(torch, net, xx)
            fastres.set_num_threads(t)
            if torch:
                torch.set_num_threads(t)
            for key, ms in rounds_ms(runs, repeats, pause_before=set(runs)).items():
                row[key] = batch / ms * 1e3
            if torch:
                best_train = max(row["torch_nchw_train_img_s"], row["torch_cl_train_img_s"])
                best_infer = max(row["torch_nchw_infer_img_s"], row["torch_cl_infer_img_s"])
                row["train_vs_torch_best"] = row["train_img_s"] / best_train
                row["infer_vs_torch_best"] = row["infer_img_s"] / best_infer
            results.append(row)
        if show_breakdown:
            fastres.set_num_threads(max(threads_list))
            print(f"\nwhere one {name} training step goes ({max(threads_list)} threads, batch "
                  f"{batch}):")
            print_table(["layer type", "forward ms", "backward ms"],
                        [[k, f"{f:.1f}", f"{b:.1f}" if b else ""] for k, f, b in
                         breakdown(model, x, y)])
        del model, frozen

    headers = ["model", "threads", "train img/s", "infer img/s"]
    if torch:
        headers += ["torch NCHW train", "torch CL train", "train vs best torch",
                    "torch NCHW infer", "torch CL infer", "infer vs best torch"]
    rows = []
    for r in results:
        cells = [r["model"], str(r["threads"]), f"{r['train_img_s']:.0f}",
                 f"{r['infer_img_s']:.0f}"]
        if torch:
            cells += [f"{r['torch_nchw_train_img_s']:.0f}", f"{r['torch_cl_train_img_s']:.0f}",
                      f"{r['train_vs_torch_best']:.2f}", f"{r['torch_nchw_infer_img_s']:.0f}",
                      f"{r['torch_cl_infer_img_s']:.0f}", f"{r['infer_vs_torch_best']:.2f}"]
        rows.append(cells)
    info = machine_info(max(threads_list))
    print(f"\nfastres {info['fastres']}, batch {batch}, float32, ISA path {info['isa_path']}, "
          f"torch {info['torch'] or 'not installed'}")
    print_table(headers, rows)
    memory = memory_table(names, batch, max(threads_list))
    if json_path:
        write_json(json_path, {"machine": info, "results": results, "peak_rss_mb": memory})
    return results


def scaling_table(names, threads_list, batch, repeats) -> list[dict]:
    """Training steps back to back, as in a training loop (the comparison table above pauses
    before every call so that the runtimes do not disturb each other, which leaves the second
    core idle in between): median images/s at each thread count and the speed-up over the
    first, for fastres and PyTorch channels_last."""
    torch, tmodels = _setup()
    rows = []
    for name in names:
        x, y = _data(name, batch)
        runs = {"fastres": fastres_step(getattr(models, name)(seed=0), x, y)}
        if torch:
            net = tmodels[name]().to(memory_format=torch.channels_last)
            runs["torch CL"] = torch_step(
                torch, net, torch.from_numpy(x).contiguous(memory_format=torch.channels_last),
                torch.from_numpy(y))
        for who, step in runs.items():
            img_s = []
            for t in threads_list:
                fastres.set_num_threads(t)
                if torch:
                    torch.set_num_threads(t)
                img_s.append(batch / median_ms(step, repeats, warmup=2) * 1e3)
            rows.append({"model": name, "runtime": who, "threads": list(threads_list),
                         "img_s": img_s, "speedup": [v / img_s[0] for v in img_s]})
    print(f"\nthread scaling, training steps back to back (median of {repeats}):")
    print_table(["model", "runtime"] + [f"{t} thr img/s" for t in threads_list]
                + [f"{t} thr speed-up" for t in threads_list[1:]],
                [[r["model"], r["runtime"]] + [f"{v:.0f}" for v in r["img_s"]]
                 + [f"{v:.2f}" for v in r["speedup"][1:]] for r in rows])
    return rows


def optim_table(names, threads, repeats) -> list[dict]:
    """One optimizer step over each model's parameters (with gradients of noise): fastres's
    one-pass kernels, the NumPy code they replace (``_sgd_numpy``, ``_adam_numpy``), and
    torch.optim on tensors of the same shapes; ms per step, median of interleaved rounds."""
    from fastres.optim import Adam
    from fastres.optim.adam import _adam_numpy
    from fastres.optim.sgd import _sgd_numpy

    torch = try_torch()
    fastres.set_num_threads(threads)
    if torch:
        torch.set_num_threads(threads)
    results = []
    for name in names:
        params = list(getattr(models, name)(seed=0).parameters())
        rng = np.random.default_rng(0)
        for p in params:
            p.grad[...] = rng.standard_normal(p.grad.shape, dtype=np.float32) * 1e-3
        sgd = SGD(params, 0.1, momentum=0.9, weight_decay=5e-4)
        adam = Adam(params, 1e-3, weight_decay=5e-4)
        sgd.step()  # create the state; numpy_* below update it as the kernels do
        adam.step()
        sgd_state = [sgd.state[i]["momentum_buffer"] for i in range(len(params))]
        adam_state = [adam.state[i] for i in range(len(params))]

        def numpy_sgd():
            for p, b in zip(params, sgd_state):
                _sgd_numpy(p.data, p.grad, b, lr=0.1, momentum=0.9, dampening=0.0,
                           nesterov=False, weight_decay=5e-4, first=False)

        def numpy_adam():
            for p, s in zip(params, adam_state):
                _adam_numpy(p.data, p.grad, s["exp_avg"], s["exp_avg_sq"], None, step=s["step"],
                            lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=5e-4,
                            decoupled=False)

        runs = {"sgd": sgd.step, "sgd_numpy": numpy_sgd, "adam": adam.step,
                "adam_numpy": numpy_adam}
        if torch:
            tparams = [torch.from_numpy(p.data.copy()) for p in params]
            for t, p in zip(tparams, params):
                t.grad = torch.from_numpy(p.grad.copy())
            tsgd = torch.optim.SGD(tparams, 0.1, momentum=0.9, weight_decay=5e-4)
            tadam = torch.optim.Adam(tparams, 1e-3, weight_decay=5e-4)
            runs.update(sgd_torch=tsgd.step, adam_torch=tadam.step)
        ms = rounds_ms(runs, repeats, pause_before=set(runs))
        row = {"model": name, "params": sum(p.data.size for p in params),
               **{f"{k}_ms": v for k, v in ms.items()}}
        results.append(row)
    headers = ["model", "parameters", "SGD ms", "SGD NumPy ms", "Adam ms", "Adam NumPy ms"]
    if torch:
        headers += ["SGD torch ms", "Adam torch ms"]
    rows = [[r["model"], f"{r['params'] / 1e6:.2f}M"]
            + [f"{r[k]:.2f}" for k in ("sgd_ms", "sgd_numpy_ms", "adam_ms", "adam_numpy_ms")]
            + ([f"{r['sgd_torch_ms']:.2f}", f"{r['adam_torch_ms']:.2f}"] if torch else [])
            for r in results]
    print(f"\none optimizer step, float32, {threads} thread(s) (SGD: momentum 0.9, weight decay "
          "5e-4; Adam: weight decay 5e-4)")
    print_table(headers, rows)
    return results


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default="resnet20,resnet56,minimodel")
    p.add_argument("--threads", default=str(fastres.get_num_threads()),
                   help="comma-separated thread counts, e.g. 1,2")
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--breakdown", action="store_true")
    p.add_argument("--scaling", action="store_true",
                   help="then the thread scaling of steps run back to back")
    p.add_argument("--memory", action="store_true",
                   help="only the per-process peak-RSS table")
    p.add_argument("--optim", action="store_true",
                   help="only the optimizer-step table (fastres, its NumPy code, torch.optim)")
    p.add_argument("--rss-child", help=argparse.SUPPRESS)
    p.add_argument("--json", default="bench_results/train.json")
    a = p.parse_args(argv)
    if a.rss_child:
        return _rss_child(a.rss_child, a.batch)
    if a.memory:
        return memory_table(a.models.split(","), a.batch, max(map(int, a.threads.split(","))))
    threads = [int(t) for t in a.threads.split(",")]
    if a.optim:
        return optim_table(a.models.split(","), max(threads), a.repeats)
    results = run(a.models.split(","), threads, a.batch, a.repeats, a.breakdown, a.json)
    if a.scaling:
        scaling = scaling_table(a.models.split(","), threads, a.batch, a.repeats)
        if a.json:
            with open(a.json) as f:
                payload = json.load(f)
            write_json(a.json, {**payload, "scaling": scaling})
    return results


if __name__ == "__main__":
    main()
