"""The one loading path: a ``load_state_dict`` pre-hook on SwinBackbone.

Every way of loading weights ends in ``nn.Module._load_from_state_dict`` of the
backbone: ``model.load_state_dict(sd)``, MMEngine's ``init_cfg=dict(type='Pretrained')``
(with or without ``prefix``), ``load_from`` and ``--resume`` (which load the whole
detector or segmentor; the backbone then sees its keys under ``backbone.``). The
pre-hook there converts any accepted format to mmswin's layout, resizes the position
parameters to the model, drops the keys that have no place in a backbone, and raises
:class:`~mmswin.errors.CheckpointMismatchError` before anything is copied if
the checkpoint is for another architecture. A post-hook logs one :class:`LoadReport`
line and keeps it as ``backbone.checkpoint_report``.

State dicts already in mmswin's layout and shapes are left untouched.
"""

from __future__ import annotations

import logging
import re
from collections import OrderedDict
from collections.abc import Mapping
from typing import Optional

from mmengine.logging import print_log
from torch import Tensor, nn

from mmswin.errors import CheckpointMismatchError

from .formats import ConvertedCheckpoint, convert_state_dict
from .report import LoadReport, describe_arch
from .resize import position_embedding_to_grid, resize_position_embedding, resize_relative_position_bias_table

# Model tensors a checkpoint may lack: output norms (classification checkpoints have
# only the last one) and the absolute position embedding (an option of the model).
OPTIONAL_KEYS = re.compile(r'norm\d+\.(weight|bias)$|absolute_pos_embed$')
NOT_BUILT = 'stages the model does not build'
UNUSED_NORM = 'output norms of stages not in out_indices'


def fit_state_dict(
    converted: ConvertedCheckpoint,
    model_shapes: Mapping[str, tuple],
    num_stages: int,
    model_arch: Optional[str] = None,
    model_name: str = 'SwinBackbone',
) -> tuple['OrderedDict[str, Tensor]', LoadReport]:
    """Fit an mmswin-layout checkpoint to one model, or raise if it is for another one.

    Args:
        converted: the checkpoint in mmswin's layout (:func:`convert_state_dict`).
        model_shapes: key -> shape of the model's state dict, in the model's order.
        num_stages: stages of the model's arch, including those it does not build
            (stages after the last of ``out_indices``).
        model_arch: how to describe the model in errors; read from the shapes if None.
        model_name: the model's class, for the report and errors.

    Returns:
        The state dict to load and its report.

    Raises:
        CheckpointMismatchError: a tensor's shape differs after resizing (the first one
            in the model's order is named, with both shapes), or the checkpoint lacks
            tensors the model needs, or has tensors the model has no place for.
    """
    num_built = 1 + max(
        (int(m.group(1)) for m in (re.match(r'stages\.(\d+)\.', key) for key in model_shapes) if m), default=-1
    )
    report = LoadReport(
        source=converted.description, expected=len(model_shapes), ignored=converted.ignored.copy(), model=model_name
    )
    fitted: 'OrderedDict[str, Tensor]' = OrderedDict()
    unexpected = []
    for key, tensor in converted.state_dict.items():
        target = model_shapes.get(key)
        if target is None:
            reason = _unused_by_design(key, num_built, num_stages)
            if reason is not None:
                report.ignored[reason] += 1
            elif key == 'absolute_pos_embed':
                report.notes.append(
                    'the checkpoint has an absolute position embedding but the model was built '
                    'with use_abs_pos_embed=False, so it is not used'
                )
            else:
                unexpected.append(key)
            continue
        if tuple(tensor.shape) != tuple(target):
            resized = _resize(key, tensor, tuple(target))
            if resized is not tensor:
                report.resized.append((key, tuple(tensor.shape), tuple(resized.shape)))
            tensor = resized
        fitted[key] = tensor

    def mismatch(problem: str) -> CheckpointMismatchError:
        checkpoint_arch = describe_arch({key: tuple(value.shape) for key, value in converted.state_dict.items()})
        return CheckpointMismatchError(
            f'{model_name} cannot load this checkpoint (format: {converted.description}): {problem}. The '
            f'checkpoint was made for another architecture (checkpoint: {checkpoint_arch}; model: '
            f'{model_arch or describe_arch(model_shapes)}); '
            "build the backbone with the checkpoint's arch, or use a checkpoint made for this one"
        )

    for key, target in model_shapes.items():
        if key in fitted and tuple(fitted[key].shape) != tuple(target):
            raise mismatch(
                f'{_named(key, converted)} has shape {tuple(fitted[key].shape)} in the checkpoint but '
                f'{tuple(target)} in the model'
            )
    missing = [key for key in model_shapes if key not in fitted]
    required = [key for key in missing if not OPTIONAL_KEYS.match(key)]
    if required:
        raise mismatch(
            f'the checkpoint has no tensor for {required[0]!r}'
            + (f' (nor for {len(required) - 1} more the model needs)' if len(required) > 1 else '')
        )
    if unexpected:
        raise mismatch(
            f'the checkpoint has {_named(unexpected[0], converted)}, for which the model has no place'
            + (f' (and {len(unexpected) - 1} more such tensors)' if len(unexpected) > 1 else '')
        )
    if 'absolute_pos_embed' in missing:
        report.notes.append(
            'the model uses an absolute position embedding but the checkpoint has none, so it keeps its initialisation'
        )
    report.left_at_init = missing
    report.loaded = len(fitted)
    return fitted, report


