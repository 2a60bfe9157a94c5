"""Pretrained weights, end to end: every format through every load path gives the source
model's stage outputs.

Sources of truth: MMDetection's and MMSegmentation's own SwinTransformer modules (random
weights, saved and reloaded), and MMDetection's own ``swin_converter`` for the official ->
OpenMMLab weight reordering. The official, timm and torchvision layouts are built here by
renaming, independently of :mod:`mmswin.checkpoint`.
"""

import logging
import re
from collections import OrderedDict

import pytest
import torch
from mmengine.config import ConfigDict
from torch import nn

from mmswin.checkpoint import loading as loading_module
from mmswin.errors import CheckpointFormatError, CheckpointMismatchError
from mmswin.models import SwinBackbone

from ..helpers import MINI_ARCH as MINI
from ..helpers import (
    mini_backbone,
    official_layout,
    randomize_,
    stage_outputs,
    timm_layout,
    torchvision_layout,
)

MMDET_MINI = dict(embed_dims=16, depths=(2, 2, 2, 2), num_heads=(1, 2, 2, 4), drop_path_rate=0.0)
NUM_TENSORS = 125  # state dict entries of SwinBackbone(arch=MINI)

FORMATS = ['mmswin', 'official_cls', 'official_det', 'openmmlab', 'mmpretrain', 'timm', 'torchvision']
CLASSIFICATION_FORMATS = {'official_cls', 'mmpretrain', 'timm', 'torchvision'}  # carry only the last output norm
LOAD_PATHS = ['load_state_dict', 'init_cfg', 'init_cfg_prefix', 'load_from']
EXPECTED_SOURCE = {
    'mmswin': 'mmswin',
    'official_cls': 'official Swin (classification)',
    'official_det': 'official Swin (detection/segmentation)',
    'openmmlab': 'OpenMMLab (MMDetection 3.x / MMSegmentation 1.x / MMPretrain)',
    'mmpretrain': 'OpenMMLab (MMDetection 3.x / MMSegmentation 1.x / MMPretrain)',
    'timm': 'timm',
    'torchvision': 'torchvision',
}


def assert_close(actual, expected, atol=1e-4):
    assert len(actual) == len(expected)
    for index, (a, b) in enumerate(zip(actual, expected)):
        assert a.shape == b.shape, f'stage {index}: {tuple(a.shape)} vs {tuple(b.shape)}'
        error = (a - b).abs().max().item()
        assert error <= atol, f'stage {index} differs by {error}'


def mmdet_twin(official_backbone_state: dict, **kwargs):
    """MMDetection's SwinTransformer holding the same weights, loaded through mmdet's own
    ``swin_converter`` (which reorders patch merging into nn.Unfold order)."""
    from mmdet.models.backbones.swin import SwinTransformer, swin_converter

    twin = SwinTransformer(**MMDET_MINI, **kwargs)
    weights = OrderedDict(
        (k, v) for k, v in official_backbone_state.items() if not k.endswith(('relative_position_index', 'attn_mask'))
    )
    converted = swin_converter(weights)
    converted = OrderedDict((key[len('backbone.') :], value) for key, value in converted.items())
    missing, unexpected = twin.load_state_dict(converted, strict=False)
    assert unexpected == [] and all(key.endswith('relative_position_index') for key in missing)
    return twin


def detector_checkpoint(backbone_state: dict, extra=None) -> dict:
    """What MMDetection / MMSegmentation / MMPretrain save: ``state_dict`` with ``backbone.`` keys."""
    state = OrderedDict(('backbone.' + key, value) for key, value in backbone_state.items())
    state['neck.weight'] = torch.ones(8, 128, 1, 1)
    state.update(extra or {})
    return dict(meta=dict(mmdet_version='3.3.0', epoch=12), state_dict=state)


@pytest.fixture(scope='module')
def source():
    """One set of weights in every format, and the stage outputs they must give.

    Output norms 0-2 stay at their init (ones / zeros), because classification formats
    carry only the last one; everything else is random.
    """
    torch.manual_seed(0)
    reference = randomize_(mini_backbone(), seed=1)
    with torch.no_grad():
        for i in range(3):
            getattr(reference, f'norm{i}').weight.fill_(1.0)
            getattr(reference, f'norm{i}').bias.zero_()
    own = reference.state_dict()
    official_det = official_layout(own, classification=False)
    openmmlab = mmdet_twin(official_det)
    openmmlab_state = openmmlab.state_dict()
    head = {'head.fc.weight': torch.randn(10, 128), 'head.fc.bias': torch.randn(10)}
    payloads = {
        'mmswin': own,
        'official_cls': dict(model=official_layout(own, classification=True)),
        'official_det': detector_checkpoint(official_det),
        'openmmlab': detector_checkpoint(openmmlab_state),
        # MMPretrain's Swin has only norm3 by default (out_indices=(3, )) and a classifier head.
        'mmpretrain': detector_checkpoint(
            {k: v for k, v in openmmlab_state.items() if not re.match(r'norm[012]\.', k)}, extra=head
        ),
        'timm': timm_layout(own),
        'torchvision': torchvision_layout(own),
    }
    return dict(reference=reference, outputs=stage_outputs(reference), mmdet=openmmlab, payloads=payloads)


