"""Each shipped config equals the published recipe it names, except where listed here.

Both configs are loaded with MMEngine and every field a Runner reads is compared, leaf by
leaf; the backbone (its type and arguments: mmswin.SwinBackbone in place of MMDetection's
or MMSegmentation's SwinTransformer) and the data set class (mmswin's checked data sets) are
left out. Any other difference fails unless it is listed for that config with its reason,
and a listed difference that no longer occurs fails too, so the list stays true.
"""

from __future__ import annotations

import os
import re

import mmdet
import mmseg
import pytest
from mmengine.config import Config

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MMDET = os.path.join(os.path.dirname(mmdet.__file__), '.mim', 'configs')
MMSEG = os.path.join(os.path.dirname(mmseg.__file__), '.mim', 'configs')
OFFICIAL = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'published')

# What Runner.from_cfg (and the tools) read; other top-level names are config-file variables.
RUNNER_FIELDS = (
    'model',
    'data_preprocessor',
    'train_dataloader',
    'val_dataloader',
    'test_dataloader',
    'train_cfg',
    'val_cfg',
    'test_cfg',
    'optim_wrapper',
    'param_scheduler',
    'auto_scale_lr',
    'val_evaluator',
    'test_evaluator',
    'default_hooks',
    'custom_hooks',
    'default_scope',
    'env_cfg',
    'log_processor',
    'log_level',
    'visualizer',
    'load_from',
    'resume',
    'randomness',
    'model_wrapper_cfg',
    'find_unused_parameters',
    'tta_model',
    'tta_pipeline',
)
SKIPPED = (
    re.compile(r'^model\.backbone(\.|$)'),
    re.compile(r'^\w+_dataloader\.dataset(\.dataset)?\.type$'),
)

# Differences every config has, with the reason.
RUNTIME = {
    'custom_hooks': 'mmswin runtime: IterSeedHook (resumed runs repeat their randomness) and FiniteLossHook',
    'env_cfg.dist_cfg.backend': 'left to tools/train.py, which picks NCCL on CUDA and gloo on CPU',
}
SEG_RUNTIME = {
    'tta_model': 'tools/test.py has no --tta, so no test-time-augmentation model',
    'tta_pipeline': 'tools/test.py has no --tta, so no test-time-augmentation pipeline',
}
NO_BACKEND_ARGS = {
    'train_dataloader.dataset.pipeline[0].backend_args': 'backend_args=None is LoadImageFromFile default',
}
MASK_RCNN_1X_MULTI_SCALE = {
    'train_dataloader.dataset.pipeline': (
        "the official Swin repo's multi-scale + crop recipe (43.7 box AP) instead of MMDetection's "
        'single-scale 1x (42.7)'
    ),
}
INSTANCE_SEG_PREFIX = {
    f'{split}_dataloader.dataset.data_prefix.seg': (
        "MMDetection's instance config keeps the panoptic base's PNG folder, which CocoDataset "
        'never reads without with_seg; dropped so the data check does not ask for it'
    )
    for split in ('train', 'val', 'test')
}
UPERNET = {
    **SEG_RUNTIME,
    'auto_scale_lr': 'mmswin adds the total batch of 16, so --auto-scale-lr works',
    'model.pretrained': "pretrained=None is EncoderDecoder's default",
}

