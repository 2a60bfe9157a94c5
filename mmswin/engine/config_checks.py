"""Config mistakes caught before building anything, each with the field and the fix.

The config's files (Python syntax, ``_base_`` paths), the ``--cfg-options`` items, the
training loop's length and the backbone's arguments are checked here, so a mistake in any
of them costs one line naming the file or field, not a traceback from MMEngine.
"""

from __future__ import annotations

import ast
import difflib
import os
from typing import Any, Optional

from mmengine.config import Config, DictAction

from mmswin.errors import PreflightError

# The registered type of each mmswin backbone -> its class name in mmswin.models.
BACKBONE_CLASSES = {'mmswin.SwinBackbone': 'SwinBackbone', 'mmswin.SwinV2Backbone': 'SwinV2Backbone'}


def _stage_widths(backbone: dict) -> list[int] | None:
    from mmswin.models.backbones.swin import normalise_out_indices, resolve_arch

    try:
        embed_dims, depths, _ = resolve_arch(backbone.get('arch', 'tiny'))
        out_indices = normalise_out_indices(backbone.get('out_indices', (0, 1, 2, 3)), len(depths))
    except (ValueError, TypeError) as error:
        raise PreflightError(f'model.backbone: {error}') from None
    return [embed_dims * 2**i for i in out_indices]


_ARCH_HINT = "give the sizes as arch=dict(embed_dims=96, depths=(2, 2, 6, 2), num_heads=(3, 6, 12, 24)) or arch='tiny'"

# Arguments of MMDetection's / MMSegmentation's SwinTransformer that SwinBackbone spells
# differently or does not need: a config moved over from there gets the translation.
PEER_ARGUMENTS = {
    'embed_dims': _ARCH_HINT,
    'depths': _ARCH_HINT,
    'num_heads': _ARCH_HINT,
    'convert_weights': 'drop it: every public weight format is recognised and converted on load',
    'strides': 'drop it: the strides follow from patch_size (4) and the patch merging between stages',
    'act_cfg': 'drop it: the MLP uses GELU, as in the paper',
    'norm_cfg': 'drop it: the blocks and the output norms use LayerNorm, as in the paper',
}


def _backbone_class(backbone: dict) -> type:
    import mmswin.models

    return getattr(mmswin.models, BACKBONE_CLASSES[backbone['type']])


def check_backbone_arguments(backbone: dict) -> None:
    """Unknown backbone arguments: a peer's name gets its translation, a misspelt one
    the closest known name."""
    backbone_class = _backbone_class(backbone)
    known = backbone_class.argument_names()  # its own and those it passes on to SwinBackboneBase
    for name in backbone:
        if name in ('type', '_scope_') or name in known:
            continue
        if name in PEER_ARGUMENTS:
            raise PreflightError(
                f"model.backbone: '{name}' is an argument of MMDetection's / MMSegmentation's SwinTransformer, "
                f'not of {backbone_class.__name__}; {PEER_ARGUMENTS[name]}'
            )
        close = difflib.get_close_matches(name, sorted(known), n=1)
        hint = f"did you mean '{close[0]}'?" if close else f'known arguments: {", ".join(sorted(known))}'
        raise PreflightError(f"model.backbone has an unknown {backbone_class.__name__} argument '{name}'; {hint}")


def check_model_config(cfg: Config) -> None:
    backbone = cfg.get('model', {}).get('backbone')
    if not isinstance(backbone, dict):
        return
    bare_names = {name: scoped for scoped, name in BACKBONE_CLASSES.items()}
    if backbone.get('type') in bare_names:
        raise PreflightError(
            f"model.backbone.type='{backbone['type']}' is not registered in the "
            f"{cfg.default_scope} scope; write type='{bare_names[backbone['type']]}' and add "
            "custom_imports = dict(imports=['mmswin.models'], allow_failed_imports=False)"
        )
    if backbone.get('type') not in BACKBONE_CLASSES:
        return
    check_backbone_arguments(backbone)
    widths = _stage_widths(backbone)
    check_backbone_builds(cfg, backbone)
    model = cfg.model
    consumer = None
    if isinstance(model.get('neck'), dict) and 'in_channels' in model.neck:
        consumer = ('model.neck.in_channels', list(model.neck.in_channels))
    elif isinstance(model.get('decode_head'), dict) and isinstance(model.decode_head.get('in_channels'), (list, tuple)):
        consumer = ('model.decode_head.in_channels', list(model.decode_head.in_channels))
    if consumer and consumer[1] != widths:
        raise PreflightError(
            f'{consumer[0]}={consumer[1]} does not match the backbone outputs: '
            f'model.backbone.out_indices={tuple(backbone.get("out_indices", (0, 1, 2, 3)))} gives '
            f'channels {widths}; set {consumer[0]}={widths} or change out_indices'
        )


