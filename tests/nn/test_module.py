"""Module and Parameter: registration on assignment in insertion order, traversal with dotted
names, modes, gradients, state_dict and load_state_dict, and repr, each against what torch.nn
does with the same structure."""

from __future__ import annotations

import copy
import pickle
from collections import OrderedDict

import numpy as np
import pytest
import torch
from torch import nn as tnn

from signdigits import InvalidArgumentError, Tensor
from signdigits import nn as snn
from tests.nn.helpers import numpy_state, randomize, same_weights


def add_layers(module, nn, **kw):
    """A small CNN written as PyTorch code is: features, then a classifier."""
    norm = {"dtype": kw["dtype"]} if "dtype" in kw else {}
    module.features = nn.Sequential(
        nn.Conv2d(1, 2, 3, **kw), nn.BatchNorm2d(2, **norm), nn.ReLU(), nn.MaxPool2d(2)
    )
    module.flatten = nn.Flatten()
    module.classifier = nn.Linear(8, 3, **kw)


def run_layers(module, x):
    return module.classifier(module.flatten(module.features(x)))


class Net(snn.Module):
    def __init__(self, **kw):
        super().__init__()
        add_layers(self, snn, **kw)

    forward = run_layers


class TorchNet(tnn.Module):
    def __init__(self):
        super().__init__()
        add_layers(self, tnn)

    forward = run_layers


def make_net(seed=0, dtype=np.float64):
    return Net(rng=seed, dtype=dtype)


# -- Parameter --------------------------------------------------------------------------------
def test_a_parameter_is_a_tensor_that_requires_grad():
    data = np.ones((2, 3))
    p = snn.Parameter(data)
    assert isinstance(p, Tensor) and p.requires_grad and p.is_leaf
    assert p.data is data  # an ndarray is used without copying
    assert snn.Parameter([1, 2]).dtype == np.float32
    assert not snn.Parameter(data, requires_grad=False).requires_grad
    assert snn.Parameter().shape == (0,)
    t = Tensor(np.zeros(2))
    assert snn.Parameter(t).data is t.data  # shares a tensor's array, as torch shares storage
    assert type(p * 2) is Tensor  # results of operations are plain tensors
    assert repr(p).startswith("Parameter containing:\nTensor([[1., 1., 1.],")
    assert repr(p).endswith("requires_grad=True)")


def test_a_parameter_must_be_floating():
    with pytest.raises(InvalidArgumentError, match=r"floating.*int64.*astype"):
        snn.Parameter(np.arange(3))


# -- registration -----------------------------------------------------------------------------
def parameter_names(module):
    return [name for name, _ in module.named_parameters()]


def test_registration_follows_assignment_order_reassignment_and_deletion_as_torch():
    def build(nn, parameter, **kw):
        module = nn.Module()
        module.zeta = parameter(np.ones(2))
        module.alpha = nn.Linear(2, 2, **kw)
        module.beta = parameter(np.ones(1))
        module.zeta = parameter(np.zeros(2))  # reassigned: keeps its place
        del module.beta
        module.beta = parameter(np.ones(3))  # deleted and assigned again: at the end
        module.gamma = nn.Linear(2, 1, **kw)
        module.alpha = None  # a submodule set to None: kept as a name, without parameters
        return module

    ours = build(snn, snn.Parameter, rng=0)
    theirs = build(tnn, lambda a: tnn.Parameter(torch.tensor(a)))
    assert parameter_names(ours) == parameter_names(theirs)
    assert parameter_names(ours) == ["zeta", "beta", "gamma.weight", "gamma.bias"]
    assert list(ours.state_dict()) == list(theirs.state_dict())
    assert [n for n, _ in ours.named_children()] == [n for n, _ in theirs.named_children()]
    assert ours.alpha is None
    np.testing.assert_array_equal(ours.zeta.data, np.zeros(2))


def test_assigning_a_parameter_or_module_replaces_an_attribute_of_another_kind():
    m = snn.Module()
    m.thing = 3
    m.thing = snn.Parameter(np.ones(1))
    assert parameter_names(m) == ["thing"] and "thing" not in m.__dict__
    m.thing = snn.Linear(1, 1, rng=0)
    assert parameter_names(m) == ["thing.weight", "thing.bias"]
    m.register_buffer("stat", np.zeros(2))
    m.stat = snn.Parameter(np.ones(2))
    assert list(m.state_dict()) == ["stat", "thing.weight", "thing.bias"]
    assert list(m.buffers()) == []


