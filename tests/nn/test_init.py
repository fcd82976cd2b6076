"""signdigits.nn.init against torch.nn.init: gains and fans exactly, and the distributions
statistically (the bounds exactly, the standard deviations within 1 % on a million values),
for our samples and torch's alike; every function fills in place from the generator given."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch.nn import init as tinit

from signdigits import InvalidArgumentError, Tensor
from signdigits.nn import Parameter, init

SHAPE = (250, 160, 5, 5)  # a million values: fan_in 4000, fan_out 6250


@pytest.mark.parametrize(
    ("nonlinearity", "param"),
    [
        ("linear", None),
        ("conv2d", None),
        ("conv_transpose3d", None),
        ("sigmoid", None),
        ("tanh", None),
        ("relu", None),
        ("leaky_relu", None),
        ("leaky_relu", 0),
        ("leaky_relu", 0.2),
        ("leaky_relu", math.sqrt(5)),
        ("selu", None),
    ],
)
def test_calculate_gain_is_torchs(nonlinearity, param):
    assert init.calculate_gain(nonlinearity, param) == tinit.calculate_gain(nonlinearity, param)


def test_calculate_gain_refuses_what_torch_refuses():
    with pytest.raises(InvalidArgumentError, match="unsupported nonlinearity 'gelu'"):
        init.calculate_gain("gelu")
    with pytest.raises(InvalidArgumentError, match="negative_slope"):
        init.calculate_gain("leaky_relu", True)


@pytest.mark.parametrize("shape", [(3, 4), (8, 3, 5, 5), (2, 6, 3), (0, 4), (4, 2, 1, 1)])
def test_fans_are_torchs(shape):
    expected = tinit._calculate_fan_in_and_fan_out(torch.empty(shape))
    assert init.calculate_fan_in_and_fan_out(Tensor(np.empty(shape))) == expected
    assert init._calculate_fan_in_and_fan_out(np.empty(shape)) == expected


def test_fans_need_two_dimensions():
    with pytest.raises(InvalidArgumentError, match=r"fewer than 2 dimensions.*\(5,\)"):
        init.kaiming_uniform_(Tensor(np.zeros(5)), rng=0)


@pytest.mark.parametrize(
    ("kw", "fan"),
    [
        ({}, 4000),
        ({"a": math.sqrt(5)}, 4000),
        ({"mode": "fan_out", "nonlinearity": "relu"}, 6250),
        ({"nonlinearity": "tanh"}, 4000),
        ({"a": 0.2, "mode": "fan_out"}, 6250),
    ],
)
def test_kaiming_uniform_bound_is_gain_times_sqrt_3_over_fan(kw, fan):
    gain = tinit.calculate_gain(kw.get("nonlinearity", "leaky_relu"), kw.get("a", 0))
    bound = gain * math.sqrt(3 / fan)
    ours = init.kaiming_uniform_(Tensor(np.empty(SHAPE, np.float32)), rng=0, **kw).data
    theirs = tinit.kaiming_uniform_(torch.empty(SHAPE), **kw).numpy()
    for sample in ours, theirs:
        assert np.abs(sample).max() <= np.float32(bound)
        assert np.abs(sample).max() > 0.999 * bound
        assert abs(sample.std() / (bound / math.sqrt(3)) - 1) < 0.01


@pytest.mark.parametrize(
    ("kw", "fan"),
    [({}, 4000), ({"mode": "fan_out", "nonlinearity": "relu"}, 6250), ({"a": 0.5}, 4000)],
)
def test_kaiming_normal_std_is_gain_over_sqrt_fan(kw, fan):
    gain = tinit.calculate_gain(kw.get("nonlinearity", "leaky_relu"), kw.get("a", 0))
    std = gain / math.sqrt(fan)
    ours = init.kaiming_normal_(Tensor(np.empty(SHAPE, np.float32)), rng=0, **kw).data
    theirs = tinit.kaiming_normal_(torch.empty(SHAPE), **kw).numpy()
    for sample in ours, theirs:
        assert abs(sample.std() / std - 1) < 0.01
        assert abs(sample.mean()) < 0.01 * std


@pytest.mark.parametrize("gain", [1.0, 5 / 3])
def test_xavier_uniform_and_normal_follow_glorots_formulas(gain):
    std = gain * math.sqrt(2 / (4000 + 6250))
    bound = math.sqrt(3) * std
    ours = init.xavier_uniform_(Tensor(np.empty(SHAPE)), gain, rng=0).data
    theirs = tinit.xavier_uniform_(torch.empty(SHAPE), gain).numpy()
    for sample in ours, theirs:
        assert np.abs(sample).max() <= bound and np.abs(sample).max() > 0.999 * bound
        assert abs(sample.std() / std - 1) < 0.01
    ours = init.xavier_normal_(Tensor(np.empty(SHAPE)), gain, rng=0).data
    theirs = tinit.xavier_normal_(torch.empty(SHAPE), gain).numpy()
    for sample in ours, theirs:
        assert abs(sample.std() / std - 1) < 0.01


def test_uniform_and_normal_with_their_arguments():
    u = init.uniform_(Tensor(np.empty(100_000)), -2.0, 3.0, rng=0).data
    assert u.min() >= -2 and u.max() < 3 and abs(u.mean() - 0.5) < 0.02
    n = init.normal_(Tensor(np.empty(100_000)), 1.5, 0.5, rng=0).data
    assert abs(n.mean() - 1.5) < 0.01 and abs(n.std() / 0.5 - 1) < 0.01
    d = init.uniform_(Tensor(np.empty(10_000)), rng=0).data  # defaults: U(0, 1)
    assert d.min() >= 0 and d.max() < 1


@pytest.mark.parametrize(
    ("call", "says"),
    [
        (lambda t: init.uniform_(t, 1.0, 0.0, rng=0), r"a ≤ b.*a=1\.0, b=0\.0"),
        (lambda t: init.uniform_(t, -math.inf, 0.0, rng=0), "finite"),
        (lambda t: init.normal_(t, 0.0, -1.0, rng=0), "std ≥ 0"),
        (lambda t: init.kaiming_uniform_(t, mode="fan_avg", rng=0), "mode 'fan_avg'"),
        (lambda t: init.kaiming_normal_(t, nonlinearity="swish", rng=0), "'swish'"),
    ],
)
def test_bad_arguments_are_named(call, says):
    t = Tensor(np.zeros((3, 3)))
    with pytest.raises(InvalidArgumentError, match=says):
        call(t)
    assert not t.data.any()


RANDOM_FILLS = {
    "uniform_": init.uniform_,
    "normal_": init.normal_,
    "xavier_uniform_": init.xavier_uniform_,
    "xavier_normal_": init.xavier_normal_,
    "kaiming_uniform_": init.kaiming_uniform_,
    "kaiming_normal_": init.kaiming_normal_,
}


@pytest.mark.parametrize("name", RANDOM_FILLS)
def test_random_fills_are_in_place_seeded_and_need_a_generator(name):
    fill = RANDOM_FILLS[name]
    p = Parameter(np.zeros((6, 5), np.float32))
    array = p.data
    assert fill(p, rng=np.random.default_rng(3)) is p
    assert p.data is array and p.dtype == np.float32 and p.requires_grad
    assert p.creator is None and p.grad is None
    again = fill(Tensor(np.zeros((6, 5), np.float32)), rng=3)  # an int seed is that generator
    np.testing.assert_array_equal(again.data, array)
    other = fill(Tensor(np.zeros((6, 5), np.float32)), rng=4)
    assert not np.array_equal(other.data, array)
    plain = np.zeros((6, 5))  # an ndarray is filled too
    assert fill(plain, rng=3) is plain and plain.any()
    with pytest.raises(InvalidArgumentError, match=r"rng=np\.random\.default_rng\(seed\)"):
        fill(Tensor(np.zeros((6, 5))))
    with pytest.raises(InvalidArgumentError, match="floating"):
        fill(Tensor(np.zeros((6, 5), np.int64)), rng=0)
    empty = Tensor(np.zeros((0, 5)))  # nothing to fill: no error, as torch (which warns)
    assert fill(empty, rng=0) is empty


def test_constant_fills_in_place_without_a_generator():
    p = Parameter(np.zeros((2, 3)))
    array = p.data
    assert init.constant_(p, 0.25) is p and p.data is array
    np.testing.assert_array_equal(array, np.full((2, 3), 0.25))
    init.ones_(p)
    assert (array == 1).all()
    init.zeros_(p)
    assert not array.any()
    counts = np.ones(3, np.int64)
    assert not init.zeros_(counts).any()
    with pytest.raises(InvalidArgumentError, match="Tensor"):
        init.ones_([1.0, 2.0])
