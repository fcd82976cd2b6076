"""The schedules against torch.optim.lr_scheduler: learning rates (and OneCycle's momentum)
step after step, the first step at construction, the end of OneCycle, state_dict round
trips, and refusals."""

from __future__ import annotations

import copy
from collections.abc import Callable

import numpy as np
import pytest
import torch
from torch.optim import lr_scheduler as torch_schedulers

from signdigits import InvalidArgumentError, Tensor
from signdigits.optim import SGD, Adam, AdamW, Optimizer
from signdigits.optim.lr_scheduler import CosineAnnealingLR, LRScheduler, OneCycleLR, StepLR

OPTIMIZERS = {
    "SGD": (SGD, torch.optim.SGD),
    "Adam": (Adam, torch.optim.Adam),
    "AdamW": (AdamW, torch.optim.AdamW),
}


def twin_optimizers(name: str, **options):
    """Two param groups (lr 0.1 and 0.02) on each side, without gradients: their steps are
    no-ops that keep PyTorch from warning about the order of the calls."""
    ours_class, torch_class = OPTIMIZERS[name]
    ours = ours_class(
        [
            {"params": [Tensor(np.zeros(2), requires_grad=True)]},
            {"params": [Tensor(np.zeros(3), requires_grad=True)], "lr": 0.02},
        ],
        lr=0.1,
        **options,
    )
    theirs = torch_class(
        [
            {"params": [torch.zeros(2, requires_grad=True)]},
            {"params": [torch.zeros(3, requires_grad=True)], "lr": 0.02},
        ],
        lr=0.1,
        **options,
    )
    return ours, theirs


def momenta(optimizer) -> list[float]:
    return [g["betas"][0] if "betas" in g else g["momentum"] for g in optimizer.param_groups]


def assert_same_schedule(ours, theirs, ours_sched, torch_sched, steps: int) -> None:
    """The learning rates (and momenta) after construction and after each of ``steps``
    steps agree within 1e-12, in get_last_lr() and in the groups."""
    for step in range(steps + 1):
        if step:
            for stepped in (ours, theirs, ours_sched, torch_sched):
                stepped.step()
        assert ours_sched.last_epoch == torch_sched.last_epoch == step
        expected = torch_sched.get_last_lr()
        np.testing.assert_allclose(ours_sched.get_last_lr(), expected, rtol=1e-12, atol=0)
        np.testing.assert_allclose(
            [g["lr"] for g in ours.param_groups], expected, rtol=1e-12, atol=0
        )
        np.testing.assert_allclose(momenta(ours), momenta(theirs), rtol=1e-12, atol=0)


@pytest.mark.parametrize(("step_size", "gamma"), [(1, 0.9), (3, 0.5), (7, 0.1)])
def test_steplr_matches_torch(step_size, gamma):
    ours, theirs = twin_optimizers("SGD", momentum=0.9)
    assert_same_schedule(
        ours,
        theirs,
        StepLR(ours, step_size, gamma),
        torch_schedulers.StepLR(theirs, step_size, gamma),
        steps=60,
    )


@pytest.mark.parametrize(("t_max", "eta_min"), [(1, 0.0), (7, 0.0), (10, 0.001)])
def test_cosine_annealing_matches_torch_past_t_max(t_max, eta_min):
    ours, theirs = twin_optimizers("Adam")
    assert_same_schedule(
        ours,
        theirs,
        CosineAnnealingLR(ours, t_max, eta_min),
        torch_schedulers.CosineAnnealingLR(theirs, t_max, eta_min),
        steps=3 * t_max + 5,  # down, up again, down again: PyTorch's schedule has no restarts
    )


