"""The layers of signdigits.nn against torch.nn's with the same weights copied in: outputs and
the gradients of the input and of every parameter, in training and in evaluation, float64
(exact to 1e-8) and float32 (1e-4); the cases that PyTorch code being ported runs into."""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from torch import nn as tnn

from signdigits import InvalidArgumentError, Tensor
from signdigits import nn as snn
from signdigits.errors import ShapeError
from tests.autograd.helpers import SETTINGS, assert_close
from tests.nn.helpers import assert_same_state, compare_step, randomize, same_weights

DTYPES = [np.float64, np.float32]
MODES = {"train": True, "eval": False}


def normal(seed: int, *shape: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape)


# (ours, theirs, input shape) for every layer with its arguments as in torch.
LAYER_CASES = {
    "linear": (
        lambda dt=np.float32: snn.Linear(4, 3, rng=0, dtype=dt),
        lambda: tnn.Linear(4, 3),
        (5, 4),
    ),
    "linear-3d-input": (
        lambda dt=np.float32: snn.Linear(4, 3, rng=0, dtype=dt),
        lambda: tnn.Linear(4, 3),
        (2, 3, 4),
    ),
    "linear-1d-input": (
        lambda dt=np.float32: snn.Linear(4, 3, rng=0, dtype=dt),
        lambda: tnn.Linear(4, 3),
        (4,),
    ),
    "linear-no-bias": (
        lambda dt=np.float32: snn.Linear(4, 3, bias=False, rng=0, dtype=dt),
        lambda: tnn.Linear(4, 3, bias=False),
        (5, 4),
    ),
    "conv2d": (
        lambda dt=np.float32: snn.Conv2d(2, 3, 3, rng=0, dtype=dt),
        lambda: tnn.Conv2d(2, 3, 3),
        (2, 2, 6, 5),
    ),
    "conv2d-stride-padding": (
        lambda dt=np.float32: snn.Conv2d(2, 4, (3, 2), stride=2, padding=1, rng=0, dtype=dt),
        lambda: tnn.Conv2d(2, 4, (3, 2), stride=2, padding=1),
        (2, 2, 7, 6),
    ),
    "conv2d-no-bias": (
        lambda dt=np.float32: snn.Conv2d(
            1, 2, 2, stride=(1, 2), padding=(0, 1), bias=False, rng=0, dtype=dt
        ),
        lambda: tnn.Conv2d(1, 2, 2, stride=(1, 2), padding=(0, 1), bias=False),
        (3, 1, 5, 5),
    ),
    "max-pool": (lambda dt=np.float32: snn.MaxPool2d(2), lambda: tnn.MaxPool2d(2), (2, 3, 6, 5)),
    "max-pool-overlapping": (
        lambda dt=np.float32: snn.MaxPool2d(3, stride=1),
        lambda: tnn.MaxPool2d(3, stride=1),
        (1, 2, 5, 5),
    ),
    "avg-pool": (lambda dt=np.float32: snn.AvgPool2d(2), lambda: tnn.AvgPool2d(2), (2, 3, 6, 4)),
    "avg-pool-rectangular": (
        lambda dt=np.float32: snn.AvgPool2d((2, 3), stride=(1, 2)),
        lambda: tnn.AvgPool2d((2, 3), stride=(1, 2)),
        (2, 1, 5, 7),
    ),
    "flatten": (lambda dt=np.float32: snn.Flatten(), lambda: tnn.Flatten(), (2, 3, 4, 5)),
    "flatten-negative-dims": (
        lambda dt=np.float32: snn.Flatten(-3, -2),
        lambda: tnn.Flatten(-3, -2),
        (2, 3, 4, 5),
    ),
    "flatten-all": (
        lambda dt=np.float32: snn.Flatten(0, -1),
        lambda: tnn.Flatten(0, -1),
        (2, 3, 4),
    ),
    "relu": (lambda dt=np.float32: snn.ReLU(), lambda: tnn.ReLU(), (4, 5)),
    "leaky-relu": (lambda dt=np.float32: snn.LeakyReLU(0.2), lambda: tnn.LeakyReLU(0.2), (4, 5)),
    "leaky-relu-default": (
        lambda dt=np.float32: snn.LeakyReLU(),
        lambda: tnn.LeakyReLU(),
        (3, 2, 2),
    ),
    "tanh": (lambda dt=np.float32: snn.Tanh(), lambda: tnn.Tanh(), (4, 5)),
    "sigmoid": (lambda dt=np.float32: snn.Sigmoid(), lambda: tnn.Sigmoid(), (4, 5)),
    "identity": (lambda dt=np.float32: snn.Identity(7, x=1), lambda: tnn.Identity(7, x=1), (4, 5)),
    "batch-norm-1d": (
        lambda dt=np.float32: snn.BatchNorm1d(3, dtype=dt),
        lambda: tnn.BatchNorm1d(3),
        (6, 3),
    ),
    "batch-norm-1d-ncl": (
        lambda dt=np.float32: snn.BatchNorm1d(3, dtype=dt),
        lambda: tnn.BatchNorm1d(3),
        (4, 3, 5),
    ),
    "batch-norm-2d": (
        lambda dt=np.float32: snn.BatchNorm2d(3, dtype=dt),
        lambda: tnn.BatchNorm2d(3),
        (2, 3, 4, 4),
    ),
    "batch-norm-not-affine": (
        lambda dt=np.float32: snn.BatchNorm2d(2, affine=False, momentum=0.3, dtype=dt),
        lambda: tnn.BatchNorm2d(2, affine=False, momentum=0.3),
        (3, 2, 2, 3),
    ),
    "batch-norm-no-bias": (
        lambda dt=np.float32: snn.BatchNorm1d(3, eps=1e-3, bias=False, dtype=dt),
        lambda: tnn.BatchNorm1d(3, eps=1e-3, bias=False),
        (5, 3),
    ),
    "batch-norm-untracked": (
        lambda dt=np.float32: snn.BatchNorm2d(2, track_running_stats=False, dtype=dt),
        lambda: tnn.BatchNorm2d(2, track_running_stats=False),
        (3, 2, 3, 3),
    ),
    "batch-norm-cumulative": (
        lambda dt=np.float32: snn.BatchNorm1d(4, momentum=None, dtype=dt),
        lambda: tnn.BatchNorm1d(4, momentum=None),
        (5, 4),
    ),
}


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", LAYER_CASES)
def test_layer_matches_torch(case, dtype, mode):
    make_ours, make_theirs, shape = LAYER_CASES[case]
    ours = randomize(make_ours(dtype), seed=3).train(MODES[mode])
    theirs = same_weights(ours, make_theirs(), dtype)
    compare_step(ours, theirs, normal(4, *shape), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    ("make_ours", "make_theirs", "shape"),
    [
        (lambda dt=np.float32: snn.BatchNorm1d(3, dtype=dt), lambda: tnn.BatchNorm1d(3), (6, 3)),
        (
            lambda dt=np.float32: snn.BatchNorm1d(3, momentum=None, dtype=dt),
            lambda: tnn.BatchNorm1d(3, momentum=None),
            (4, 3, 2),
        ),
        (
            lambda dt=np.float32: snn.BatchNorm2d(2, momentum=0.4, dtype=dt),
            lambda: tnn.BatchNorm2d(2, momentum=0.4),
            (3, 2, 3, 3),
        ),
    ],
    ids=["momentum-0.1", "cumulative-average", "2d-momentum-0.4"],
)
def test_batch_norm_running_statistics_after_several_steps_equal_torch(
    make_ours, make_theirs, shape, dtype
):
    ours = randomize(make_ours(dtype), seed=5)
    theirs = same_weights(ours, make_theirs(), dtype)
    for step in range(4):  # outputs, gradients and the state after each step
        compare_step(ours, theirs, 2 * normal(10 + step, *shape) + step, dtype, seed=step)
    assert int(ours.num_batches_tracked) == 4
    ours.eval(), theirs.eval()
    compare_step(ours, theirs, normal(20, *shape), dtype)  # evaluation uses those statistics


