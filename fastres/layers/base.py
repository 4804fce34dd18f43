"""Parameters, the Module base class and the two containers (Sequential and Graph).

A Module owns its parameters (``Parameter(data, grad)``), its buffers (running statistics) and its
child modules, discovered from attribute assignment in definition order, which gives the stable
dotted names of ``named_parameters()`` and ``state_dict()`` (``stage2.0.conv1.weight``).

``forward`` stores what ``backward`` needs on the module itself; ``backward(dy)`` must follow the
matching ``forward`` in the same mode, and *accumulates* parameter gradients into ``.grad`` (``+=``,
as in PyTorch) until ``zero_grad()``.

``Graph`` is a DAG of modules in which a residual connection is declared (``g.add("sum", Add(),
"bn2", "shortcut")``) rather than hand-differentiated: backward walks the nodes in reverse
topological order and sums the gradients of tensors that fan out.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np

from fastres.functional.activation import ReluCache, add_forward, relu_backward

__all__ = [
    "Graph",
    "Module",
    "Parameter",
    "Sequential",
    "deferred_init",
    "init_rng",
    "resolve_dtype",
]

_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))
_DEFER = [0]


@contextmanager
def deferred_init():
    """Inside this block layers allocate their parameters without initialising them (model
    builders then call ``model.reset_parameters(np.random.default_rng(seed))`` once)."""
    _DEFER[0] += 1
    try:
        yield
    finally:
        _DEFER[0] -= 1


class parameter_budget:
    """Inside ``with parameter_budget(count, elements):``, creating more than ``count``
    parameters or ``elements`` parameter elements in all raises ``parameter_budget.Exceeded``
    (for ``fastres.load``, which builds a model from a file whose arrays must hold every
    parameter)."""

    class Exceeded(Exception):
        pass

    def __init__(self, count: int, elements: int):
        self.left = [count, elements]

    def __enter__(self):
        self._outer = _BUDGET[0]
        _BUDGET[0] = self.left
        return self

    def __exit__(self, *exc):
        _BUDGET[0] = self._outer


_BUDGET: list = [None]  # the innermost parameter_budget's [count, elements] left, or None


def init_rng(rng: np.random.Generator | None) -> np.random.Generator | None:
    """The generator a layer constructor initialises from: None inside ``deferred_init()``,
    else ``rng`` or a fresh unseeded generator (like PyTorch's global RNG)."""
    if _DEFER[0]:
        return None
    return np.random.default_rng() if rng is None else rng


def resolve_dtype(layer: str, dtype) -> np.dtype:
    """``dtype`` as a numpy dtype, float32 or float64 only."""
    try:
        dt = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"{layer}: expected dtype float32 or float64, got {dtype!r}") from None
    if dt not in _FLOATS:
        raise TypeError(f"{layer}: expected dtype float32 or float64, got {dt}")
    return dt


class Parameter:
    """A trainable array ``data`` with its gradient ``grad`` (same shape and dtype, starts at 0)."""

    __slots__ = ("data", "grad")

    def __init__(self, data: np.ndarray, grad: np.ndarray | None = None):
        if _BUDGET[0] is not None:
            left = _BUDGET[0]
            left[0] -= 1
            left[1] -= np.size(data)
            if left[0] < 0 or left[1] < 0:
                raise parameter_budget.Exceeded()
        self.data = np.ascontiguousarray(data)
        self.grad = np.zeros_like(self.data) if grad is None else grad

    @property
    def shape(self) -> tuple:
        return self.data.shape

    @property
    def dtype(self) -> np.dtype:
        return self.data.dtype

    @property
    def size(self) -> int:
        return self.data.size

    def __repr__(self) -> str:
        return f"Parameter(shape={self.data.shape}, dtype={self.data.dtype})"


