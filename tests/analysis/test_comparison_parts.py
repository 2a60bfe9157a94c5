"""The comparison's recorders and fit helper (mmswin.analysis.floor, .peers, .scaling)."""

import pytest

from mmswin.analysis import floor, peers, scaling


def test_recorders_count_the_same_work_for_every_backbone():
    """At 224x224 no stage needs padding, so ours and MMDetection's run the same GELUs,
    softmaxes and layer norms, whatever the chunking: the totals follow from the arch."""
    import torch

    torch.manual_seed(0)
    models = peers.build_backbones(peers.QUICK_ARCH, drop_path_rate=0.0)
    x = torch.randn(1, 3, 224, 224)
    arch = peers.QUICK_ARCH
    tokens = [56 * 56 // 4**i for i in range(4)]
    widths = [arch['embed_dims'] * 2**i for i in range(4)]
    expected_gelu = sum(d * n * 4 * c for d, n, c in zip(arch['depths'], tokens, widths))
    expected_softmax_rows = sum(d * n * h for d, n, h in zip(arch['depths'], tokens, arch['num_heads']))
    # two per block, the patch norm, one per patch merging (on the merged grid), one per output
    blocks = sum(2 * d * n for d, n in zip(arch['depths'], tokens))
    expected_norm_rows = blocks + tokens[0] + sum(tokens[1:]) + sum(tokens)
    for name in ('mmswin', 'mmdet'):
        model = models[name]
        model.eval()  # MMDetection's train() returns None: no chaining
        with torch.no_grad():
            record = floor.record_matmuls(lambda model=model: model(x))
        totals = {'gelu': 0, 'softmax': 0, 'layer_norm': 0}
        for op in record.elementwise:
            totals[op[0]] += op[1]
            if op[0] == 'softmax':
                assert op[2] == 49, (name, op)
        assert totals == dict(gelu=expected_gelu, softmax=expected_softmax_rows, layer_norm=expected_norm_rows), name
    # and the FLOP counter agrees too
    assert len({peers.count_backbone(model, (224, 224)) for model in models.values()}) == 1


@pytest.mark.parametrize('backward', [False, True])
def test_elementwise_floor_runs_the_recorded_ops_and_their_backward(backward):
    """The floor runs each recorded op at its shape and dtype, and with ``backward``
    (the training floor) its backward pass too."""
    import torch
    from torch.utils._python_dispatch import TorchDispatchMode

    ops = [('gelu', 12, torch.bfloat16), ('softmax', 6, 49, torch.float32), ('layer_norm', 5, 8, torch.float32)]
    seen = []

    class Seen(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            first = args[0]
            seen.append((func.overloadpacket.__name__, tuple(first.shape), first.dtype))
            return func(*args, **(kwargs or {}))

    run = floor.elementwise_floor(ops, torch.device('cpu'), backward)
    with Seen():
        run()
    names = {name for name, _, _ in seen}
    assert ('gelu', (12,), torch.bfloat16) in seen
    assert ('softmax', (6, 49), torch.float32) in seen
    assert ('native_layer_norm', (5, 8), torch.float32) in seen
    backward_ops = {'gelu_backward', '_softmax_backward_data', 'native_layer_norm_backward'}
    assert (backward_ops <= names) if backward else not (backward_ops & names)


def test_linear_fit_and_power_law():
    fit = scaling.linear_fit([1, 2, 3, 4], [3, 5, 7, 9])
    assert fit['slope'] == pytest.approx(2) and fit['intercept'] == pytest.approx(1) and fit['r2'] == pytest.approx(1)
    quadratic = scaling.linear_fit([1, 2, 3, 4], [1, 4, 9, 16])
    assert quadratic['r2'] < 0.97
