"""The one FLOP counter: multiply-adds of the work a forward pass really runs.

:func:`count_flops` runs the model once, eagerly, under a
:class:`~torch.utils._python_dispatch.TorchDispatchMode` that sees every ATen op the
chosen path calls, so it counts what the default path does (on a CPU in fp32 the
chunked block kernels, whose padded tokens get no output projection and no MLP), not
what a traced graph of another path would do. Any model can be counted the same way,
MMDetection's and MMSegmentation's ``SwinTransformer`` included.

The rules are MMEngine's ``FlopAnalyzer`` defaults (the convention of the Swin paper
and of OpenMMLab's tables), applied to the ops eager code dispatches:

* matrix products (``mm``, ``addmm``, ``bmm``, ``baddbmm``, in place or ``out=``):
  ``M * K * N`` per matrix;
* convolutions: ``batch * prod(weight shape) * prod(output spatial size)`` (bias not
  counted);
* fused attention (``scaled_dot_product_attention`` kernels): its two batched products;
* layer and group norm: 5 per element with affine parameters (4 without); batch norm
  in eval mode: 2 per element (1 without);
* nearest / bilinear upsampling: 1 / 4 per output element; adaptive average pooling:
  1 per input element; ``grid_sampler``: 4 per output element.

Element-wise ops (adds, GELU, softmax) are not counted. With ``compute=False`` (the
default) the counted ops are not computed: each returns zeros of its output's shape,
so counting a full-size model costs about as much as its uncounted element-wise work.
No model here takes a data-dependent branch or shape in the counted forward pass; one
that did would need ``compute=True``.
"""

from __future__ import annotations

import math
from typing import Callable, Optional

import torch
from torch import Tensor, nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_map

__all__ = ['COUNTING_RULES', 'FlopCounter', 'count_flops']

# Names the rules and what is counted; a change that changes any count changes it too.
COUNTING_RULES = 'aten dispatch, FlopAnalyzer rules, v1'


def _matmul(args, out) -> int:  # mm(a, b), bmm(a, b)
    a, b = args[0], args[1]
    return math.prod(a.shape) * b.shape[-1]


def _add_matmul(args, out) -> int:  # addmm(self, a, b), baddbmm(self, a, b)
    a, b = args[1], args[2]
    return math.prod(a.shape) * b.shape[-1]


def _convolution(args, out) -> int:  # convolution(input, weight, bias, stride, padding, dilation, transposed, ...)
    x, weight, transposed = args[0], args[1], args[6]
    spatial = (x if transposed else out).shape[2:]
    return x.shape[0] * math.prod(weight.shape) * math.prod(spatial)


def _attention(args, out) -> int:  # q [..., L, E], k [..., S, E], v [..., S, Ev]
    q, k, v = args[0], args[1], args[2]
    return math.prod(q.shape[:-1]) * k.shape[-2] * (q.shape[-1] + v.shape[-1])


def _affine_norm(weight_index: int) -> Callable:
    def count(args, out) -> int:
        affine = len(args) > weight_index and args[weight_index] is not None
        return args[0].numel() * (5 if affine else 4)

    return count


def _batch_norm(training_index: Optional[int]) -> Callable:
    """``training_index``: where the op's ``training`` flag is; None for an eval-only op."""

    def count(args, out) -> int:
        affine = args[1] is not None
        if training_index is not None and args[training_index]:
            return args[0].numel() * (5 if affine else 4)
        return args[0].numel() * (2 if affine else 1)

    return count


def _per_output(scale: int) -> Callable:
    return lambda args, out: scale * out.numel()


def _per_input(args, out) -> int:
    return args[0].numel()


