"""ONNX export of a Swin backbone, a segmentor or a detector's dense part, with dynamic
batch, height and width, and the check of the exported file in ONNX Runtime.

One path for every part: :func:`export_program` captures the module with
``torch.export.export`` (dynamic dims, the whole-tensor blocks and the traced window
layouts of :mod:`mmswin.models.layers.window_layout`), :func:`export_onnx` turns that
program into one ONNX file, written atomically, and :func:`compare_in_onnxruntime` runs
the file at other sizes than the one it was exported at and measures it against PyTorch
eager. Inputs are what the model's data preprocessor outputs: normalised float NCHW.
"""

from __future__ import annotations

import contextlib
import copy
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterator, Optional, Sequence

import torch
from torch import Tensor, nn

from mmswin.atomic import atomic_file

if TYPE_CHECKING:
    import onnxruntime

# The ONNX exporter (``torch.onnx.export(dynamo=True)``) emits opset 18 and converts the
# graph to later ones; up to 24 was checked on these models (its converter has no Gelu
# adapter to 26).
MIN_OPSET = 18
MAX_EXPORTER_OPSET = 24
DEFAULT_OPSET = 18
MAX_SIZE = 8192
MAX_BATCH = 1024
PARTS = ('backbone', 'model', 'features')
INPUT_NAME = 'images'
VALID_SIZES_KEY = 'mmswin.valid_sizes'


def swin_backbone_of(module: nn.Module) -> Optional[nn.Module]:
    """The mmswin backbone ``module`` is or holds as ``.backbone``; None if neither."""
    from mmswin.models.backbones.swin import SwinBackboneBase

    for candidate in (module, getattr(module, 'backbone', None)):
        if isinstance(candidate, SwinBackboneBase):
            return candidate
    return None


def min_dynamic_size(module: nn.Module) -> int:
    """The smallest height and width the exported graph is valid for.

    Every stage's map must be at least 2 tokens high and wide (``torch.export`` keeps a
    map of 1 apart from larger ones). A Swin V2 stage also attends in windows of the map's
    side where that side is at most its window (a different graph), so for V2 every
    stage's map must be larger than its window.
    """
    from mmswin.models.backbones.swin_v2 import SwinV2Backbone

    backbone = swin_backbone_of(module)
    if backbone is None:
        return 32 + 1
    stride = backbone.patch_size
    minimum = stride * 2 ** (len(backbone.stages) - 1) + 1
    if isinstance(backbone, SwinV2Backbone):
        for i, stage in enumerate(backbone.stages):
            minimum = max(minimum, stride * 2**i * stage.window_size + 1)
    return minimum