@pytest.mark.parametrize("dtype", DTYPES)
def test_a_whole_network_trained_for_a_few_steps_matches_torch(dtype):
    def network(nn, rng=None, dtype=None):
        weights = {"rng": rng, "dtype": dtype} if rng else {}  # torch draws its own
        norm = {"dtype": dtype} if rng else {}
        return nn.Sequential(
            nn.Conv2d(1, 4, 3, padding=1, **weights),
            nn.BatchNorm2d(4, **norm),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(4, 6, 3, stride=2, bias=False, **weights),
            nn.LeakyReLU(0.1),
            nn.AvgPool2d(2, 1),
            nn.Flatten(),
            nn.Linear(6, 10, **weights),
            nn.BatchNorm1d(10, **norm),
            nn.Tanh(),
            nn.Identity(),
            nn.Linear(10, 3, **weights),
            nn.Sigmoid(),
        )

    ours = network(snn, np.random.default_rng(0), dtype)
    theirs = same_weights(ours, network(tnn), dtype)
    for step in range(3):  # plain gradient descent, the same updates on both
        compare_step(ours, theirs, normal(step, 5, 1, 12, 12), dtype, seed=step)
        for p, q in zip(ours.parameters(), theirs.parameters(), strict=True):
            p.data -= dtype(0.1) * p.grad
            with torch.no_grad():
                q -= 0.1 * q.grad
        ours.zero_grad(), theirs.zero_grad()
    ours.eval(), theirs.eval()
    compare_step(ours, theirs, normal(9, 2, 1, 12, 12), dtype)


