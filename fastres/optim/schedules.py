"""Learning-rate schedules: small stateful objects that set ``group["lr"]`` on an optimizer.

Each schedule remembers the optimizer's learning rates at construction (``base_lrs``) and a step
counter ``last_step``; ``step()`` advances it and writes the new rates. ``interval`` says what a
step is: ``"epoch"`` (call ``step()`` after each epoch) or ``"batch"`` (after each optimizer
step); ``fastres.solver.fit`` follows it. Closed-form schedules expose ``lr_at(t)``, the rates at
step ``t``, which ``LinearWarmup`` composes. ``state_dict()`` holds JSON-able scalars only.

Formulas (``b`` = base lr, ``t`` = step):

- ``StepLR``: ``b * gamma ** (t // step_size)``
- ``MultiStepLR``: ``b * gamma ** (number of milestones <= t)``
- ``CosineAnnealing``: ``eta_min + (b - eta_min) * (1 + cos(pi * min(t, T_max) / T_max)) / 2``
- ``OneCycle``: cosine from ``max_lr / div_factor`` up to ``max_lr`` over the first
  ``pct_start * total_steps`` steps, then down to ``max_lr / div_factor / final_div_factor``
  (``torch.optim.lr_scheduler.OneCycleLR``, two-phase, cosine annealing).
- ``LinearWarmup(inner, warmup_steps, start_factor)``: ``b * (start_factor + (1 - start_factor) *
  t / warmup_steps)`` for ``t < warmup_steps``, then ``inner.lr_at(t - warmup_steps)``.
- ``ReduceLROnPlateau``: multiply by ``factor`` when the metric has not improved for more than
  ``patience`` steps (``step(metric)``; PyTorch semantics, mode "min").
"""

from __future__ import annotations

import bisect
import math
import numbers

from fastres.optim.base import Optimizer

__all__ = ["CosineAnnealing", "LinearWarmup", "MultiStepLR", "OneCycle", "ReduceLROnPlateau",
           "Schedule", "StepLR"]


def _pos_int(who, name, v, minimum=1):
    if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < minimum:
        raise ValueError(f"{who}: expected {name} to be an int >= {minimum}, got {v!r}")
    return int(v)


def _num(who, name, v, lo=0.0, hi=None):
    if isinstance(v, bool) or not isinstance(v, numbers.Real) or not math.isfinite(v) \
            or v < lo or (hi is not None and v > hi):
        rng = f">= {lo}" + ("" if hi is None else f" and <= {hi}")
        raise ValueError(f"{who}: expected {name} to be a number {rng}, got {v!r}")
    return float(v)


class Schedule:
    """Base class. Subclasses implement ``lr_at(t) -> list of per-group lrs``."""

    def __init__(self, optimizer: Optimizer, *, interval: str = "epoch"):
        who = type(self).__name__
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"{who}: expected a fastres.optim optimizer, got "
                            f"{type(optimizer).__name__}")
        if interval not in ("epoch", "batch"):
            raise ValueError(f"{who}: expected interval 'epoch' or 'batch', got {interval!r}")
        self.optimizer = optimizer
        self.interval = interval
        self.base_lrs = [g["lr"] for g in optimizer.param_groups]
        self.last_step = 0

    def _apply(self) -> None:
        for g, lr in zip(self.optimizer.param_groups, self.lr_at(self.last_step)):
            g["lr"] = lr

    def lr_at(self, t: int) -> list[float]:  # pragma: no cover - abstract
        raise NotImplementedError

    def step(self, metric: float | None = None) -> None:
        """Advance one step (``metric`` is only used by ``ReduceLROnPlateau``)."""
        self.last_step += 1
        self._apply()

    def get_last_lr(self) -> list[float]:
        return [g["lr"] for g in self.optimizer.param_groups]

    def _extra_state(self) -> dict:
        return {}

    def state_dict(self) -> dict:
        return {"type": type(self).__name__, "last_step": self.last_step,
                "base_lrs": list(self.base_lrs), **self._extra_state()}

    def load_state_dict(self, d: dict) -> None:
        if d.get("type") != type(self).__name__:
            raise ValueError(f"{type(self).__name__}.load_state_dict: the state is from "
                             f"{d.get('type')!r}")
        try:
            last_step, base_lrs = int(d["last_step"]), [float(x) for x in d["base_lrs"]]
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(f"{type(self).__name__}.load_state_dict: a malformed state "
                             f"({type(e).__name__}: {e})") from None
        if len(base_lrs) != len(self.optimizer.param_groups):
            raise ValueError(f"{type(self).__name__}.load_state_dict: the state has "
                             f"{len(base_lrs)} parameter group(s), the optimizer "
                             f"{len(self.optimizer.param_groups)}")
        self.last_step, self.base_lrs = last_step, base_lrs
        self._load_extra(d)
        self._apply()

    def _load_extra(self, d: dict) -> None:
        pass

    def __repr__(self) -> str:
        return f"{type(self).__name__}(last_step={self.last_step}, lr={self.get_last_lr()})"


