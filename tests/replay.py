"""Stand-ins for the random number sources of the authors' code, replaying numbers that fastnst drew.

The authors' functions draw from python ``random``, numpy, ``torch.distributions`` and torch, one value at a
time in a loop. ``Replay`` holds a queue of ``(kind, value)`` in the order their code asks for them; each
stand-in pops the next entry, checks that it is of the kind (and shape) asked for, and returns it. A queue in
the wrong order fails loudly instead of comparing different numbers.
"""
from __future__ import annotations

import math
import types
from collections import deque

import numpy as np
import torch


class Replay:
    def __init__(self, entries=(), dims=None):
        self.queue = deque(entries)
        self.dims = dims  # elements per image: checks the impulse noise's index ranges

    def push(self, kind, value):
        self.queue.append((kind, value))

    def pop(self, kind):
        assert self.queue, f"the authors' code asked for one more {kind!r} than was drawn"
        got, value = self.queue.popleft()
        assert got == kind, f"the authors' code asked for {kind!r}, the next drawn value is {got!r}"
        return value

    def done(self):
        assert not self.queue, f"{len(self.queue)} drawn values were not used: {[k for k, _ in self.queue][:5]}"

    # --- python random ------------------------------------------------------------------------
    def random_module(self):
        replay = self
        return types.SimpleNamespace(
            random=lambda: float(replay.pop("random")),
            uniform=lambda a, b: float(replay.pop("uniform")),
            sample=lambda population, k: [population[int(i)] for i in replay.pop("sample")],
        )

    # --- numpy --------------------------------------------------------------------------------
    def numpy_module(self):
        replay = self

        class _Random:
            def beta(self, a, b):
                return float(replay.pop("beta"))

            def choice(self, a, size):
                return np.asarray(replay.pop("choice"))

        class _Numpy:
            random = _Random()

            def __getattr__(self, name):
                return getattr(np, name)

        return _Numpy()

    # --- torch.distributions ------------------------------------------------------------------
    def distributions_module(self):
        replay = self

        class Uniform:
            def __init__(self, low, high):
                pass

            def sample(self, shape=()):
                value = replay.pop("dist_uniform")
                assert tuple(value.shape) == tuple(shape)
                return value

        class Gamma:
            def __init__(self, concentration, rate):
                self.concentration = concentration

            def sample(self, shape=()):
                value, concentration = replay.pop("gamma")
                assert tuple(value.shape) == tuple(shape) and math.isclose(concentration, self.concentration)
                return value

        return types.SimpleNamespace(Uniform=Uniform, Gamma=Gamma)

    # --- torch --------------------------------------------------------------------------------
    def torch_module(self):
        replay = self

        def _shape(size):
            if len(size) == 1 and isinstance(size[0], (tuple, list, torch.Size)):
                return tuple(size[0])
            return tuple(size)

        def rand(*size, dtype=None, device=None, **kwargs):
            value = replay.pop("rand")
            assert tuple(value.shape) == _shape(size), (tuple(value.shape), _shape(size))
            return value.to(dtype or torch.float32)

        def randn(*size, dtype=None, device=None, **kwargs):
            shape = _shape(size) if size else tuple(kwargs["size"])
            value = replay.pop("randn")
            assert tuple(value.shape) == shape
            return value.to(dtype or torch.float32)

        def randint(*args, size=None, dtype=None, device=None):
            if size is None:
                *bounds, size = args
            else:
                bounds = list(args)
            low, high = (0, bounds[0]) if len(bounds) == 1 else bounds
            low, high = int(low), int(high)
            kind, value = replay.queue[0]
            if kind == "randint_tensor":  # a whole tensor of draws (the impulse noise's 0 / 1 values)
                value = replay.pop("randint_tensor")
                assert tuple(value.shape) == tuple(size) and low == 0 and bool(((value >= 0) & (value < high)).all())
                return value.to(dtype or torch.int64)
            if kind == "randint_row":  # a row of flat indices in [0, d), offset by the image's start
                row = replay.pop("randint_row")
                count = tuple(size)[0]
                assert count <= len(row) and high - low == replay.dims
                return low + row[:count]
            uniform = replay.pop("randint_uniform")  # a position: floor(U * (high - low))
            return torch.full(tuple(size), low + math.floor(float(uniform) * (high - low)), dtype=torch.int64)

        def randperm(n, **kwargs):
            value = replay.pop("randperm")
            assert len(value) == n
            return value

        class _Empty:
            def __init__(self, size):
                self.size = size

            def uniform_(self, low, high):
                return torch.full((self.size,), float(replay.pop("empty_uniform")), dtype=torch.float32)

        overrides = dict(rand=rand, randn=randn, randint=randint, randperm=randperm, empty=lambda size: _Empty(size))

        class _Torch:
            def __getattr__(self, name):
                return overrides[name] if name in overrides else getattr(torch, name)

        return _Torch()