# -- dropout ----------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
def test_dropout_applies_torchs_formula_with_its_mask(dtype):
    """The RNG cannot be shared: the mask ours drew is read back and applied in torch."""
    p = 0.3
    x = normal(0, 40, 50).astype(dtype) + 5  # no zeros: a zero output means dropped
    ours = snn.Dropout(p, rng=np.random.default_rng(1))
    xs, xt = Tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    y = ours(xs)
    kept = y.data != 0
    assert abs(1 - kept.mean() - p) < 0.03
    ref = xt * torch.tensor(kept.astype(dtype)) / (1 - p)
    assert y.dtype == dtype
    assert_close(y.data, ref.detach().numpy(), dtype)
    upstream = normal(2, 40, 50).astype(dtype)
    y.backward(upstream)
    ref.backward(torch.tensor(upstream))
    assert_close(xs.grad, xt.grad.numpy(), dtype)


def test_dropout_is_the_identity_in_evaluation_and_draws_nothing():
    rng = np.random.default_rng(3)
    layer = snn.Dropout(0.5, rng=rng).eval()
    x = Tensor(normal(0, 4, 4), requires_grad=True)
    before = rng.bit_generator.state
    assert layer(x) is x
    assert rng.bit_generator.state == before
    theirs = tnn.Dropout(0.5).eval()
    np.testing.assert_array_equal(theirs(torch.tensor(x.data)).numpy(), x.data)


def test_dropout_with_one_seed_draws_the_same_masks_and_new_ones_each_call():
    x = Tensor(np.ones((8, 8)))
    first, second = snn.Dropout(0.5, rng=7), snn.Dropout(0.5, rng=np.random.default_rng(7))
    masks = [first(x).data for _ in range(3)]
    np.testing.assert_array_equal(masks, [second(x).data for _ in range(3)])
    assert not np.array_equal(masks[0], masks[1])


def test_dropout_probabilities_and_edges():
    x = Tensor(np.ones((3, 3)))
    assert not snn.Dropout(1.0, rng=0)(x).data.any()
    assert snn.Dropout(0.0, rng=0)(x) is x
    for p in (-0.1, 1.5, "0.5", True):
        with pytest.raises(InvalidArgumentError, match="Dropout: p"):
            snn.Dropout(p, rng=0)