# ATen op (overload packet name) -> multiply-adds; ``out`` is the op's (first) output.
FLOP_RULES: dict[str, Callable] = {
    'mm': _matmul,
    'bmm': _matmul,
    'addmm': _add_matmul,
    'addmm_': _add_matmul,
    'baddbmm': _add_matmul,
    'baddbmm_': _add_matmul,
    'convolution': _convolution,
    '_convolution': _convolution,
    '_scaled_dot_product_flash_attention_for_cpu': _attention,
    '_scaled_dot_product_flash_attention': _attention,
    '_scaled_dot_product_efficient_attention': _attention,
    '_scaled_dot_product_cudnn_attention': _attention,
    '_scaled_dot_product_fused_attention_overrideable': _attention,
    'native_layer_norm': _affine_norm(2),
    'native_group_norm': _affine_norm(1),
    '_native_batch_norm_legit_no_training': _batch_norm(None),
    '_batch_norm_no_update': _batch_norm(None),
    '_native_batch_norm_legit': _batch_norm(5),
    'native_batch_norm': _batch_norm(5),
    '_batch_norm_with_update': _affine_norm(1),  # always trains
    'upsample_nearest2d': _per_output(1),
    'upsample_bilinear2d': _per_output(4),
    '_adaptive_avg_pool2d': _per_input,
    'adaptive_avg_pool2d': _per_input,
    'grid_sampler_2d': _per_output(4),
}


def _meta(value):
    return value.to('meta') if isinstance(value, Tensor) else value


def _zeros_like_meta(meta: Tensor, device: torch.device) -> Tensor:
    return torch.empty_strided(meta.shape, meta.stride(), dtype=meta.dtype, device=device).zero_()


class FlopCounter(TorchDispatchMode):
    """Adds up multiply-adds of the ops dispatched while active (see the module docstring).

    ``total``: all of them; ``by_scope``: per name in ``scopes`` (a list the caller keeps
    as a stack of the names active now: each op counts for every name on it).
    ``compute=False``: the counted ops are not computed but return zeros of their
    output's shape and strides; ``True``: everything runs as without the counter.
    """

    def __init__(self, compute: bool = False):
        super().__init__()
        self.compute = compute
        self.total = 0
        self.by_scope: dict[str, int] = {}
        self.scopes: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = func.overloadpacket.__name__
        rule = FLOP_RULES.get(name)
        if rule is None:
            return func(*args, **kwargs)
        if self.compute:
            out = func(*args, **kwargs)
        else:
            out = self._placeholder(func, name, args, kwargs)
        first = out[0] if isinstance(out, (tuple, list)) else out
        self._add(int(rule(args, first)))
        return out

    @staticmethod
    def _placeholder(func, name: str, args, kwargs):
        """What ``func`` would return, filled with zeros, without computing it."""
        if 'out' in kwargs:
            return kwargs['out'].zero_()
        if name.endswith('_'):  # in place: self += product; leave self as it was
            return args[0]
        device = next(value.device for value in args if isinstance(value, Tensor))
        meta_out = func(*tree_map(_meta, args), **tree_map(_meta, kwargs))
        return tree_map(lambda t: _zeros_like_meta(t, device) if isinstance(t, Tensor) else t, meta_out)

    def _add(self, flops: int) -> None:
        self.total += flops
        for scope in set(self.scopes):
            self.by_scope[scope] = self.by_scope.get(scope, 0) + flops


def count_flops(model: nn.Module, *inputs, compute: bool = False) -> dict[str, int]:
    """Multiply-adds of ``model(*inputs)`` without gradients, per module name.

    ``''`` is the whole call; ``'backbone'`` the module ``model.backbone``, and so on for
    every submodule that ran (its count includes its children's). The model runs as it
    is (its mode, device and dtype are the caller's); ``compute``: see :class:`FlopCounter`.
    """
    counter = FlopCounter(compute=compute)

    def leave(module, args, output) -> None:  # a forward hook that returns None keeps the output
        counter.scopes.pop()

    handles = []
    for module_name, module in model.named_modules():
        handles.append(module.register_forward_pre_hook(lambda m, a, n=module_name: counter.scopes.append(n)))
        handles.append(module.register_forward_hook(leave))
    try:
        with torch.no_grad(), counter:
            model(*inputs)
    finally:
        for handle in handles:
            handle.remove()
    return {'': counter.total, **{name: flops for name, flops in counter.by_scope.items() if name}}