class Module:
    """Base class of layers and models.

    Subclasses assign ``Parameter`` and ``Module`` attributes (registered automatically, in order)
    and name their buffers with ``self.register_buffer(name, array)``. They implement
    ``forward(*xs)`` and ``backward(dy)`` (returning one gradient per input, a tuple when there are
    several), and optionally ``reset_parameters(rng)``, ``output_shape(*shapes)`` and
    ``macs(*shapes)`` (used by ``summary``).
    """

    n_inputs = 1

    def __init__(self, *, dtype=np.float32):
        object.__setattr__(self, "_params", {})
        object.__setattr__(self, "_modules", {})
        object.__setattr__(self, "_buffers", {})
        object.__setattr__(self, "training", True)
        object.__setattr__(self, "dtype", resolve_dtype(type(self).__name__, dtype))

    # ---- registration -------------------------------------------------------------------------
    def __setattr__(self, name: str, value) -> None:
        if "_params" not in self.__dict__:
            raise RuntimeError(f"{type(self).__name__}: call Module.__init__ before "
                               f"assigning {name}")
        self._params.pop(name, None)
        self._modules.pop(name, None)
        if isinstance(value, Parameter):
            self._params[name] = value
        elif isinstance(value, Module):
            self._modules[name] = value
        object.__setattr__(self, name, value)

    def register_buffer(self, name: str, value: np.ndarray) -> None:
        """A non-trainable array saved in ``state_dict`` (e.g. BN running statistics)."""
        self._buffers[name] = None
        object.__setattr__(self, name, np.ascontiguousarray(value))

    def add_module(self, name: str, module: Module) -> None:
        if not isinstance(module, Module):
            raise TypeError(f"{type(self).__name__}.add_module: expected a Module for {name!r}, "
                            f"got {type(module).__name__}")
        if (name in self.__dict__ and name not in self._modules) or hasattr(type(self), name):
            raise ValueError(f"{type(self).__name__}.add_module: name {name!r} is already taken")
        setattr(self, name, module)

    # ---- traversal ----------------------------------------------------------------------------
    def children(self) -> Iterator[Module]:
        yield from self._modules.values()

    def named_modules(self, prefix: str = "") -> Iterator[tuple[str, Module]]:
        yield prefix, self
        for name, m in self._modules.items():
            yield from m.named_modules(f"{prefix}.{name}" if prefix else name)

    def modules(self) -> Iterator[Module]:
        for _, m in self.named_modules():
            yield m

    def named_parameters(self, prefix: str = "") -> Iterator[tuple[str, Parameter]]:
        for mname, m in self.named_modules(prefix):
            for pname, p in m._params.items():
                yield (f"{mname}.{pname}" if mname else pname), p

    def parameters(self) -> Iterator[Parameter]:
        for _, p in self.named_parameters():
            yield p

    def named_buffers(self, prefix: str = "") -> Iterator[tuple[str, np.ndarray]]:
        for mname, m in self.named_modules(prefix):
            for bname in m._buffers:
                yield (f"{mname}.{bname}" if mname else bname), getattr(m, bname)

    def num_parameters(self) -> int:
        return sum(p.size for p in self.parameters())

    # ---- state ----------------------------------------------------------------------------------
    def zero_grad(self) -> None:
        for p in self.parameters():
            p.grad[...] = 0

    def train(self, mode: bool = True) -> Module:
        for m in self.modules():
            object.__setattr__(m, "training", bool(mode))
        return self

    def eval(self) -> Module:
        return self.train(False)

    def reset_parameters(self, rng: np.random.Generator) -> None:
        """Initialise every child in definition order from ``rng`` (layers override this)."""
        for m in self._modules.values():
            m.reset_parameters(rng)

    def state_dict(self) -> dict[str, np.ndarray]:
        """Dotted name -> copy of every parameter and buffer."""
        d = {name: p.data.copy() for name, p in self.named_parameters()}
        d.update({name: b.copy() for name, b in self.named_buffers()})
        return d

    def load_state_dict(self, state: dict) -> None:
        """Copy arrays into the parameters and buffers (cast to this model's dtype).

        Strict: a missing or unexpected key, or a shape mismatch, raises ``ValueError`` naming the
        first offending key; nothing is modified unless every array fits.
        """
        who = type(self).__name__
        targets = {name: p.data for name, p in self.named_parameters()}
        targets.update(dict(self.named_buffers()))
        missing = [k for k in targets if k not in state]
        if missing:
            raise ValueError(f"{who}.load_state_dict: missing key {missing[0]!r} (expected "
                             f"shape {targets[missing[0]].shape}; {len(missing)} missing)")
        unexpected = [k for k in state if k not in targets]
        if unexpected:
            k = unexpected[0]
            raise ValueError(f"{who}.load_state_dict: unexpected key {k!r} with shape "
                             f"{np.shape(state[k])} ({len(unexpected)} unexpected)")
        for k, t in targets.items():
            v = state[k]
            if not isinstance(v, np.ndarray) or v.dtype.kind not in "fiu":
                raise TypeError(f"{who}.load_state_dict: expected a numeric ndarray for {k!r}, "
                                f"got {type(v).__name__}"
                                + (f" of dtype {v.dtype}" if isinstance(v, np.ndarray) else ""))
            if v.shape != t.shape:
                raise ValueError(f"{who}.load_state_dict: shape mismatch for {k!r}: model has "
                                 f"{t.shape}, state_dict has {v.shape}")
        for k, t in targets.items():
            np.copyto(t, state[k], casting="unsafe")

    # ---- calling --------------------------------------------------------------------------------
    def forward(self, *xs):  # pragma: no cover - abstract
        raise NotImplementedError

    def backward(self, dy):  # pragma: no cover - abstract
        raise NotImplementedError

    def __call__(self, *xs):
        return self.forward(*xs)

    def _check_input(self, x, *, ndim: int | None = None, channels: int | None = None,
                     what: str = "") -> np.ndarray:
        """TypeError/ValueError naming this layer when ``x`` has the wrong type, dtype or shape."""
        if not isinstance(x, np.ndarray):
            raise TypeError(f"{self!r}: expected a numpy.ndarray input, got {type(x).__name__}")
        if x.dtype != self.dtype:
            raise TypeError(f"{self!r}: expected input of dtype {self.dtype}, got {x.dtype} "
                            "(layers keep one dtype; cast the input or build with dtype=)")
        if ndim is not None and x.ndim != ndim:
            raise ValueError(f"{self!r}: expected a {ndim}-D input{what}, got shape {x.shape}")
        if channels is not None and x.shape[1] != channels:
            raise ValueError(f"{self!r}: expected {channels} input channels (axis 1), "
                             f"got shape {x.shape}")
        return x

    def _need_cache(self, cache) -> None:
        if cache is None:
            raise RuntimeError(f"{self!r}: backward called before forward")

    # ---- shapes and cost --------------------------------------------------------------------
    def output_shape(self, *shapes: tuple) -> tuple:
        """Shape of one sample's output (no batch axis) for the given input shape(s)."""
        return tuple(shapes[0])

    def macs(self, *shapes: tuple) -> int:
        """Multiply-adds for one sample (convolutions and dense layers; 0 elsewhere)."""
        return 0

    def summary_rows(self, prefix: str, *shapes: tuple) -> tuple[list, tuple]:
        """(rows, output shape): one row (name, type, out shape, params, MACs) per leaf layer."""
        out = self.output_shape(*shapes)
        params = sum(p.size for p in self._params.values())
        return [(prefix, type(self).__name__, out, params, self.macs(*shapes))], out

    def summary(self, input_shape: tuple = (3, 32, 32), *, print_fn=print) -> str:
        """Print and return a table: layer, output shape, parameters and multiply-adds per layer
        (per sample: conv ``C_out*H_out*W_out*(C_in/groups)*KH*KW``, dense ``in*out``), with totals.
        """
        rows, _ = self.summary_rows("", tuple(input_shape))
        total_p = self.num_parameters()
        total_m = sum(r[4] for r in rows)
        lines = [f"{'layer':<34} {'type':<16} {'output shape':<18} {'params':>11} {'MACs':>14}"]
        lines.append("-" * len(lines[0]))
        for name, kind, shape, p, m in rows:
            lines.append(f"{name or '(input)':<34} {kind:<16} {tuple(shape)!s:<18} "
                         f"{p:>11,} {m:>14,}")
        lines.append("-" * len(lines[0]))
        lines.append(f"total params: {total_p:,} ({total_p / 1e6:.2f}M)   "
                     f"total MACs: {total_m:,} ({total_m / 1e6:.1f}M) per "
                     f"{'x'.join(map(str, input_shape))} input")
        text = "\n".join(lines)
        if print_fn is not None:
            print_fn(text)
        return text

    def total_macs(self, input_shape: tuple = (3, 32, 32)) -> int:
        rows, _ = self.summary_rows("", tuple(input_shape))
        return sum(r[4] for r in rows)

    # ---- repr -----------------------------------------------------------------------------------
    def extra_repr(self) -> str:
        return ""

    def _dtype_repr(self) -> str:
        return "" if self.dtype == np.float32 else f"dtype={self.dtype}"

    def __repr__(self) -> str:
        parts = [s for s in (self.extra_repr(), self._dtype_repr()) if s]
        if not self._modules:
            return f"{type(self).__name__}({', '.join(parts)})"
        lines = [f"{type(self).__name__}({', '.join(parts)}"]
        for name, m in self._modules.items():
            child = repr(m).replace("\n", "\n  ")
            lines.append(f"  ({name}): {child}")
        return "\n".join(lines) + "\n)"


