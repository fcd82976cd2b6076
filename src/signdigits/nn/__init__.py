"""Neural-network building blocks with PyTorch's names: ``Module``, ``Parameter``, the layers
and ``init``.

>>> import numpy as np
>>> from signdigits import nn
>>> rng = np.random.default_rng(0)
>>> model = nn.Sequential(nn.Flatten(), nn.Linear(4096, 8, rng=rng), nn.ReLU())
>>> [name for name, _ in model.named_parameters()]
['1.weight', '1.bias']

Layers that draw random numbers (Linear and Conv2d initial weights, Dropout masks) take
``rng``, a ``numpy.random.Generator`` or an int seed; nothing reads global random state.
"""

from __future__ import annotations

from signdigits.nn import init
from signdigits.nn.layers import (
    AvgPool2d,
    BatchNorm1d,
    BatchNorm2d,
    Conv2d,
    Dropout,
    Flatten,
    Identity,
    LeakyReLU,
    Linear,
    MaxPool2d,
    ReLU,
    Sequential,
    Sigmoid,
    Tanh,
)
from signdigits.nn.module import IncompatibleKeys, Module, Parameter

__all__ = [
    "AvgPool2d",
    "BatchNorm1d",
    "BatchNorm2d",
    "Conv2d",
    "Dropout",
    "Flatten",
    "Identity",
    "IncompatibleKeys",
    "LeakyReLU",
    "Linear",
    "MaxPool2d",
    "Module",
    "Parameter",
    "ReLU",
    "Sequential",
    "Sigmoid",
    "Tanh",
    "init",
]
