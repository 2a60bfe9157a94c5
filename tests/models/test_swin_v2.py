"""SwinV2Backbone against a plain reference written from the paper's equations, and its
options: the small-map rule, initial values, gradients, freezing, checkpointing, the
position-bias cache, bad arguments and inputs.

The reference (:func:`reference_block`) works on the image grid, in float64: explicit
zero padding, ``torch.roll``, a per-window loop, region labels for the shift mask, cosine
attention with the clamped logit scale, and the continuous position bias evaluated on
every (query, key) pair's offset directly, without the table or the index gather.
"""

import math

import pytest
import torch
import torch.nn.functional as F

from mmswin.models import SwinV2Backbone
from mmswin.models.layers import attention as attention_module
from mmswin.models.layers.swin_block import SwinBlockV2

from ..helpers import BAD_INPUTS, COMMON_BAD_ARGS, MINI_ARCH, assert_autocast_close


def mini(**kwargs) -> SwinV2Backbone:
    return SwinV2Backbone(arch=MINI_ARCH, **{'drop_path_rate': 0.0, **kwargs})


# The head put above the clamp (log 100) where a test asks for it. Only one: a scale of 100
# makes softmax sharp, and fp32 rounding with it.
OVER_THE_CLAMP = 'stages.2.blocks.1.attn.logit_scale'


