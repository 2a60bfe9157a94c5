"""crop_rows / pad_rows: the same values and gradients as plain index_select / cat,
with gathers only in the backward pass."""

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from mmswin.models.layers.token_gather import RowMap, crop_rows, pad_rows


def random_map(padded: int, real: int, seed: int = 0) -> RowMap:
    generator = torch.Generator().manual_seed(seed)
    rows = torch.randperm(padded, generator=generator)[:real]
    from_source = torch.full((padded,), real, dtype=torch.long)
    from_source[rows] = torch.arange(real)
    return RowMap.build(rows, from_source)


def plain_pad(source, row_map, fill):
    batch, _, channels = source.shape
    row = torch.zeros(batch, 1, channels, dtype=source.dtype) if fill is None else fill.expand(batch, 1, channels)
    return torch.cat([source, row], 1).index_select(1, row_map.from_source)


class OpNames(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.names = set()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.names.add(func.overloadpacket.__name__)
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize('padded, real', [(23, 17), (12, 12)])
def test_crop_rows_matches_index_select_forward_and_backward(padded, real):
    row_map = random_map(padded, real)
    x = torch.randn(2, padded, 5, dtype=torch.float64, requires_grad=True)
    grad = torch.randn(2, real, 5, dtype=torch.float64)
    ours = crop_rows(x, row_map)
    (ours_grad,) = torch.autograd.grad(ours, x, grad)
    plain = x.index_select(1, row_map.rows)
    (plain_grad,) = torch.autograd.grad(plain, x, grad)
    assert torch.equal(ours, plain)
    assert torch.equal(ours_grad, plain_grad)
    assert torch.autograd.gradcheck(lambda t: crop_rows(t, row_map), (x,))
    assert torch.autograd.gradgradcheck(lambda t: crop_rows(t, row_map), (x,))


@pytest.mark.parametrize('with_fill', [False, True])
@pytest.mark.parametrize('padded, real', [(23, 17), (12, 12)])
def test_pad_rows_matches_cat_and_index_select(padded, real, with_fill):
    row_map = random_map(padded, real, seed=1)
    source = torch.randn(3, real, 4, dtype=torch.float64, requires_grad=True)
    fill = torch.randn(4, dtype=torch.float64, requires_grad=True) if with_fill else None
    inputs = (source, fill) if with_fill else (source,)
    grad = torch.randn(3, padded, 4, dtype=torch.float64)
    ours = pad_rows(source, row_map, fill)
    plain = plain_pad(source, row_map, fill)
    assert torch.equal(ours, plain)
    for a, b in zip(torch.autograd.grad(ours, inputs, grad), torch.autograd.grad(plain, inputs, grad)):
        assert torch.allclose(a, b, rtol=0, atol=1e-12)
    assert torch.autograd.gradcheck(lambda *t: pad_rows(t[0], row_map, t[1] if with_fill else None), inputs)
    if real < padded:
        assert (ours[:, row_map.padding_rows] == (0 if fill is None else fill)).all()


def test_backward_passes_gather_and_never_scatter():
    row_map = random_map(40, 29)
    x = torch.randn(2, 40, 8, requires_grad=True)
    fill = torch.randn(8, requires_grad=True)
    out = pad_rows(crop_rows(x, row_map) * 2, row_map, fill)
    with OpNames() as seen:
        out.sum().backward()
    assert 'index_select' in seen.names
    assert not seen.names & {'index_add', 'index_add_', 'index_put', 'index_put_', 'scatter_add'}, seen.names
    assert torch.equal(fill.grad, torch.full((8,), 2.0 * (40 - 29)))


def test_low_precision_source_casts_the_fill():
    row_map = random_map(9, 5)
    source = torch.randn(1, 5, 3).bfloat16()
    fill = torch.randn(3)
    out = pad_rows(source, row_map, fill)
    assert out.dtype == torch.bfloat16
    assert torch.equal(out[0, row_map.padding_rows], fill.bfloat16().expand(4, 3))