def _unused_by_design(key: str, num_built: int, num_stages: int) -> Optional[str]:
    """Why a checkpoint key with no model tensor is fine to drop, or None if it is not."""
    stage = re.match(r'stages\.(\d+)\.', key)
    if stage:
        index = int(stage.group(1))
        if num_built <= index < num_stages:
            return NOT_BUILT
        # The last built stage has no patch merging when later stages are not built.
        if index == num_built - 1 and num_built < num_stages and '.downsample.' in key:
            return NOT_BUILT
        return None
    norm = re.match(r'norm(\d+)\.(weight|bias)$', key)
    if norm and int(norm.group(1)) < num_stages:
        return UNUSED_NORM
    return None


def _resize(key: str, tensor: Tensor, target: tuple) -> Tensor:
    """The tensor resized to the model where that is meaningful; else unchanged."""
    if key.endswith('relative_position_bias_table'):
        if tensor.dim() == 2 and len(target) == 2 and tensor.shape[1] == target[1]:
            try:
                return resize_relative_position_bias_table(tensor, _window_of_table_rows(target[0]))
            except ValueError:
                return tensor
    elif key == 'absolute_pos_embed' and len(target) == 4:
        try:
            grid = position_embedding_to_grid(tensor, tuple(target[2:]))
        except ValueError:
            return tensor
        if grid.shape[:2] == target[:2]:
            return resize_position_embedding(grid, tuple(target[2:]))
    return tensor


def _window_of_table_rows(rows: int) -> int:
    return (round(rows**0.5) + 1) // 2


def _named(key: str, converted: ConvertedCheckpoint) -> str:
    source = converted.source_keys.get(key, key)
    return repr(key) if source == key else f'{key!r} (checkpoint key {source!r})'


def _model_arch(module: nn.Module) -> Optional[str]:
    settings = getattr(module, 'arch_settings', None)
    if not isinstance(settings, Mapping):
        return None
    text = ', '.join(
        f'{name}={tuple(value) if isinstance(value, (list, tuple)) else value}' for name, value in settings.items()
    )
    window = getattr(module, 'window_size', None)
    return f'{text}, window_size={window}' if window is not None else text


def register_checkpoint_hooks(module: nn.Module) -> None:
    """Route every ``load_state_dict`` of ``module`` (a SwinBackbone or SwinV2Backbone)
    through the converter.

    Registers :func:`convert_before_load` as a load-state-dict pre-hook and
    :func:`report_after_load` as a post-hook. Call once, in ``__init__``.
    """
    module.register_load_state_dict_pre_hook(convert_before_load)
    module.register_load_state_dict_post_hook(report_after_load)


def convert_before_load(
    module: nn.Module,
    state_dict: dict,
    prefix: str,
    local_metadata: dict,
    strict: bool,
    missing_keys: list,
    unexpected_keys: list,
    error_msgs: list,
) -> None:
    """Pre-hook: rewrite the backbone's part of ``state_dict`` (keys under ``prefix``) in place."""
    own_keys = [key for key in state_dict if key.startswith(prefix)]
    model_name = type(module).__name__
    if not own_keys:
        module._pending_checkpoint_report = LoadReport(
            source='none',
            model=model_name,
            expected=len(module.state_dict()),
            notes=[
                f'the state dict has no tensors for this backbone (prefix {prefix!r}); it keeps its current weights'
            ],
        )
        return
    local = OrderedDict((key[len(prefix) :], state_dict[key]) for key in own_keys)
    version = getattr(module, 'swin_version', 1)
    model_shapes = OrderedDict((key, tuple(value.shape)) for key, value in module.state_dict(keep_vars=True).items())
    if all(isinstance(value, Tensor) and model_shapes.get(key) == tuple(value.shape) for key, value in local.items()):
        converted = ConvertedCheckpoint(local, 'mmswin', version=version)  # mmswin's own: skip detection
    else:
        converted = convert_state_dict(local, prefix=None, version=version)
    fitted, report = fit_state_dict(
        converted, model_shapes, getattr(module, 'num_stages', 0), _model_arch(module), model_name
    )
    if hasattr(module, 'load_report_details'):
        report.details.extend(module.load_report_details())
    module._pending_checkpoint_report = report
    unchanged = len(fitted) == len(local) and all(local.get(key) is tensor for key, tensor in fitted.items())
    if unchanged:
        return  # already mmswin's layout and shapes: nothing to rewrite
    for key in own_keys:
        del state_dict[key]
    for key, tensor in fitted.items():
        state_dict[prefix + key] = tensor


def report_after_load(module: nn.Module, incompatible_keys) -> None:
    """Post-hook: log the report of the load that just finished; keep it as ``checkpoint_report``."""
    report = module.__dict__.pop('_pending_checkpoint_report', None)
    if report is None:
        return
    module.checkpoint_report = report
    print_log(report.summary(), logger='current', level=logging.WARNING if report.notes else logging.INFO)
