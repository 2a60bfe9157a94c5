"""The one chooser of a block's implementation, and what each choice means for users."""

import dataclasses

import pytest
import torch

from mmswin.kernels import (
    CPU_CHUNKED_INFERENCE,
    CPU_CHUNKED_TRAINING,
    REFERENCE,
    BlockQuery,
    choose_block_impl,
)
from mmswin.models import SwinBackbone
from mmswin.models.layers import SwinBlock, build_window_layout

from ..helpers import MINI_ARCH, perturb_

CPU_FP32_INFERENCE = BlockQuery(
    requested='auto',
    device_type='cpu',
    dtype=torch.float32,
    param_dtype=torch.float32,
    autocast=False,
    autocast_dtype=None,
    native_bf16=False,
    needs_grad=False,
    dropout=False,
    drop_path=False,
    transforming=False,
)


def query(**changes) -> BlockQuery:
    return dataclasses.replace(CPU_FP32_INFERENCE, **changes)


@pytest.mark.parametrize('dtype', [torch.float32, torch.float16, torch.bfloat16], ids=str)
@pytest.mark.parametrize('autocast', [False, True])
@pytest.mark.parametrize('needs_grad', [False, True])
@pytest.mark.parametrize('drop_path', [False, True])
def test_cuda_always_gets_the_whole_tensor_block(dtype, autocast, needs_grad, drop_path):
    """Validation, tools/test.py, frozen stages (no grad) and training, in every dtype."""
    cuda = query(
        device_type='cuda',
        dtype=dtype,
        param_dtype=dtype,
        autocast=autocast,
        autocast_dtype=dtype if autocast else None,
        native_bf16=True,
    )
    assert choose_block_impl(dataclasses.replace(cuda, needs_grad=needs_grad, drop_path=drop_path)) == REFERENCE


@pytest.mark.parametrize(
    'changes',
    [
        dict(autocast=True, autocast_dtype=torch.bfloat16, native_bf16=False),
        dict(autocast=True, autocast_dtype=torch.float16, native_bf16=True),
        dict(autocast=True, autocast_dtype=torch.bfloat16, native_bf16=True, needs_grad=True),
        dict(dtype=torch.bfloat16, param_dtype=torch.bfloat16),
        dict(dtype=torch.bfloat16),
        dict(dtype=torch.float64, param_dtype=torch.float64),
        dict(transforming=True),
        dict(dropout=True, needs_grad=True),
        dict(requested='reference'),
        dict(device_type='mps'),
    ],
    ids=str,
)
def test_cpu_kernels_only_for_plain_eager_fp32(changes):
    assert choose_block_impl(query(**changes)) == REFERENCE


def test_cpu_fp32_picks_inference_or_training_kernel():
    assert choose_block_impl(query()) == CPU_CHUNKED_INFERENCE
    # bf16 autocast inference, on a CPU with bf16 instructions only (measured faster there).
    bf16 = query(autocast=True, autocast_dtype=torch.bfloat16, native_bf16=True)
    assert choose_block_impl(bf16) == CPU_CHUNKED_INFERENCE
    assert choose_block_impl(dataclasses.replace(bf16, dtype=torch.bfloat16)) == CPU_CHUNKED_INFERENCE
    assert choose_block_impl(query(needs_grad=True)) == CPU_CHUNKED_TRAINING
    assert choose_block_impl(query(needs_grad=True, drop_path=True)) == CPU_CHUNKED_TRAINING
    assert choose_block_impl(query(requested='cpu_chunked')) == CPU_CHUNKED_INFERENCE


@pytest.mark.parametrize(
    'changes, words',
    [
        (dict(device_type='cuda'), "'cuda'"),
        (dict(dtype=torch.bfloat16), 'fp32'),
        (dict(autocast=True, autocast_dtype=torch.bfloat16, native_bf16=False), 'native bf16'),
        (dict(autocast=True, autocast_dtype=torch.bfloat16, native_bf16=True, needs_grad=True), 'inference only'),
        (dict(transforming=True), 'traced, compiled or exported'),
        (dict(dropout=True), 'dropout'),
    ],
    ids=str,
)
def test_forced_cpu_chunked_that_cannot_serve_is_an_error(changes, words):
    with pytest.raises(ValueError, match=words):
        choose_block_impl(query(requested='cpu_chunked', **changes))


def test_bad_block_impl_lists_the_choices():
    with pytest.raises(ValueError, match=r"block_impl must be one of \('auto', 'reference', 'cpu_chunked'\)"):
        SwinBackbone(arch=MINI_ARCH, block_impl='chunked')
    with pytest.raises(ValueError, match='block_impl'):
        choose_block_impl(query(requested='fast'))


