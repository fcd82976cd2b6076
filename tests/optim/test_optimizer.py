"""The Optimizer base: the forms of params, the refused parameters, in-place updates,
zero_grad, closures, and state_dict/load_state_dict (round trips and refusals)."""

from __future__ import annotations

import copy
import numbers

import numpy as np
import pytest
import torch

from signdigits import InvalidArgumentError, Tensor
from signdigits.errors import ShapeError
from signdigits.optim import SGD, Adam, AdamW
from tests.optim.helpers import Twins, random_gradients, random_start


def param(*shape: int, value: float = 1.0) -> Tensor:
    return Tensor(np.full(shape, value), requires_grad=True)


# -- the forms of params ----------------------------------------------------------------------
def test_plain_tensors_are_named_in_order_across_groups():
    a, b, c = param(2), param(3), param(1)
    optimizer = SGD([{"params": [a, b]}, {"params": c, "lr": 0.5}], lr=0.1)
    assert [g["param_names"] for g in optimizer.param_groups] == [["0", "1"], ["2"]]
    assert optimizer.param_groups[1]["params"] == [c]  # a lone Tensor becomes a list
    assert [g["lr"] for g in optimizer.param_groups] == [0.1, 0.5]
    assert optimizer.named_parameters() == [("0", a), ("1", b), ("2", c)]


def test_a_generator_of_parameters_is_accepted():
    tensors = [param(2), param(2)]
    optimizer = SGD((t for t in tensors), lr=0.1)
    assert optimizer.param_groups[0]["params"] == tensors


def test_named_parameters_key_the_state_by_name():
    w, b = param(2, 2), param(2)
    optimizer = Adam([("fc.weight", w), ("fc.bias", b)], lr=0.1)
    w.grad, b.grad = np.ones((2, 2)), np.ones(2)
    optimizer.step()
    assert sorted(optimizer.state) == ["fc.bias", "fc.weight"]
    assert optimizer.state_dict()["param_groups"][0]["params"] == ["fc.weight", "fc.bias"]


def test_named_param_groups_and_param_names_entries():
    w, b = param(2), param(2)
    optimizer = SGD(
        [{"params": [("w", w)]}, {"params": [b], "param_names": ["b"], "lr": 0.5}], lr=0.1
    )
    assert [g["param_names"] for g in optimizer.param_groups] == [["w"], ["b"]]


def test_add_param_group_continues_the_numbering():
    a, b = param(2), param(2)
    optimizer = SGD([a], lr=0.1)
    optimizer.add_param_group({"params": [b], "lr": 0.01, "momentum": 0.9})
    group = optimizer.param_groups[1]
    assert group["param_names"] == ["1"] and group["momentum"] == 0.9 and group["lr"] == 0.01


@pytest.mark.parametrize(
    ("make_params", "match"),
    [
        (lambda: [Tensor(np.zeros(2))], r"parameter '0' does not require grad"),
        (
            lambda: [("frozen", Tensor(np.zeros(2)))],
            r"parameter 'frozen' does not require grad, so it would never be updated",
        ),
        (lambda: [Tensor(np.arange(3))], r"parameter '0' has dtype int64; only floating"),
        (lambda: [param(2) * 2], r"parameter '0' is the result of an operation, not a leaf"),
        (lambda: [np.zeros(2)], r"parameter '0' must be a Tensor, got a ndarray"),
        (lambda: (lambda p: [p, p])(param(2)), r"parameter '1' is given twice"),
        (
            lambda: (lambda p: [{"params": [p]}, {"params": [p]}])(param(2)),
            r"param_groups\[1\]: parameter '1' is given twice",
        ),
        (lambda: [("w", param(2)), ("w", param(2))], "two parameters are named 'w'"),
        (lambda: [("w", param(2)), param(2)], "some parameters have names and some do not"),
        (
            lambda: [{"params": [("w", param(2))]}, {"params": [param(2)]}],
            r"param_groups\[1\]: the other groups' parameters are with names",
        ),
        (lambda: [], "got an empty parameter list"),
        (lambda: param(2), "got a single Tensor; put it in a list"),
        (lambda: {"params": [param(2)]}, r"params is one dict; give a list of param-group dicts"),
        (lambda: {param(2)}, "params is a set, whose order changes between runs"),
        (lambda: 3, "params must be an iterable of parameters, got a int"),
        (lambda: [{"params": [param(2)]}, param(2)], "mixes param-group dicts with parameters"),
        (lambda: [{"lr": 0.1}], r"param_groups\[0\]: has no 'params' entry"),
        (
            lambda: [{"params": [param(2)], "learning_rate": 0.1}],
            r"unknown hyper-parameter 'learning_rate'; SGD takes lr, momentum",
        ),
    ],
)
def test_refused_parameters_are_one_clear_error(make_params, match):
    with pytest.raises(InvalidArgumentError, match=match) as caught:
        SGD(make_params(), lr=0.1)
    assert str(caught.value).startswith("SGD: ") and "\n" not in str(caught.value)


