"""SwinBackbone: shapes, options, freezing, checkpointing, autocast, input checks."""

import math

import pytest
import torch

from mmswin.kernels import cpu_chunked
from mmswin.models import SwinBackbone
from mmswin.models.layers import attention

from ..helpers import BAD_INPUTS, COMMON_BAD_ARGS, MINI_ARCH, assert_autocast_close, perturb_


def mini(**kwargs):
    return SwinBackbone(arch=MINI_ARCH, **kwargs)


@pytest.mark.parametrize('size', [(97, 131), (224, 224), (33, 45), (3, 5), (1, 1), (5, 300)])
def test_output_shapes_for_any_size(size):
    model = mini().eval()
    with torch.no_grad():
        outs = model(torch.randn(1, 3, *size))
    h, w = math.ceil(size[0] / 4), math.ceil(size[1] / 4)
    for i, out in enumerate(outs):
        assert out.shape == (1, 16 * 2**i, h, w)
        assert out.is_contiguous()
        h, w = math.ceil(h / 2), math.ceil(w / 2)


def test_stage_outputs_are_contiguous_channels_first_copies_with_gradients():
    """The outputs' transposing copy (ChannelsFirst) against permute().contiguous()."""
    from mmswin.kernels.cpu_layout import ChannelsFirst

    x = torch.randn(2, 5, 7, 3, dtype=torch.float64, requires_grad=True)
    out = ChannelsFirst.apply(x)
    assert out.is_contiguous() and torch.equal(out, x.permute(0, 3, 1, 2))
    assert torch.autograd.gradcheck(ChannelsFirst.apply, (x,))
    strided = torch.randn(1, 9, 6, 4)[:, ::2, 1:]  # non-contiguous input
    assert torch.equal(ChannelsFirst.apply(strided), strided.permute(0, 3, 1, 2))


def test_presets_have_published_widths():
    for arch, dims in (('tiny', 96), ('small', 96), ('base', 128), ('large', 192)):
        model = SwinBackbone(arch=arch, out_indices=(0,))
        assert model.num_features[0] == dims and model.arch_settings['embed_dims'] == dims
    assert SwinBackbone(arch='small').arch_settings['depths'] == (2, 2, 18, 2)
    assert SwinBackbone(arch='large').arch_settings['num_heads'] == (6, 12, 24, 48)


def test_out_indices_select_stages_and_norms():
    model = mini(out_indices=(1, 2))
    outs = model(torch.randn(1, 3, 64, 64))
    assert [o.shape[1] for o in outs] == [32, 64]
    assert not hasattr(model, 'norm0') and not hasattr(model, 'norm3')
    assert len(model.stages) == 3, 'stages after the last output are not built (they would be unused in DDP)'


def test_every_parameter_gets_a_gradient():
    model = mini(out_indices=(0, 2), drop_path_rate=0.0)
    sum(o.sum() for o in model(torch.randn(2, 3, 40, 56))).backward()
    unused = [name for name, p in model.named_parameters() if p.grad is None]
    assert unused == []


def test_drop_path_is_linear_over_all_blocks():
    model = mini(drop_path_rate=0.3)
    rates = [block.drop_path.drop_prob for stage in model.stages for block in stage.blocks]
    assert rates[0] == 0.0 and rates[-1] == pytest.approx(0.3)
    assert rates == pytest.approx([0.3 * i / 7 for i in range(8)])


def test_blocks_alternate_regular_and_shifted():
    model = mini()
    assert [b.shifted for b in model.stages[0].blocks] == [False, True]


def test_frozen_stages_are_frozen_at_construction_and_stay_in_eval():
    model = mini(frozen_stages=2, drop_rate=0.1)
    frozen = ['patch_embed.', 'stages.0.', 'stages.1.', 'norm0.', 'norm1.']
    for name, param in model.named_parameters():
        assert param.requires_grad == (not any(name.startswith(p) for p in frozen)), name
    assert model.train() is model
    assert not model.stages[1].training and not model.norm0.training and not model.patch_embed.training
    assert model.stages[2].training and model.norm2.training


def test_frozen_stage_outputs_are_deterministic_in_train_mode():
    model = mini(frozen_stages=1, drop_rate=0.5, drop_path_rate=0.5).train()
    x = torch.randn(1, 3, 32, 32)
    assert torch.equal(model(x)[0], model(x)[0])