class ToyDetector(nn.Module):
    """A detector-shaped model (``backbone`` + ``neck``) for the whole-model load paths."""

    def __init__(self, **backbone_kwargs):
        super().__init__()
        self.backbone = mini_backbone(**backbone_kwargs)
        self.neck = nn.Conv2d(128, 8, 1, bias=False)


def full_model_checkpoint(payload: dict) -> dict:
    """The payload as ``load_from`` / ``--resume`` see it: keys of a whole detector."""
    if 'state_dict' in payload and any(key.startswith('backbone.') for key in payload['state_dict']):
        return payload
    return detector_checkpoint(payload.get('model', payload))


def load_via(path: str, payload: dict, tmp_path, **backbone_kwargs) -> SwinBackbone:
    """A fresh mini SwinBackbone loaded from ``payload`` through one of the user-facing paths."""
    from mmengine.runner.checkpoint import load_checkpoint

    file = tmp_path / f'{path}.pth'
    whole_model = path in ('init_cfg_prefix', 'load_from')
    torch.save(full_model_checkpoint(payload) if whole_model else payload, file)
    if path == 'load_state_dict':
        model = mini_backbone(**backbone_kwargs)
        model.load_state_dict(torch.load(file), strict=False)  # torch 2.13: weights_only=True
    elif path == 'init_cfg':
        model = mini_backbone(init_cfg=dict(type='Pretrained', checkpoint=str(file)), **backbone_kwargs)
        model.init_weights()
    elif path == 'init_cfg_prefix':
        model = mini_backbone(
            init_cfg=dict(type='Pretrained', checkpoint=str(file), prefix='backbone.'), **backbone_kwargs
        )
        model.init_weights()
    elif path == 'load_from':
        # What Runner.load_checkpoint does for both `load_from` and `--resume`.
        detector = ToyDetector(**backbone_kwargs)
        load_checkpoint(detector, str(file), map_location='cpu', strict=False, revise_keys=[(r'^module\.', '')])
        assert torch.equal(detector.neck.weight, torch.ones(8, 128, 1, 1)), 'the rest of the detector loads too'
        model = detector.backbone
    else:
        raise ValueError(path)
    return model.eval()


def test_mmswin_matches_mmdet_on_the_shared_weights(source):
    """The premise of the format tests: the weights mean the same in both models."""
    assert_close(source['outputs'], stage_outputs(source['mmdet']))


@pytest.mark.parametrize('path', LOAD_PATHS)
@pytest.mark.parametrize('fmt', FORMATS)
def test_every_format_loads_through_every_path(source, fmt, path, tmp_path, monkeypatch):
    logged = []
    monkeypatch.setattr(loading_module, 'print_log', lambda message, **kwargs: logged.append(message))
    model = load_via(path, source['payloads'][fmt], tmp_path)
    outputs = stage_outputs(model)
    for actual, expected in zip(outputs, source['outputs']):
        assert torch.equal(actual, expected), 'same weights in any format must give identical outputs'
    report = model.checkpoint_report
    assert report.source == EXPECTED_SOURCE[fmt]
    assert len(logged) == 1 and logged[0] == report.summary(), 'one report line per load'
    if fmt in CLASSIFICATION_FORMATS:
        assert report.loaded == NUM_TENSORS - 6
        assert report.left_at_init == [f'norm{i}.{p}' for i in range(3) for p in ('weight', 'bias')]
    else:
        assert report.loaded == NUM_TENSORS and report.left_at_init == []
    assert report.resized == [] and report.notes == []


