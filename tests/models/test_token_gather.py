"""crop_rows / pad_rows: the same values and gradients as plain index_select / cat,
with gathers only in the backward pass."""

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from mmswin.models.layers.token_gather import crop_rows, pad_rows

from ..helpers import plain_pad, random_map


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


@pytest.mark.parametrize('padded, real', [(23, 17), (12, 12)])
def test_pad_rows_matches_cat_and_index_select(padded, real):
    row_map = random_map(padded, real, seed=1)
    source = torch.randn(3, real, 4, dtype=torch.float64, requires_grad=True)
    grad = torch.randn(3, padded, 4, dtype=torch.float64)
    ours = pad_rows(source, row_map)
    plain = plain_pad(source, row_map)
    assert torch.equal(ours, plain)
    assert torch.equal(torch.autograd.grad(ours, source, grad)[0], torch.autograd.grad(plain, source, grad)[0])
    assert torch.autograd.gradcheck(lambda t: pad_rows(t, row_map), (source,))
    assert (ours[:, row_map.from_source == real] == 0).all()


def test_eager_pad_gathers_once_and_appends_no_zero_row():
    """The eager move into a padded order is one gather and a fill of the padding rows:
    no ``cat`` copies the source first. Padding rows are zero even where the gather put
    a real row (source row 0, nonzero here)."""
    row_map = random_map(31, 19, seed=3)
    source = torch.randn(2, 19, 5) + 10.0
    with OpNames() as seen:
        out = pad_rows(source, row_map)
    assert 'cat' not in seen.names and 'index_select' in seen.names, seen.names
    assert torch.equal(out, plain_pad(source, row_map))


def test_backward_passes_gather_and_never_scatter():
    row_map = random_map(40, 29)
    x = torch.randn(2, 40, 8, requires_grad=True)
    out = pad_rows(crop_rows(x, row_map) * 2, row_map)
    with OpNames() as seen:
        out.sum().backward()
    assert 'index_select' in seen.names
    assert not seen.names & {'index_add', 'index_put', 'scatter_add'}, seen.names
    expected = torch.zeros(40)
    expected[row_map.rows] = 2.0
    assert torch.equal(x.grad, expected.view(1, 40, 1).expand(2, 40, 8))


def test_traced_maps_run_the_plain_ops():
    row_map = random_map(30, 20, traced=True)
    x = torch.randn(2, 30, 3, requires_grad=True)
    out = pad_rows(crop_rows(x, row_map), row_map)
    with OpNames() as seen:
        out.sum().backward()
    assert 'index_add' in seen.names  # index_select's own backward
    assert torch.equal(out, plain_pad(x.index_select(1, row_map.rows), row_map))