def check_backbone_builds(cfg: Config, backbone: dict) -> None:
    """Build the backbone once on the meta device (no memory, no weights), so an argument
    that SwinBackbone refuses (``window_size=0``, ``drop_path_rate=2``, ...) is named with
    the config path before the model, the work dir and the data are built. An error of
    another kind (an operation the meta device cannot run) proves nothing and is left to
    the real build."""
    import torch

    arguments = {key: value for key, value in backbone.items() if key not in ('type', '_scope_')}
    arguments['init_cfg'] = None  # nothing is loaded here
    try:
        with torch.device('meta'):
            _backbone_class(backbone)(**arguments)
    except (ValueError, TypeError) as error:
        raise PreflightError(f"config '{cfg.filename}': model.backbone: {error}") from None
    except Exception:  # the meta device, not the arguments, failed: the real build decides
        pass


def backbone_error(cfg: Config, error: BaseException) -> Optional[PreflightError]:
    """The one-line error for a ValueError or TypeError that mmswin's model code raised
    while the Runner built the model, or None for any other error (raised as it is). The
    chain is searched because a registry may raise its own error of the same type around
    the backbone's (older MMEngine prefixes the class name that way)."""
    models = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'models') + os.sep
    link: Optional[BaseException] = error
    while isinstance(link, (ValueError, TypeError)):
        traceback = link.__traceback__
        while traceback is not None and traceback.tb_next is not None:
            traceback = traceback.tb_next
        if traceback is not None and os.path.abspath(traceback.tb_frame.f_code.co_filename).startswith(models):
            return PreflightError(f"config '{cfg.filename}': model.backbone: {link}")
        link = link.__context__
    return None


def check_config_files(path: str, _seen: Optional[set] = None) -> set[str]:
    """The config at ``path`` and the ``_base_`` files it names, recursively: each must be
    valid Python (named with its file and line) and each ``_base_`` must exist (named with
    the config that lists it). A ``_base_`` computed at run time, or one from another
    package (``mmdet::...``), is left to MMEngine. Returns the real paths of the files."""
    seen = _seen if _seen is not None else set()
    real = os.path.realpath(path)
    if real in seen or not path.endswith('.py'):
        return seen
    seen.add(real)
    with open(path, encoding='utf-8') as f:
        source = f.read()
    try:
        tree = ast.parse(source, filename=path)
    except SyntaxError as error:
        text = (error.text or '').strip()
        shown = f': {text}' if text else ''
        raise PreflightError(
            f"config '{path}' line {error.lineno}: {error.msg}{shown}; fix the Python syntax there"
        ) from None
    for base in _base_files(tree):
        if '::' in base:
            continue
        base_path = os.path.normpath(os.path.join(os.path.dirname(path), base))
        if not os.path.isfile(base_path):
            raise PreflightError(
                f"config '{path}' names _base_ file '{base}', which does not exist (looked for "
                f"'{base_path}'); _base_ paths are relative to the config's folder"
            )
        check_config_files(base_path, seen)
    return seen