# -- step, zero_grad ---------------------------------------------------------------------------
def test_step_updates_the_arrays_in_place():
    p = param(2, 3)
    array, view = p.data, p.data[0]
    optimizer = Adam([p], lr=0.1)
    p.grad = np.ones((2, 3))
    optimizer.step()
    assert p.data is array
    np.testing.assert_allclose(view, 0.9)  # other references see the new values


def test_step_skips_parameters_without_gradient_and_keeps_no_state_for_them():
    frozen, trained = param(3), param(3)
    optimizer = AdamW([frozen, trained], lr=0.1, weight_decay=0.5)
    for _ in range(4):
        trained.grad = np.ones(3)
        optimizer.step()
    np.testing.assert_array_equal(frozen.data, 1.0)  # not even weight decay touched it
    assert list(optimizer.state) == ["1"] and optimizer.state["1"]["step"] == 4


def test_zero_grad_sets_none_or_zeros_in_place():
    a, b = param(2), param(2)
    optimizer = SGD([a, b], lr=0.1)
    a.grad = np.ones(2)
    optimizer.zero_grad()
    assert a.grad is None and b.grad is None
    a.grad = grad = np.ones(2)
    optimizer.zero_grad(set_to_none=False)
    assert a.grad is grad and np.array_equal(grad, [0.0, 0.0]) and b.grad is None


def test_a_gradient_of_the_wrong_shape_is_refused_before_any_update():
    first, p = param(2), param(2, 3)
    optimizer = SGD([("b", first), ("w", p)], lr=0.1)
    first.grad, p.grad = np.ones(2), np.ones(3)
    with pytest.raises(ShapeError, match=r"parameter 'w' has shape \(2, 3\) but its .grad"):
        optimizer.step()
    np.testing.assert_array_equal(first.data, 1.0)
    np.testing.assert_array_equal(p.data, 1.0)


def test_read_only_data_is_refused_with_a_hint():
    p = param(2)
    optimizer = SGD([p], lr=0.1)
    p.data.flags.writeable = False
    p.grad = np.ones(2)
    with pytest.raises(InvalidArgumentError, match="read-only data"):
        optimizer.step()


def test_closure_is_called_and_its_loss_returned():
    p = param(1)
    optimizer = SGD([p], lr=0.1)

    def closure():
        optimizer.zero_grad()
        loss = (p * p).sum()
        loss.backward()
        return loss

    loss = optimizer.step(closure)
    assert loss.item() == 1.0 and p.data[0] == pytest.approx(0.8)


@pytest.mark.parametrize(
    ("cls", "options"),
    [(SGD, {"lr": 0.1, "momentum": 0.9, "nesterov": True}), (Adam, {"lr": 0.1}), (AdamW, {})],
)
def test_training_with_backward_reaches_the_minimum(cls, options):
    target = np.array([[1.0, -2.0], [0.5, 3.0]])
    w = Tensor(np.zeros((2, 2)), requires_grad=True)
    optimizer = cls([w], **options)
    if cls is AdamW:
        optimizer.param_groups[0].update(lr=0.1, weight_decay=0.0)
    for _ in range(300):
        optimizer.zero_grad()
        ((w - target) ** 2).sum().backward()
        optimizer.step()
    np.testing.assert_allclose(w.data, target, atol=1e-2)


def test_repr_lists_the_groups():
    text = repr(SGD([param(1)], lr=0.1))
    assert text.startswith("SGD (") and "lr: 0.1" in text and "Parameter Group 0" in text


