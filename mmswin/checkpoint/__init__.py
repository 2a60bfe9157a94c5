"""Loading pretrained Swin weights of any public format into SwinBackbone (V1) and
SwinV2Backbone (V2; the version is detected from the keys too).

Formats (detected from the keys): mmswin's own; official Swin classification
(``model``; ``layers.*``, ``norm``, ``head``) and detection/segmentation (``backbone.``
prefix, ``norm{i}``); OpenMMLab (MMDetection 3.x / MMSegmentation 1.x / MMPretrain:
``attn.w_msa``, ``ffn.layers``, nn.Unfold merging order); timm (merging at the start of
the next stage, ``head.fc``); torchvision (``features.{k}``). For V2: official, timm,
torchvision ``swin_v2_*`` and MMPretrain ``SwinTransformerV2`` (:mod:`.formats`).

``SwinBackbone`` registers :func:`register_checkpoint_hooks` in its constructor, so
every load path converts, resizes and checks the same way; ``tools/model_converters/convert_checkpoint.py``
converts a file once.
"""

from .formats import FORMAT_NAMES, ConvertedCheckpoint, convert_state_dict, detect_format, extract_state_dict
from .io import read_checkpoint, verify_checkpoint_file
from .loading import fit_state_dict, register_checkpoint_hooks
from .report import LoadReport, describe_arch
from .resize import (
    position_embedding_to_grid,
    resize_position_embedding,
    resize_relative_position_bias_table,
    table_window_size,
)

__all__ = [
    'ConvertedCheckpoint',
    'FORMAT_NAMES',
    'LoadReport',
    'convert_state_dict',
    'describe_arch',
    'detect_format',
    'extract_state_dict',
    'fit_state_dict',
    'position_embedding_to_grid',
    'read_checkpoint',
    'register_checkpoint_hooks',
    'resize_position_embedding',
    'resize_relative_position_bias_table',
    'table_window_size',
    'verify_checkpoint_file',
]