def config_execution_error(error: BaseException, config_files: set[str]) -> Optional[PreflightError]:
    """The one-line error for an exception raised by a config file's own code while MMEngine
    runs it (a misspelt name, a bad expression), naming the file and line; None when no
    config file raised it."""
    frame, traceback = None, error.__traceback__
    while traceback is not None:
        if os.path.realpath(traceback.tb_frame.f_code.co_filename) in config_files:
            frame = traceback
        traceback = traceback.tb_next
    if frame is None:
        return None
    return PreflightError(
        f"config '{frame.tb_frame.f_code.co_filename}' line {frame.tb_lineno}: {type(error).__name__}: {error}; "
        'fix the config there'
    )


def _base_files(tree: ast.Module) -> list[str]:
    """The paths in a top-level ``_base_ = '...'`` or ``_base_ = [...]``, if written literally."""
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(target, ast.Name) and target.id == '_base_' for target in node.targets
        ):
            try:
                value = ast.literal_eval(node.value)
            except ValueError:
                return []
            values = [value] if isinstance(value, str) else value
            if isinstance(values, (list, tuple)):
                return [item for item in values if isinstance(item, str)]
    return []


CFG_OPTIONS_FIX = 'write KEY=VALUE, e.g. train_cfg.max_iters=100 (a tuple as KEY=(1,2), a list as KEY=[1,2])'


class CfgOptionsAction(DictAction):
    """``--cfg-options KEY=VALUE ...`` parsed as MMEngine's ``DictAction`` does, but an item
    without ``=``, without a key or value, or with unbalanced brackets is a
    :class:`PreflightError` naming the item, not a traceback from inside argparse."""

    def __call__(self, parser, namespace, values, option_string=None):
        options = dict(getattr(namespace, self.dest, None) or {})
        for item in values or []:
            key, equals, value = item.partition('=')
            if not equals:
                raise PreflightError(f"--cfg-options item '{item}' is not KEY=VALUE; {CFG_OPTIONS_FIX}")
            if not key:
                raise PreflightError(f"--cfg-options item '{item}' has no key before '='; {CFG_OPTIONS_FIX}")
            if not value:
                raise PreflightError(
                    f"--cfg-options item '{item}' has no value; write {key}=VALUE ({key}=None to unset it)"
                )
            if value.count('(') != value.count(')') or value.count('[') != value.count(']'):
                raise PreflightError(f"--cfg-options item '{item}' has unbalanced brackets; {CFG_OPTIONS_FIX}")
            try:
                options[key] = self._parse_iterable(value)
            except (ValueError, AssertionError) as error:
                raise PreflightError(f"--cfg-options item '{item}': {error}; {CFG_OPTIONS_FIX}") from None
        setattr(namespace, self.dest, options)


_MISSING = object()


def _config_value(cfg: Any, key: str) -> Any:
    """The value at a dotted ``--cfg-options`` key (list items by index), or ``_MISSING``."""
    node = cfg._cfg_dict if isinstance(cfg, Config) else cfg  # Config is no dict; its ConfigDict is
    for part in key.split('.'):
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, (list, tuple)) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return _MISSING
    return node


def check_cfg_options(cfg: Config, cfg_options: dict) -> None:
    """An override whose text is not a number, for a key the config holds a number in
    (``train_cfg.max_iters=ten``), is named before it is merged."""
    for key, value in cfg_options.items():
        current = _config_value(cfg, key)
        is_number = isinstance(current, (int, float)) and not isinstance(current, bool)
        if is_number and isinstance(value, str):
            raise PreflightError(
                f"--cfg-options item '{key}={value}': {key} is a number in the config ({current!r}), "
                f"and '{value}' is not one; write {key}=N"
            )


TRAIN_LENGTH_KEYS = ('max_iters', 'max_epochs')


def check_train_loop(cfg: Config) -> None:
    """``train_cfg.max_iters`` / ``max_epochs`` must be integers >= 1: with 0 the Runner
    builds everything, trains nothing and exits as if it had succeeded."""
    train_cfg = cfg.get('train_cfg') or {}
    for key in TRAIN_LENGTH_KEYS:
        if key not in train_cfg:
            continue
        value = train_cfg[key]
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise PreflightError(
                f'train_cfg.{key} must be an integer >= 1, got {value!r} (nothing would be trained); '
                f'set it with --cfg-options train_cfg.{key}=N'
            )
