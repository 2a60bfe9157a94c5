"""The whole-tensor block, the path of every GPU: its operator count does not depend on
the batch and is no larger than MMDetection's; it compiles once for every size.

The operator counts run on the ``meta`` device: it dispatches what a non-CPU device
would (the whole-tensor block, plain permutes instead of the CPU copy kernels) without
computing anything, so Swin-T at a detection size costs no time.
"""

from collections import Counter

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from mmswin.models import SwinBackbone

from ..helpers import perturb_


class OperatorCounter(TorchDispatchMode):
    """Counts every aten operator dispatched while active, by name."""

    def __init__(self):
        super().__init__()
        self.counts: Counter = Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.counts[func.overloadpacket.__name__] += 1
        return func(*args, **(kwargs or {}))


def dispatched_operators(model, x) -> Counter:
    """Operators of one no-grad forward, after a first one has built any cached state."""
    with torch.no_grad():
        model(x)
        with OperatorCounter() as counter:
            model(x)
    return counter.counts


@pytest.fixture(scope='module')
def meta_backbones():
    from mmdet.models.backbones.swin import SwinTransformer

    ours = SwinBackbone(arch='tiny', drop_path_rate=0.0).to('meta').eval()
    theirs = SwinTransformer(drop_path_rate=0.0).to('meta')
    theirs.eval()  # (returns None)
    return ours, theirs


def test_operator_count_does_not_grow_with_batch_and_is_at_most_mmdets(meta_backbones):
    ours, theirs = meta_backbones
    counts = {
        batch: sum(dispatched_operators(ours, torch.empty(batch, 3, 449, 673, device='meta')).values())
        for batch in (1, 2, 4)
    }
    peer = sum(dispatched_operators(theirs, torch.empty(1, 3, 449, 673, device='meta')).values())
    assert counts[2] == counts[4]
    # Batch 1 skips one copy per shifted block: the shift mask broadcast to the batch.
    assert counts[1] <= counts[2] <= counts[1] + sum(ours.arch_settings['depths']) // 2
    assert counts[1] <= peer, (counts, peer)


def test_meta_forward_takes_no_cpu_kernel(meta_backbones, monkeypatch):
    from mmswin.kernels import cpu_chunked, cpu_layout

    def refuse(*args, **kwargs):
        raise AssertionError('a CPU kernel ran on a non-CPU device')

    monkeypatch.setattr(cpu_chunked, 'block_forward_in_place', refuse)
    monkeypatch.setattr(cpu_layout.Relayout, 'apply', refuse)
    monkeypatch.setattr(cpu_layout.ChannelsFirst, 'apply', refuse)
    ours, _ = meta_backbones
    outs = ours(torch.empty(2, 3, 97, 131, device='meta'))
    assert [tuple(o.shape) for o in outs] == [(2, 96, 25, 33), (2, 192, 13, 17), (2, 384, 7, 9), (2, 768, 4, 5)]


def test_compiles_once_for_every_size_and_batch():
    """torch.compile(dynamic=True): one graph, no graph break, no recompile for other
    sizes (padded or not) and batches, and eager's results. The aot_eager backend
    captures the same graph as inductor without generating code, to keep this fast."""
    import torch._dynamo
    from torch._dynamo.utils import counters

    torch._dynamo.reset()
    counters.clear()
    torch.manual_seed(0)
    arch = dict(embed_dims=16, depths=(2, 1), num_heads=(1, 2))  # W-MSA, SW-MSA, merging, W-MSA
    model = perturb_(SwinBackbone(arch=arch, drop_path_rate=0.0, out_indices=(0, 1))).eval()
    compiled = torch.compile(model, dynamic=True, backend='aot_eager')
    with torch.no_grad():
        for batch, height, width in [(2, 61, 83), (2, 97, 131), (3, 64, 56)]:
            x = torch.randn(batch, 3, height, width)
            for actual, expected in zip(compiled(x), model(x)):
                assert actual.shape == expected.shape
                assert (actual - expected).abs().max() < 1e-4
    assert counters['stats']['unique_graphs'] == 1
    assert sum(counters['graph_break'].values()) == 0
    assert counters['stats']['calls_captured'] > 0


@pytest.mark.parametrize('autocast', [False, True])
def test_reference_backward_gathers_and_never_scatters(autocast):
    """The whole-tensor block's backward moves tokens by gathers only (crop_rows /
    pad_rows): no index_add, whose CPU kernel is one add per row on one thread and
    whose CUDA kernel adds with atomics."""
    model = perturb_(
        SwinBackbone(
            arch=dict(embed_dims=16, depths=(2, 2), num_heads=(1, 2)),
            out_indices=(0, 1),
            drop_path_rate=0.0,
            block_impl='reference',
        )
    )
    x = torch.randn(2, 3, 61, 45)  # padded in both stages, shifted blocks in both
    with torch.autocast('cpu', dtype=torch.bfloat16, enabled=autocast):
        loss = sum(out.float().square().mean() for out in model.train()(x))
    with OperatorCounter() as counter:
        loss.backward()
    assert counter.counts['index_select'] > 0
    assert counter.counts['index_add'] == 0, counter.counts
    # The one scatter left: each block's bias table, from the [N * N, heads] gather.
    assert counter.counts['index_put'] == sum(model.arch_settings['depths'])
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


def test_compiled_stage_sizes_are_one_ceiling_division_of_the_input():
    """Under torch.compile(dynamic=True) every output's symbolic size is one ceiling
    division of the input's (SwinBackboneBase.merged_sizes), not a ceiling nested once
    per stage: Inductor inlines that arithmetic into every gather of the traced layouts."""
    import torch._dynamo

    shapes = []

    def capture(graph_module, example_inputs):
        for node in graph_module.graph.nodes:
            if node.op == 'output':
                for out in torch.utils._pytree.tree_leaves(node.args[0]):
                    shapes.append(out.meta['example_value'].shape)
        return graph_module

    torch._dynamo.reset()
    arch = dict(embed_dims=8, depths=(1, 1, 1, 1), num_heads=(1, 1, 1, 1))
    model = SwinBackbone(arch=arch, drop_path_rate=0.0).eval()
    with torch.no_grad():
        outs = torch.compile(model, dynamic=True, backend=capture)(torch.randn(1, 3, 97, 131))
    assert [out.shape[2:] for out in outs] == [(25, 33), (13, 17), (7, 9), (4, 5)]
    assert len(shapes) == 4
    for shape in shapes:
        for side in shape[2:]:
            assert str(side.node.expr).count('//') == 1, side  # e.g. ((s0 + 31)//32), not nested