# ---- gradients through a ReLU between two steps, applied where they are received -------------
# When a step's output is a fused ReLU's (a BatchNormAct, or a container ending in one) and the
# next step, its only user, is a Conv2D or a container, the next step's backward is asked for
# ``relu_input=True``: it returns dx already multiplied by (its input > 0), the ReLU's gradient,
# folded into the conv's dx epilogue or into the container's fan-out sum; the first step's
# backward then gets ``premasked=True`` and skips its own pass. Where a tensor feeds several
# steps (a residual block's input: the branch's first conv or batch norm, and the shortcut),
# the gradients from the others are handed to the last one when it is a Conv2D or a batch norm
# (``dx_add``), which adds them (a conv also applies the ReLU's gradient) as it stores dx,
# instead of a separate pass. Only the library's own backward methods are asked (a subclass
# overriding backward is called plainly).


def takes_input_options(step) -> bool:
    """step's backward takes ``relu_input=True`` and ``input_grad=False`` (the library's Conv2D
    and containers)."""
    from fastres.layers.conv import Conv2D

    return getattr(type(step), "backward", None) in (Conv2D.backward, Sequential.backward,
                                                     Graph.backward)


def takes_dx_add(step) -> bool:
    from fastres.layers.batchnorm import BatchNorm2D
    from fastres.layers.conv import Conv2D
    from fastres.layers.fused import BatchNormAct

    return getattr(type(step), "backward", None) in (Conv2D.backward, BatchNorm2D.backward,
                                                     BatchNormAct.backward)