# -- randomness -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "make",
    [
        lambda **kw: snn.Linear(3, 2, **kw),
        lambda **kw: snn.Conv2d(1, 2, 3, **kw),
        lambda **kw: snn.Dropout(0.5, **kw),
    ],
    ids=["Linear", "Conv2d", "Dropout"],
)
def test_layers_that_draw_random_numbers_require_rng(make):
    with pytest.raises(InvalidArgumentError, match=r"rng=np\.random\.default_rng\(seed\)"):
        make()
    with pytest.raises(InvalidArgumentError, match="Generator or an int seed"):
        make(rng=np.random.RandomState(0))
    with pytest.raises(InvalidArgumentError, match="seed"):
        make(rng=-1)


@pytest.mark.parametrize(
    "make",
    [
        lambda rng: snn.Linear(5, 4, rng=rng),
        lambda rng: snn.Conv2d(2, 3, (3, 2), rng=rng),
        lambda rng: snn.Sequential(snn.Linear(3, 3, rng=rng), snn.Linear(3, 2, rng=rng)),
    ],
    ids=["Linear", "Conv2d", "two-layers-one-generator"],
)
def test_one_seed_gives_the_same_weights(make):
    state = make(np.random.default_rng(11)).state_dict()
    for name, array in make(np.random.default_rng(11)).state_dict().items():
        np.testing.assert_array_equal(array, state[name])
    other = make(np.random.default_rng(12)).state_dict()
    assert not any(np.array_equal(other[name], state[name]) for name in state)


def test_an_int_seed_starts_a_generator_of_that_seed():
    for make in (lambda rng: snn.Linear(5, 4, rng=rng), lambda rng: snn.Conv2d(1, 2, 3, rng=rng)):
        seeded, generated = make(11), make(np.random.default_rng(11))
        np.testing.assert_array_equal(seeded.weight.data, generated.weight.data)
        np.testing.assert_array_equal(seeded.bias.data, generated.bias.data)
    twins = snn.Linear(3, 3, rng=11), snn.Linear(3, 3, rng=11)  # each its own generator
    np.testing.assert_array_equal(twins[0].weight.data, twins[1].weight.data)


def test_two_layers_from_one_generator_get_different_weights():
    rng = np.random.default_rng(0)
    a, b = snn.Linear(3, 3, rng=rng), snn.Linear(3, 3, rng=rng)
    assert not np.array_equal(a.weight.data, b.weight.data)


def test_nothing_reads_or_changes_numpys_global_random_state():
    np.random.seed(1234)  # noqa: NPY002  (the legacy global state, to be left alone)
    before = np.random.get_state()  # noqa: NPY002
    rng = np.random.default_rng(0)
    model = snn.Sequential(
        snn.Conv2d(1, 2, 3, rng=rng),
        snn.BatchNorm2d(2),
        snn.Flatten(),
        snn.Dropout(0.5, rng=rng),
        snn.Linear(18, 2, rng=5),
        snn.BatchNorm1d(2),
    )
    model(Tensor(normal(0, 4, 1, 5, 5))).sum().backward()
    model.eval()(Tensor(normal(1, 2, 1, 5, 5)))
    w = snn.Parameter(np.zeros((30, 20)))
    for fill in (snn.init.uniform_, snn.init.normal_, snn.init.xavier_uniform_):
        fill(w, rng=rng)
    snn.init.kaiming_normal_(w, rng=3)
    after = np.random.get_state()  # noqa: NPY002
    assert before[0] == after[0] and before[2:] == after[2:]
    np.testing.assert_array_equal(before[1], after[1])