class StepLR(Schedule):
    """Multiply the rate by ``gamma`` every ``step_size`` steps."""

    def __init__(self, optimizer, step_size: int, *, gamma: float = 0.1, interval="epoch"):
        super().__init__(optimizer, interval=interval)
        self.step_size = _pos_int("StepLR", "step_size", step_size)
        self.gamma = _num("StepLR", "gamma", gamma)
        self._apply()

    def lr_at(self, t):
        return [b * self.gamma ** (t // self.step_size) for b in self.base_lrs]


class MultiStepLR(Schedule):
    """Multiply the rate by ``gamma`` at each milestone (He et al. 2016: epochs 82 and 123 of
    164 for CIFAR, i.e. 32k and 48k iterations)."""

    def __init__(self, optimizer, milestones, *, gamma: float = 0.1, interval="epoch"):
        super().__init__(optimizer, interval=interval)
        if not isinstance(milestones, (list, tuple)):
            raise TypeError(f"MultiStepLR: expected milestones as a list of ints, got "
                            f"{milestones!r}")
        ms = [_pos_int("MultiStepLR", "milestone", m) for m in milestones]
        if ms != sorted(ms):
            raise ValueError(f"MultiStepLR: expected increasing milestones, got {list(milestones)}")
        self.milestones = ms
        self.gamma = _num("MultiStepLR", "gamma", gamma)
        self._apply()

    def lr_at(self, t):
        return [b * self.gamma ** bisect.bisect_right(self.milestones, t) for b in self.base_lrs]


class CosineAnnealing(Schedule):
    """Half a cosine from the base rate down to ``eta_min`` over ``T_max`` steps (SGDR without
    restarts, Loshchilov & Hutter 2017); stays at ``eta_min`` afterwards."""

    def __init__(self, optimizer, T_max: int, *, eta_min: float = 0.0, interval="epoch"):
        super().__init__(optimizer, interval=interval)
        self.T_max = _pos_int("CosineAnnealing", "T_max", T_max)
        self.eta_min = _num("CosineAnnealing", "eta_min", eta_min)
        self._apply()

    def lr_at(self, t):
        c = (1 + math.cos(math.pi * min(t, self.T_max) / self.T_max)) / 2
        return [self.eta_min + (b - self.eta_min) * c for b in self.base_lrs]


class OneCycle(Schedule):
    """The 1cycle policy (Smith & Topin 2018), stepped per batch: ``total_steps`` is the number
    of optimizer steps (epochs x batches per epoch). ``max_lr`` defaults to the optimizer's lr.
    With ``cycle_momentum`` SGD momentum / Adam beta1 goes the opposite way, between
    ``base_momentum`` and ``max_momentum`` (for groups that use momentum)."""

    def __init__(self, optimizer, total_steps: int, *, max_lr: float | None = None,
                 pct_start: float = 0.3, div_factor: float = 25.0,
                 final_div_factor: float = 1e4, cycle_momentum: bool = True,
                 base_momentum: float = 0.85, max_momentum: float = 0.95, interval="batch"):
        super().__init__(optimizer, interval=interval)
        who = "OneCycle"
        self.total_steps = _pos_int(who, "total_steps", total_steps, minimum=2)
        if max_lr is not None:
            self.base_lrs = [_num(who, "max_lr", max_lr)] * len(self.base_lrs)
        self.pct_start = _num(who, "pct_start", pct_start, 0.0, 1.0)
        self.div_factor = _num(who, "div_factor", div_factor, 1.0)
        self.final_div_factor = _num(who, "final_div_factor", final_div_factor, 1.0)
        self.cycle_momentum = bool(cycle_momentum)
        self.base_momentum = _num(who, "base_momentum", base_momentum, 0.0, 1.0)
        self.max_momentum = _num(who, "max_momentum", max_momentum, 0.0, 1.0)
        self._apply()

    @staticmethod
    def _cos(start, end, pct):
        return end + (start - end) / 2.0 * (math.cos(math.pi * pct) + 1)

    def _phase(self, t):
        t = min(t, self.total_steps - 1)
        up_end = float(self.pct_start * self.total_steps) - 1
        if t <= up_end and up_end > 0:
            return 0, t / up_end
        down = self.total_steps - 1 - max(up_end, 0.0)
        return 1, (t - max(up_end, 0.0)) / down if down > 0 else 1.0

    def lr_at(self, t):
        phase, pct = self._phase(t)
        out = []
        for b in self.base_lrs:
            lo = b / self.div_factor
            out.append(self._cos(lo, b, pct) if phase == 0
                       else self._cos(b, lo / self.final_div_factor, pct))
        return out

    def _apply(self):
        super()._apply()
        if not self.cycle_momentum:
            return
        phase, pct = self._phase(self.last_step)
        m = (self._cos(self.max_momentum, self.base_momentum, pct) if phase == 0
             else self._cos(self.base_momentum, self.max_momentum, pct))
        for g in self.optimizer.param_groups:
            if "betas" in g:
                g["betas"] = (m, g["betas"][1])
            elif g.get("momentum", 0) > 0:
                g["momentum"] = m


class LinearWarmup(Schedule):
    """Ramp linearly from ``start_factor * base`` to the base rate over ``warmup_steps`` steps,
    then follow ``inner`` (a closed-form schedule on the same optimizer, started afresh; He et
    al. 2016 warm up ResNet-110 at 0.01 before the 0.1 schedule; Goyal et al. 2017 for large
    batches)."""

    def __init__(self, inner: Schedule, warmup_steps: int, *, start_factor: float = 0.1):
        if not isinstance(inner, Schedule) or isinstance(inner, ReduceLROnPlateau):
            raise TypeError("LinearWarmup: expected a closed-form schedule (StepLR, MultiStepLR, "
                            f"CosineAnnealing, OneCycle) to wrap, got {type(inner).__name__}")
        super().__init__(inner.optimizer, interval=inner.interval)
        self.inner = inner
        self.base_lrs = list(inner.base_lrs)
        self.warmup_steps = _pos_int("LinearWarmup", "warmup_steps", warmup_steps)
        self.start_factor = _num("LinearWarmup", "start_factor", start_factor, 0.0, 1.0)
        self._apply()

    def lr_at(self, t):
        if t < self.warmup_steps:
            f = self.start_factor + (1 - self.start_factor) * t / self.warmup_steps
            return [b * f for b in self.base_lrs]
        return self.inner.lr_at(t - self.warmup_steps)

    def _apply(self):
        if self.last_step >= self.warmup_steps:
            self.inner.last_step = self.last_step - self.warmup_steps
            self.inner._apply()
        else:
            super()._apply()

    def _extra_state(self):
        return {"inner": self.inner.state_dict()}

    def _load_extra(self, d):
        self.inner.load_state_dict(d["inner"])


class ReduceLROnPlateau(Schedule):
    """Multiply the rate by ``factor`` (default 0.1: "divide by 10", as He et al. 2016 did for
    ImageNet when the error plateaus) once the metric (lower is better, e.g. validation error)
    has not improved by more than ``threshold`` (relative) for more than ``patience`` steps;
    then wait ``cooldown`` steps. Never goes below ``min_lr``. ``step(metric)`` is required."""

    def __init__(self, optimizer, *, factor: float = 0.1, patience: int = 10,
                 threshold: float = 1e-4, cooldown: int = 0, min_lr: float = 0.0):
        super().__init__(optimizer, interval="epoch")
        who = "ReduceLROnPlateau"
        self.factor = _num(who, "factor", factor, 0.0, 1.0)
        if self.factor >= 1.0:
            raise ValueError(f"{who}: expected factor < 1, got {factor}")
        self.patience = _pos_int(who, "patience", patience, minimum=0)
        self.threshold = _num(who, "threshold", threshold)
        self.cooldown = _pos_int(who, "cooldown", cooldown, minimum=0)
        self.min_lr = _num(who, "min_lr", min_lr)
        self.best: float | None = None
        self.num_bad = 0
        self.cooldown_counter = 0

    def lr_at(self, t):  # not closed form: the current rates
        return self.get_last_lr()

    def step(self, metric: float | None = None) -> None:
        if metric is None or not isinstance(metric, numbers.Real):
            raise ValueError(f"ReduceLROnPlateau.step: expected the metric value, got {metric!r}")
        metric = float(metric)
        self.last_step += 1
        best = math.inf if self.best is None else self.best  # torch starts from inf too
        if metric < best * (1 - self.threshold):  # a NaN never improves on it
            self.best = metric
            self.num_bad = 0
        else:
            self.num_bad += 1
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.num_bad = 0
        if self.num_bad > self.patience:
            for g in self.optimizer.param_groups:
                g["lr"] = max(g["lr"] * self.factor, self.min_lr)
            self.cooldown_counter = self.cooldown
            self.num_bad = 0

    def _extra_state(self):
        return {"best": self.best, "num_bad": self.num_bad,
                "cooldown_counter": self.cooldown_counter, "lrs": self.get_last_lr()}

    def _load_extra(self, d):
        self.best = d["best"]
        self.num_bad = int(d["num_bad"])
        self.cooldown_counter = int(d["cooldown_counter"])
        for g, lr in zip(self.optimizer.param_groups, d["lrs"]):
            g["lr"] = float(lr)