def masked_output(step) -> bool:
    """step's last forward ended in a ReLU whose gradient its backward can skip."""
    from fastres.layers.fused import BatchNormAct

    if isinstance(step, BatchNormAct):
        return step.relu is not None
    if getattr(type(step), "backward", None) in (Sequential.backward, Graph.backward):
        return step._masked_output()
    return False


def _container_check_dtype(owner: Module, name: str, m: Module) -> None:
    if m.dtype != owner.dtype:
        raise TypeError(f"{type(owner).__name__}: child {name!r} ({type(m).__name__}) has dtype "
                        f"{m.dtype}, expected {owner.dtype}; layers of one model share a dtype")


class Sequential(Module):
    """Modules applied in order; children are named ``"0"``, ``"1"``, ... or by the given names.

    ``Sequential(a, b, c)`` or ``Sequential(("conv1", a), ("bn1", b))``. The dtype is the children's
    (all must agree). In eval mode a Conv2D followed by BatchNorm2D (and ReLU) runs as one folded
    convolution; in training a BatchNorm2D followed by ReLU runs as one pass and a Conv2D after
    them applies the ReLU's gradient to its dx (see ``fastres.layers.fused``); set
    ``fuse = False`` to turn both off.
    """

    def __init__(self, *layers, dtype=None):
        named = []
        for i, item in enumerate(layers):
            if isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], str):
                named.append(item)
            else:
                named.append((str(i), item))
        for name, m in named:
            if not isinstance(m, Module):
                raise TypeError(f"Sequential: expected Module children, got {type(m).__name__} "
                                f"for {name!r}")
        if dtype is None:
            dtype = named[0][1].dtype if named else np.float32
        super().__init__(dtype=dtype)
        self.fuse = True
        self._plan = None
        for name, m in named:
            _container_check_dtype(self, name, m)
            self.add_module(name, m)

    def append(self, m: Module, name: str | None = None) -> Sequential:
        name = str(len(self._modules)) if name is None else name
        _container_check_dtype(self, name, m)
        self.add_module(name, m)
        self._plan = None
        return self

    def __len__(self) -> int:
        return len(self._modules)

    def __getitem__(self, i):
        if isinstance(i, str):
            return self._modules[i]
        return list(self._modules.values())[i]

    def __iter__(self):
        return iter(self._modules.values())

    def _steps(self) -> list:
        """The modules to run, fused where ``fuse`` (see fastres.layers.fused): Conv2D ->
        BatchNorm2D (-> ReLU) runs in eval mode, BatchNorm2D -> ReLU (-> Conv2D) in training."""
        from fastres.layers.fused import plan_sequential

        if not self.fuse:
            return list(self._modules.values())
        if self._plan is None:
            self._plan = {}
        if self.training not in self._plan:
            self._plan[self.training] = plan_sequential(list(self._modules.values()),
                                                        training=self.training)
        return self._plan[self.training]

    def forward(self, x):
        steps = self._steps()
        self._input = x
        for step in steps:
            x = step.forward(x)
        self._last_steps = steps
        return x

    def _masked_output(self) -> bool:
        steps = self.__dict__.get("_last_steps")
        return bool(self.fuse and steps) and masked_output(steps[-1])

    def backward(self, dy, *, premasked: bool = False, relu_input: bool = False,
                 input_grad: bool = True):
        """``premasked``: dy already went through this container's last ReLU (only when
        ``masked_output``); ``relu_input``: return dx multiplied by (input > 0);
        ``input_grad=False``: the parameters' gradients only, returns None (the first step
        then skips its input gradient where it can: a network's first convolution)."""
        steps = self.__dict__.get("_last_steps")
        self._need_cache(steps)
        gated = [self.fuse and i > 0 and takes_input_options(s) and masked_output(steps[i - 1])
                 for i, s in enumerate(steps)]
        first_gated = input_grad and relu_input and bool(steps) and takes_input_options(steps[0])
        for i in reversed(range(len(steps))):
            kw = {}
            if premasked:
                kw["premasked"] = True
            if gated[i] or (i == 0 and first_gated):
                kw["relu_input"] = True
            if i == 0 and not input_grad and takes_input_options(steps[0]):
                kw["input_grad"] = False
            dy = steps[i].backward(dy, **kw)
            premasked = gated[i]
        if not input_grad:
            return None
        if relu_input and not first_gated:
            dy = relu_backward(dy, ReluCache(self._input))
        return dy

    def output_shape(self, *shapes):
        s = shapes[0]
        for m in self._modules.values():
            s = m.output_shape(s)
        return s

    def summary_rows(self, prefix, *shapes):
        rows, s = [], shapes[0]
        for name, m in self._modules.items():
            r, s = m.summary_rows(f"{prefix}.{name}" if prefix else name, s)
            rows.extend(r)
        return rows, s