@pytest.mark.parametrize('fmt', ['official_cls', 'official_det', 'timm', 'torchvision', 'mmpretrain'])
def test_recomputed_buffers_and_heads_are_dropped_silently(source, fmt, tmp_path):
    model = load_via('load_state_dict', source['payloads'][fmt], tmp_path)
    ignored = model.checkpoint_report.ignored
    heads = {'official_cls': 2, 'timm': 2, 'torchvision': 2, 'official_det': 0, 'mmpretrain': 0}[fmt]
    assert ignored.get('classification head', 0) == heads
    buffers = {'official_cls': 8 + 4, 'official_det': 8, 'timm': 0, 'torchvision': 8, 'mmpretrain': 8}[fmt]
    assert ignored.get('recomputed buffers', 0) == buffers
    assert model.checkpoint_report.notes == []


def test_mmdet_checkpoint_gives_mmdet_outputs(tmp_path):
    """Weights made by MMDetection's own module, saved as a detector checkpoint and loaded
    through every path (every output norm random, too)."""
    from mmdet.models.backbones.swin import SwinTransformer

    torch.manual_seed(3)
    theirs = randomize_(SwinTransformer(**MMDET_MINI), seed=3)
    expected = stage_outputs(theirs)
    payload = detector_checkpoint(theirs.state_dict())
    for path in LOAD_PATHS:
        assert_close(stage_outputs(load_via(path, payload, tmp_path)), expected)


def test_mmseg_checkpoint_gives_mmseg_outputs(tmp_path):
    from mmseg.models.backbones import SwinTransformer

    torch.manual_seed(4)
    theirs = randomize_(SwinTransformer(**MMDET_MINI), seed=4)
    expected = stage_outputs(theirs)
    payload = dict(
        meta=dict(mmseg_version='1.2.2'),
        state_dict=OrderedDict(
            [('backbone.' + k, v) for k, v in theirs.state_dict().items()]
            + [('decode_head.conv_seg.weight', torch.zeros(3, 8, 1, 1))]
        ),
    )
    for path in ('load_state_dict', 'init_cfg', 'init_cfg_prefix'):
        assert_close(stage_outputs(load_via(path, payload, tmp_path)), expected)


def test_mmdet_absolute_position_embedding_is_reshaped_to_the_grid(tmp_path):
    """MMDetection keeps the embedding as [1, N, C] tokens; mmswin as a [1, C, H, W] grid."""
    from mmdet.models.backbones.swin import SwinTransformer

    theirs = randomize_(SwinTransformer(**MMDET_MINI, use_abs_pos_embed=True, pretrain_img_size=64), seed=5)
    assert theirs.absolute_pos_embed.shape == (1, 256, 16)
    model = load_via(
        'init_cfg', detector_checkpoint(theirs.state_dict()), tmp_path, use_abs_pos_embed=True, pretrain_img_size=64
    )
    assert model.checkpoint_report.resized == []
    assert_close(stage_outputs(model, size=(1, 3, 64, 64)), stage_outputs(theirs, size=(1, 3, 64, 64)))


def test_window_7_checkpoint_resized_to_window_12_like_mmdet(tmp_path):
    """Fine-tuning at window 12 from window-7 weights: tables are resized bicubically, the
    outputs stay finite and equal MMDetection's own resize-on-load."""
    from mmdet.models.backbones.swin import SwinTransformer

    theirs = randomize_(SwinTransformer(**MMDET_MINI), seed=6)
    state = OrderedDict((k, v) for k, v in theirs.state_dict().items() if not k.endswith('relative_position_index'))
    file = tmp_path / 'window7.pth'
    torch.save(detector_checkpoint(state), file)
    theirs_12 = SwinTransformer(
        **MMDET_MINI, window_size=12, init_cfg=ConfigDict(type='Pretrained', checkpoint=str(file))
    )
    theirs_12.init_weights()
    ours_12 = mini_backbone(window_size=12, init_cfg=dict(type='Pretrained', checkpoint=str(file)))
    ours_12.init_weights()
    report = ours_12.checkpoint_report
    assert [(old, new) for _, old, new in report.resized] == [((169, h), (529, h)) for h in (1, 1, 2, 2, 2, 2, 4, 4)]
    assert 'window 7 -> 12' in report.summary()
    size = (1, 3, 97, 131)
    ours_out = stage_outputs(ours_12, size=size)
    assert all(out.isfinite().all() for out in ours_out)
    assert_close(ours_out, stage_outputs(theirs_12, size=size))