# -- state_dict --------------------------------------------------------------------------------
CONFIGS = [
    (SGD, {"lr": 0.05, "momentum": 0.9, "nesterov": True, "weight_decay": 0.01}),
    (SGD, {"lr": 0.05, "momentum": 0.5, "dampening": 0.2}),
    (SGD, {"lr": 0.05}),
    (Adam, {"lr": 0.01, "amsgrad": True, "weight_decay": 0.01}),
    (AdamW, {"lr": 0.01, "eps": 1e-7}),
]


def _plain(value) -> bool:
    """Only ndarrays, numbers, strings and containers of them."""
    if isinstance(value, dict):
        return all(isinstance(k, str) and _plain(v) for k, v in value.items())
    if isinstance(value, list | tuple):
        return all(_plain(v) for v in value)
    return isinstance(value, np.ndarray | numbers.Number | str)


@pytest.mark.parametrize(("cls", "options"), CONFIGS)
def test_a_round_trip_mid_training_continues_identically(cls, options):
    """Save after 7 steps; the uninterrupted run goes on to 20 (mutating its own state,
    which must not reach the saved copies); a fresh optimizer on copies of the saved
    parameters loads the state and does the last 13 steps: the same values to the bit."""
    grads = random_gradients(4, 20, missing=0.2)
    uninterrupted = [Tensor(a, requires_grad=True) for a in random_start(4)]
    names = ["w", "b", "scale"]
    optimizer = cls(list(zip(names, uninterrupted, strict=True)), **options)
    for step, step_grads in enumerate(grads):
        if step == 7:
            saved_params = [p.data.copy() for p in uninterrupted]
            saved = optimizer.state_dict()
        for p, g in zip(uninterrupted, step_grads, strict=True):
            p.grad = g
        optimizer.step()

    assert _plain(saved)
    resumed = [Tensor(a, requires_grad=True) for a in saved_params]
    fresh = cls(list(zip(names, resumed, strict=True)), **options)
    fresh.load_state_dict(saved)
    for step_grads in grads[7:]:
        for p, g in zip(resumed, step_grads, strict=True):
            p.grad = g
        fresh.step()
    for a, b in zip(resumed, uninterrupted, strict=True):
        np.testing.assert_array_equal(a.data, b.data)


def test_loading_restores_the_groups_hyperparameters():
    source = SGD([param(2)], lr=0.3, momentum=0.7)
    target = SGD([param(2)], lr=0.01)
    target.load_state_dict(source.state_dict())
    assert target.param_groups[0]["lr"] == 0.3 and target.param_groups[0]["momentum"] == 0.7


def test_state_dict_is_a_copy():
    p = param(2)
    optimizer = SGD([p], lr=0.1, momentum=0.9)
    p.grad = np.ones(2)
    optimizer.step()
    saved = optimizer.state_dict()
    saved["state"]["0"]["momentum_buffer"][:] = 99
    saved["param_groups"][0]["params"].append("x")
    assert optimizer.state["0"]["momentum_buffer"][0] == 1.0
    assert optimizer.param_groups[0]["param_names"] == ["0"]


def test_loading_casts_to_the_parameter_dtype_and_accepts_torch_float_steps():
    p = Tensor(np.zeros(2, dtype=np.float32), requires_grad=True)
    optimizer = Adam([p])
    saved = {
        "state": {"0": {"step": 3.0, "exp_avg": np.ones(2), "exp_avg_sq": np.ones(2)}},
        "param_groups": [{**Adam([param(1)]).state_dict()["param_groups"][0], "params": ["0"]}],
    }
    optimizer.load_state_dict(saved)
    assert optimizer.state["0"]["step"] == 3 and isinstance(optimizer.state["0"]["step"], int)
    assert optimizer.state["0"]["exp_avg"].dtype == np.float32


def _trained_adam() -> Adam:
    w, b = param(2, 3), param(3)
    optimizer = Adam([("w", w), ("b", b)], lr=0.1, amsgrad=True)
    w.grad, b.grad = np.ones((2, 3)), np.ones(3)
    optimizer.step()
    return optimizer