class Graph(Module):
    """A DAG of modules with named tensors.

    >>> g = Graph()                                   # the input tensor is called "input"
    >>> g.add("conv1", Conv2D(16, 16, 3, padding=1, bias=False))          # input: previous node
    >>> g.add("bn1", BatchNorm2D(16)); g.add("relu1", ReLU())
    >>> g.add("sum", Add(), "relu1", "input")        # a residual connection
    >>> g.set_output("sum")                           # default: the last node added

    Nodes must be added after their inputs (so insertion order is a topological order). Backward
    runs the nodes in reverse order and sums gradients where a tensor feeds several nodes. Node
    names are the children's names in ``named_parameters``. Eval mode folds Conv2D -> BatchNorm2D
    (-> Add) (-> ReLU) chains whose intermediate tensors have no other consumer; training runs
    BatchNorm2D (-> Add) (-> ReLU) chains as one pass (``fuse = False`` disables both).
    """

    def __init__(self, *, input_name: str = "input", dtype=np.float32):
        super().__init__(dtype=dtype)
        self.input_name = input_name
        self.fuse = True
        self._inputs: dict[str, tuple[str, ...]] = {}
        self._output: str | None = None
        self._plan = None

    def add(self, name: str, module: Module, *inputs: str) -> Graph:
        if not isinstance(name, str) or not name or "." in name:
            raise ValueError(f"Graph.add: expected a non-empty node name without dots, "
                             f"got {name!r}")
        if name == self.input_name or name in self._inputs:
            raise ValueError(f"Graph.add: node name {name!r} is already used")
        if not isinstance(module, Module):
            raise TypeError(f"Graph.add: expected a Module for node {name!r}, "
                            f"got {type(module).__name__}")
        if any(module is m for m in self._modules.values()):
            raise ValueError(f"Graph.add: node {name!r} reuses a module already in the graph "
                             "(weight sharing is not supported; create a new layer)")
        if not inputs:
            inputs = (next(reversed(self._inputs)) if self._inputs else self.input_name,)
        for i in inputs:
            if i != self.input_name and i not in self._inputs:
                raise ValueError(f"Graph.add: node {name!r} takes input {i!r}, which is not "
                                 f"defined yet (known: {[self.input_name, *self._inputs]})")
        if len(inputs) != module.n_inputs:
            raise ValueError(f"Graph.add: node {name!r} ({type(module).__name__}) takes "
                             f"{module.n_inputs} input(s), got {len(inputs)}: {inputs}")
        _container_check_dtype(self, name, module)
        self.add_module(name, module)
        self._inputs[name] = tuple(inputs)
        self._plan = None
        return self

    def set_output(self, name: str) -> Graph:
        if name not in self._inputs and name != self.input_name:
            raise ValueError(f"Graph.set_output: unknown node {name!r}")
        self._output = name
        return self

    @property
    def output_name(self) -> str:
        if self._output is not None:
            return self._output
        if not self._inputs:
            return self.input_name
        return next(reversed(self._inputs))

    def _consumers(self) -> dict[str, int]:
        count = {self.input_name: 0, **{n: 0 for n in self._inputs}}
        for ins in self._inputs.values():
            for i in ins:
                count[i] += 1
        count[self.output_name] += 1
        return count

    def _steps(self):
        """[(node names, runner, inputs)]: one entry per node, or per fused chain (see
        fastres.layers.fused) when ``fuse``."""
        from fastres.layers.fused import plan_graph

        if not self.fuse:
            return [((n,), self._modules[n], ins) for n, ins in self._inputs.items()]
        if self._plan is None:
            self._plan = {}
        if self.training not in self._plan:
            self._plan[self.training] = plan_graph(self._inputs, self._modules,
                                                   self._consumers(), training=self.training)
        return self._plan[self.training]

    def forward(self, x):
        steps = self._steps()
        consumers = self._consumers()
        remaining = dict(consumers)
        values = {self.input_name: x}
        self._input = x
        for names, mod, ins in steps:
            args = [values[i] for i in ins]
            out = mod.forward(*args)
            for i in ins:  # free activations nobody else needs (each layer keeps its own cache)
                remaining[i] -= 1
                if remaining[i] == 0 and i != self.output_name:
                    del values[i]
            values[names[-1]] = out
        self._last_steps = steps
        return values[self.output_name]

    def _output_step(self):
        """The last forward's step that produced the output, if nothing inside uses it."""
        steps = self.__dict__.get("_last_steps")
        if not steps or self._consumers()[self.output_name] != 1:
            return None
        return next((s for s in steps if s[0][-1] == self.output_name), None)

    def _masked_output(self) -> bool:
        step = self._output_step()
        return bool(self.fuse and step is not None) and masked_output(step[1])

    def backward(self, dy, *, premasked: bool = False, relu_input: bool = False,
                 input_grad: bool = True):
        """``premasked``: dy already went through the output's ReLU (only when
        ``masked_output``); ``relu_input``: return dx multiplied by (input > 0), applied by the
        input's only consumer or as the last of its gradients is added. Inside (with ``fuse``),
        a step whose input is the only use of a fused ReLU's output applies that ReLU's
        gradient the same way, and the ReLU's step skips it. ``input_grad=False``: the
        parameters' gradients only, returns None (steps fed by the input alone skip its
        gradient where they can)."""
        steps = self.__dict__.get("_last_steps")
        self._need_cache(steps)
        consumers = self._consumers()
        producers = {names[-1]: mod for names, mod, _ in steps}
        grads = {self.output_name: dy}
        masked = {self.output_name} if premasked else set()  # gradients already through a ReLU
        gate = self._input if relu_input and input_grad else None
        to_come = Counter(i for _, _, ins in steps for i in ins)  # gradients each node awaits
        for names, mod, ins in reversed(steps):
            g = grads.pop(names[-1], None)
            if g is None:  # the node does not reach the output: no gradient from it
                to_come.subtract(ins)
                continue
            kw = {"premasked": True} if names[-1] in masked else {}
            t = ins[0]
            if (not input_grad and len(ins) == 1 and t == self.input_name
                    and takes_input_options(mod)):
                kw["input_grad"] = False
            elif len(ins) == 1:
                # the last of a fan-out's gradients, from a conv or a batch norm: it adds the
                # others as it stores dx (a conv also applies the mask of a ReLU whose output
                # t is)
                last_of_many = (self.fuse and t in grads and to_come[t] == 1
                                and takes_dx_add(mod))
                if last_of_many:
                    kw["dx_add"] = grads.pop(t)
                if (consumers[t] == 1 or last_of_many) and takes_input_options(mod) and (
                        gate is not None if t == self.input_name
                        else self.fuse and masked_output(producers[t])):
                    kw["relu_input"] = True
                    masked.add(t)
            dxs = mod.backward(g, **kw)
            if len(ins) == 1:
                dxs = (dxs,)
            for i, d in zip(ins, dxs):
                to_come[i] -= 1
                if i == self.input_name and not input_grad:
                    continue
                if i not in grads:
                    grads[i] = d
                    continue
                # never add in place: a node may hand the same array to two inputs (Add);
                # the threaded kernel's output is a fresh (arena) array. The input's last
                # gradient applies the ReLU's mask as it is added.
                last = gate is not None and i == self.input_name and to_come[i] == 0
                grads[i] = add_forward(grads[i], d, gate=gate if last else None)[0]
                if last:
                    masked.add(i)
        if not input_grad:
            return None
        dx = grads.get(self.input_name)
        if dx is None:
            raise RuntimeError(f"{type(self).__name__}: the output does not depend on the input")
        if gate is not None and self.input_name not in masked:
            dx = relu_backward(dx, ReluCache(gate))
        return dx

    def _propagate(self, prefix, shape, rows):
        shapes = {self.input_name: tuple(shape)}
        for n, ins in self._inputs.items():
            m = self._modules[n]
            r, s = m.summary_rows(f"{prefix}.{n}" if prefix else n, *[shapes[i] for i in ins])
            if rows is not None:
                rows.extend(r)
            shapes[n] = tuple(s)
        return shapes[self.output_name]

    def output_shape(self, *shapes):
        return self._propagate("", shapes[0], None)

    def summary_rows(self, prefix, *shapes):
        rows: list = []
        out = self._propagate(prefix, shapes[0], rows)
        return rows, out

    def __repr__(self) -> str:
        parts = [s for s in (self._dtype_repr(),) if s]
        lines = [f"{type(self).__name__}({', '.join(parts)}"]
        for name, m in self._modules.items():
            ins = self._inputs[name]
            child = repr(m).replace("\n", "\n  ")
            lines.append(f"  ({name} <- {', '.join(ins)}): {child}")
        if self._output is not None:
            lines.append(f"  output: {self._output}")
        return "\n".join(lines) + "\n)"
