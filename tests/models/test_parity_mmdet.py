"""The backbone's proof of correctness: same weights, same stage outputs (and, in
training, the same gradients) as MMDetection's SwinTransformer (the official detection
backbone), at sizes that are multiples of neither 32 nor 7. Official-layout weights go
through mmdet's own ``swin_converter``. Every block implementation the chooser can
return is checked: ``'auto'`` takes the CPU fp32 kernels here, ``'reference'`` the
whole-tensor block of GPUs, autocast and export."""

import pytest
import torch

from mmswin.models import SwinBackbone

from ..helpers import perturb_, to_official_layout

SIZES = [(1, 97, 131), (2, 224, 224), (1, 333, 501), (1, 800, 1333)]
ARCH_KWARGS = {
    'tiny': dict(embed_dims=96, depths=(2, 2, 6, 2), num_heads=(3, 6, 12, 24)),
    'small': dict(embed_dims=96, depths=(2, 2, 18, 2), num_heads=(3, 6, 12, 24)),
}
_models = {}


def build_pair(arch, block_impl='auto'):
    """An mmswin and an mmdet backbone of one preset holding the same random weights."""
    if (arch, block_impl) not in _models:
        from mmdet.models.backbones.swin import SwinTransformer, swin_converter

        ours = perturb_(SwinBackbone(arch=arch, drop_path_rate=0.0, block_impl=block_impl)).eval()
        theirs = SwinTransformer(**ARCH_KWARGS[arch], drop_path_rate=0.0)
        converted = swin_converter(to_official_layout(ours.state_dict()))
        # swin_converter returns detector-level keys ('backbone.' prefix).
        converted = {key[len('backbone.') :]: value for key, value in converted.items()}
        missing, unexpected = theirs.load_state_dict(converted, strict=False)
        assert unexpected == []
        assert all(key.endswith('relative_position_index') for key in missing), missing
        theirs.eval()
        _models[arch, block_impl] = ours, theirs
    return _models[arch, block_impl]


@pytest.mark.parametrize('arch, block_impl', [('tiny', 'auto'), ('small', 'auto'), ('tiny', 'reference')], ids='-'.join)
@pytest.mark.parametrize('size', SIZES, ids=lambda s: 'x'.join(map(str, s)))
def test_stage_outputs_match_mmdet(arch, block_impl, size):
    ours, theirs = build_pair(arch, block_impl)
    x = torch.randn(size[0], 3, size[1], size[2])
    with torch.no_grad():
        expected = theirs(x)
        actual = ours(x)
    assert len(actual) == len(expected) == 4
    for a, b in zip(actual, expected):
        assert a.shape == b.shape
        assert (a - b).abs().max().item() < 1e-4


def _input_and_parameter_gradients(model, x, output_weights):
    model.zero_grad(set_to_none=True)
    x = x.clone().requires_grad_(True)
    outputs = model(x)
    sum((out * weight).sum() for out, weight in zip(outputs, output_weights)).backward()
    return x.grad, {name: param.grad for name, param in model.named_parameters()}


@pytest.mark.parametrize('block_impl', ['auto', 'reference'])
@pytest.mark.parametrize('size', [(1, 97, 131), (2, 70, 90)], ids=lambda s: 'x'.join(map(str, s)))
def test_training_gradients_match_mmdet(size, block_impl):
    """Training mode, autograd on: the input's and every parameter's gradient equal
    MMDetection's, at sizes whose grids are padded in every stage (the padded tokens'
    keys and values, the qkv bias they carry, the odd-size patch merging)."""
    from mmdet.models.backbones.swin import swin_converter

    ours, theirs = build_pair('tiny', block_impl)
    ours.train()
    theirs.train()
    try:
        torch.manual_seed(0)
        x = torch.randn(size[0], 3, size[1], size[2])
        output_weights = [torch.randn(out.shape) for out in ours(x)]
        our_input_grad, our_grads = _input_and_parameter_gradients(ours, x, output_weights)
        their_input_grad, their_grads = _input_and_parameter_gradients(theirs, x, output_weights)
    finally:
        ours.eval()
        theirs.eval()

    def close(actual, expected):
        return (actual - expected).abs().max().item() <= 1e-5 * max(1.0, expected.abs().max().item())

    assert close(our_input_grad, their_input_grad)
    # Our gradients in MMDetection's layout (the converter only renames and permutes).
    converted = swin_converter(to_official_layout(our_grads))
    converted = {key[len('backbone.') :]: value for key, value in converted.items()}
    assert converted.keys() == their_grads.keys()
    mismatched = [name for name, grad in their_grads.items() if not close(converted[name], grad)]
    assert mismatched == []


@pytest.mark.parametrize('block_impl', ['auto', 'reference'])
@pytest.mark.parametrize('grad', [False, True], ids=['inference', 'training'])
def test_bf16_autocast_error_is_no_larger_than_mmdets(block_impl, grad):
    """Under bf16 autocast, at the same weights and a size padded in every stage, our
    stage outputs are no further from fp32 than MMDetection's are (on a CPU with native
    bf16, 'auto' inference is the chunked kernel; elsewhere the whole-tensor block)."""
    ours, theirs = build_pair('tiny', block_impl)
    x = torch.randn(1, 3, 97, 131)

    def outputs(model, autocast):
        with torch.set_grad_enabled(grad), torch.autocast('cpu', dtype=torch.bfloat16, enabled=autocast):
            return [out.float().detach() for out in model(x)]

    for fp32, ours_bf16, theirs_bf16 in zip(outputs(ours, False), outputs(ours, True), outputs(theirs, True)):
        assert torch.isfinite(ours_bf16).all()
        ours_error = (ours_bf16 - fp32).abs().mean()
        theirs_error = (theirs_bf16 - fp32).abs().mean()
        assert ours_error <= 1.1 * theirs_error, (ours_error, theirs_error)
