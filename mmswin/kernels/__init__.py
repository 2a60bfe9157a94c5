"""The one place that decides how a Swin block runs, and the CPU fast paths it may pick.

Every block has one definition, the whole-tensor formulation
(:meth:`mmswin.models.layers.swin_block.SwinBlock.forward_reference`: all windows of the
batch at once, attention through ``scaled_dot_product_attention``). It is what runs on
every non-CPU device, under autocast (but for bf16 inference on a CPU with native bf16),
in any dtype but fp32, and whenever the code is traced, compiled or exported. On a CPU
two kernels of :mod:`.cpu_chunked` compute the same block chunk by chunk of windows:

* ``'cpu_chunked_inference'``: no autograd graph is needed and no dropout or stochastic
  depth is active; the block's output is written into its input. It also serves bf16
  autocast on CPUs with native bf16 (``amx_bf16`` or ``avx512_bf16``), the one
  autocast case it was tuned on (docs/benchmark.md has the figures).
* ``'cpu_chunked_training'``: one autograd node per block (stochastic depth allowed,
  dropout not).

:func:`choose_block_impl` is a pure function of a :class:`BlockQuery`, so the choice
can be asked and tested for any device, CUDA included, on a machine without it. Nothing
outside this package imports :mod:`.cpu_chunked` or :mod:`.cpu_layout`.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING, Optional

import torch
from torch import Tensor

if TYPE_CHECKING:
    from mmswin.models.layers.swin_block import SwinBlock
    from mmswin.models.layers.window_layout import WindowLayout

BLOCK_IMPLS = ('auto', 'reference', 'cpu_chunked')
ATTN_IMPLS = ('auto', 'sdpa', 'eager')
REFERENCE = 'reference'
CPU_CHUNKED_INFERENCE = 'cpu_chunked_inference'
CPU_CHUNKED_TRAINING = 'cpu_chunked_training'


def check_block_impl(block_impl: str) -> None:
    """Raise a ValueError naming the choices unless ``block_impl`` is one of them."""
    if block_impl not in BLOCK_IMPLS:
        raise ValueError(f'block_impl must be one of {BLOCK_IMPLS}, got {block_impl!r}')


def check_attn_impl(attn_impl: str) -> None:
    """Raise a ValueError naming the choices unless ``attn_impl`` is one of them."""
    if attn_impl not in ATTN_IMPLS:
        raise ValueError(f'attn_impl must be one of {ATTN_IMPLS}, got {attn_impl!r}')


def choose_attention_impl(requested: str, device_type: str, needs_grad: bool, transforming: bool) -> str:
    """How the whole-tensor block computes window attention: ``'sdpa'``
    (``scaled_dot_product_attention``) or ``'eager'`` (explicit products and softmax).

    ``'auto'`` takes SDPA, except in eager CPU code whose attention needs a gradient:
    there SDPA's CPU kernels cannot give the bias a gradient and fall back to an unfused
    formulation (docs/benchmark.md compares the two).
    """
    check_attn_impl(requested)
    if requested != 'auto':
        return requested
    if device_type == 'cpu' and needs_grad and not transforming:
        return 'eager'
    return 'sdpa'


def is_transforming(x: Optional[Tensor] = None) -> bool:
    """True while the code is traced (``torch.jit.trace``, ONNX export), compiled
    (``torch.compile``) or exported (``torch.export``), or when ``x`` is not a plain
    tensor (the fake and functional tensors those tools run on). Only plain eager code
    may take data-dependent branches, Python loops over tensors or custom kernels."""
    if torch.jit.is_tracing() or torch.jit.is_scripting() or torch.compiler.is_compiling():
        return True
    if torch.onnx.is_in_onnx_export():
        return True
    return x is not None and type(x) not in (Tensor, torch.nn.Parameter)


@dataclass(frozen=True)
class BlockQuery:
    """What the choice of a block's implementation depends on.

    ``dtype``/``param_dtype``: of the tokens and of the block's weights; ``autocast``:
    autocast is on for ``device_type``, computing in ``autocast_dtype``; ``native_bf16``:
    the CPU has bf16 instructions (:func:`cpu_has_native_bf16`); ``needs_grad``: autograd
    will record the block; ``dropout``: a dropout layer is active (training mode, rate >
    0); ``drop_path``: stochastic depth is active; ``transforming``: see
    :func:`is_transforming`.
    """

    requested: str
    device_type: str
    dtype: torch.dtype
    param_dtype: torch.dtype
    autocast: bool
    autocast_dtype: Optional[torch.dtype]
    native_bf16: bool
    needs_grad: bool
    dropout: bool
    drop_path: bool
    transforming: bool

    @classmethod
    def of(cls, block: SwinBlock, x: Tensor) -> BlockQuery:
        needs_grad = torch.is_grad_enabled() and (x.requires_grad or any(p.requires_grad for p in block.parameters()))
        low_precision = autocast_dtype(x.device.type)
        transforming = is_transforming(x)
        return cls(
            requested=block.block_impl,
            device_type=x.device.type,
            dtype=x.dtype,
            param_dtype=block.norm1.weight.dtype,
            autocast=low_precision is not None,
            autocast_dtype=low_precision,
            native_bf16=not transforming and x.device.type == 'cpu' and cpu_has_native_bf16(),
            needs_grad=needs_grad,
            dropout=block.dropout_active(),
            drop_path=block.training and block.drop_path.drop_prob > 0,
            transforming=transforming,
        )


def autocast_dtype(device_type: str) -> Optional[torch.dtype]:
    """The dtype autocast computes in on ``device_type``, None where it is off (or where
    autocast does not know the device, such as ``'meta'``)."""
    try:
        enabled = torch.is_autocast_enabled(device_type)
    except RuntimeError:
        return None
    return torch.get_autocast_dtype(device_type) if enabled else None


def choose_block_impl(query: BlockQuery) -> str:
    """:data:`REFERENCE`, :data:`CPU_CHUNKED_INFERENCE` or :data:`CPU_CHUNKED_TRAINING`.

    ``'auto'`` takes a CPU kernel only where it was built and measured (plain eager code
    on a CPU, no dropout, fp32, or bf16 autocast inference on a CPU with native bf16)
    and the whole-tensor reference everywhere else.
    ``'reference'`` always takes the reference. ``'cpu_chunked'`` takes a CPU kernel
    or raises a ValueError saying why it cannot, never falling back silently.
    """
    check_block_impl(query.requested)
    if query.requested == REFERENCE:
        return REFERENCE
    unsupported = _why_cpu_kernels_cannot_run(query)
    if unsupported is None:
        if query.needs_grad or query.drop_path:
            return CPU_CHUNKED_TRAINING
        return CPU_CHUNKED_INFERENCE
    if query.requested == 'cpu_chunked':
        raise ValueError(
            f"block_impl='cpu_chunked' cannot run here: {unsupported}; use block_impl='auto' "
            "(or 'reference') for this case"
        )
    return REFERENCE


def _why_cpu_kernels_cannot_run(query: BlockQuery) -> Optional[str]:
    if query.device_type != 'cpu':
        return f'the tokens are on {query.device_type!r}, and the chunked kernels are CPU-only'
    if query.transforming:
        return 'the model is being traced, compiled or exported'
    if query.dropout:
        return 'dropout is active (training mode with drop_rate or attn_drop_rate > 0)'
    if query.param_dtype != torch.float32:
        return f'the weights are {query.param_dtype}; the chunked kernels take fp32 weights'
    if query.autocast:
        if query.autocast_dtype != torch.bfloat16 or not query.native_bf16:
            return (
                f'autocast to {query.autocast_dtype} is on; the chunked kernels serve only bf16 autocast, '
                'on CPUs with native bf16 (amx_bf16 or avx512_bf16)'
            )
        if query.needs_grad or query.drop_path:
            return 'autocast is on in training; under autocast the chunked kernels serve inference only'
        if query.dtype not in (torch.float32, torch.bfloat16):
            return f'the tokens are {query.dtype}; under bf16 autocast the chunked kernels take fp32 or bf16'
        return None
    if query.dtype != torch.float32:
        return f'the tokens are {query.dtype}; the chunked kernels are fp32 (or bf16 autocast) only'
    return None


@functools.lru_cache(maxsize=None)
def cpu_flags() -> frozenset:
    """The instruction-set flags of this machine's CPU (Linux ``/proc/cpuinfo``; empty
    elsewhere, so nothing is assumed)."""
    try:
        with open('/proc/cpuinfo') as cpuinfo:
            for line in cpuinfo:
                if line.startswith(('flags', 'Features')):
                    return frozenset(line.split(':', 1)[1].split())
    except OSError:
        pass
    return frozenset()


def cpu_has_native_bf16() -> bool:
    """Whether the CPU computes bf16 products natively (AMX or AVX-512 BF16)."""
    return bool({'amx_bf16', 'avx512_bf16'} & cpu_flags())


def run_block(
    block: SwinBlock, x: Tensor, layout: WindowLayout, workspace: Optional[dict] = None, owns_input: bool = False
) -> Tensor:
    """``[B, L, C]`` tokens in regular window order -> the block's output, same shape,
    by the implementation :func:`choose_block_impl` picks.

    ``workspace``: a dict the caller keeps for one forward pass of several blocks, where
    a kernel may keep scratch buffers. ``owns_input``: ``x`` is the caller's to
    overwrite (it is never overwritten otherwise).
    """
    impl = choose_block_impl(BlockQuery.of(block, x))
    if impl == REFERENCE:
        return block.forward_reference(x, layout)
    from . import cpu_chunked

    if impl == CPU_CHUNKED_TRAINING:
        return cpu_chunked.block_forward_autograd(block, x, layout)
    if not owns_input:
        x = x.clone()
    scratch = None
    if workspace is not None:
        scratch = workspace.setdefault('cpu_chunked_scratch', cpu_chunked.ScratchBuffers())
    return cpu_chunked.block_forward_in_place(
        x, layout, cpu_chunked.block_params(block), cpu_chunked.block_spec(block, layout), scratch=scratch
    )


def skips_dropped_branches(x: Tensor) -> bool:
    """Whether stochastic depth computes a residual branch only for the samples it keeps
    (:meth:`mmswin.models.layers.swin_block.DropPath.residual`): in eager CPU code, where
    the work saved is worth reading the draws back. Elsewhere every sample runs the
    branch and is multiplied by its factor (no host sync per block on an accelerator,
    no data-dependent shapes in a graph)."""
    return x.device.type == 'cpu' and not is_transforming(x)


def uses_cpu_layout_kernels(x: Tensor) -> bool:
    """Whether the one-copy CPU relayouts of :mod:`.cpu_layout` serve ``x`` (plain eager
    CPU tensors); elsewhere the plain pad / permute copies run, which trace and export."""
    return x.device.type == 'cpu' and not is_transforming(x)


def to_channels_first(x: Tensor) -> Tensor:
    """``[B, H, W, C]`` -> contiguous ``[B, C, H, W]``."""
    if uses_cpu_layout_kernels(x):
        from .cpu_layout import ChannelsFirst

        return ChannelsFirst.apply(x)
    return x.permute(0, 3, 1, 2).contiguous()


def cpu_relayout(tensor: Tensor, to_windows: bool, window_size: int, height: int, width: int) -> Tensor:
    """Grid ``[B, height, width, C]`` -> regular window order of the zero-padded grid
    ``[B, L, C]`` (``to_windows``), or back with the padding cropped, in one copy each;
    differentiable. Only for tensors :func:`uses_cpu_layout_kernels` accepts."""
    from .cpu_layout import Relayout

    return Relayout.apply(tensor, to_windows, window_size, height, width)
