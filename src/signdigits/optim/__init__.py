"""Optimizers and learning-rate schedules, with PyTorch's names and contracts.

``SGD``, ``Adam`` and ``AdamW`` update the parameters (any floating leaf Tensors with
``requires_grad=True``, such as ``model.parameters()`` or ``model.named_parameters()``) in
place from their ``.grad``; each follows ``torch.optim``'s algorithm step for step, and is
tested against it. Their state is keyed by parameter name, so that a checkpoint keeps it
beside the model's. :mod:`signdigits.optim.lr_scheduler` holds the schedules.

    optimizer = Adam(model.parameters(), lr=1e-3)
    for x, y in batches:
        optimizer.zero_grad()
        loss = cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()
"""

from __future__ import annotations

from signdigits.optim import lr_scheduler
from signdigits.optim.adam import Adam, AdamW
from signdigits.optim.optimizer import Optimizer
from signdigits.optim.sgd import SGD

__all__ = ["SGD", "Adam", "AdamW", "Optimizer", "lr_scheduler"]