# config -> (published config, allowed differences)
PUBLISHED = {
    'mask_rcnn_swin_t.py': (f'{MMDET}/swin/mask-rcnn_swin-t-p4-w7_fpn_1x_coco.py', MASK_RCNN_1X_MULTI_SCALE),
    'mask_rcnn_swin_t_3x.py': (f'{MMDET}/swin/mask-rcnn_swin-t-p4-w7_fpn_ms-crop-3x_coco.py', NO_BACKEND_ARGS),
    'mask_rcnn_swin_s_3x.py': (
        f'{MMDET}/swin/mask-rcnn_swin-s-p4-w7_fpn_amp-ms-crop-3x_coco.py',
        {
            **NO_BACKEND_ARGS,
            'optim_wrapper.type': "fp32 here; MMDetection's Swin-S run used AmpOptimWrapper (add --amp)",
        },
    ),
    'mask_rcnn_swin_t_amp.py': (
        f'{MMDET}/swin/mask-rcnn_swin-t-p4-w7_fpn_1x_coco.py',
        {
            **MASK_RCNN_1X_MULTI_SCALE,
            'optim_wrapper.type': 'the mixed-precision variant of the 1x config',
            'optim_wrapper.loss_scale': 'the mixed-precision variant of the 1x config',
        },
    ),
    'cascade_mask_rcnn_swin_t_3x.py': (f'{OFFICIAL}/cascade_mask_rcnn_swin_t_3x_official.py', NO_BACKEND_ARGS),
    'cascade_mask_rcnn_swin_s_3x.py': (f'{OFFICIAL}/cascade_mask_rcnn_swin_s_3x_official.py', NO_BACKEND_ARGS),
    'cascade_mask_rcnn_swin_b_3x.py': (f'{OFFICIAL}/cascade_mask_rcnn_swin_b_3x_official.py', NO_BACKEND_ARGS),
    'retinanet_swin_t_1x.py': (f'{MMDET}/swin/retinanet_swin-t-p4-w7_fpn_1x_coco.py', {}),
    'mask2former_swin_t_coco_panoptic.py': (
        f'{MMDET}/mask2former/mask2former_swin-t-p4-w7-224_8xb2-lsj-50e_coco-panoptic.py',
        {},
    ),
    'mask2former_swin_s_coco_panoptic.py': (
        f'{MMDET}/mask2former/mask2former_swin-s-p4-w7-224_8xb2-lsj-50e_coco-panoptic.py',
        {},
    ),
    'mask2former_swin_b_coco_panoptic.py': (
        f'{MMDET}/mask2former/mask2former_swin-b-p4-w12-384_8xb2-lsj-50e_coco-panoptic.py',
        {},
    ),
    'mask2former_swin_b_in22k_coco_panoptic.py': (
        f'{MMDET}/mask2former/mask2former_swin-b-p4-w12-384-in21k_8xb2-lsj-50e_coco-panoptic.py',
        {},
    ),
    'mask2former_swin_l_coco_panoptic.py': (
        f'{MMDET}/mask2former/mask2former_swin-l-p4-w12-384-in21k_16xb1-lsj-100e_coco-panoptic.py',
        {},
    ),
    'mask2former_swin_t_coco_instance.py': (
        f'{MMDET}/mask2former/mask2former_swin-t-p4-w7-224_8xb2-lsj-50e_coco.py',
        INSTANCE_SEG_PREFIX,
    ),
    'mask2former_swin_s_coco_instance.py': (
        f'{MMDET}/mask2former/mask2former_swin-s-p4-w7-224_8xb2-lsj-50e_coco.py',
        INSTANCE_SEG_PREFIX,
    ),
    'dino_5scale_swin_l_12e.py': (f'{MMDET}/dino/dino-5scale_swin-l_8xb2-12e_coco.py', {}),
    'dino_5scale_swin_l_36e.py': (f'{MMDET}/dino/dino-5scale_swin-l_8xb2-36e_coco.py', {}),
    'upernet_swin_t.py': (
        f'{MMSEG}/swin/swin-tiny-patch4-window7-in1k-pre_upernet_8xb2-160k_ade20k-512x512.py',
        UPERNET,
    ),
    'upernet_swin_s.py': (
        f'{MMSEG}/swin/swin-small-patch4-window7-in1k-pre_upernet_8xb2-160k_ade20k-512x512.py',
        UPERNET,
    ),
    'upernet_swin_b.py': (
        f'{MMSEG}/swin/swin-base-patch4-window7-in1k-pre_upernet_8xb2-160k_ade20k-512x512.py',
        UPERNET,
    ),
    'mask2former_swin_t_ade20k.py': (
        f'{MMSEG}/mask2former/mask2former_swin-t_8xb2-160k_ade20k-512x512.py',
        SEG_RUNTIME,
    ),
    'mask2former_swin_s_ade20k.py': (
        f'{MMSEG}/mask2former/mask2former_swin-s_8xb2-160k_ade20k-512x512.py',
        SEG_RUNTIME,
    ),
    'mask2former_swin_b_ade20k.py': (
        f'{MMSEG}/mask2former/mask2former_swin-b-in1k-384x384-pre_8xb2-160k_ade20k-640x640.py',
        SEG_RUNTIME,
    ),
    'mask2former_swin_b_in22k_ade20k.py': (
        f'{MMSEG}/mask2former/mask2former_swin-b-in22k-384x384-pre_8xb2-160k_ade20k-640x640.py',
        SEG_RUNTIME,
    ),
    'mask2former_swin_l_ade20k.py': (
        f'{MMSEG}/mask2former/mask2former_swin-l-in22k-384x384-pre_8xb2-160k_ade20k-640x640.py',
        SEG_RUNTIME,
    ),
}
MISSING = '<missing>'


