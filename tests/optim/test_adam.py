"""Adam and AdamW against torch.optim: every option combination (amsgrad, weight decay, eps,
maximize), random settings, gradients that are sometimes missing, float32; and refusals."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from signdigits import InvalidArgumentError, Tensor
from signdigits.optim import Adam, AdamW
from tests.optim.helpers import assert_same_state, run_twins

PAIRS = {"Adam": (Adam, torch.optim.Adam), "AdamW": (AdamW, torch.optim.AdamW)}


def _combinations() -> list[tuple[str, dict]]:
    combos = []
    for name, amsgrad, weight_decay, eps, maximize in itertools.product(
        PAIRS, (False, True), (0.0, 0.1), (1e-8, 1e-7, 0.0), (False, True)
    ):
        options = {"lr": 0.01, "amsgrad": amsgrad, "weight_decay": weight_decay, "eps": eps}
        combos.append((name, {**options, "maximize": maximize}))
    return combos


@pytest.mark.parametrize(
    ("name", "options"), _combinations(), ids=lambda v: v if isinstance(v, str) else None
)
def test_matches_torch_for_every_option_combination(name, options):
    twins, ours, theirs = run_twins(*PAIRS[name], options, seed=5)
    twins.assert_close()
    assert_same_state(ours, theirs, twins)


@settings(max_examples=40, deadline=None)
@given(
    name=st.sampled_from(sorted(PAIRS)),
    seed=st.integers(0, 2**32 - 2),
    # Learning rates near 1 with a strong L2 decay make the iteration chaotic: there the
    # last-bit differences of PyTorch's fused multiply-adds double at every step.
    lr=st.floats(1e-4, 0.1),
    beta1=st.floats(0, 0.999),  # both branches of PyTorch's lerp (weight 1 − β₁ < or ≥ 0.5)
    beta2=st.floats(0, 0.9999),
    eps=st.sampled_from([0.0, 1e-8, 1e-7, 1e-3]),
    weight_decay=st.floats(0, 0.5),
    amsgrad=st.booleans(),
    maximize=st.booleans(),
    missing=st.sampled_from([0.0, 0.3]),
)
def test_matches_torch_for_random_settings(
    name, seed, lr, beta1, beta2, eps, weight_decay, amsgrad, maximize, missing
):
    options = {
        "lr": lr,
        "betas": (beta1, beta2),
        "eps": eps,
        "weight_decay": weight_decay,
        "amsgrad": amsgrad,
        "maximize": maximize,
    }
    twins, ours, theirs = run_twins(*PAIRS[name], options, seed, missing=missing)
    twins.assert_close()
    assert_same_state(ours, theirs, twins)


@pytest.mark.parametrize("name", sorted(PAIRS))
def test_float32_parameters_stay_float32_and_match_torch(name):
    options = {"lr": 0.01, "eps": 1e-7, "weight_decay": 0.01, "amsgrad": True}
    twins, ours, _ = run_twins(*PAIRS[name], options, seed=2, dtype=np.float32)
    twins.assert_close(rtol=1e-5, atol=1e-6)
    assert all(v.dtype == np.float32 for v in ours.state["0"].values() if hasattr(v, "dtype"))


def test_each_parameter_counts_its_own_steps():
    """Bias correction uses the parameter's own step count: a parameter that missed steps
    (no gradient) is corrected as PyTorch corrects it."""
    twins, ours, theirs = run_twins(Adam, torch.optim.Adam, {"lr": 0.1}, seed=9, missing=0.5)
    twins.assert_close()
    steps = [ours.state[str(i)]["step"] for i in range(3)]
    assert len(set(steps)) > 1 and steps == [theirs.state[p]["step"].item() for p in twins.theirs]


def test_adamw_decays_the_weights_apart_from_the_moments():
    p = Tensor(np.array([2.0]), requires_grad=True)
    optimizer = AdamW([p], lr=0.1, weight_decay=0.5)
    p.grad = np.array([0.0])
    optimizer.step()  # zero gradient: only the decay moves θ, and m, v stay 0
    np.testing.assert_allclose(p.data, [2.0 * (1 - 0.1 * 0.5)])
    assert optimizer.state["0"]["exp_avg"][0] == 0.0
    assert isinstance(optimizer, Adam) and optimizer.defaults["decoupled_weight_decay"]


def test_the_first_step_moves_each_coordinate_by_lr():
    """With bias correction, Adam's first step is lr · g / (|g| + ε) in every coordinate."""
    p = Tensor(np.zeros(3), requires_grad=True)
    optimizer = Adam([p], lr=0.01, eps=0.0)
    p.grad = np.array([3.0, -1e-3, 50.0])
    optimizer.step()
    np.testing.assert_allclose(p.data, [-0.01, 0.01, -0.01], rtol=1e-12)


@pytest.mark.parametrize("cls", [Adam, AdamW])
@pytest.mark.parametrize(
    ("options", "match", "torch_refuses"),
    [
        ({"lr": -1e-3}, r"lr must be a finite number ≥ 0, got -0\.001", True),
        ({"lr": float("inf")}, "lr must be a finite number, got inf", False),
        ({"betas": (1.0, 0.999)}, r"betas\[0\] must be in \[0, 1\), got 1\.0", True),
        ({"betas": (0.9, -0.1)}, r"betas\[1\] must be a finite number ≥ 0, got -0\.1", True),
        ({"betas": (0.9, 1.5)}, r"betas\[1\] must be in \[0, 1\), got 1\.5", True),
        ({"betas": 0.9}, r"betas must be a pair \(beta1, beta2\), got 0\.9", False),
        ({"betas": (0.9, 0.99, 0.5)}, "betas must be a pair", False),
        ({"eps": -1e-8}, "eps must be a finite number ≥ 0, got -1e-08", True),
        ({"eps": float("nan")}, "eps must be a finite number, got nan", False),
        ({"weight_decay": -0.01}, "weight_decay must be a finite number ≥ 0", True),
        ({"amsgrad": None}, "amsgrad must be True or False, got None", False),
    ],
)
def test_bad_hyperparameters_are_one_clear_error(cls, options, match, torch_refuses):
    with pytest.raises(InvalidArgumentError, match=match) as caught:
        cls([Tensor(np.zeros(2), requires_grad=True)], **options)
    assert str(caught.value).startswith(f"{cls.__name__}: ") and "\n" not in str(caught.value)
    if torch_refuses:
        with pytest.raises(ValueError):
            getattr(torch.optim, cls.__name__)([torch.zeros(2, requires_grad=True)], **options)


def test_adamw_refuses_coupled_weight_decay_in_a_group():
    p = Tensor(np.zeros(2), requires_grad=True)
    with pytest.raises(InvalidArgumentError, match="AdamW always decouples"):
        AdamW([{"params": [p], "decoupled_weight_decay": False}])