# -- default initialisation -------------------------------------------------------------------
@pytest.mark.parametrize(
    ("ours", "theirs", "fan_in"),
    [
        (
            lambda dt=np.float32: snn.Linear(1000, 600, rng=0, dtype=dt),
            lambda: tnn.Linear(1000, 600),
            1000,
        ),
        (
            lambda dt=np.float32: snn.Conv2d(40, 300, 5, rng=0, dtype=dt),
            lambda: tnn.Conv2d(40, 300, 5),
            1000,
        ),
    ],
    ids=["Linear", "Conv2d"],
)
def test_default_initialisation_has_torchs_distribution(ours, theirs, fan_in):
    """Weight and bias uniform on [−1/√fan_in, 1/√fan_in] (kaiming_uniform with a = √5):
    within the bound, reaching it, with the standard deviation bound/√3, as torch's."""
    bound = 1 / np.sqrt(fan_in)
    torch.manual_seed(0)  # torch's draw seeded too, so that the test cannot fail by chance
    layer, reference = ours(), theirs()
    for name in ("weight", "bias"):
        values = getattr(layer, name).data
        assert values.dtype == np.float32
        for sample in (values, getattr(reference, name).detach().numpy()):
            assert np.abs(sample).max() <= np.float32(bound)
            assert np.abs(sample).max() > 0.99 * bound
        if name == "weight":  # 600 000 values: the std within 1 %
            for sample in (values, reference.weight.detach().numpy()):
                assert abs(sample.std() / (bound / np.sqrt(3)) - 1) < 0.01
                assert abs(sample.mean()) < 0.01 * bound


def test_batch_norm_starts_as_torchs_and_dtype_chooses_float64():
    bn = snn.BatchNorm2d(3)
    reference = tnn.BatchNorm2d(3)
    assert_same_state(bn, reference, np.float32)
    assert bn.num_batches_tracked.dtype == np.int64 and bn.num_batches_tracked.shape == ()
    wide = snn.BatchNorm1d(3, dtype=np.float64)
    assert {a.dtype for a in wide.state_dict().values()} == {
        np.dtype(np.float64),
        np.dtype(np.int64),
    }
    for layer in (snn.Linear(2, 2, rng=0, dtype=np.float64), snn.Conv2d(1, 1, 1, rng=0)):
        expected = np.float64 if isinstance(layer, snn.Linear) else np.float32
        assert all(p.dtype == expected for p in layer.parameters())
    with pytest.raises(InvalidArgumentError, match="dtype"):
        snn.Linear(2, 2, rng=0, dtype=np.int32)


@pytest.mark.filterwarnings("ignore:Initializing zero-element tensors")
def test_empty_linear_as_torch_zero_inputs_give_zero_bias():
    layer, reference = snn.Linear(0, 3, rng=0), tnn.Linear(0, 3)
    assert layer.weight.shape == (3, 0)
    np.testing.assert_array_equal(layer.bias.data, reference.bias.detach().numpy())


# -- what users porting PyTorch code run into -------------------------------------------------
@pytest.mark.parametrize(
    ("shape", "start", "end"),
    [
        ((2, 3, 4), 1, -1),
        ((2, 3, 4), -2, -1),
        ((2, 3, 4), 0, -2),
        ((2, 3, 4), -3, 0),
        ((2, 3, 4), 2, 2),
        ((0, 3, 4), 1, -1),
        ((2, 0, 4), 0, 1),
        ((), 0, -1),
        ((), -1, 0),
        ((5,), 0, 0),
    ],
)
def test_flatten_dims_as_torch(shape, start, end):
    ours = snn.Flatten(start, end)(Tensor(np.ones(shape)))
    assert ours.shape == tuple(tnn.Flatten(start, end)(torch.ones(shape)).shape)


@pytest.mark.parametrize(
    ("shape", "start", "end", "says"),
    [
        ((5,), 1, -1, r"dimension 1 is out of range.*\(5,\)"),
        ((2, 3, 4), 3, -1, r"dimension 3 is out of range.*\[-3, 2\]"),
        ((2, 3, 4), -4, -1, "dimension -4"),
        ((2, 3, 4), 2, 1, "start_dim 2 comes after end_dim 1"),
        ((2, 3, 4), -1, 1, "start_dim -1 comes after end_dim 1"),
        ((), 1, -1, "dimension 1"),
    ],
)
def test_flatten_refuses_what_torch_refuses(shape, start, end, says):
    with pytest.raises((IndexError, RuntimeError)):
        tnn.Flatten(start, end)(torch.ones(shape))
    with pytest.raises(ShapeError, match=says):
        snn.Flatten(start, end)(Tensor(np.ones(shape)))


