"""torch tensors go to torch's own foreach ops: same results as calling them."""

from __future__ import annotations

import numpy as np
import pytest

from softmaxkit import foreach

torch = pytest.importorskip("torch")


def tensors(seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.rand(5, generator=g) + 0.1, torch.rand(2, 3, generator=g, dtype=torch.float64) + 0.1]


@pytest.mark.parametrize("name", foreach.UNARY_OPS)
def test_unary_parity(name):
    ts = tensors()
    want = getattr(torch, f"_foreach_{name}")([t.clone() for t in ts])
    got = getattr(foreach, name)(ts)
    assert isinstance(got, list)
    for g, w in zip(got, want):
        assert torch.equal(g, w)
    ts2 = tensors()
    assert getattr(foreach, name + "_")(ts2) is ts2
    for g, w in zip(ts2, want):
        assert torch.equal(g, w)


@pytest.mark.parametrize("name", foreach.BINARY_OPS)
def test_binary_parity(name):
    ts = tensors()
    for other in (1.5, [0.5, 2.0], tensors(1)):
        want = getattr(torch, f"_foreach_{name}")([t.clone() for t in ts], other)
        got = getattr(foreach, name)(ts, other)
        for g, w in zip(got, want):
            assert torch.equal(g, w)
        ts2 = tensors()
        assert getattr(foreach, name + "_")(ts2, other) is ts2
        for g, w in zip(ts2, want):
            assert torch.equal(g, w)


def test_add_alpha_and_single_tensor():
    ts = tensors()
    want = torch._foreach_add(ts, tensors(1), alpha=2.0)
    for g, w in zip(foreach.add(ts, tensors(1), alpha=2.0), want):
        assert torch.equal(g, w)
    got = foreach.sub(ts, 1.0, alpha=3)
    for g, t in zip(got, ts):
        assert torch.equal(g, t - 3.0)
    one = torch.tensor(2.0)
    got = foreach.mul(ts, one)
    for g, t in zip(got, ts):
        assert torch.equal(g, t * 2.0)
    got = foreach.maximum(ts, torch.tensor(0.5))
    for g, t in zip(got, ts):
        assert torch.equal(g, torch.maximum(t, torch.tensor(0.5, dtype=t.dtype)))


def test_pow_scalar_base_pointwise_reductions_utilities():
    ts = tensors()
    for g, t in zip(foreach.pow(2.0, ts), ts):
        assert torch.equal(g, torch.pow(2.0, t))
    for g, w in zip(foreach.addcmul(ts, ts, ts, value=0.5), torch._foreach_addcmul(ts, ts, ts, value=0.5)):
        assert torch.equal(g, w)
    for g, w in zip(foreach.addcdiv(ts, ts, ts, value=[0.5, 2.0]), torch._foreach_addcdiv(ts, ts, ts, [0.5, 2.0])):
        assert torch.equal(g, w)
    for g, w in zip(foreach.lerp(ts, tensors(1), 0.3), torch._foreach_lerp(ts, tensors(1), 0.3)):
        assert torch.equal(g, w)
    for g, w in zip(foreach.norm(ts, ord=1), torch._foreach_norm(ts, 1)):
        assert torch.equal(g, w)
    for g, w in zip(foreach.max(ts), torch._foreach_max(ts)):
        assert torch.equal(g, w)
    c = foreach.clone(ts)
    assert all(x is not y and torch.equal(x, y) for x, y in zip(c, ts))
    assert foreach.zero_(c) is c and all((x == 0).all() for x in c)
    assert foreach.copy_(c, ts) is c and all(torch.equal(x, y) for x, y in zip(c, ts))


def test_seed_example_done_right():
    """The seed document's example printed 1.6236 for log1p(1); torch and softmaxkit give ln 2."""
    input_list = [torch.tensor(1.0), torch.tensor(2.0), torch.tensor(3.0)]
    foreach.log1p_(input_list)
    assert torch.allclose(torch.stack(input_list), torch.tensor([0.6931472, 1.0986123, 1.3862944]))


def test_mixed_numpy_and_torch_is_type_error():
    with pytest.raises(TypeError, match=r"arrays\[1\] is a NumPy array but arrays\[0\] is a torch.Tensor"):
        foreach.log1p([torch.ones(2), np.ones(2)])
    with pytest.raises(TypeError, match=r"arrays\[1\] is a torch.Tensor but arrays\[0\] is a NumPy array"):
        foreach.log1p([np.ones(2), torch.ones(2)])
    with pytest.raises(TypeError, match=r"other\[1\] is a NumPy array"):
        foreach.add([torch.ones(2), torch.ones(2)], [torch.ones(2), np.ones(2)])


def test_empty_list_does_not_reach_torch():
    # torch._foreach_log1p([]) raises; softmaxkit returns an empty list for every backend.
    with pytest.raises(RuntimeError):
        torch._foreach_log1p([])
    assert foreach.log1p([]) == []