ONE_CYCLE_CASES = [
    ("SGD", {"momentum": 0.9}, {"max_lr": 0.5, "total_steps": 40}),
    ("SGD", {}, {"max_lr": [0.5, 1.0], "total_steps": 37, "anneal_strategy": "linear"}),
    (
        "SGD",
        {"momentum": 0.9},
        {"max_lr": 0.5, "epochs": 4, "steps_per_epoch": 9, "three_phase": True, "pct_start": 0.25},
    ),
    ("SGD", {"momentum": 0.9}, {"max_lr": 0.5, "total_steps": 20, "cycle_momentum": False}),
    (
        "Adam",
        {},
        {
            "max_lr": 0.01,
            "total_steps": 50,
            "base_momentum": 0.8,
            "max_momentum": [0.9, 0.95],
            "div_factor": 10.0,
            "final_div_factor": 100.0,
        },
    ),
    (
        "AdamW",
        {},
        {
            "max_lr": 0.01,
            "total_steps": 33,
            "three_phase": True,
            "anneal_strategy": "linear",
            "pct_start": 0.4,
        },
    ),
    ("Adam", {}, {"max_lr": 0.01, "total_steps": 15, "pct_start": 0.0}),
    ("Adam", {}, {"max_lr": 0.01, "total_steps": 1}),
]


@pytest.mark.parametrize(("name", "options", "schedule"), ONE_CYCLE_CASES)
def test_one_cycle_matches_torch_to_its_end_then_refuses(name, options, schedule):
    ours, theirs = twin_optimizers(name, **options)
    ours_sched = OneCycleLR(ours, **schedule)
    torch_sched = torch_schedulers.OneCycleLR(theirs, **schedule)
    # PyTorch allows total_steps calls of step(): the last one goes one step past the cycle
    assert_same_schedule(ours, theirs, ours_sched, torch_sched, steps=ours_sched.total_steps)
    before = (ours_sched.last_epoch, ours_sched.get_last_lr(), momenta(ours))
    ours.step()
    theirs.step()
    with pytest.raises(ValueError, match="Tried to step"):
        torch_sched.step()
    with pytest.raises(InvalidArgumentError, match=r"tried to step \d+ times; the schedule"):
        ours_sched.step()
    assert (ours_sched.last_epoch, ours_sched.get_last_lr(), momenta(ours)) == before


def test_construction_performs_the_first_step():
    ours = SGD([Tensor(np.zeros(2), requires_grad=True)], lr=0.3, momentum=0.0)
    scheduler = OneCycleLR(ours, max_lr=1.0, total_steps=10)
    group = ours.param_groups[0]
    assert scheduler.last_epoch == 0
    assert group["lr"] == pytest.approx(1.0 / 25) and scheduler.get_last_lr() == [group["lr"]]
    assert group["momentum"] == 0.95  # as in PyTorch: cycling turns SGD's momentum on
    assert (group["initial_lr"], group["max_lr"]) == (pytest.approx(0.04), 1.0)
    plain = SGD([Tensor(np.zeros(2), requires_grad=True)], lr=0.3)
    cosine = CosineAnnealingLR(plain, T_max=5)
    assert cosine.last_epoch == 0 and cosine.get_last_lr() == [0.3] == cosine.base_lrs
    assert plain.param_groups[0]["initial_lr"] == 0.3


def test_the_optimizer_uses_the_scheduled_rate():
    p = Tensor(np.zeros(1), requires_grad=True)
    optimizer = SGD([p], lr=1.0)
    scheduler = StepLR(optimizer, step_size=1, gamma=0.5)
    for _ in range(3):
        p.grad = np.ones(1)
        optimizer.step()
        scheduler.step()
    np.testing.assert_allclose(p.data, [-(1.0 + 0.5 + 0.25)])


def test_stepping_the_schedule_before_the_optimizer_warns():
    optimizer = SGD([Tensor(np.zeros(1), requires_grad=True)], lr=1.0)
    scheduler = StepLR(optimizer, step_size=1)
    with pytest.warns(UserWarning, match=r"before optimizer.step\(\)"):
        scheduler.step()


SCHEDULES: dict[str, Callable[[Optimizer], LRScheduler]] = {
    "StepLR": lambda o: StepLR(o, step_size=4, gamma=0.5),
    "CosineAnnealingLR": lambda o: CosineAnnealingLR(o, T_max=6, eta_min=0.001),
    "OneCycleLR": lambda o: OneCycleLR(o, max_lr=[0.4, 0.2], total_steps=30, three_phase=True),
}