def test_official_classification_position_embedding_is_resized_to_the_model_grid(source, tmp_path):
    """An official [1, N, C] embedding of a 16x16 grid into a model built for a 24x24 grid."""
    official = official_layout(source['reference'].state_dict(), classification=True)
    tokens = torch.randn(1, 256, 16)
    official['absolute_pos_embed'] = tokens
    model = load_via('init_cfg', dict(model=official), tmp_path, use_abs_pos_embed=True, pretrain_img_size=96)
    grid = tokens.reshape(1, 16, 16, 16).permute(0, 3, 1, 2)
    expected = torch.nn.functional.interpolate(grid, size=(24, 24), mode='bicubic', align_corners=False)
    assert torch.allclose(model.absolute_pos_embed.data, expected)
    assert model.checkpoint_report.resized == [('absolute_pos_embed', (1, 16, 16, 16), (1, 16, 24, 24))]


def test_out_indices_drop_unbuilt_stages_by_design(source, tmp_path):
    model = load_via('init_cfg', source['payloads']['official_det'], tmp_path, out_indices=(1, 2))
    report = model.checkpoint_report
    assert report.loaded == len(model.state_dict()) and report.left_at_init == []
    assert report.ignored['stages the model does not build'] > 0
    assert report.ignored['output norms of stages not in out_indices'] == 4  # norm0 and norm3
    assert_close(stage_outputs(model), source['outputs'][1:3], atol=0)


def test_mmswin_state_dict_passes_through_untouched(source):
    """Resume and load_from of mmswin's own checkpoints: the tensors are not copied or rewritten."""
    state = source['reference'].state_dict()
    model = mini_backbone()
    model.load_state_dict(state, assign=True)
    assert model.patch_embed.proj.weight.data_ptr() == state['patch_embed.proj.weight'].data_ptr()
    assert (
        model.stages[1].downsample.reduction.weight.data_ptr()
        == state['stages.1.downsample.reduction.weight'].data_ptr()
    )


def test_strict_load_of_a_detection_checkpoint_passes(source):
    """Dropped-by-design keys are gone before torch's strict check, nothing else is."""
    model = mini_backbone()
    result = model.load_state_dict(source['payloads']['official_det'], strict=True)
    assert result.missing_keys == [] and result.unexpected_keys == []
    with pytest.raises(RuntimeError, match='Missing key'):
        mini_backbone().load_state_dict(source['payloads']['official_cls'], strict=True)


def test_load_from_in_an_mmdet_detector(source, tmp_path):
    """A real MMDetection detector with mmswin.SwinBackbone, `load_from` an official
    detection checkpoint through the Runner (the path `--resume` takes too)."""
    from mmengine.registry import init_default_scope
    from mmengine.runner import Runner

    import mmswin.models  # noqa: F401  registers mmswin.SwinBackbone

    init_default_scope('mmdet')
    model_cfg = dict(
        type='RetinaNet',
        data_preprocessor=dict(type='DetDataPreprocessor', mean=[0, 0, 0], std=[1, 1, 1]),
        backbone=dict(type='mmswin.SwinBackbone', arch=MINI, drop_path_rate=0.0, out_indices=(1, 2, 3)),
        neck=dict(type='FPN', in_channels=[32, 64, 128], out_channels=8, start_level=0, num_outs=3),
        bbox_head=dict(
            type='RetinaHead',
            num_classes=2,
            in_channels=8,
            stacked_convs=1,
            feat_channels=8,
            anchor_generator=dict(
                type='AnchorGenerator', octave_base_scale=4, scales_per_octave=1, ratios=[1.0], strides=[8, 16, 32]
            ),
            bbox_coder=dict(type='DeltaXYWHBBoxCoder', target_means=[0.0] * 4, target_stds=[1.0] * 4),
            loss_cls=dict(type='FocalLoss', use_sigmoid=True, loss_weight=1.0),
            loss_bbox=dict(type='L1Loss', loss_weight=1.0),
        ),
        test_cfg=dict(nms_pre=10, score_thr=0.05, nms=dict(type='nms', iou_threshold=0.5), max_per_img=10),
    )
    from mmdet.registry import MODELS

    donor = MODELS.build(model_cfg)
    torch.nn.init.normal_(donor.neck.fpn_convs[0].conv.weight)
    detector_state = donor.state_dict()
    official = official_layout(source['reference'].state_dict(), classification=False)
    state = OrderedDict((k, v) for k, v in detector_state.items() if not k.startswith('backbone.'))
    state.update(('backbone.' + k, v) for k, v in official.items())
    file = tmp_path / 'official_retinanet.pth'
    torch.save(dict(meta=dict(epoch=12), state_dict=state), file)

    runner = Runner(model=model_cfg, work_dir=str(tmp_path / 'run'), default_scope='mmdet', load_from=str(file))
    runner.load_or_resume()
    backbone = runner.model.backbone
    assert backbone.checkpoint_report.source == 'official Swin (detection/segmentation)'
    assert torch.equal(runner.model.neck.fpn_convs[0].conv.weight, donor.neck.fpn_convs[0].conv.weight)
    assert_close(stage_outputs(backbone), source['outputs'][1:], atol=0)


