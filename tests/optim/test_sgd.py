"""SGD against torch.optim.SGD: every option combination, random settings, param groups,
frozen parameters, float32; and its refusals."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from signdigits import InvalidArgumentError, Tensor
from signdigits.optim import SGD
from tests.optim.helpers import Twins, assert_same_state, random_gradients, run_twins


def _combinations() -> list[dict]:
    """Every combination of the options that change the algorithm (nesterov only where
    PyTorch allows it: momentum > 0 and no dampening)."""
    combos = []
    for momentum, dampening, nesterov, weight_decay, maximize in itertools.product(
        (0.0, 0.9), (0.0, 0.3), (False, True), (0.0, 0.05), (False, True)
    ):
        if nesterov and (momentum == 0 or dampening != 0):
            continue
        combos.append(
            {
                "lr": 0.05,
                "momentum": momentum,
                "dampening": dampening,
                "nesterov": nesterov,
                "weight_decay": weight_decay,
                "maximize": maximize,
            }
        )
    return combos


@pytest.mark.parametrize("options", _combinations(), ids=lambda o: "-".join(map(str, o.values())))
def test_matches_torch_for_every_option_combination(options):
    twins, ours, theirs = run_twins(SGD, torch.optim.SGD, options, seed=7)
    twins.assert_close()
    assert_same_state(ours, theirs, twins)


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 2),
    lr=st.floats(0, 1),
    momentum=st.sampled_from([0.0, 0.5, 0.9, 0.99]),
    dampening=st.floats(0, 1),
    nesterov=st.booleans(),
    weight_decay=st.floats(0, 0.5),
    maximize=st.booleans(),
    missing=st.sampled_from([0.0, 0.3]),
)
def test_matches_torch_for_random_settings(
    seed, lr, momentum, dampening, nesterov, weight_decay, maximize, missing
):
    if nesterov:
        momentum, dampening = max(momentum, 0.5), 0.0
    options = {
        "lr": lr,
        "momentum": momentum,
        "dampening": dampening,
        "nesterov": nesterov,
        "weight_decay": weight_decay,
        "maximize": maximize,
    }
    twins, ours, theirs = run_twins(SGD, torch.optim.SGD, options, seed, missing=missing)
    twins.assert_close()
    assert_same_state(ours, theirs, twins)


def test_float32_parameters_stay_float32_and_match_torch():
    options = {"lr": 0.05, "momentum": 0.9, "nesterov": True, "weight_decay": 0.01}
    twins, _, _ = run_twins(SGD, torch.optim.SGD, options, seed=3, dtype=np.float32)
    twins.assert_close(rtol=1e-5, atol=1e-6)  # assert_close checks the dtype too


def test_param_groups_with_their_own_settings_match_torch():
    twins = Twins.from_arrays([np.ones((2, 3)), np.full(4, -2.0), np.array(0.5)])
    a, b, c = twins.ours
    ta, tb, tc = twins.theirs
    second = {"lr": 0.3, "momentum": 0.5, "dampening": 0.0, "nesterov": True}
    ours = SGD(
        [{"params": [a]}, {"params": [b, c], **second}], lr=0.01, momentum=0.9, dampening=0.1
    )
    theirs = torch.optim.SGD(
        [{"params": [ta]}, {"params": [tb, tc], **second}],
        lr=0.01,
        momentum=0.9,
        dampening=0.1,
        foreach=False,
    )
    assert [g["lr"] for g in ours.param_groups] == [0.01, 0.3]
    for grads in random_gradients(11, 20, shapes=[(2, 3), (4,), ()]):
        twins.feed(grads)
        ours.step()
        theirs.step()
    twins.assert_close()


def test_a_parameter_without_gradient_is_not_updated():
    frozen = Tensor(np.arange(3.0), requires_grad=True)
    trained = Tensor(np.arange(3.0), requires_grad=True)
    optimizer = SGD([frozen, trained], lr=0.1, momentum=0.9)
    before = frozen.data.copy()
    for _ in range(3):
        trained.grad = np.ones(3)
        optimizer.step()
    assert np.array_equal(frozen.data, before)
    assert "0" not in optimizer.state and "1" in optimizer.state
    np.testing.assert_allclose(trained.data, np.arange(3.0) - 0.1 * (1 + 1.9 + 2.71))


def test_the_momentum_buffer_starts_at_the_first_gradient_undamped():
    p = Tensor(np.zeros(2), requires_grad=True)
    optimizer = SGD([p], lr=1.0, momentum=0.5, dampening=0.5)
    p.grad = np.array([1.0, 2.0])
    optimizer.step()
    np.testing.assert_array_equal(optimizer.state["0"]["momentum_buffer"], [1.0, 2.0])
    optimizer.step()  # b = 0.5 b + (1 − 0.5) g
    np.testing.assert_array_equal(optimizer.state["0"]["momentum_buffer"], [1.0, 2.0])
    np.testing.assert_array_equal(p.data, [-2.0, -4.0])


@pytest.mark.parametrize(
    ("options", "match", "torch_refuses"),
    [
        ({"lr": -0.1}, r"lr must be a finite number ≥ 0, got -0\.1", True),
        ({"lr": float("inf")}, "lr must be a finite number, got inf", False),
        ({"lr": float("nan")}, "lr must be a finite number, got nan", False),
        ({"lr": "0.1"}, "lr must be a finite number, got '0.1'", False),
        ({"lr": 0.1, "momentum": -0.5}, "momentum must be a finite number ≥ 0, got -0.5", True),
        ({"lr": 0.1, "weight_decay": -1}, "weight_decay must be a finite number ≥ 0", True),
        ({"lr": 0.1, "dampening": float("nan")}, "dampening must be a finite number", False),
        ({"lr": 0.1, "nesterov": True}, "nesterov=True needs momentum > 0 and dampening = 0", True),
        (
            {"lr": 0.1, "nesterov": True, "momentum": 0.9, "dampening": 0.1},
            "nesterov=True needs momentum > 0 and dampening = 0",
            True,
        ),
        ({"lr": 0.1, "nesterov": "yes"}, "nesterov must be True or False, got 'yes'", False),
        ({"lr": 0.1, "maximize": 1}, "maximize must be True or False, got 1", False),
    ],
)
def test_bad_hyperparameters_are_one_clear_error(options, match, torch_refuses):
    with pytest.raises(InvalidArgumentError, match=match) as caught:
        SGD([Tensor(np.zeros(2), requires_grad=True)], **options)
    message = str(caught.value)
    assert message.startswith("SGD: ") and "\n" not in message
    assert isinstance(caught.value, ValueError)  # what torch raises, so except ValueError works
    if torch_refuses:
        with pytest.raises(ValueError):
            torch.optim.SGD([torch.zeros(2, requires_grad=True)], **options)


def test_a_bad_group_setting_names_the_group():
    p, q = (Tensor(np.zeros(2), requires_grad=True) for _ in range(2))
    with pytest.raises(InvalidArgumentError, match=r"SGD: param_groups\[1\]: lr must be .* -1"):
        SGD([{"params": [p]}, {"params": [q], "lr": -1}], lr=0.1)


def test_nesterov_is_checked_in_every_group_not_only_the_defaults():
    """PyTorch checks nesterov's conditions on the defaults only, so a group inheriting
    dampening 0.1 runs a "Nesterov" step with dampening; here every group is checked."""
    p, q = (Tensor(np.zeros(2), requires_grad=True) for _ in range(2))
    group = {"params": [q], "momentum": 0.5, "nesterov": True}
    with pytest.raises(InvalidArgumentError, match=r"param_groups\[1\]: nesterov=True needs"):
        SGD([{"params": [p]}, group], lr=0.1, momentum=0.9, dampening=0.1)
    torch_group = {**group, "params": [torch.zeros(2, requires_grad=True)]}
    torch.optim.SGD(
        [{"params": [torch.zeros(2, requires_grad=True)]}, torch_group],
        lr=0.1,
        momentum=0.9,
        dampening=0.1,
    )  # accepted by PyTorch