@pytest.mark.parametrize("name", sorted(SCHEDULES))
@pytest.mark.parametrize("optimizer_name", ["SGD", "Adam"])
def test_a_round_trip_mid_training_continues_identically(name, optimizer_name):
    """Save optimizer and schedule after 11 steps, make both anew (as a resumed run does),
    load, continue: the same learning rates and momenta as without the interruption."""
    make = SCHEDULES[name]
    options = {"momentum": 0.9} if optimizer_name == "SGD" else {}
    optimizer, _ = twin_optimizers(optimizer_name, **options)
    scheduler = make(optimizer)
    history = []
    for step in range(25):
        if step == 11:
            saved = copy.deepcopy((optimizer.state_dict(), scheduler.state_dict()))
        optimizer.step()
        scheduler.step()
        history.append((scheduler.get_last_lr(), momenta(optimizer)))

    fresh_optimizer, _ = twin_optimizers(optimizer_name, **options)
    fresh = make(fresh_optimizer)
    fresh_optimizer.load_state_dict(saved[0])
    fresh.load_state_dict(saved[1])
    assert fresh.last_epoch == 11
    for expected in history[11:]:
        fresh_optimizer.step()
        fresh.step()
        assert (fresh.get_last_lr(), momenta(fresh_optimizer)) == expected


@pytest.mark.parametrize(
    ("make_bad", "match"),
    [
        (lambda sd: {k: v for k, v in sd.items() if k != "T_max"}, "missing 'T_max'"),
        (lambda sd: {**sd, "extra": 1}, "unexpected 'extra'"),
        (lambda sd: {**sd, "T_max": 0}, "T_max must be ≥ 1, got 0"),
        (lambda sd: {**sd, "base_lrs": [0.1]}, "base_lrs must be a list of 2 learning rates"),
        (lambda sd: {**sd, "last_lr": [0.1, -1.0]}, r"last_lr\[1\] must be a finite number ≥ 0"),
        (lambda sd: {**sd, "last_epoch": -2}, "last_epoch must be ≥ 0, got -2"),
        (lambda sd: "state", "expected a dict, got a str"),
    ],
)
def test_a_bad_schedule_state_is_refused_before_anything_changes(make_bad, match):
    optimizer, _ = twin_optimizers("SGD")
    scheduler = CosineAnnealingLR(optimizer, T_max=6)
    optimizer.step()
    scheduler.step()
    before = scheduler.state_dict()
    with pytest.raises(InvalidArgumentError, match=match) as caught:
        scheduler.load_state_dict(make_bad(scheduler.state_dict()))
    assert str(caught.value).startswith("CosineAnnealingLR.load_state_dict: ")
    assert scheduler.state_dict() == before


def test_one_cycle_refuses_a_state_past_its_end():
    optimizer, _ = twin_optimizers("SGD", momentum=0.9)
    scheduler = OneCycleLR(optimizer, max_lr=0.1, total_steps=10)
    with pytest.raises(InvalidArgumentError, match="last_epoch 11 is past total_steps 10"):
        scheduler.load_state_dict({**scheduler.state_dict(), "last_epoch": 11})


class _NoMomentum(Optimizer):
    """An optimizer with neither momentum nor betas."""

    def __init__(self, params):
        super().__init__(params, {"lr": 0.1})

    def _check_hyperparameters(self, values, context):
        return values

    def _update(self, param, grad, state, group):
        param -= group["lr"] * grad