def padding_example_size(module: nn.Module, start: int) -> int:
    """The first size from ``start`` on that needs window padding in every stage (and is at
    least :func:`min_dynamic_size`): the example an export traces should take no shortcut
    that only a size without padding allows."""
    backbone = swin_backbone_of(module)
    size = max(start, min_dynamic_size(module))
    if backbone is None:
        return size
    windows = [stage.window_size for stage in backbone.stages]
    while True:
        side = -(-size // backbone.patch_size)
        needs = []
        for window in windows:
            needs.append(side % window != 0)
            side = -(-side // 2)
        if all(needs):
            return size
        size += 1


@contextlib.contextmanager
def _export_context() -> Iterator[None]:
    """How ``torch.export`` must see the model for one program to serve every size.

    ``backed_size_oblivious``: otherwise it assumes that a size it saw above 1 (the
    windows of a stage, a broadcast dim) never is 1, and the program's guards reject
    every input whose last stage fits in one window. SDPA's math backend: the fused
    kernels' checks guard that batch x windows is not 1 (rejecting 1x3x97x131); the
    exporters decompose the attention to the same products either way.
    """
    import torch.fx.experimental._config as fx_config
    from torch.nn.attention import SDPBackend, sdpa_kernel

    with fx_config.patch(backed_size_oblivious=True), sdpa_kernel(SDPBackend.MATH):
        yield


def export_program(
    module: nn.Module, example: Tensor, dynamic: bool = True, min_size: Optional[int] = None
) -> torch.export.ExportedProgram:
    """``torch.export.export`` of ``module`` (in eval mode) on ``example`` ``[B, C, H, W]``;
    with ``dynamic``, batch in ``[1, MAX_BATCH]`` and height and width in ``[min_size,
    MAX_SIZE]`` (default :func:`min_dynamic_size`) are symbolic; the example's batch must
    then be at least 2."""
    module = module.eval()
    dynamic_shapes = None
    if dynamic:
        low = min_size or min_dynamic_size(module)
        dims = {
            0: torch.export.Dim('batch', min=1, max=MAX_BATCH),
            2: torch.export.Dim('height', min=low, max=MAX_SIZE),
            3: torch.export.Dim('width', min=low, max=MAX_SIZE),
        }
        if example.shape[0] < 2:
            raise ValueError('a dynamic export needs an example batch of at least 2 (torch.export fixes a dim of 1)')
        dynamic_shapes = (dims,)
    with torch.no_grad(), _export_context():
        return torch.export.export(module, (example,), dynamic_shapes=dynamic_shapes, strict=False)


def export_onnx(
    module: nn.Module,
    example: Tensor,
    path: str,
    opset: int = DEFAULT_OPSET,
    dynamic: bool = True,
    output_names: Optional[Sequence[str]] = None,
    min_size: Optional[int] = None,
    program: Optional[torch.export.ExportedProgram] = None,
    optimize: bool = True,
) -> None:
    """Write ``module`` (:func:`make_exportable`) as one ONNX file at ``path`` (weights
    inside; atomically: on any error no file, or the old one, is left there). Input
    ``images`` ``[B, C, H, W]``, dynamic batch, height and width with ``dynamic``
    (:func:`export_program`; ``program``: one it returned for this module, to reuse).
    ``optimize``: run the ONNX optimizer (constant folding, fusion) on the graph."""
    if program is None:
        program = export_program(make_exportable(module), example, dynamic, min_size)
    onnx_program = torch.onnx.export(
        program,
        (example,),
        input_names=[INPUT_NAME],
        output_names=list(output_names) if output_names else None,
        opset_version=opset,
        dynamo=True,
        external_data=False,
        optimize=optimize,
        verbose=False,
    )
    if dynamic:
        # The range the graph is valid for, in the file (a Swin V2 file is wrong below it).
        low = min_size or min_dynamic_size(module)
        onnx_program.model.metadata_props[VALID_SIZES_KEY] = f'batch 1..{MAX_BATCH}, height and width {low}..{MAX_SIZE}'
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with atomic_file(path) as partial:
        onnx_program.save(partial, external_data=False)


def onnxruntime_session(path: str, threads: Optional[int] = None) -> onnxruntime.InferenceSession:
    """A CPU ONNX Runtime session of the file at ``path``."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads or torch.get_num_threads()
    options.log_severity_level = 3
    return onnxruntime.InferenceSession(path, options, providers=['CPUExecutionProvider'])


def max_onnxruntime_opset() -> int:
    """The highest default-domain opset this ONNX Runtime runs (probed on a one-node model)."""
    import onnx
    import onnxruntime
    from onnx import TensorProto, helper

    tensor = helper.make_tensor_value_info('x', TensorProto.FLOAT, [1])
    out = helper.make_tensor_value_info('y', TensorProto.FLOAT, [1])
    graph = helper.make_graph([helper.make_node('Identity', ['x'], ['y'])], 'probe', [tensor], [out])
    for opset in range(onnx.defs.onnx_opset_version(), MIN_OPSET - 1, -1):
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid('', opset)], ir_version=8)
        try:
            onnxruntime.InferenceSession(model.SerializeToString(), providers=['CPUExecutionProvider'])
        except Exception:  # ORT refuses an opset it does not know with an unspecific error type
            continue
        return opset
    return MIN_OPSET - 1


@dataclass(frozen=True)
class SizeCheck:
    """One input size run in ONNX Runtime: the largest absolute difference from PyTorch
    eager over all outputs (``inf`` where a shape differs) and the largest absolute
    eager value, for scale."""

    shape: tuple[int, ...]
    max_abs_diff: float
    max_abs_value: float
    output_shapes: tuple[tuple[int, ...], ...]

    def line(self) -> str:
        size = 'x'.join(str(s) for s in self.shape)
        return f'{size:>18}: max |ORT - PyTorch| = {self.max_abs_diff:.2e} (outputs up to {self.max_abs_value:.2e})'


def flat_outputs(outputs) -> list[Tensor]:
    """A module's outputs (a tensor, or nested tuples / lists of tensors) as a flat list."""
    if isinstance(outputs, Tensor):
        return [outputs]
    return [tensor for item in outputs for tensor in flat_outputs(item)]


def compare_in_onnxruntime(
    path: str,
    module: nn.Module,
    shapes: Sequence[Sequence[int]],
    dtype: torch.dtype = torch.float32,
    reference_dtype: Optional[torch.dtype] = None,
    seed: int = 0,
    session: Optional[onnxruntime.InferenceSession] = None,
) -> list[SizeCheck]:
    """Run the ONNX file at each ``[B, C, H, W]`` of ``shapes`` (seeded normal inputs, in
    ``dtype``) and compare with ``module`` in eager fp32 (or ``reference_dtype``: autocast to
    it on CPU), output by output."""
    import ml_dtypes
    import numpy as np

    session = session or onnxruntime_session(path)
    input_name = session.get_inputs()[0].name
    generator = torch.Generator().manual_seed(seed)
    checks = []
    module = module.eval()
    for shape in shapes:
        x = torch.randn(*shape, generator=generator)
        with torch.no_grad():
            if reference_dtype is None:
                expected = [t.float() for t in flat_outputs(module(x))]
            else:
                with torch.autocast('cpu', dtype=reference_dtype):
                    expected = [t.float() for t in flat_outputs(module(x))]
        feed = x.to(dtype).numpy() if dtype != torch.bfloat16 else x.numpy().astype(ml_dtypes.bfloat16)
        got = session.run(None, {input_name: feed})
        diff = 0.0
        for actual, reference in zip(got, expected):
            actual = torch.from_numpy(np.asarray(actual, dtype=np.float32))
            if tuple(actual.shape) != tuple(reference.shape):
                diff = float('inf')
                continue
            diff = max(diff, float((actual - reference).abs().max()))
        if len(got) != len(expected):
            diff = float('inf')
        checks.append(
            SizeCheck(
                tuple(int(s) for s in shape),
                diff,
                max(float(t.abs().max()) for t in expected),
                tuple(tuple(int(s) for s in np.shape(o)) for o in got),
            )
        )
    return checks


@dataclass(frozen=True)
class LowPrecisionCheck:
    """A ``dtype`` export run in ONNX Runtime: per size, against PyTorch autocast to that
    dtype and against fp32 eager; ``error`` (one line) where ONNX Runtime cannot run it."""

    dtype: torch.dtype
    against_autocast: tuple[SizeCheck, ...] = ()
    against_fp32: tuple[SizeCheck, ...] = ()
    error: Optional[str] = None


def check_low_precision(
    module: nn.Module, example: Tensor, dtype: torch.dtype, shapes: Sequence[Sequence[int]], path: str
) -> LowPrecisionCheck:
    """Export a ``dtype`` copy of ``module`` (weights and input in ``dtype``) to ``path``
    and run it in ONNX Runtime on the CPU at ``shapes``, against ``module`` under
    ``torch.autocast('cpu', dtype)`` and in fp32."""
    low = copy.deepcopy(module).to(dtype)
    export_onnx(low, example.to(dtype), path)
    try:
        session = onnxruntime_session(path)
    except Exception as error:  # ORT has no kernel for some node in this dtype
        return LowPrecisionCheck(dtype, error=' '.join(str(error).split())[:300])
    try:
        autocast = compare_in_onnxruntime(path, module, shapes, dtype, reference_dtype=dtype, session=session)
        fp32 = compare_in_onnxruntime(path, module, shapes, dtype, session=session)
    except Exception as error:
        return LowPrecisionCheck(dtype, error=' '.join(str(error).split())[:300])
    return LowPrecisionCheck(dtype, tuple(autocast), tuple(fp32))


class AdaptiveAvgPool2dAsProducts(nn.Module):
    """``nn.AdaptiveAvgPool2d`` as two products with averaging matrices, built from the
    input's size by tensor ops: the same bins (``floor(i * n / k)`` to ``ceil((i + 1) * n /
    k)``), so the same values up to rounding, and one ONNX graph for every input size
    (the exporter's own decomposition of adaptive pooling holds only at the traced size)."""

    def __init__(self, output_size):
        super().__init__()
        self.output_size = (output_size, output_size) if isinstance(output_size, int) else tuple(output_size)

    @staticmethod
    def averaging(size, bins: int, like: Tensor) -> Tensor:
        """``[bins, size]``: row ``i`` averages positions ``floor(i * size / bins)`` to
        ``ceil((i + 1) * size / bins) - 1``."""
        index = torch.arange(bins, device=like.device)[:, None]
        start = index * size // bins
        stop = ((index + 1) * size + bins - 1) // bins
        position = torch.arange(size, device=like.device)[None, :]
        inside = (position >= start) & (position < stop)
        return inside.to(like.dtype) / (stop - start).to(like.dtype)

    def forward(self, x: Tensor) -> Tensor:
        size = x.shape[-2:]
        out_h, out_w = (n if k is None else k for k, n in zip(self.output_size, size))
        rows = self.averaging(size[0], out_h, x)  # [out_h, H]
        cols = self.averaging(size[1], out_w, x)  # [out_w, W]
        return torch.matmul(torch.matmul(rows, x), cols.transpose(0, 1))


def make_exportable(module: nn.Module) -> nn.Module:
    """``module``, or a copy of it in which the layers whose exported graph would hold only
    at the traced size (``nn.AdaptiveAvgPool2d``, e.g. in UperNet's pyramid pooling) are
    replaced by equivalents that hold at every size. ``module`` itself is not changed."""
    if not any(isinstance(child, nn.AdaptiveAvgPool2d) for child in module.modules()):
        return module
    module = copy.deepcopy(module)
    for parent in list(module.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, nn.AdaptiveAvgPool2d):
                setattr(parent, name, AdaptiveAvgPool2dAsProducts(child.output_size))
    return module


class SegmentorLogits(nn.Module):
    """An MMSegmentation encoder-decoder as one function: normalised images ``[B, 3, H,
    W]`` -> decode-head logits resized to the input, ``[B, num_classes, H, W]`` (what its
    ``predict`` takes the arg-max of; the auxiliary head is left out)."""

    def __init__(self, segmentor: nn.Module):
        super().__init__()
        self.segmentor = segmentor

    @property
    def backbone(self) -> nn.Module:
        return self.segmentor.backbone

    def forward(self, images: Tensor) -> Tensor:
        import torch.nn.functional as F

        head = self.segmentor.decode_head
        logits = head.forward(self.segmentor.extract_feat(images))
        return F.interpolate(logits, size=images.shape[2:], mode='bilinear', align_corners=head.align_corners)


class DetectorDenseOutputs(nn.Module):
    """The part of an MMDetection detector that plain ONNX serves: normalised images ->
    the neck's maps, then the first dense head's raw outputs per level (for a two-stage
    detector the RPN's objectness and box deltas, for a one-stage one its class scores and
    box deltas), before decoding, NMS and RoI heads."""

    def __init__(self, detector: nn.Module):
        super().__init__()
        self.detector = detector
        self.head_name = next((name for name in ('rpn_head', 'bbox_head') if hasattr(detector, name)), None)

    @property
    def backbone(self) -> nn.Module:
        return self.detector.backbone

    def forward(self, images: Tensor) -> tuple[Tensor, ...]:
        features = self.detector.extract_feat(images)
        outputs = tuple(features)
        if self.head_name is not None:
            scores, deltas = getattr(self.detector, self.head_name)(features)[:2]
            outputs = outputs + tuple(scores) + tuple(deltas)
        return outputs

    def output_names(self) -> list[str]:
        levels = self.num_levels()
        names = [f'feature{i}' for i in range(levels)]
        if self.head_name is not None:
            names += [f'scores{i}' for i in range(levels)] + [f'deltas{i}' for i in range(levels)]
        return names

    def num_levels(self) -> int:
        neck = getattr(self.detector, 'neck', None)
        if neck is not None and hasattr(neck, 'num_outs'):
            return neck.num_outs
        return len(self.detector.backbone.out_indices)


def backbone_output_names(module: nn.Module) -> Optional[list[str]]:
    """``stage{i}`` for each stage an mmswin backbone returns; None for other modules."""
    backbone = swin_backbone_of(module)
    if backbone is not module or backbone is None:
        return None
    return [f'stage{i}' for i in backbone.out_indices]


def check_sizes(height: int, width: int, batch: int, min_size: int) -> list[tuple[int, int, int]]:
    """(B, H, W) the tool checks an export at: the export size, then two others of batch 1
    (one smaller, one larger, both sizes odd, so padded in most stages)."""
    smaller = (1, max(min_size, height * 3 // 5) | 1, max(min_size, width * 4 // 5) | 1)
    larger = (1, (height + 37) | 1, (width + 53) | 1)
    return [(batch, height, width), smaller, larger]


# --- Config parts ---------------------------------------------------------------------------

DETECTOR_PART_HINT = (
    "export --part features (backbone + neck + the first dense head's raw outputs, e.g. Mask R-CNN's "
    'FPN maps and RPN scores and deltas) or --part backbone; for the full detector with NMS and RoIAlign '
    'use mmdeploy with this config (docs/deployment.md)'
)


def part_problem(cfg, part: str) -> Optional[str]:
    """Why ``part`` of the model ``cfg`` describes cannot be exported with plain ONNX, with
    what to use instead; None where it can. Reads the config only (nothing is built)."""
    if part not in PARTS:
        return f'--part must be one of {", ".join(PARTS)}, got {part!r}'
    model = cfg.get('model') or {}
    model_type = str(model.get('type', ''))
    if 'backbone' not in model:
        return f"the config's model ({model_type or 'no type'}) has no backbone to export"
    scope = cfg.get('default_scope')
    if part == 'model' and scope == 'mmdet':
        return f'--part model cannot export {model_type} with plain ONNX (its NMS and RoI heads); ' + DETECTOR_PART_HINT
    if part == 'model' and model_type not in ('EncoderDecoder', 'CascadeEncoderDecoder'):
        return f'--part model exports MMSegmentation encoder-decoders, not {model_type}; use --part backbone'
    if part == 'features':
        if scope != 'mmdet':
            return '--part features is for detectors; for a segmentor use --part model (image -> logits) or backbone'
        if 'neck' not in model or not ('rpn_head' in model or 'bbox_head' in model):
            return f'--part features needs a detector with a neck and a dense head; {model_type} has not both; ' + (
                'use --part backbone'
            )
    return None


def build_part(cfg, checkpoint: Optional[str], part: str) -> tuple[nn.Module, Optional[list[str]]]:
    """The module to export for ``part`` of the config's model, in eval mode on the CPU,
    with the checkpoint's weights (random ones without), and its output names."""
    from mmengine.registry import DefaultScope

    from mmswin.engine import setup_runner

    setup_runner.register_scope(cfg)
    setup_runner.adapt_to_hardware(cfg, 'none')  # SyncBN -> BN
    with DefaultScope.overwrite_default_scope(cfg.default_scope):
        if cfg.default_scope == 'mmdet':
            from mmdet.apis import init_detector

            model = init_detector(cfg, checkpoint, device='cpu')
        else:
            from mmseg.apis import init_model

            model = init_model(cfg, checkpoint, device='cpu')
    model.eval()
    if part == 'backbone':
        return model.backbone, backbone_output_names(model.backbone)
    if part == 'model':
        return SegmentorLogits(model).eval(), ['logits']
    features = DetectorDenseOutputs(model).eval()
    return features, features.output_names()