def test_query_reads_grad_mode_frozen_weights_and_autocast():
    """A frozen block under grad mode needs no graph for an input without grad; the
    query sees autocast and dropout."""
    block = SwinBlock(16, 2, 7, shifted=True, drop_rate=0.1)
    x = torch.randn(1, 49, 16)
    assert BlockQuery.of(block, x).needs_grad
    assert BlockQuery.of(block, x).dropout
    block.eval().requires_grad_(False)
    assert not BlockQuery.of(block, x).needs_grad
    assert BlockQuery.of(block, x.requires_grad_()).needs_grad
    with torch.no_grad():
        assert not BlockQuery.of(block, x).needs_grad
    with torch.autocast('cpu', dtype=torch.bfloat16):
        assert BlockQuery.of(block, x).autocast


def test_block_takes_the_same_path_inside_and_outside_a_stage(monkeypatch):
    """Under no_grad a block called on its own takes the in-place kernel too, and leaves
    its caller's tensor alone."""
    from mmswin import kernels

    taken = []
    original = kernels.choose_block_impl
    monkeypatch.setattr(kernels, 'choose_block_impl', lambda q: taken.append(original(q)) or taken[-1])
    block = perturb_(SwinBlock(16, 2, 7, shifted=True)).eval()
    layout = build_window_layout(9, 12, 7, 3)
    x = layout.to_windows(torch.randn(2, 9, 12, 16))
    before = x.clone()
    with torch.no_grad():
        alone = block(x, layout)
        reference = block.forward_reference(x, layout)
    assert taken == [CPU_CHUNKED_INFERENCE]
    assert torch.equal(x, before)
    valid = layout.valid_tokens
    assert ((alone - reference) * valid).abs().max() < 1e-5

    taken.clear()
    model = SwinBackbone(arch=MINI_ARCH, drop_path_rate=0.0).eval()
    with torch.no_grad():
        model(torch.randn(1, 3, 40, 40))
    assert set(taken) == {CPU_CHUNKED_INFERENCE}


@pytest.mark.parametrize('block_impl', ['reference', 'cpu_chunked'])
def test_every_choice_matches_the_reference_backbone(block_impl):
    """Outputs and training gradients of the whole backbone, padded in every stage."""
    x = torch.randn(2, 3, 61, 83)
    model = perturb_(SwinBackbone(arch=MINI_ARCH, drop_path_rate=0.0, block_impl=block_impl))
    reference = SwinBackbone(arch=MINI_ARCH, drop_path_rate=0.0, block_impl='reference', attn_impl='eager')
    reference.load_state_dict(model.state_dict())
    with torch.no_grad():
        for a, b in zip(model.eval()(x), reference.eval()(x)):
            assert (a - b).abs().max() < 1e-5
    model.train(), reference.train()
    for net in (model, reference):
        sum((o * torch.linspace(-1, 1, o.numel()).view_as(o)).sum() for o in net(x)).backward()
    for (name, a), b in zip(model.named_parameters(), reference.parameters()):
        assert (a.grad - b.grad).abs().max() <= 1e-4 * b.grad.abs().max() + 1e-6, name


def test_forced_cpu_chunked_under_autocast_training_is_an_error():
    model = SwinBackbone(arch=MINI_ARCH, block_impl='cpu_chunked').train()
    with torch.autocast('cpu', dtype=torch.bfloat16), pytest.raises(ValueError, match='inference only'):
        model(torch.randn(1, 3, 32, 32))


def test_cpu_flags_are_read_once_and_bf16_needs_its_flags(monkeypatch):
    from mmswin import kernels

    monkeypatch.setattr(kernels, 'cpu_flags', lambda: frozenset({'avx2', 'avx512f'}))
    assert not kernels.cpu_has_native_bf16()
    monkeypatch.setattr(kernels, 'cpu_flags', lambda: frozenset({'avx512f', 'avx512_bf16'}))
    assert kernels.cpu_has_native_bf16()


@pytest.mark.parametrize('block_impl', ['auto', 'reference', 'cpu_chunked'])
def test_bf16_autocast_inference_is_finite_and_as_close_as_the_reference(block_impl, monkeypatch):
    """Whichever path bf16 autocast takes, its error against fp32 stays that of the
    whole-tensor block (the chunked kernel serves it on CPUs with native bf16; here it
    is forced, as if this CPU had them, so that it runs on every machine)."""
    from mmswin import kernels

    if block_impl == 'cpu_chunked':
        monkeypatch.setattr(kernels, 'cpu_flags', lambda: frozenset({'avx512f', 'avx512_bf16'}))
    model = perturb_(SwinBackbone(arch=MINI_ARCH, drop_path_rate=0.0, block_impl=block_impl)).eval()
    reference = SwinBackbone(arch=MINI_ARCH, drop_path_rate=0.0, block_impl='reference').eval()
    reference.load_state_dict(model.state_dict())
    x = torch.randn(2, 3, 61, 83)
    with torch.no_grad():
        exact = reference(x)
        with torch.autocast('cpu', dtype=torch.bfloat16):
            low, low_reference = model(x), reference(x)
    for e, a, r in zip(exact, low, low_reference):
        assert torch.isfinite(a).all()
        assert (a.float() - e).abs().mean() <= 1.5 * (r.float() - e).abs().mean() + 1e-6