@pytest.mark.parametrize(
    ("make", "match", "torch_make"),
    [
        (lambda o: StepLR(o, step_size=0), "StepLR: step_size must be ≥ 1, got 0", None),
        (lambda o: StepLR(o, step_size=2.5), "step_size must be a whole number, got 2.5", None),
        (lambda o: StepLR(o, 2, gamma=-0.1), "gamma must be a finite number ≥ 0", None),
        (lambda o: CosineAnnealingLR(o, T_max=0), "T_max must be ≥ 1, got 0", None),
        (lambda o: CosineAnnealingLR(o, 5, eta_min=float("nan")), "eta_min must be a finite", None),
        (
            lambda o: OneCycleLR(o, max_lr=0.1),
            "give total_steps, or both epochs and steps_per_epoch",
            lambda t: torch_schedulers.OneCycleLR(t, max_lr=0.1),
        ),
        (
            lambda o: OneCycleLR(o, max_lr=0.1, total_steps=0),
            "total_steps must be ≥ 1, got 0",
            lambda t: torch_schedulers.OneCycleLR(t, max_lr=0.1, total_steps=0),
        ),
        (
            lambda o: OneCycleLR(o, max_lr=0.1, epochs=2, steps_per_epoch=-1),
            "steps_per_epoch must be ≥ 1, got -1",
            lambda t: torch_schedulers.OneCycleLR(t, max_lr=0.1, epochs=2, steps_per_epoch=-1),
        ),
        (
            lambda o: OneCycleLR(o, max_lr=0.1, total_steps=10, pct_start=1.5),
            r"pct_start must be in \[0, 1\], got 1.5",
            lambda t: torch_schedulers.OneCycleLR(t, max_lr=0.1, total_steps=10, pct_start=1.5),
        ),
        (
            lambda o: OneCycleLR(o, max_lr=0.1, total_steps=10, anneal_strategy="exp"),
            "anneal_strategy must be 'cos' or 'linear', got 'exp'",
            lambda t: torch_schedulers.OneCycleLR(t, 0.1, total_steps=10, anneal_strategy="exp"),
        ),
        (
            lambda o: OneCycleLR(o, max_lr=[0.1, 0.2, 0.3], total_steps=10),
            r"max_lr must have one value per param group \(2\), got 3",
            lambda t: torch_schedulers.OneCycleLR(t, max_lr=[0.1, 0.2, 0.3], total_steps=10),
        ),
        (
            lambda o: OneCycleLR(o, max_lr=0.1, total_steps=10, div_factor=0),
            "div_factor must be > 0, got 0",
            None,
        ),
        (
            # pct_start · total_steps = 1 leaves the rising phase no steps: PyTorch divides
            # by zero at construction
            lambda o: OneCycleLR(o, max_lr=0.1, total_steps=10, pct_start=0.1),
            r"pct_start=0.1 with total_steps=10 leaves a phase of no steps \(met at step 0\)",
            lambda t: torch_schedulers.OneCycleLR(t, max_lr=0.1, total_steps=10, pct_start=0.1),
        ),
        (lambda o: StepLR(torch.optim.SGD([torch.zeros(1)], lr=0.1), 2), "got a SGD", None),
    ],
)
def test_bad_settings_are_one_clear_error(make, match, torch_make):
    ours, theirs = twin_optimizers("SGD", momentum=0.9)
    groups_before = copy.deepcopy(
        [{k: v for k, v in g.items() if k != "params"} for g in ours.param_groups]
    )
    with pytest.raises(InvalidArgumentError, match=match) as caught:
        make(ours)
    assert "\n" not in str(caught.value)
    assert [{k: v for k, v in g.items() if k != "params"} for g in ours.param_groups] == (
        groups_before
    )
    if torch_make is not None:
        with pytest.raises((ValueError, ZeroDivisionError)):
            torch_make(theirs)


def test_one_cycle_needs_momentum_to_cycle():
    optimizer = _NoMomentum([Tensor(np.zeros(1), requires_grad=True)])
    with pytest.raises(InvalidArgumentError, match="cycle_momentum=True needs an optimizer"):
        OneCycleLR(optimizer, max_lr=0.1, total_steps=10)
    OneCycleLR(optimizer, max_lr=0.1, total_steps=10, cycle_momentum=False)


def test_one_cycle_refuses_a_beta1_of_one():
    optimizer, _ = twin_optimizers("Adam")
    with pytest.raises(InvalidArgumentError, match=r"max_momentum\[0\] is Adam's beta1"):
        OneCycleLR(optimizer, max_lr=0.1, total_steps=10, max_momentum=1.0)
