"""Every kernel at ResNet-20 shapes (batch 128): fastres vs the NumPy reference vs PyTorch.

    python -m benchmarks.bench_ops [--threads 2] [--batch 128] [--repeats 15] [--json PATH]

Times are medians of repeats (ms). "fwd+bwd" is forward plus all gradients; "vs ref" is the
reference's fwd+bwd time over fastres's (the reference runs fewer repeats, after one untimed
call: it is slow); "vs torch" is fastres's fwd+bwd time over PyTorch's (below 1 means fastres
is faster), measured in the same process with torch.set_num_threads(threads), in interleaved
rounds (fastres fwd, bwd, PyTorch fwd, bwd, with a pause before each runtime's turn so the
other's OpenMP threads stop spinning) so that load from elsewhere on the machine hits both
alike. PyTorch is used only when importable.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field

import numpy as np

import fastres
import fastres.functional as F
import fastres.reference as R
from benchmarks._common import (
    machine_info, median_ms, print_table, rounds_ms, try_torch, write_json,
)


@dataclass
class Case:
    name: str
    shape: str
    fast_fwd: object            # () -> cache-like state for fast_bwd
    fast_bwd: object            # (state) -> grads
    ref: object                 # () -> forward + backward in the reference
    torch_fwd: object = None    # () -> (out, inputs) ; backward timed with autograd.grad
    flops: float = 0.0          # forward FLOPs (backward counted as 2x) for GFLOP/s
    extra: dict = field(default_factory=dict)


def _conv_case(N, C, H, Fo, k, s, p, rng, torch):
    x = rng.standard_normal((N, C, H, H), dtype=np.float32)
    w = (rng.standard_normal((Fo, C, k, k), dtype=np.float32) * 0.1).astype(np.float32)
    out, _ = F.conv2d_forward(x, w, stride=s, padding=p)
    dout = rng.standard_normal(out.shape, dtype=np.float32)
    H_out = out.shape[2]
    flops = 2.0 * N * Fo * C * k * k * H_out * H_out

    def ref():
        _o, c = R.conv2d_forward(x, w, stride=s, padding=p)
        R.conv2d_backward(dout, c)

    tfwd = None
    if torch:
        tx = torch.from_numpy(x).requires_grad_()
        tw = torch.from_numpy(w).requires_grad_()
        tfwd = lambda: (torch.nn.functional.conv2d(tx, tw, stride=s, padding=p), (tx, tw))
    return Case(
        f"conv{k}x{k} s{s}", f"{C}->{Fo} @{H}x{H}",
        lambda: F.conv2d_forward(x, w, stride=s, padding=p)[1],
        lambda c: F.conv2d_backward(dout, c), ref, tfwd, flops, {"dout": dout},
    )


def cases(N: int, torch, rng) -> list[Case]:
    out = [
        _conv_case(N, 16, 32, 16, 3, 1, 1, rng, torch),
        _conv_case(N, 32, 16, 32, 3, 1, 1, rng, torch),
        _conv_case(N, 64, 8, 64, 3, 1, 1, rng, torch),
        _conv_case(N, 16, 32, 32, 3, 2, 1, rng, torch),
        _conv_case(N, 32, 16, 64, 3, 2, 1, rng, torch),
        _conv_case(N, 3, 32, 16, 3, 1, 1, rng, torch),
        _conv_case(N, 16, 32, 32, 1, 2, 0, rng, torch),
    ]

    # batch norm, training mode
    for C, H in ((16, 32), (32, 16), (64, 8)):
        x = rng.standard_normal((N, C, H, H), dtype=np.float32)
        g, b = np.ones(C, np.float32), np.zeros(C, np.float32)
        rm, rv = np.zeros(C, np.float32), np.ones(C, np.float32)
        dout = rng.standard_normal(x.shape, dtype=np.float32)

        def ref(x=x, g=g, b=b, rm=rm, rv=rv, dout=dout):
            _o, c = R.batch_norm2d_forward(x, g, b, rm.copy(), rv.copy(), training=True)
            R.batch_norm2d_backward(dout, c)

        tfwd = None
        if torch:
            tx, tg, tb = (torch.from_numpy(a.copy()).requires_grad_() for a in (x, g, b))
            trm, trv = torch.from_numpy(rm.copy()), torch.from_numpy(rv.copy())
            tfwd = lambda tx=tx, tg=tg, tb=tb, trm=trm, trv=trv: (
                torch.nn.functional.batch_norm(tx, trm, trv, tg, tb, training=True), (tx, tg, tb))
        out.append(Case(
            "batch norm (train)", f"{C}@{H}x{H}",
            lambda x=x, g=g, b=b, rm=rm, rv=rv: F.batch_norm2d_forward(
                x, g, b, rm, rv, training=True)[1],
            lambda c, dout=dout: F.batch_norm2d_backward(dout, c), ref, tfwd,
            extra={"dout": dout}))

    def simple(name, shape, x, fwd, bwd, rfwd, rbwd, tfn, dout):
        tfwd = None
        if torch:
            tx = torch.from_numpy(x.copy()).requires_grad_()
            tfwd = lambda: (tfn(tx), (tx,))
        return Case(name, shape, lambda: fwd(x)[1], lambda c: bwd(dout, c),
                    lambda: rbwd(dout, rfwd(x)[1]), tfwd, extra={"dout": dout})

    x = rng.standard_normal((N, 32, 32, 32), dtype=np.float32)
    d = rng.standard_normal((N, 32, 16, 16), dtype=np.float32)
    out.append(simple(
        "max pool 2x2", "32@32x32", x,
        lambda a: F.max_pool2d_forward(a, kernel_size=2), F.max_pool2d_backward,
        lambda a: R.max_pool2d_forward(a, kernel_size=2), R.max_pool2d_backward,
        (lambda t: torch.nn.functional.max_pool2d(t, 2)) if torch else None, d))
    out.append(simple(
        "avg pool 2x2", "32@32x32", x,
        lambda a: F.avg_pool2d_forward(a, kernel_size=2), F.avg_pool2d_backward,
        lambda a: R.avg_pool2d_forward(a, kernel_size=2), R.avg_pool2d_backward,
        (lambda t: torch.nn.functional.avg_pool2d(t, 2)) if torch else None, d))
    x = rng.standard_normal((N, 64, 8, 8), dtype=np.float32)
    d = rng.standard_normal((N, 64), dtype=np.float32)
    out.append(simple(
        "global avg pool", "64@8x8", x, F.global_avg_pool2d_forward, F.global_avg_pool2d_backward,
        R.global_avg_pool2d_forward, R.global_avg_pool2d_backward,
        (lambda t: t.mean((2, 3))) if torch else None, d))
    x = rng.standard_normal((N, 16, 32, 32), dtype=np.float32)
    out.append(simple(
        "relu", "16@32x32", x, F.relu_forward, F.relu_backward, R.relu_forward, R.relu_backward,
        (lambda t: torch.relu(t)) if torch else None, x))

    # linear 64 -> 10 and the loss
    x = rng.standard_normal((N, 64), dtype=np.float32)
    w = rng.standard_normal((10, 64), dtype=np.float32)
    b = np.zeros(10, np.float32)
    d = rng.standard_normal((N, 10), dtype=np.float32)
    tfwd = None
    if torch:
        tx, tw, tb = (torch.from_numpy(a.copy()).requires_grad_() for a in (x, w, b))
        tfwd = lambda: (torch.nn.functional.linear(tx, tw, tb), (tx, tw, tb))
    out.append(Case(
        "linear", "64->10", lambda: F.linear_forward(x, w, b)[1],
        lambda c: F.linear_backward(d, c),
        lambda: R.linear_backward(d, R.linear_forward(x, w, b)[1]), tfwd, 2.0 * N * 64 * 10,
        {"dout": d, "x": x, "w": w}))
    labels = rng.integers(0, 10, N)
    tfwd = None
    if torch:
        tl = torch.from_numpy(labels)
        tz = torch.from_numpy(d.copy()).requires_grad_()
        tfwd = lambda: (torch.nn.functional.cross_entropy(tz, tl), (tz,))
    out.append(Case(
        "softmax cross-entropy", "10 classes", lambda: F.softmax_cross_entropy(d, labels),
        lambda c: None, lambda: R.softmax_cross_entropy(d, labels), tfwd,
        extra={"dout": None}))
    return out


def run(threads: int, batch: int, repeats: int, ref_repeats: int, json_path: str | None,
        only: str | None = None) -> list[dict]:
    fastres.set_num_threads(threads)
    torch = try_torch()
    if torch:
        torch.set_num_threads(threads)
    rng = np.random.default_rng(0)
    all_cases = cases(batch, torch, rng)
    wanted = [w.strip() for w in only.split(",")] if only else []
    results, selected = [], [c for c in all_cases if not wanted or any(w in c.name for w in wanted)]
    if not selected:
        raise SystemExit(f"bench_ops: --only {only!r} matches no op; the ops are: "
                         + ", ".join(dict.fromkeys(c.name for c in all_cases)))
    for c in selected:
        state = c.fast_fwd()
        fns = {"fwd": c.fast_fwd, "bwd": lambda c=c, state=state: c.fast_bwd(state)}
        if c.torch_fwd:
            out, inputs = c.torch_fwd()
            grad = None if c.extra.get("dout") is None else torch.from_numpy(c.extra["dout"])

            def t_fwd(c=c):
                with torch.no_grad():
                    c.torch_fwd()

            fns["torch_fwd"] = t_fwd
            fns["torch_bwd"] = lambda out=out, inputs=inputs, grad=grad: torch.autograd.grad(
                out, inputs, grad, retain_graph=True)
        ms = rounds_ms(fns, repeats, pause_before={"fwd", "torch_fwd"}, rewarm=True)
        ref = median_ms(c.ref, ref_repeats, warmup=1)  # a cold first call would flatter "vs ref"
        fwd, bwd = ms["fwd"], ms["bwd"]
        row = {"op": c.name, "shape": c.shape, "fwd_ms": fwd, "bwd_ms": bwd,
               "total_ms": fwd + bwd, "ref_ms": ref, "speedup_vs_ref": ref / (fwd + bwd)}
        if c.flops:
            row["gflops"] = 3 * c.flops / ((fwd + bwd) * 1e6)
        if c.torch_fwd:
            t_total = ms["torch_fwd"] + ms["torch_bwd"]
            row.update(torch_fwd_ms=ms["torch_fwd"], torch_bwd_ms=ms["torch_bwd"],
                       torch_total_ms=t_total, vs_torch=row["total_ms"] / t_total)
        results.append(row)

    headers = ["op", "shape", "fwd ms", "bwd ms", "fwd+bwd ms", "GFLOP/s", "ref ms", "vs ref"]
    if torch:
        headers += ["torch fwd+bwd ms", "vs torch"]
    rows = []
    for r in results:
        cells = [r["op"], r["shape"], _ms(r["fwd_ms"]), _ms(r["bwd_ms"]), _ms(r["total_ms"]),
                 f"{r['gflops']:.0f}" if "gflops" in r else "", _ms(r["ref_ms"]),
                 f"{r['speedup_vs_ref']:.0f}x"]
        if torch:
            cells += [_ms(r["torch_total_ms"]), f"{r['vs_torch']:.2f}"] if "vs_torch" in r \
                else ["", ""]
        rows.append(cells)
    info = machine_info(threads)
    print(f"fastres {info['fastres']}, {threads} thread(s), batch {batch}, float32, "
          f"ISA path {info['isa_path']}, torch {info['torch'] or 'not installed'}")
    print_table(headers, rows)
    floors = _floors(selected, repeats, {r["op"]: r for r in results})
    for f in floors:
        print(f"floor: {f['op']}: {f['what']}: {f['floor_ms'] * 1e3:.1f} us; 10x the reference "
              f"would need {f['budget_ms'] * 1e3:.1f} us for the whole fwd+bwd")
    if json_path:
        write_json(json_path, {"machine": info, "batch": batch, "results": results,
                               "floors": floors})
    return results


def _ms(v: float) -> str:
    """Milliseconds to three significant digits (at least two decimals): a 12 us op reads
    0.0121, not 0.01."""
    return f"{v:.2f}" if v >= 10 else f"{v:#.3g}"


def _floors(selected: list[Case], repeats: int, rows: dict) -> list[dict]:
    """What the linear layer cannot go below, beside a tenth of its reference's time: its three
    BLAS products alone on its case's arrays (one thread, no Python between them)."""
    from fastres._kernels import _linear

    linear = [c.extra for c in selected if c.name == "linear"]
    if not linear:
        return []
    x, w, d = linear[0]["x"], linear[0]["w"], linear[0]["dout"]
    out, dx, dw = np.empty_like(d), np.empty_like(x), np.empty_like(w)
    sec = min(_linear.blas_seconds(x, w, d, out, dx, dw, 2000) for _ in range(repeats))
    return [{"op": "linear", "what": "its three BLAS products alone (1 thread)",
             "floor_ms": sec * 1e3, "budget_ms": rows["linear"]["ref_ms"] / 10}]


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=fastres.get_num_threads())
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--repeats", type=int, default=15)
    p.add_argument("--ref-repeats", type=int, default=3)
    p.add_argument("--json", default="bench_results/ops.json")
    p.add_argument("--only", default=None,
                   help="run only ops whose name contains one of these comma-separated texts")
    a = p.parse_args(argv)
    run(a.threads, a.batch, a.repeats, a.ref_repeats, a.json, a.only)


if __name__ == "__main__":
    main()