def test_activation_checkpointing_gives_same_outputs_and_grads():
    x = torch.randn(2, 3, 45, 61)
    plain = mini(drop_path_rate=0.0)
    ckpt = mini(drop_path_rate=0.0, with_cp=True, frozen_stages=1)
    ckpt.load_state_dict(plain.state_dict())
    for model in (plain, ckpt):
        sum(o.square().mean() for o in model(x)).backward()
    for (name, a), b in zip(plain.named_parameters(), ckpt.parameters()):
        if b.requires_grad:
            assert torch.allclose(a.grad, b.grad, atol=1e-5), name
        else:
            assert b.grad is None


def test_sdpa_and_eager_backbones_agree():
    model = perturb_(mini()).eval()
    eager = mini(attn_impl='eager', block_impl='reference').eval()
    eager.load_state_dict(model.state_dict())
    x = torch.randn(2, 3, 97, 131)
    with torch.no_grad():
        for a, b in zip(model(x), eager(x)):
            assert (a - b).abs().max() < 1e-5


def test_absolute_pos_embed_is_resized_and_used():
    model = mini(use_abs_pos_embed=True, pretrain_img_size=64).eval()
    assert model.absolute_pos_embed.shape == (1, 16, 16, 16)
    x = torch.randn(1, 3, 50, 90)
    with torch.no_grad():
        before = model(x)[0]
        model.absolute_pos_embed.add_(1.0)
        after = model(x)[0]
    assert before.shape == (1, 16, 13, 23)
    assert not torch.allclose(before, after)
    model.train()
    model(x)[0].sum().backward()
    assert model.absolute_pos_embed.grad is not None and model.absolute_pos_embed.grad.abs().sum() > 0


@pytest.mark.parametrize(
    'block_impl', ['auto', 'reference']
)  # in eval fp32 on a CPU: the chunked kernel, the reference
def test_mask_padding_makes_real_tokens_blind_to_padding(monkeypatch, block_impl):
    x = torch.randn(1, 3, 41, 59)  # 11 x 15 tokens: padded in every stage
    base = perturb_(mini(mask_padding=True, block_impl=block_impl)).eval()
    unmasked = mini(mask_padding=False, block_impl=block_impl).eval()
    unmasked.load_state_dict(base.state_dict())
    noised = []
    with torch.no_grad():
        reference = [base(x), unmasked(x)]
        # Fill padded tokens with large noise instead of zeros (the reference: their qkv
        # rows; the chunked kernel: after norm1): masked keys must not matter.
        zero_padded = attention.pad_rows

        def noise_padded(real, rows):
            noised.append('reference')
            tokens = zero_padded(real, rows)
            padding = (rows.from_source == real.shape[1]).view(1, -1, 1)
            return torch.where(padding, 30 * torch.randn_like(tokens), tokens)

        def noise_normed(real, chunk, rows):
            noised.append('chunked')
            if chunk.valid_rows is None:
                return real
            return (30 * torch.randn(rows, real.shape[1])).index_copy_(0, chunk.valid_rows, real)

        monkeypatch.setattr(attention, 'pad_rows', noise_padded)
        monkeypatch.setattr(cpu_chunked, 'padded_normed', noise_normed)
        noisy = [base(x), unmasked(x)]
    # The noise reached the path under test, and only that one.
    assert set(noised) == {'chunked' if block_impl == 'auto' else 'reference'}
    for a, b in zip(reference[0], noisy[0]):
        assert torch.allclose(a, b, atol=1e-4)
    assert not torch.allclose(reference[1][0], noisy[1][0], atol=1e-4)


@pytest.mark.parametrize('dtype', [torch.bfloat16])
def test_autocast_outputs_are_finite_and_close(dtype):
    assert_autocast_close(perturb_(mini(mask_padding=True)).eval(), dtype)


BAD_ARGS = COMMON_BAD_ARGS


@pytest.mark.parametrize('kwargs,error,name', BAD_ARGS)
def test_bad_arguments_name_the_argument(kwargs, error, name):
    kwargs = {'arch': MINI_ARCH, **kwargs}
    with pytest.raises(error, match=name):
        SwinBackbone(**kwargs)


@pytest.mark.parametrize('x,error,words', BAD_INPUTS)
def test_bad_inputs_get_clear_errors(x, error, words):
    with pytest.raises(error, match=words):
        mini()(x)