def test_wrong_assignments_are_named():
    m = snn.Linear(2, 2, rng=0)
    with pytest.raises(InvalidArgumentError, match=r"Tensor as parameter 'weight'.*weight\.data"):
        m.weight = Tensor(np.ones((2, 2)))
    with pytest.raises(InvalidArgumentError, match=r"int as submodule 'inner'"):
        outer = snn.Sequential()
        outer.inner = snn.ReLU()
        outer.inner = 3
    with pytest.raises(InvalidArgumentError, match=r"list as buffer 'stat'.*ndarray"):
        m.register_buffer("stat", [1.0])
    with pytest.raises(InvalidArgumentError, match=r"nn\.Parameter"):
        m.register_parameter("scale", Tensor(np.ones(1)))
    for bad in ("a.b", "", 3):
        with pytest.raises(InvalidArgumentError, match=r"without '\.'"):
            m.register_buffer(bad, np.zeros(1))
    for taken in ("weight", "forward", "training"):  # a parameter, a method, an attribute
        with pytest.raises(InvalidArgumentError, match=f"{taken!r}.*already exists"):
            m.register_buffer(taken, np.zeros(1))
    with pytest.raises(InvalidArgumentError, match="already exists"):
        m.add_module("weight", snn.ReLU())


def test_assigning_before_init_says_to_call_super_init():
    class Forgetful(snn.Module):
        def __init__(self):
            self.weight = snn.Parameter(np.ones(1))

    with pytest.raises(InvalidArgumentError, match=r"super\(\).__init__\(\)"):
        Forgetful()


def test_modules_kept_in_a_list_are_not_registered_as_in_torch():
    """The documented trap: a list attribute is a plain attribute, in both libraries."""

    def build(nn, **kw):
        module = nn.Module()
        module.layers = [nn.Linear(2, 2, **kw), nn.Linear(2, 2, **kw)]
        module.head = nn.Linear(2, 1, **kw)
        return module

    ours, theirs = build(snn, rng=0), build(tnn)
    assert parameter_names(ours) == parameter_names(theirs) == ["head.weight", "head.bias"]
    assert list(ours.state_dict()) == list(theirs.state_dict())
    ours.eval()
    assert not ours.head.training and ours.layers[0].training  # eval() does not reach them
    assert "list or\na dict attribute are not registered" in snn.module.__doc__


def test_a_buffer_is_a_plain_array_in_the_state_and_assignable():
    m = snn.Module()
    m.register_buffer("count", np.zeros((), np.int64))
    m.register_buffer("scratch", np.zeros(3), persistent=False)
    m.register_buffer("absent", None)
    assert [name for name, _ in m.named_buffers()] == ["count", "scratch"]
    assert list(m.state_dict()) == ["count"]  # a non-persistent buffer is not saved
    m.count += 1  # updated in place, still the buffer
    assert int(m.state_dict()["count"]) == 1
    m.scratch = np.ones(3)  # replaced, still a non-persistent buffer
    assert list(m.state_dict()) == ["count"] and m.scratch.sum() == 3
    with pytest.raises(InvalidArgumentError, match="buffer 'count'"):
        m.count = Tensor(np.zeros(()))
    del m.count
    assert list(m.state_dict()) == []


# -- traversal --------------------------------------------------------------------------------
def test_dotted_names_and_traversal_match_torch():
    ours, theirs = make_net(), TorchNet()
    assert parameter_names(ours) == parameter_names(theirs)
    assert parameter_names(ours)[:2] == ["features.0.weight", "features.0.bias"]
    assert [n for n, _ in ours.named_buffers()] == [n for n, _ in theirs.named_buffers()]
    assert [n for n, _ in ours.named_modules()] == [n for n, _ in theirs.named_modules()]
    assert [n for n, _ in ours.named_children()] == ["features", "flatten", "classifier"]
    assert list(ours.children()) == [ours.features, ours.flatten, ours.classifier]
    assert len(list(ours.modules())) == 8 and next(ours.modules()) is ours
    assert [p.shape for p in ours.parameters()] == [tuple(p.shape) for p in theirs.parameters()]
    assert parameter_names(ours.features) == ["0.weight", "0.bias", "1.weight", "1.bias"]
    assert next(n for n, _ in ours.named_parameters(prefix="net")) == "net.features.0.weight"
    assert list(ours.parameters(recurse=False)) == []
    assert "classifier" in dir(ours) and "features" in dir(ours)


def test_shared_parameters_and_modules_are_listed_once_and_saved_under_each_name():
    def build(nn, **kw):
        shared = nn.Linear(2, 2, **kw)
        model = nn.Sequential(shared, nn.Tanh(), shared, nn.Linear(2, 2, **kw))
        model[3].weight = model[0].weight  # tied weights
        return model

    ours, theirs = build(snn, rng=0), build(tnn)
    assert parameter_names(ours) == parameter_names(theirs) == ["0.weight", "0.bias", "3.bias"]
    assert list(ours.state_dict()) == list(theirs.state_dict())
    assert len(list(ours.modules())) == len(list(theirs.modules())) == 4


