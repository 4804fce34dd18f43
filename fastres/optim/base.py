"""The optimizer base class: parameter groups, per-parameter state, a no-pickle state_dict.

An optimizer takes a model, ``model.named_parameters()``, an iterable of ``Parameter`` objects or
a list of group dicts (``{"params": [...], "weight_decay": 0.0}``; keys other than ``params``
override the defaults for that group, as in PyTorch). ``decay_filter(name, param) -> bool``
splits every group in two, putting the parameters it rejects in a group with
``weight_decay=0`` (``decay_filter=no_bn_bias`` skips BN weights/biases and all biases, which
are the 1-D parameters). Subclasses implement ``_update(p, state, group)``, which calls a pure
in-place update function.
"""

from __future__ import annotations

import copy
import numbers
from collections.abc import Callable, Iterable

import numpy as np

from fastres.layers.base import Module, Parameter

__all__ = ["Optimizer", "no_bn_bias"]


def no_bn_bias(name: str, p: Parameter) -> bool:
    """``decay_filter`` that decays only weights of rank > 1 (conv and dense kernels), not the
    BN scales/shifts or biases (Goyal et al. 2017, "no bias decay")."""
    return p.data.ndim > 1


_KERNEL_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def _one_pass(*arrays):
    """The arrays of one update, flattened for the one-pass kernels (``fastres._kernels._optim``),
    or None where those do not apply and the NumPy code runs instead: every array given must be
    a C-contiguous float32 or float64 ndarray with the dtype and shape of the first (the
    parameter). None stands for an absent optional array and stays None. (The kernels refuse
    overlapping arrays themselves, from their addresses.)"""
    p = arrays[0]
    flat = []
    for a in arrays:
        if a is None:
            flat.append(None)
        elif (type(a) is np.ndarray and a.dtype == p.dtype and a.shape == p.shape
              and a.flags.c_contiguous):
            flat.append(a.reshape(-1))  # a view, since a is C-contiguous
        else:
            return None
    return flat if p.dtype in _KERNEL_DTYPES else None


def _check_float(owner: str, name: str, v, *, minimum: float = 0.0,
                 maximum: float | None = None, open_max: bool = False) -> float:
    if isinstance(v, bool) or not isinstance(v, numbers.Real):
        raise TypeError(f"{owner}: expected {name} to be a number, got {v!r}")
    v = float(v)
    if not np.isfinite(v) or v < minimum or (maximum is not None and
                                              (v >= maximum if open_max else v > maximum)):
        hi = "" if maximum is None else (f" and < {maximum}" if open_max else f" and <= {maximum}")
        raise ValueError(f"{owner}: expected {name} >= {minimum}{hi}, got {v!r}")
    return v