# --- failures: never a silent partial load ------------------------------------------------------


def test_swin_b_weights_into_swin_t_name_the_first_mismatched_tensor():
    tiny = SwinBackbone(arch='tiny')
    before = tiny.patch_embed.proj.weight.clone()
    with pytest.raises(CheckpointMismatchError) as error:
        tiny.load_state_dict(SwinBackbone(arch='base').state_dict(), strict=False)
    message = str(error.value)
    assert (
        "'patch_embed.proj.weight' has shape (128, 3, 4, 4) in the checkpoint but (96, 3, 4, 4) in the model" in message
    )
    assert 'embed_dims=128' in message and 'embed_dims=96' in message
    assert torch.equal(tiny.patch_embed.proj.weight, before), 'nothing is copied before the check'


@pytest.mark.parametrize('path', ['init_cfg', 'load_from'])
def test_wrong_architecture_fails_on_paths_that_only_warn_in_mmengine(source, path, tmp_path):
    """MMEngine loads with strict=False and only logs size mismatches; the hook raises."""
    wider = randomize_(SwinBackbone(arch=dict(embed_dims=24, depths=(2, 2, 2, 2), num_heads=(1, 2, 2, 4))), 8)
    payload = dict(model=official_layout(wider.state_dict(), classification=True))
    with pytest.raises(
        CheckpointMismatchError,
        match=r"'patch_embed.proj.weight' has shape \(24, 3, 4, 4\) in the "
        r'checkpoint but \(16, 3, 4, 4\)',
    ):
        load_via(path, payload, tmp_path)


def test_deeper_checkpoint_names_the_first_extra_block(source):
    deeper = SwinBackbone(arch=dict(embed_dims=16, depths=(2, 2, 4, 2), num_heads=(1, 2, 2, 4)))
    payload = dict(model=official_layout(deeper.state_dict(), classification=True))
    with pytest.raises(
        CheckpointMismatchError,
        match=r"'stages.2.blocks.2.norm1.weight' \(checkpoint key "
        r"'layers.2.blocks.2.norm1.weight'\), for which the model",
    ):
        mini_backbone().load_state_dict(payload, strict=False)
    with pytest.raises(CheckpointMismatchError, match=r"no tensor for 'stages.2.blocks.2.norm1.weight'"):
        deeper.load_state_dict(source['payloads']['official_cls'], strict=False)


def test_resnet_file_fails_with_a_format_error(tmp_path):
    resnet = OrderedDict(
        [
            ('conv1.weight', torch.randn(64, 3, 7, 7)),
            ('bn1.weight', torch.ones(64)),
            ('layer1.0.conv1.weight', torch.randn(64, 64, 1, 1)),
            ('fc.weight', torch.randn(10, 64)),
        ]
    )
    for path in ('load_state_dict', 'init_cfg'):
        with pytest.raises(CheckpointFormatError, match="no Swin Transformer weights.*'conv1.weight'"):
            load_via(path, dict(state_dict=resnet), tmp_path)


def test_swin_weights_under_an_unknown_prefix_suggest_the_prefix(source, tmp_path):
    wrapped = {'encoder.' + k: v for k, v in source['payloads']['timm'].items()}
    with pytest.raises(CheckpointFormatError, match=r"prefix 'encoder.'"):
        mini_backbone().load_state_dict(wrapped)
    model = mini_backbone(init_cfg=dict(type='Pretrained', checkpoint=str(tmp_path / 'enc.pth'), prefix='encoder.'))
    torch.save(wrapped, tmp_path / 'enc.pth')
    model.init_weights()
    assert model.checkpoint_report.source == 'timm'


def test_a_state_dict_without_backbone_tensors_is_a_warning_not_silence(monkeypatch):
    logged = []
    monkeypatch.setattr(loading_module, 'print_log', lambda message, **kwargs: logged.append((message, kwargs)))
    detector = ToyDetector()
    detector.load_state_dict({'neck.weight': torch.ones(8, 128, 1, 1)}, strict=False)
    assert detector.backbone.checkpoint_report.loaded == 0
    assert len(logged) == 1 and logged[0][1]['level'] == logging.WARNING
    assert 'no tensors for this backbone' in logged[0][0]