def test_apply_visits_every_module_children_first():
    seen = []
    model = make_net()
    assert model.apply(lambda m: seen.append(type(m).__name__)) is model
    assert seen == [
        "Conv2d",
        "BatchNorm2d",
        "ReLU",
        "MaxPool2d",
        "Sequential",
        "Flatten",
        "Linear",
        "Net",
    ]


# -- modes and gradients ----------------------------------------------------------------------
def test_train_and_eval_return_self_and_reach_every_submodule():
    model = make_net()
    assert model.training and all(m.training for m in model.modules())
    assert model.eval() is model
    assert not any(m.training for m in model.modules())
    assert model.train() is model and all(m.training for m in model.modules())
    assert model.train(False) is model and not model.features[1].training
    with pytest.raises(InvalidArgumentError, match="True or False"):
        model.train("eval")


def test_zero_grad_sets_gradients_to_none_or_to_zeros():
    model = make_net()
    model(Tensor(np.ones((2, 1, 6, 6)))).sum().backward()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None for g in grads)
    model.zero_grad(set_to_none=False)
    assert all(p.grad is g and not g.any() for p, g in zip(model.parameters(), grads, strict=True))
    model.zero_grad()
    assert all(p.grad is None for p in model.parameters())


def test_calling_a_module_runs_forward_and_a_module_without_forward_says_so():
    model = make_net()
    x = Tensor(np.ones((1, 1, 6, 6)))
    np.testing.assert_array_equal(model(x).data, model.forward(x).data)
    with pytest.raises(NotImplementedError, match=r'\[Module\] is missing the required "forward"'):
        snn.Module()(x)


# -- state_dict and load_state_dict -----------------------------------------------------------
def test_state_dict_has_torchs_keys_in_torchs_order_and_holds_copies():
    ours = make_net(dtype=np.float32)
    theirs = TorchNet()
    assert list(ours.state_dict()) == list(theirs.state_dict())
    assert list(ours.state_dict())[:7] == [
        "features.0.weight",
        "features.0.bias",
        "features.1.weight",
        "features.1.bias",
        "features.1.running_mean",
        "features.1.running_var",
        "features.1.num_batches_tracked",
    ]
    state = ours.state_dict()
    assert isinstance(state, OrderedDict)
    for name, array in numpy_state(theirs).items():
        assert state[name].dtype == array.dtype and state[name].shape == array.shape
    state["classifier.weight"][...] = 7  # a copy: the model is unchanged
    assert not (ours.classifier.weight.data == 7).any()


def test_load_state_dict_round_trip_keeps_the_arrays_in_place():
    trained, fresh = randomize(make_net(0), 1), make_net(5)
    arrays = [p.data for p in fresh.parameters()] + list(fresh.buffers())
    assert fresh.load_state_dict(trained.state_dict()) == ([], [])
    assert [p.data for p in fresh.parameters()] + list(fresh.buffers()) == arrays  # same objects
    x = Tensor(np.random.default_rng(0).standard_normal((2, 1, 6, 6)))
    for mode in ("train", "eval"):
        getattr(trained, mode)(), getattr(fresh, mode)()
        np.testing.assert_array_equal(fresh(x).data, trained(x).data)
    for name, array in fresh.state_dict().items():
        np.testing.assert_array_equal(array, trained.state_dict()[name])


def test_a_torch_state_dict_converted_to_numpy_loads_and_gives_torchs_outputs():
    theirs = TorchNet().double()
    with torch.no_grad():
        theirs(torch.randn(4, 1, 6, 6, dtype=torch.float64))  # running statistics move
    ours = make_net()
    ours.load_state_dict(numpy_state(theirs))
    x = np.random.default_rng(1).standard_normal((3, 1, 6, 6))
    for mode in ("train", "eval"):
        getattr(ours, mode)(), getattr(theirs, mode)()
        expected = theirs(torch.tensor(x)).detach().numpy()
        np.testing.assert_allclose(ours(Tensor(x)).data, expected, rtol=1e-10, atol=1e-12)
    ours.load_state_dict(theirs.state_dict())  # torch tensors themselves are read as arrays
    back = same_weights(ours, TorchNet(), np.float64)
    assert all(
        torch.equal(a, b)
        for a, b in zip(back.state_dict().values(), theirs.state_dict().values(), strict=True)
    )