@SETTINGS
@given(shape=hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=3), data=st.data())
def test_flatten_agrees_with_torch_on_any_shape_and_dims(shape, data):
    rank = max(len(shape), 1)
    start, end = (data.draw(st.integers(-rank - 1, rank)) for _ in range(2))
    try:
        expected = tuple(tnn.Flatten(start, end)(torch.ones(shape)).shape)
    except (IndexError, RuntimeError):
        with pytest.raises(ShapeError, match="Flatten"):
            snn.Flatten(start, end)(Tensor(np.ones(shape)))
        return
    x = Tensor(np.ones(shape), requires_grad=True)
    y = snn.Flatten(start, end)(x)
    assert y.shape == expected
    y.backward(np.ones(expected))
    assert x.grad.shape == shape


def test_flatten_arguments_must_be_ints():
    with pytest.raises(InvalidArgumentError, match="start_dim"):
        snn.Flatten(1.0)


def make_pair():
    def build(nn, **kw):
        return nn.Sequential(
            nn.Linear(4, 5, **kw),
            nn.ReLU(),
            nn.Linear(5, 3, **kw),
            nn.Tanh(),
            nn.Linear(3, 2, **kw),
        )

    ours = build(snn, rng=0, dtype=np.float64)
    return ours, same_weights(ours, build(tnn), np.float64)


def test_sequential_indexing_slicing_length_and_iteration_as_torch():
    ours, theirs = make_pair()
    assert len(ours) == len(theirs) == 5
    assert list(ours) == [ours[i] for i in range(5)] == [ours[i - 5] for i in range(5)]
    assert ours[-1] is ours[4]
    for window in (slice(1, None), slice(None, None, 2), slice(-2, None), slice(3, 1)):
        part, reference = ours[window], theirs[window]
        assert isinstance(part, snn.Sequential)
        assert list(part) == list(ours)[window]  # the same modules, not copies
        assert list(part.state_dict()) == list(reference.state_dict())  # names kept, as torch
        assert repr(part) == repr(reference)
    tail = ours[2:]
    compare_step(tail, theirs[2:], normal(0, 4, 5), np.float64)
    for index in (5, -6):
        with pytest.raises(IndexError, match=f"index {index} is out of range"):
            ours[index]
        with pytest.raises(IndexError):
            theirs[index]
    with pytest.raises(InvalidArgumentError, match="ints or slices"):
        ours["0"]


def test_sequential_assignment_deletion_and_append_as_torch():
    ours, theirs = make_pair()
    ours[1], theirs[1] = snn.Sigmoid(), tnn.Sigmoid()
    del ours[2], theirs[2]
    del ours[::2], theirs[::2]
    assert repr(ours) == repr(theirs)
    ours.append(snn.Linear(5, 1, rng=0, dtype=np.float64))
    theirs.append(tnn.Linear(5, 1))
    assert list(ours.state_dict()) == list(theirs.state_dict())
    assert repr(ours) == repr(theirs)


def test_sequential_of_named_modules_and_of_nothing():
    named = snn.Sequential(OrderedDict(conv=snn.Conv2d(1, 2, 3, rng=0), act=snn.ReLU()))
    reference = tnn.Sequential(OrderedDict(conv=tnn.Conv2d(1, 2, 3), act=tnn.ReLU()))
    assert list(named.state_dict()) == list(reference.state_dict()) == ["conv.weight", "conv.bias"]
    assert named[0] is named.conv
    x = Tensor(np.ones(3))
    assert snn.Sequential()(x) is x