def _edit(change):
    def edited(state_dict):
        state_dict = copy.deepcopy(state_dict)
        change(state_dict)
        return state_dict

    return edited


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        (lambda sd: {"state": sd["state"]}, r"expected a dict with 'state' and 'param_groups'"),
        (lambda sd: [1, 2], r"expected a dict with 'state' and 'param_groups', got a list"),
        (
            _edit(lambda sd: sd["param_groups"].append(sd["param_groups"][0])),
            r"param_groups must be a list of 1 groups \(as this optimizer has\), got 2",
        ),
        (
            _edit(lambda sd: sd["param_groups"][0].update(params=["w", "bias"])),
            r"param_groups\[0\]: its parameters are not this optimizer's: missing \['b'\], "
            r"unexpected \['bias'\]",
        ),
        (
            _edit(lambda sd: sd["param_groups"][0].pop("eps")),
            r"param_groups\[0\]: hyper-parameter 'eps' is missing",
        ),
        (
            _edit(lambda sd: sd["param_groups"][0].update(lr=-1.0)),
            r"param_groups\[0\]: lr must be a finite number ≥ 0, got -1\.0",
        ),
        (
            _edit(lambda sd: sd["param_groups"][0].update(betas=(0.9, 1.0))),
            r"betas\[1\] must be in \[0, 1\)",
        ),
        (
            _edit(lambda sd: sd["param_groups"][0].update(initial_lr=np.ones(3))),
            r"entry 'initial_lr' must be a number or a tuple of numbers, got a ndarray",
        ),
        (
            _edit(lambda sd: sd["state"].update(c={})),
            r"state of unknown parameter 'c'; this optimizer has \['w', 'b'\]",
        ),
        (
            _edit(lambda sd: sd["state"]["w"].update(exp_avg=np.ones((3, 2)))),
            r"state\['w'\]: exp_avg has shape \(3, 2\) but the parameter has shape \(2, 3\)",
        ),
        (
            _edit(lambda sd: sd["state"]["b"].pop("max_exp_avg_sq")),
            r"state\['b'\]: entry 'max_exp_avg_sq' is missing",
        ),
        (
            _edit(lambda sd: sd["state"]["b"].update(momentum_buffer=np.ones(3))),
            r"state\['b'\]: unknown entry 'momentum_buffer'; Adam keeps exp_avg",
        ),
        (
            _edit(lambda sd: sd["state"]["b"].update(step=-1)),
            r"state\['b'\]: step must be ≥ 0, got -1",
        ),
        (
            _edit(lambda sd: sd["state"]["b"].update(step=2.5)),
            r"state\['b'\]: step must be a whole number, got 2\.5",
        ),
        (
            _edit(lambda sd: sd["state"]["b"].update(exp_avg=np.array(["a", "b", "c"]))),
            r"state\['b'\]: exp_avg must be an array of numbers, got dtype <U1",
        ),
    ],
)
def test_a_bad_state_dict_is_refused_before_anything_changes(edit, match):
    optimizer = _trained_adam()
    saved = optimizer.state_dict()
    bad = edit(optimizer.state_dict())
    optimizer.param_groups[0]["lr"] = 0.5  # differs from the saved one: a load would reset it
    with pytest.raises(InvalidArgumentError, match=match) as caught:
        optimizer.load_state_dict(bad)
    message = str(caught.value)
    assert message.startswith("Adam.load_state_dict: ") and "\n" not in message
    assert optimizer.param_groups[0]["lr"] == 0.5
    after = optimizer.state_dict()
    for name in saved["state"]:
        for key, value in saved["state"][name].items():
            np.testing.assert_array_equal(after["state"][name][key], value)


def test_state_matches_torch_state_dict_entries():
    """Our state_dict's arrays are PyTorch's, under names instead of indices."""
    twins = Twins.from_arrays(random_start(1))
    ours = Adam(twins.ours, lr=0.01, amsgrad=True)
    theirs = torch.optim.Adam(twins.theirs, lr=0.01, amsgrad=True, foreach=False)
    for grads in random_gradients(1, 5):
        twins.feed(grads)
        ours.step()
        theirs.step()
    mine, reference = ours.state_dict(), theirs.state_dict()
    assert mine["param_groups"][0]["params"] == ["0", "1", "2"]
    assert reference["param_groups"][0]["params"] == [0, 1, 2]
    for index in range(3):
        for key, value in reference["state"][index].items():
            np.testing.assert_allclose(mine["state"][str(index)][key], value.numpy(), rtol=1e-12)