def randomize_(model: torch.nn.Module, seed: int = 0, over_the_clamp: bool = False) -> torch.nn.Module:
    """Every parameter away from its init, so that a weight in the wrong place shows;
    ``over_the_clamp``: head 0 of :data:`OVER_THE_CLAMP` at ``log(100) + 1``."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            noise = torch.randn(param.shape, generator=generator)
            if name.endswith('logit_scale'):
                param.copy_(math.log(10) + 0.3 * noise)
                if over_the_clamp and name == OVER_THE_CLAMP:
                    param[0] = math.log(100) + 1.0
            elif param.dim() >= 2:
                param.copy_(noise / param[0].numel() ** 0.5)
            elif name.endswith('norm1.weight') or name.endswith('norm2.weight'):
                param.copy_(0.5 + 0.3 * noise)
            elif name.endswith('weight'):
                param.copy_(1.0 + 0.2 * noise)
            else:
                param.copy_(0.2 * noise)
    return model


# --- the reference ------------------------------------------------------------------------------


def reference_attention(windows, p, heads, offsets_pretrained, window, forbidden):
    """windows [B, nW, N, C] (float64) -> [B, nW, N, C]: scaled cosine attention with the
    continuous position bias evaluated per pair and the masked pairs left out."""
    B, nW, N, C = windows.shape
    qkv = windows @ p['attn.qkv.weight'].T + torch.cat([p['attn.q_bias'], torch.zeros(C).double(), p['attn.v_bias']])
    q, k, v = qkv.view(B, nW, N, 3, heads, C // heads).permute(3, 0, 1, 4, 2, 5)  # [B, nW, heads, N, d]
    cosine = F.normalize(q, dim=-1) @ F.normalize(k, dim=-1).transpose(-1, -2)
    scale = torch.exp(torch.clamp(p['attn.logit_scale'].view(heads, 1, 1), max=math.log(100)))
    # Continuous position bias of every pair: offset (dy, dx) of query i from key j.
    rows, cols = torch.meshgrid(torch.arange(window), torch.arange(window), indexing='ij')
    coords = torch.stack([rows.flatten(), cols.flatten()], dim=-1).double()  # [N, 2]
    offset = coords[:, None, :] - coords[None, :, :]  # [N, N, 2]
    reference = offsets_pretrained if offsets_pretrained > 0 else window
    t = offset / max(reference - 1, 1) * 8
    t = torch.sign(t) * torch.log2(t.abs() + 1) / math.log2(8)
    hidden = torch.relu(t @ p['attn.cpb_mlp.0.weight'].T + p['attn.cpb_mlp.0.bias'])
    bias = 16 * torch.sigmoid(hidden @ p['attn.cpb_mlp.2.weight'].T).permute(2, 0, 1)  # [heads, N, N]
    logits = cosine * scale + bias
    logits = logits.masked_fill(forbidden[None, :, None], float('-inf'))
    out = logits.softmax(-1) @ v  # [B, nW, heads, N, d]
    out = out.permute(0, 1, 3, 2, 4).reshape(B, nW, N, C)
    return out @ p['attn.proj.weight'].T + p['attn.proj.bias']


def reference_block(x, p, heads, window, shift, pretrained, mask_padding=False):
    """One res-post-norm V2 block on the grid x [B, H, W, C] (float64)."""
    B, H, W, C = x.shape
    Hp, Wp = math.ceil(H / window) * window, math.ceil(W / window) * window
    padded = F.pad(x, (0, 0, 0, Wp - W, 0, Hp - H))
    # Region labels of the rolled grid's positions: a token may attend to its own region only.
    labels = torch.zeros(Hp, Wp, dtype=torch.long)
    if shift:
        bands = (slice(0, Hp - window), slice(Hp - window, Hp - shift), slice(Hp - shift, Hp))
        bands_w = (slice(0, Wp - window), slice(Wp - window, Wp - shift), slice(Wp - shift, Wp))
        for i, hs in enumerate(bands):
            for j, ws in enumerate(bands_w):
                labels[hs, ws] = 3 * i + j
        padded = torch.roll(padded, shifts=(-shift, -shift), dims=(1, 2))
    real = torch.zeros(Hp, Wp, dtype=torch.bool)
    real[:H, :W] = True
    if shift:
        real = torch.roll(real, shifts=(-shift, -shift), dims=(0, 1))
    windows, forbidden = [], []
    for top in range(0, Hp, window):
        for left in range(0, Wp, window):
            windows.append(padded[:, top : top + window, left : left + window].reshape(B, window * window, C))
            lab = labels[top : top + window, left : left + window].flatten()
            bad = lab[:, None] != lab[None, :]
            if mask_padding:
                ok = real[top : top + window, left : left + window].flatten()
                bad = bad | (ok[:, None] & ~ok[None, :])
            forbidden.append(bad)
    out = reference_attention(torch.stack(windows, 1), p, heads, pretrained, window, torch.stack(forbidden))
    grid = torch.zeros_like(padded)
    index = 0
    for top in range(0, Hp, window):
        for left in range(0, Wp, window):
            grid[:, top : top + window, left : left + window] = out[:, index].view(B, window, window, C)
            index += 1
    if shift:
        grid = torch.roll(grid, shifts=(shift, shift), dims=(1, 2))
    attn = grid[:, :H, :W]
    x = x + F.layer_norm(attn, (C,), p['norm1.weight'], p['norm1.bias'])
    hidden = F.gelu(x @ p['mlp.fc1.weight'].T + p['mlp.fc1.bias'])
    mlp = hidden @ p['mlp.fc2.weight'].T + p['mlp.fc2.bias']
    return x + F.layer_norm(mlp, (C,), p['norm2.weight'], p['norm2.bias'])


def reference_merge(x, p):
    """V2 patch merging on x [B, H, W, C]: pad odd sizes, concat the official 2x2 order,
    reduce without bias, then normalise."""
    x = F.pad(x, (0, 0, 0, x.shape[2] % 2, 0, x.shape[1] % 2))
    x = torch.cat([x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 1::2]], dim=-1)
    x = x @ p['reduction.weight'].T
    return F.layer_norm(x, (x.shape[-1],), p['norm.weight'], p['norm.bias'])


def reference_backbone(model: SwinV2Backbone, images: torch.Tensor, mask_padding=False):
    state = {k: v.double() for k, v in model.state_dict().items()}
    with torch.no_grad():
        x = model.patch_embed.double()(images.double())  # PatchEmbed is V1's, tested there
        model.patch_embed.float()
    outs = []
    for i, stage in enumerate(model.stages):
        H, W = x.shape[1:3]
        window = model.window_size[i]
        heads = model.arch_settings['num_heads'][i]
        small = min(H, W) <= window  # the official small-map rule
        window, shift = (min(H, W), 0) if small else (window, window // 2)
        for j in range(len(stage.blocks)):
            prefix = f'stages.{i}.blocks.{j}.'
            params = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
            pretrained = model.pretrained_window_sizes[i]
            x = reference_block(x, params, heads, window, shift if j % 2 else 0, pretrained, mask_padding)
        if i in model.out_indices:
            out = F.layer_norm(x, (x.shape[-1],), state[f'norm{i}.weight'], state[f'norm{i}.bias'])
            outs.append(out.permute(0, 3, 1, 2))
        if stage.downsample is not None:
            prefix = f'stages.{i}.downsample.'
            x = reference_merge(x, {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)})
    return outs


def max_error(model, images, mask_padding=False):
    with torch.no_grad():
        actual = model.eval()(images)
    expected = reference_backbone(model, images, mask_padding)
    assert [a.shape for a in actual] == [e.shape for e in expected]
    return max((a.double() - e).abs().max().item() for a, e in zip(actual, expected))


PARITY_CASES = {
    # name: (input size, window_size, pretrained_window_sizes, mask_padding, a head over the clamp)
    # 25x33 tokens: padded in every stage at window 7; stage 2 (7x9) and 3 (4x5) are small maps.
    '1x97x131': ((1, 3, 97, 131), 7, 0, False, False),
    # 34x51 tokens, two images: padded in every stage, shifted windows in stages 0-2.
    '2x133x201': ((2, 3, 133, 201), 7, 0, False, False),
    # 84x126 tokens at window 8: padded in every stage (stage 3, 11x16, to 16x16).
    '2x333x501': ((2, 3, 333, 501), 8, 0, False, False),
    # 10x50 tokens: from stage 1 the smaller side (5) is at most the window (8).
    'small_map_40x200': ((1, 3, 40, 200), 8, 0, False, False),
    # Windows 6 with weights pretrained at windows 8 and 4: offsets normalised by P - 1.
    'window_6_pretrained_8': ((1, 3, 97, 131), 6, (8, 8, 8, 4), False, False),
    'mask_padding': ((1, 3, 61, 75), 5, 0, True, False),
    # exp(logit_scale) = e * 100 in one head, clamped to 100 (16x19 tokens, window 7).
    'logit_clamp': ((1, 3, 61, 75), 7, 0, False, True),
}


@pytest.mark.parametrize('case', list(PARITY_CASES))
def test_backbone_equals_the_plain_reference(case):
    size, window, pretrained, mask_padding, over_the_clamp = PARITY_CASES[case]
    model = mini(window_size=window, pretrained_window_sizes=pretrained, mask_padding=mask_padding)
    randomize_(model, over_the_clamp=over_the_clamp)
    images = torch.randn(size, generator=torch.Generator().manual_seed(1))
    error = max_error(model, images, mask_padding)
    assert error < 1e-5, f'{case}: max abs error {error:.2e}'


def test_the_reference_sees_the_clamp_and_the_block_order(monkeypatch):
    """The parity test can fail: without the logit clamp, or with a pre-norm block, the
    backbone leaves the reference by far more than the tolerance."""
    model = randomize_(mini(window_size=7), over_the_clamp=True)  # the 'logit_clamp' case
    images = torch.randn(1, 3, 61, 75, generator=torch.Generator().manual_seed(1))
    assert max_error(model, images) < 1e-5
    with monkeypatch.context() as patch:
        patch.setattr(attention_module, 'LOGIT_SCALE_MAX', float('inf'))
        model.apply(lambda m: getattr(m, '_bias_cache', {}).clear())
        assert max_error(model, images) > 1e-3

    def pre_norm(self, x, layout, bias_inputs):
        shifted = self.shifted and layout.shift_size > 0
        tokens = layout.zero_padding(self.norm1(x))
        if shifted:
            tokens = tokens.index_select(1, layout.to_shifted)
        tokens = self.attn(tokens, bias_inputs, layout.attn_mask(shifted, x.dtype))
        if shifted:
            tokens = tokens.index_select(1, layout.from_shifted)
        x = x + tokens
        return x + self.mlp(self.norm2(x))

    monkeypatch.setattr(SwinBlockV2, 'forward', pre_norm)
    assert max_error(model, images) > 1e-3


# --- behaviour ----------------------------------------------------------------------------------


@pytest.mark.parametrize('size', [(97, 131), (33, 45), (3, 5), (1, 1), (5, 300)])
def test_output_shapes_follow_the_v1_rule(size):
    model = mini().eval()
    with torch.no_grad():
        outs = model(torch.randn(1, 3, *size))
    h, w = math.ceil(size[0] / 4), math.ceil(size[1] / 4)
    for i, out in enumerate(outs):
        assert out.shape == (1, 16 * 2**i, h, w) and out.is_contiguous() and out.isfinite().all()
        h, w = math.ceil(h / 2), math.ceil(w / 2)


def test_projection_and_mlp_see_the_real_tokens_only():
    """A padded grid's padded tokens are attended to as zeros but get no projection and
    no MLP: each stage's first block runs them on as many rows as the map has tokens."""
    model = mini().eval()
    rows = {}

    def count_rows(key):
        def hook(module, inputs, output):
            rows.setdefault(key, inputs[0].shape[1])

        return hook

    for index, stage in enumerate(model.stages):
        stage.blocks[0].attn.proj.register_forward_hook(count_rows((index, 'proj')))
        stage.blocks[0].mlp.fc1.register_forward_hook(count_rows((index, 'fc1')))
    with torch.no_grad():
        model(torch.randn(1, 3, 97, 131))
    h, w = 25, 33  # ceil(97 / 4), ceil(131 / 4): padded to the window in every stage
    for index in range(len(model.stages)):
        assert rows[index, 'proj'] == rows[index, 'fc1'] == h * w, (index, rows)
        h, w = math.ceil(h / 2), math.ceil(w / 2)