def test_sequential_of_a_function_says_to_use_the_layer():
    with pytest.raises(InvalidArgumentError, match=r"not an nn.Module.*nn.ReLU\(\)"):
        snn.Sequential(snn.Linear(2, 2, rng=0), torch.relu)


@pytest.mark.parametrize("layer", ["BatchNorm1d", "BatchNorm2d"])
def test_batch_norm_on_one_sample_in_training_is_a_clear_error_and_changes_nothing(layer):
    shape = (1, 3) if layer == "BatchNorm1d" else (1, 3, 1, 1)
    ours, theirs = getattr(snn, layer)(3, dtype=np.float64), getattr(tnn, layer)(3)
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        theirs(torch.ones(shape))
    before = ours.state_dict()
    with pytest.raises(InvalidArgumentError, match=r"more than one value per channel.*eval\(\)"):
        ours(Tensor(np.ones(shape)))
    for name, array in ours.state_dict().items():  # torch counts the refused batch; ours not
        np.testing.assert_array_equal(array, before[name])
    randomize(ours, 0).eval()
    compare_step(ours, same_weights(ours, theirs, np.float64), normal(0, *shape), np.float64)


def test_batch_norm_2d_with_one_sample_of_several_pixels_trains_as_torch():
    ours = randomize(snn.BatchNorm2d(2, dtype=np.float64), 1)
    compare_step(
        ours, same_weights(ours, tnn.BatchNorm2d(2), np.float64), normal(0, 1, 2, 3, 3), np.float64
    )


@pytest.mark.parametrize(
    ("ours", "shape", "says"),
    [
        (
            lambda dt=np.float32: snn.BatchNorm2d(3, dtype=dt),
            (2, 3, 4),
            r"BatchNorm2d: expected \(N, C, H, W\).*3-D",
        ),
        (
            lambda dt=np.float32: snn.BatchNorm1d(3, dtype=dt),
            (2, 3, 4, 4),
            r"BatchNorm1d: expected \(N, C\) or \(N, C, L\)",
        ),
        (
            lambda dt=np.float32: snn.BatchNorm2d(4, dtype=dt),
            (2, 3, 4, 4),
            r"BatchNorm2d\(4\) expects 4 channels.*\(2, 3, 4, 4\)",
        ),
    ],
)
def test_batch_norm_input_of_the_wrong_shape_is_named(ours, shape, says):
    layer = ours()
    with pytest.raises(ShapeError, match=says):
        layer(Tensor(np.ones(shape)))
    assert int(layer.num_batches_tracked) == 0


EMPTY_BATCH_CASES = {  # the layers of LAYER_CASES on a batch of 0 samples
    name: (ours, theirs, (0, *shape[1:]))
    for name, (ours, theirs, shape) in LAYER_CASES.items()
    if name in ("linear", "conv2d", "max-pool", "flatten", "batch-norm-1d", "batch-norm-2d")
}


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("case", EMPTY_BATCH_CASES)
def test_an_empty_batch_gives_an_empty_result_as_torch(case, mode):
    """Batch norm in training leaves the running statistics as they are (and, as torch,
    counts the batch in num_batches_tracked)."""
    make_ours, make_theirs, shape = EMPTY_BATCH_CASES[case]
    ours = randomize(make_ours(np.float64), 2).train(MODES[mode])
    compare_step(ours, same_weights(ours, make_theirs(), np.float64), np.ones(shape), np.float64)


@pytest.mark.parametrize("dtype", DTYPES)
def test_one_module_used_twice_in_a_graph_accumulates_its_gradients_as_torch(dtype):
    class Twice(snn.Module):
        def __init__(self, nn, **kw):
            super().__init__()
            self.layer = nn.Linear(4, 4, **kw)
            self.act = nn.Tanh()

        def forward(self, x):
            return self.layer(self.act(self.layer(x)))

    class TorchTwice(tnn.Module):
        def __init__(self):
            super().__init__()
            self.layer, self.act = tnn.Linear(4, 4), tnn.Tanh()

        def forward(self, x):
            return self.layer(self.act(self.layer(x)))

    ours = Twice(snn, rng=0, dtype=dtype)
    compare_step(ours, same_weights(ours, TorchTwice(), dtype), normal(0, 3, 4), dtype)