@pytest.mark.parametrize('shifted', [False, True])
@pytest.mark.parametrize('traced_layout', [False, True], ids=['eager_layout', 'traced_layout'])
def test_reference_block_projects_and_mlps_real_tokens_only(shifted, traced_layout):
    """On a padded grid the whole-tensor block gives the output projection and the MLP
    the real tokens alone (as many rows as the image has tokens), with the same real
    outputs as the block that runs them on every padded token, and zero padded outputs."""
    from mmswin.models.layers.window_layout import build_traceable_layout

    height, width = 9, 12
    if traced_layout:
        layout = build_traceable_layout(height, width, 7, 3, False, torch.device('cpu'))
    else:
        layout = build_window_layout(height, width, 7, 3)
    block = perturb_(SwinBlock(16, 2, 7, shifted=shifted, block_impl='reference')).eval()
    x = layout.to_windows(torch.randn(2, height, width, 16))
    rows_seen = {}

    def count_rows(name):
        def hook(module, inputs, output):
            rows_seen.setdefault(name, inputs[0].shape[1])  # the first call: the block's own

        return hook

    block.attn.proj.register_forward_hook(count_rows('proj'))
    block.mlp.fc1.register_forward_hook(count_rows('fc1'))
    with torch.no_grad():
        out = block.forward_reference(x, layout)
        # The block on every padded token, spelled out.
        tokens = layout.zero_padding(block.norm1(x))
        if shifted:
            tokens = tokens.index_select(1, layout.to_shifted)
        attended = block.attn(tokens, layout.attn_mask(shifted, torch.float32))
        if shifted:
            attended = attended.index_select(1, layout.from_shifted)
        mid = x + attended
        every_token = mid + block.mlp(block.norm2(mid))
    assert rows_seen == {'proj': height * width, 'fc1': height * width}
    valid = layout.valid_tokens
    assert (out - every_token).masked_fill(~valid, 0).abs().max() < 1e-5
    assert not out.masked_fill(valid, 0).any()


def test_dropped_branches_are_skipped_on_a_cpu_only():
    from mmswin.kernels import skips_dropped_branches

    assert skips_dropped_branches(torch.zeros(2))
    assert not skips_dropped_branches(torch.zeros(2, device='meta'))
    traced = torch.jit.trace(lambda t: t * float(skips_dropped_branches(t)), torch.ones(2), check_trace=False)
    assert torch.equal(traced(torch.ones(2)), torch.zeros(2))


@pytest.mark.parametrize('block_class', ['v1', 'v2'])
@pytest.mark.parametrize('size', [(14, 14), (9, 12)], ids=['unpadded', 'padded'])
def test_skipping_dropped_branches_changes_no_value_and_saves_their_work(monkeypatch, block_class, size):
    """Stochastic depth that skips the branches it drops gives the values and gradients
    of the block that runs every branch and multiplies it by zero, from the same draws,
    with fewer FLOPs."""
    from torch.utils.flop_counter import FlopCounterMode

    from mmswin.models.layers import swin_block
    from mmswin.models.layers.attention import PositionBiasInputs

    height, width = size
    layout = build_window_layout(height, width, 7, 3)
    if block_class == 'v1':
        block = perturb_(SwinBlock(16, 2, 7, shifted=True, drop_path_rate=0.5, block_impl='reference'))
        extra = ()
    else:
        block = perturb_(swin_block.SwinBlockV2(16, 2, shifted=True, drop_path_rate=0.5))
        extra = (PositionBiasInputs.build(7, 0, torch.device('cpu')),)
    run = block.forward_reference if block_class == 'v1' else block.forward
    x = layout.to_windows(torch.randn(6, height, width, 16))

    def step(skipping: bool):
        monkeypatch.setattr(swin_block, 'skips_dropped_branches', lambda t: skipping)
        block.zero_grad()
        torch.manual_seed(3)  # 6 images, 2 branches: some draws drop, some keep
        inputs = x.clone().requires_grad_()
        with FlopCounterMode(display=False) as flops:
            out = run(inputs, layout, *extra)
            out.square().sum().backward()
        return out, inputs.grad, [p.grad.clone() for p in block.parameters()], flops.get_total_flops()

    skipped, every = step(True), step(False)
    assert torch.allclose(skipped[0], every[0], rtol=1e-5, atol=1e-5)
    assert torch.allclose(skipped[1], every[1], rtol=1e-5, atol=1e-5)
    for a, b in zip(skipped[2], every[2]):
        assert torch.allclose(a, b, rtol=1e-5, atol=1e-4 * b.abs().max().item())
    assert skipped[3] < 0.9 * every[3]