def test_window_shrinks_to_the_smaller_side_of_small_maps():
    stage = mini(window_size=(8, 8, 8, 8)).stages[0]
    assert stage.window_for(9, 30) == (8, 4)
    assert stage.window_for(8, 30) == (8, 0), 'side equal to the window: unshifted'
    assert stage.window_for(30, 5) == (5, 0)
    assert stage.window_for(1, 1) == (1, 0)


def test_random_init_follows_the_paper():
    model = SwinV2Backbone(arch=MINI_ARCH)
    for name, param in model.named_parameters():
        if '.blocks.' in name and ('.norm1.' in name or '.norm2.' in name):
            assert torch.equal(param, torch.zeros_like(param)), name
        elif name.endswith('logit_scale'):
            assert param.shape[1:] == (1, 1) and torch.allclose(param, torch.full_like(param, math.log(10))), name
        elif name.endswith(('q_bias', 'v_bias')):
            assert torch.equal(param, torch.zeros_like(param)), name
    assert model.stages[0].blocks[0].attn.cpb_mlp[2].bias is None
    assert model.stages[0].blocks[0].attn.qkv.bias is None


def test_presets_and_per_stage_windows():
    with torch.device('meta'):  # the shapes without the memory or the init
        model = SwinV2Backbone(arch='base', window_size=(16, 16, 16, 8), pretrained_window_sizes=(12, 12, 12, 6))
    assert model.arch_settings == dict(embed_dims=128, depths=(2, 2, 18, 2), num_heads=(4, 8, 16, 32))
    assert [s.window_size for s in model.stages] == [16, 16, 16, 8]
    assert [s.pretrained_window_size for s in model.stages] == [12, 12, 12, 6]