def test_strict_load_lists_every_problem_in_one_error_and_changes_nothing():
    model = make_net()
    before = model.state_dict()
    state = model.state_dict()
    del state["classifier.bias"]
    state["head.weight"] = np.zeros(3)
    state["features.0.weight"] = np.zeros((2, 1, 2, 2))
    state["features.1.running_mean"] = np.zeros(2, np.float32)
    state["features.1.weight"] = np.full(2, 9.0)  # fits: still not copied in
    with pytest.raises(InvalidArgumentError) as error:
        model.load_state_dict(state)
    message = str(error.value)
    assert "\n" not in message  # one line, as the command line prints it
    for part in (
        "nothing was changed",
        "missing keys 'classifier.bias'",
        "unexpected keys 'head.weight'",
        "'features.0.weight' has shape (2, 1, 2, 2) in the state but (2, 1, 3, 3) in the model",
        "'features.1.running_mean' has dtype float32 in the state but float64 in the model",
        "astype(np.float64)",
    ):
        assert part in message
    for name, array in model.state_dict().items():
        np.testing.assert_array_equal(array, before[name])
    with pytest.raises(RuntimeError, match=r"(?s)Missing key.*Unexpected key.*size mismatch"):
        TorchNet().load_state_dict({k: torch.from_numpy(v) for k, v in state.items()})


def test_non_strict_load_reports_keys_but_still_refuses_misfits():
    model = make_net()
    partial = {"classifier.weight": np.ones((3, 8)), "extra": np.zeros(1)}
    result = model.load_state_dict(partial, strict=False)
    assert result.missing_keys == [n for n in model.state_dict() if n != "classifier.weight"]
    assert result.unexpected_keys == ["extra"]
    np.testing.assert_array_equal(model.classifier.weight.data, np.ones((3, 8)))
    with pytest.raises(InvalidArgumentError, match="has shape"):
        model.load_state_dict({"classifier.weight": np.ones((8, 3))}, strict=False)
    with pytest.raises(InvalidArgumentError, match="mapping"):
        model.load_state_dict([("classifier.weight", np.ones((3, 8)))])


def test_an_optimizer_holding_the_parameters_sees_loaded_values():
    model = make_net()
    held = list(model.parameters())
    model.load_state_dict(randomize(make_net(1), 2).state_dict())
    assert [p.data for p in held] == [p.data for p in model.parameters()]
    np.testing.assert_array_equal(held[0].data, model.features[0].weight.data)


def test_a_deep_copy_or_pickle_is_an_independent_model_with_the_same_state():
    """PyTorch code keeps the best model with copy.deepcopy(model)."""
    model = randomize(make_net(), 3)
    x = Tensor(np.random.default_rng(2).standard_normal((2, 1, 6, 6)))
    for clone in (copy.deepcopy(model), pickle.loads(pickle.dumps(model))):
        assert type(clone.classifier.weight) is snn.Parameter
        assert list(clone.state_dict()) == list(model.state_dict())
        np.testing.assert_array_equal(clone.eval()(x).data, model.eval()(x).data)
        clone.classifier.weight.data[...] = 0
        assert model.classifier.weight.data.any()


# -- repr -------------------------------------------------------------------------------------
def test_repr_is_torchs_for_the_same_tree():
    def build(nn, **kw):
        return nn.Sequential(
            nn.Linear(4096, 8, **kw),
            nn.ReLU(),
            nn.Sequential(
                nn.Conv2d(1, 8, 3, **kw),
                nn.Conv2d(8, 4, (3, 5), stride=2, padding=1, bias=False, **kw),
            ),
            nn.Flatten(0, -2),
            nn.BatchNorm1d(4),
            nn.BatchNorm2d(4, momentum=None, affine=False, track_running_stats=False),
            nn.LeakyReLU(0.2),
            nn.Tanh(),
            nn.Sigmoid(),
            nn.Identity(),
            nn.Linear(3, 4, bias=False, **kw),
        )

    assert repr(build(snn, rng=0)) == repr(build(tnn))
    # The pools show only the arguments they have (no padding, dilation or ceil_mode).
    expected = repr(TorchNet()).replace("TorchNet", "Net")
    assert repr(make_net()) == expected.replace(", padding=0, dilation=1, ceil_mode=False", "")
    assert repr(snn.Sequential(snn.Linear(4096, 8, rng=0), snn.ReLU())) == (
        "Sequential(\n  (0): Linear(in_features=4096, out_features=8, bias=True)\n  (1): ReLU()\n)"
    )


def test_repr_of_pooling_and_dropout_shows_only_the_arguments_they_have():
    assert repr(snn.MaxPool2d(2)) == "MaxPool2d(kernel_size=2, stride=2)"
    assert repr(snn.AvgPool2d((2, 3), 1)) == "AvgPool2d(kernel_size=(2, 3), stride=1)"
    assert repr(snn.Dropout(0.25, rng=0)) == "Dropout(p=0.25)"
    assert repr(snn.Module()) == "Module()"