class Optimizer:
    """Base class: ``step()``, ``zero_grad()``, ``state_dict()`` / ``load_state_dict()``.

    ``param_groups`` is a list of dicts holding ``params`` (Parameters), ``names`` and the
    hyper-parameters; schedules change ``group["lr"]``. ``state[i]`` is the state of the i-th
    parameter (in group order): arrays plus a few int/float scalars.
    """

    def __init__(self, params, defaults: dict, *, decay_filter: Callable | None = None):
        who = type(self).__name__
        self.defaults = dict(defaults)
        groups = self._groups_from(params)
        if decay_filter is not None:
            if not callable(decay_filter):
                raise TypeError(f"{who}: expected decay_filter to be callable(name, param) -> "
                                f"bool, got {type(decay_filter).__name__}")
            split = []
            for g in groups:
                keep = [bool(decay_filter(n, p)) for n, p in zip(g["names"], g["params"])]
                yes = {**g, "params": [p for p, k in zip(g["params"], keep) if k],
                       "names": [n for n, k in zip(g["names"], keep) if k]}
                no = {**g, "params": [p for p, k in zip(g["params"], keep) if not k],
                      "names": [n for n, k in zip(g["names"], keep) if not k], "weight_decay": 0.0}
                split += [x for x in (yes, no) if x["params"]]
            groups = split
        self.param_groups: list[dict] = []
        seen: set[int] = set()
        for g in groups:
            unknown = set(g) - set(self.defaults) - {"params", "names"}
            if unknown:
                raise ValueError(f"{who}: unknown option(s) {sorted(unknown)} in a parameter group "
                                 f"(known: {sorted(self.defaults)})")
            full = {**self.defaults, **g}
            for p in full["params"]:
                if id(p) in seen:
                    raise ValueError(f"{who}: a parameter appears in more than one group")
                seen.add(id(p))
            self._validate_group(full)
            self.param_groups.append(full)
        if not seen:
            raise ValueError(f"{who}: got an empty parameter list")
        self.state: list[dict] = [{} for _ in range(len(seen))]

    def _groups_from(self, params) -> list[dict]:
        who = type(self).__name__
        if isinstance(params, Module):
            params = params.named_parameters()
        if isinstance(params, Parameter) or not isinstance(params, Iterable):
            raise TypeError(f"{who}: expected a Module, named_parameters(), an iterable of "
                            f"Parameter or a list of group dicts, got {type(params).__name__}")
        items = list(params)
        if items and all(isinstance(i, dict) for i in items):
            groups = []
            for gi, g in enumerate(items):
                if "params" not in g:
                    raise ValueError(f"{who}: parameter group {gi} has no 'params' key")
                sub = self._groups_from(g["params"])[0]
                groups.append({**{k: v for k, v in g.items() if k != "params"}, **sub})
            return groups
        names, plist = [], []
        for i, item in enumerate(items):
            if isinstance(item, tuple) and len(item) == 2 and isinstance(item[1], Parameter):
                names.append(str(item[0]))
                plist.append(item[1])
            elif isinstance(item, Parameter):
                names.append(str(i))
                plist.append(item)
            else:
                raise TypeError(f"{who}: expected Parameter or (name, Parameter) items, got "
                                f"{type(item).__name__} at position {i}")
        return [{"params": plist, "names": names}]

    def _validate_group(self, g: dict) -> None:  # subclasses check their hyper-parameters
        who = type(self).__name__
        g["lr"] = _check_float(who, "lr", g["lr"])
        g["weight_decay"] = _check_float(who, "weight_decay", g["weight_decay"])

    # ---- the loop -------------------------------------------------------------------------------
    def _indexed(self):
        i = 0
        for g in self.param_groups:
            for p in g["params"]:
                yield i, p, g
                i += 1

    def zero_grad(self) -> None:
        for _, p, _ in self._indexed():
            p.grad[...] = 0

    def step(self) -> None:
        """Update every parameter in place from its ``.grad``."""
        for i, p, g in self._indexed():
            self._update(p, self.state[i], g)

    def _update(self, p: Parameter, state: dict, group: dict) -> None:  # pragma: no cover
        raise NotImplementedError

    def _state_keys(self, group: dict) -> tuple[set, set]:  # pragma: no cover
        """(array keys, int keys) of a parameter's state under group's options, once it has
        one (load_state_dict checks a loaded state against them)."""
        raise NotImplementedError

    @property
    def lr(self) -> float:
        """The first group's learning rate (set it on every group with ``optimizer.lr = x``)."""
        return self.param_groups[0]["lr"]

    @lr.setter
    def lr(self, value: float) -> None:
        value = _check_float(type(self).__name__, "lr", value)
        for g in self.param_groups:
            g["lr"] = value

    # ---- state ----------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        """``{"type", "groups": [hyper-parameters, JSON-able], "state": {"i": {key: value}}}``;
        state values are ndarray copies or int/float scalars (nothing needs pickling)."""
        groups = [{k: (list(v) if isinstance(v, tuple) else v) for k, v in g.items()
                   if k != "params"} for g in self.param_groups]
        state = {str(i): {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in s.items()}
                 for i, s in enumerate(self.state) if s}
        return {"type": type(self).__name__, "groups": copy.deepcopy(groups), "state": state}

    def load_state_dict(self, d: dict) -> None:
        """Restore hyper-parameters and per-parameter state (checked against the parameters)."""
        who = f"{type(self).__name__}.load_state_dict"
        if not isinstance(d, dict) or not {"groups", "state"} <= set(d):
            raise ValueError(f"{who}: expected a dict with 'groups' and 'state' keys")
        if d.get("type", type(self).__name__) != type(self).__name__:
            raise ValueError(f"{who}: the state is from a {d['type']} optimizer")
        if len(d["groups"]) != len(self.param_groups):
            raise ValueError(f"{who}: expected {len(self.param_groups)} parameter groups, "
                             f"got {len(d['groups'])}")
        for g, saved in zip(self.param_groups, d["groups"]):
            if len(saved.get("names", g["names"])) != len(g["params"]):
                raise ValueError(f"{who}: a group has {len(g['params'])} parameters, the state "
                                 f"has {len(saved['names'])}")
        new_state: list[dict] = [{} for _ in self.state]
        params = {i: p for i, p, _ in self._indexed()}
        for key, s in d["state"].items():
            i = int(key) if isinstance(key, (int, str)) and str(key).isdigit() else -1
            if i not in params:
                raise ValueError(f"{who}: state for parameter {key!r}, which does not exist")
            for k, v in s.items():
                if isinstance(v, np.ndarray):
                    if v.shape != params[i].data.shape:
                        raise ValueError(f"{who}: state {k!r} of parameter {i} has shape "
                                         f"{v.shape}, the parameter {params[i].data.shape}")
                    v = v.astype(params[i].data.dtype, copy=True)
                new_state[i][k] = v
        groups = []
        for g, saved in zip(self.param_groups, d["groups"]):
            g = dict(g)
            for k, v in saved.items():
                if k in self.defaults:
                    g[k] = tuple(v) if isinstance(self.defaults[k], tuple) else v
            self._validate_group(g)  # the same checks as the constructor's (lr >= 0, ...)
            groups.append(g)
        # A state must hold what _update reads under its group's options (a missing buffer
        # was a KeyError at the next step, a float step or a list buffer a TypeError there).
        group_of = [k for k, g in enumerate(self.param_groups) for _ in g["params"]]
        for i, s in enumerate(new_state):
            if not s:
                continue
            arrays, ints = self._state_keys(groups[group_of[i]])
            if set(s) != arrays | ints:
                raise ValueError(f"{who}: the state of parameter {i} has {sorted(s)}, expected "
                                 f"{sorted(arrays | ints)} under its group's options")
            for k in arrays:
                if not isinstance(s[k], np.ndarray):
                    raise ValueError(f"{who}: state {k!r} of parameter {i} must be an array, "
                                     f"got {type(s[k]).__name__}")
            for k in ints:
                if not isinstance(s[k], numbers.Integral) or isinstance(s[k], bool) or s[k] < 0:
                    raise ValueError(f"{who}: state {k!r} of parameter {i} must be an int "
                                     f">= 0, got {s[k]!r}")
                s[k] = int(s[k])
        for g, new in zip(self.param_groups, groups):
            g.update(new)
        self.state = new_state

    def __repr__(self) -> str:
        opts = ", ".join(f"{k}={v}" for k, v in self.param_groups[0].items()
                         if k not in ("params", "names"))
        n = sum(len(g["params"]) for g in self.param_groups)
        return f"{type(self).__name__}({n} parameters in {len(self.param_groups)} group(s); {opts})"