def test_registered_in_the_mmswin_scope():
    from mmengine.registry import MODELS

    import mmswin.models  # noqa: F401

    model = MODELS.build(dict(type='mmswin.SwinV2Backbone', arch=MINI_ARCH, out_indices=(1,)))
    assert isinstance(model, SwinV2Backbone) and len(model.stages) == 2


def test_gradients_are_finite_and_reach_every_parameter():
    model = randomize_(mini(out_indices=(0, 2), drop_path_rate=0.2)).train()
    sum(o.square().mean() for o in model(torch.randn(2, 3, 37, 45))).backward()
    for name, param in model.named_parameters():
        assert param.grad is not None, name
        assert param.grad.isfinite().all(), name


def test_frozen_stages_are_frozen_at_construction_and_stay_in_eval():
    model = mini(frozen_stages=2, drop_rate=0.1)
    frozen = ('patch_embed.', 'stages.0.', 'stages.1.', 'norm0.', 'norm1.')
    for name, param in model.named_parameters():
        assert param.requires_grad == (not name.startswith(frozen)), name
    model.train()
    assert not model.stages[1].training and not model.norm0.training and model.stages[2].training


def test_activation_checkpointing_gives_the_same_outputs_and_gradients():
    x = torch.randn(2, 3, 37, 45)
    plain = randomize_(mini())
    ckpt = mini(with_cp=True, frozen_stages=1)
    ckpt.load_state_dict(plain.state_dict())
    for model in (plain, ckpt):
        sum(o.square().mean() for o in model(x)).backward()
    for (name, a), b in zip(plain.named_parameters(), ckpt.parameters()):
        if b.requires_grad:
            assert torch.allclose(a.grad, b.grad, atol=1e-6), name
        else:
            assert b.grad is None, name