def flatten(node, path: str = '', out: dict | None = None) -> dict:
    """``{'a': {'b': [1]}}`` -> ``{'a.b#len': 1, 'a.b[0]': 1}``; MMEngine's ``_scope_`` tags dropped."""
    out = {} if out is None else out
    if isinstance(node, dict):
        for key, value in node.items():
            if key != '_scope_':
                flatten(value, f'{path}.{key}' if path else key, out)
    elif isinstance(node, (list, tuple)):
        out[f'{path}#len'] = len(node)
        for index, value in enumerate(node):
            flatten(value, f'{path}[{index}]', out)
    else:
        out[path] = node
    return out


def runner_fields(path: str) -> dict:
    cfg = Config.fromfile(path).to_dict()
    flat = flatten({key: cfg[key] for key in RUNNER_FIELDS if key in cfg})
    return {key: value for key, value in flat.items() if not any(rule.search(key) for rule in SKIPPED)}


def config_differences(ours: str, published: str) -> dict:
    """Leaf path -> (ours, published) for every Runner field that differs."""
    mine, theirs = runner_fields(ours), runner_fields(published)
    return {
        key: (mine.get(key, MISSING), theirs.get(key, MISSING))
        for key in sorted(set(mine) | set(theirs))
        if mine.get(key, MISSING) != theirs.get(key, MISSING)
    }


def _under(path: str, prefix: str) -> bool:
    return path == prefix or path.startswith((prefix + '.', prefix + '[', prefix + '#'))


def unexplained(differences: dict, allowed: dict) -> tuple[dict, list]:
    """The differences no allowed prefix covers, and the allowed prefixes that cover none."""
    left = {path: pair for path, pair in differences.items() if not any(_under(path, p) for p in allowed)}
    stale = [prefix for prefix in allowed if not any(_under(path, prefix) for path in differences)]
    return left, stale


# Shipped configs with no published counterpart in the installed MMDetection / MMSegmentation.
NOT_PUBLISHED = {
    'mask_rcnn_swin_b_3x.py': 'neither MMDetection nor the official repo publishes Mask R-CNN Swin-B',
    'mask_rcnn_swin_t_3x_layer_decay.py': 'the layer-wise lr decay variant of mask_rcnn_swin_t_3x.py; no published run',
}


def test_every_shipped_model_config_is_compared():
    shipped = {
        name
        for name in os.listdir(os.path.join(ROOT, 'configs'))
        if name.endswith('.py') and 'swinv2' not in name  # SwinV2 configs: the V2 tests
    }
    assert shipped - set(PUBLISHED) - set(NOT_PUBLISHED) == set()


@pytest.mark.parametrize('name', sorted(PUBLISHED))
def test_config_matches_the_published_one(name):
    published, allowed = PUBLISHED[name]
    differences = config_differences(os.path.join(ROOT, 'configs', name), published)
    left, stale = unexplained(differences, {**RUNTIME, **allowed})
    assert not left, f'{name} differs from {os.path.relpath(published, ROOT)} in:\n' + '\n'.join(
        f'  {path}: ours {ours!r}, published {theirs!r}' for path, (ours, theirs) in left.items()
    )
    assert not stale, f'{name}: listed differences that no longer occur: {stale}'


def test_a_changed_head_setting_is_a_difference(tmp_path):
    # The comparison sees a one-value change deep in a head, and not a backbone change.
    edited = tmp_path / 'edited.py'
    edited.write_text(
        f"_base_ = '{ROOT}/configs/retinanet_swin_t_1x.py'\n"
        'model = dict(bbox_head=dict(loss_cls=dict(gamma=1.5)), backbone=dict(window_size=12))\n'
    )
    differences = config_differences(str(edited), PUBLISHED['retinanet_swin_t_1x.py'][0])
    assert differences.pop('model.bbox_head.loss_cls.gamma') == (1.5, 2.0)
    left, _ = unexplained(differences, RUNTIME)
    assert left == {}


def test_a_listed_difference_that_does_not_occur_is_reported():
    left, stale = unexplained({'custom_hooks#len': (2, MISSING)}, {**RUNTIME, 'model.neck.num_outs': 'no reason'})
    assert left == {}
    assert stale == ['env_cfg.dist_cfg.backend', 'model.neck.num_outs']