@pytest.mark.parametrize(
    ("make_ours", "make_theirs", "shape", "frozen"),
    [
        (
            lambda dt=np.float32: snn.Linear(4, 3, rng=0, dtype=dt),
            lambda: tnn.Linear(4, 3),
            (5, 4),
            "weight",
        ),
        (
            lambda dt=np.float32: snn.Conv2d(2, 3, 2, rng=0, dtype=dt),
            lambda: tnn.Conv2d(2, 3, 2),
            (2, 2, 4, 4),
            "bias",
        ),
        (
            lambda dt=np.float32: snn.BatchNorm2d(2, dtype=dt),
            lambda: tnn.BatchNorm2d(2),
            (3, 2, 2, 2),
            "weight",
        ),
    ],
    ids=["linear-weight", "conv-bias", "batch-norm-weight"],
)
def test_a_frozen_parameter_gets_no_gradient_and_the_others_match_torch(
    make_ours, make_theirs, shape, frozen
):
    ours = randomize(make_ours(np.float64), 1)
    theirs = same_weights(ours, make_theirs(), np.float64)
    getattr(ours, frozen).requires_grad = False
    getattr(theirs, frozen).requires_grad_(False)
    compare_step(ours, theirs, normal(0, *shape), np.float64)
    assert getattr(ours, frozen).grad is None


def test_a_frozen_model_gives_gradients_only_to_its_input():
    model = snn.Sequential(snn.Linear(3, 2, rng=0), snn.BatchNorm1d(2)).requires_grad_(False)
    x = Tensor(normal(0, 4, 3), requires_grad=True)
    model(x).sum().backward()
    assert x.grad is not None
    assert all(p.grad is None for p in model.parameters())


@pytest.mark.parametrize(
    ("make", "says"),
    [
        (
            lambda dt=np.float32: snn.Linear(-1, 2, rng=0, dtype=dt),
            "Linear: in_features must be an int ≥ 0",
        ),
        (lambda dt=np.float32: snn.Linear(2.0, 2, rng=0, dtype=dt), "in_features"),
        (
            lambda dt=np.float32: snn.Conv2d(1, 2, 0, rng=0, dtype=dt),
            "Conv2d: kernel_size must be an int ≥ 1",
        ),
        (
            lambda dt=np.float32: snn.Conv2d(1, 2, (3, 3, 3), rng=0, dtype=dt),
            "kernel_size must be an int or a pair",
        ),
        (
            lambda dt=np.float32: snn.Conv2d(1, 2, 3, padding=-1, rng=0, dtype=dt),
            "padding must be an int ≥ 0",
        ),
        (lambda dt=np.float32: snn.Conv2d(0, 2, 3, rng=0, dtype=dt), "in_channels"),
        (lambda dt=np.float32: snn.MaxPool2d(0), "MaxPool2d: kernel_size"),
        (lambda dt=np.float32: snn.AvgPool2d(2, stride=0), "AvgPool2d: stride"),
        (lambda dt=np.float32: snn.BatchNorm1d(0, dtype=dt), "num_features"),
        (lambda dt=np.float32: snn.BatchNorm1d(3, eps=0, dtype=dt), "eps"),
        (lambda dt=np.float32: snn.BatchNorm1d(3, momentum=2, dtype=dt), "momentum"),
        (lambda dt=np.float32: snn.LeakyReLU("0.1"), "negative_slope"),
    ],
)
def test_bad_layer_arguments_are_named(make, says):
    with pytest.raises(InvalidArgumentError, match=says):
        make()


def test_a_conv2d_on_images_of_the_wrong_channel_count_is_a_shape_error():
    with pytest.raises(ShapeError, match="conv2d"):
        snn.Conv2d(3, 2, 3, rng=0)(Tensor(np.ones((1, 1, 5, 5))))