def test_sdpa_and_eager_agree():
    model = randomize_(mini(attn_impl='sdpa')).eval()
    eager = mini(attn_impl='eager').eval()
    eager.load_state_dict(model.state_dict())
    x = torch.randn(1, 3, 61, 75)
    with torch.no_grad():
        for a, b in zip(model(x), eager(x)):
            assert (a - b).abs().max() < 1e-5


def test_v2_blocks_never_ask_the_block_chooser(monkeypatch):
    import mmswin.kernels

    def refuse(*args, **kwargs):
        raise AssertionError('a V2 block consulted the block chooser')

    monkeypatch.setattr(mmswin.kernels, 'choose_block_impl', refuse)
    monkeypatch.setattr(mmswin.kernels, 'run_block', refuse)
    model = mini()
    model(torch.randn(1, 3, 33, 37))[0].sum().backward()
    with torch.no_grad():
        model.eval()(torch.randn(1, 3, 33, 37))


def test_inference_computes_each_position_bias_once_until_the_weights_change():
    model = randomize_(mini()).eval()
    attn = model.stages[0].blocks[0].attn
    calls = []
    attn.cpb_mlp.register_forward_hook(lambda *args: calls.append(1))
    x = torch.randn(1, 3, 33, 37)
    with torch.no_grad():
        first = model(x)
        second = model(x)
        assert len(calls) == 1
        attn.cpb_mlp[0].weight.add_(0.5)  # an optimiser step, in place
        third = model(x)
    assert len(calls) == 2
    assert all(torch.equal(a, b) for a, b in zip(first, second))
    assert not torch.allclose(first[0], third[0])
    model(x)  # with autograd: computed in the graph, every call
    assert len(calls) == 3


@pytest.mark.parametrize('dtype', [torch.bfloat16])
def test_autocast_outputs_are_finite_and_close(dtype):
    assert_autocast_close(randomize_(mini(mask_padding=True)).eval(), dtype)


BAD_ARGS = COMMON_BAD_ARGS + [
    (dict(window_size=(8, 8, 8)), ValueError, r'window_size must be .* list of 4'),
    (dict(window_size=(8, 8, 0, 8)), ValueError, r'window_size\[2\]'),
    (dict(pretrained_window_sizes=(12, 12, 12)), ValueError, 'pretrained_window_sizes'),
    (dict(pretrained_window_sizes=-1), ValueError, 'pretrained_window_sizes'),
]


@pytest.mark.parametrize('kwargs,error,words', BAD_ARGS)
def test_bad_arguments_name_the_argument(kwargs, error, words):
    with pytest.raises(error, match=words):
        SwinV2Backbone(**{'arch': MINI_ARCH, **kwargs})


def test_pretrained_path_becomes_the_init_cfg():
    model = SwinV2Backbone(arch=MINI_ARCH, pretrained='swinv2_tiny_patch4_window16_256.pth')
    assert model.init_cfg == dict(type='Pretrained', checkpoint='swinv2_tiny_patch4_window16_256.pth')


@pytest.mark.parametrize('x,error,words', BAD_INPUTS)
def test_bad_inputs_get_clear_errors(x, error, words):
    with pytest.raises(error, match=f'SwinV2Backbone.*{words}|{words}.*SwinV2Backbone'):
        mini()(x)
