"""Worker for the DDP tests, launched by torchrun with the gloo backend on CPU.

    python -m torch.distributed.run --nproc_per_node 2 tests/tools/ddp_worker.py MODE OUT_DIR

MODE ``step``: one SGD step of SwinBackbone on one image per rank; rank 0 saves the
parameters. MODE ``frozen``/``cp``/``frozen_cp``: three steps with frozen stages
and/or activation checkpointing, find_unused_parameters=False. MODE ``drop``: three
steps at drop_path_rate 0.9 with one image per rank, so that whole local batches drop
branches. MODE ``die``: rank 1 exits mid-run while rank 0 waits in a collective. MODE
``v2``: one SGD step of SwinV2Backbone with frozen stages and activation checkpointing.

Each rank prints ``rank R: ready`` once the process group is up and ``rank R: trained``
once its steps (and rank 0's save) are done, and has a watchdog: a rank still running
after WATCHDOG_S seconds prints every thread's Python stack and exits 1, so a hang fails
the job with the place it hung instead of silently running into the test's timeout.
"""

import faulthandler
import os
import sys
from datetime import timedelta

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from mmswin.models import SwinBackbone, SwinV2Backbone  # noqa: E402

WATCHDOG_S = 150
WATCHDOG_MARK = 'Timeout ('  # how faulthandler's dump starts
ARCH = dict(embed_dims=16, depths=(2, 2, 2, 2), num_heads=(1, 2, 2, 4))


def batch_of_two() -> torch.Tensor:
    return torch.randn(2, 3, 45, 61, generator=torch.Generator().manual_seed(7))


def backbone_loss(outputs) -> torch.Tensor:
    """Mean over the batch, so DDP's gradient average equals the single-process batch."""
    return sum(o.square().mean() for o in outputs)


def make_model(v2: bool = False, **kwargs) -> torch.nn.Module:
    torch.manual_seed(0)
    if not v2:
        return SwinBackbone(arch=ARCH, **{'drop_path_rate': 0.0, **kwargs})
    model = SwinV2Backbone(arch=ARCH, **{'drop_path_rate': 0.0, **kwargs})
    with torch.no_grad():  # V2's post-norms start at 0, which would leave attention and MLP without gradient
        for name, param in model.named_parameters():
            if name.endswith(('norm1.weight', 'norm2.weight')):
                param.fill_(1.0)
    return model


def main() -> None:
    mode, out_dir = sys.argv[1], sys.argv[2]
    faulthandler.dump_traceback_later(WATCHDOG_S, exit=True)
    dist.init_process_group('gloo', timeout=timedelta(seconds=WATCHDOG_S // 2))
    rank = dist.get_rank()
    print(f'rank {rank}: ready', flush=True)
    torch.set_num_threads(1)
    if mode == 'die':
        if rank == 1:
            os._exit(3)
        dist.barrier()  # never completes: rank 1 is gone
        return
    kwargs = {
        'frozen': dict(frozen_stages=1),
        'cp': dict(with_cp=True),
        'frozen_cp': dict(frozen_stages=1, with_cp=True),
        'drop': dict(drop_path_rate=0.9),
        'step': {},
        'v2': dict(v2=True, frozen_stages=1, with_cp=True),
    }[mode]
    model = DistributedDataParallel(make_model(**kwargs), device_ids=None, find_unused_parameters=False)
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    image = batch_of_two()[rank : rank + 1]
    torch.manual_seed(rank)  # the ranks draw different drop-path decisions
    for _ in range(1 if mode in ('step', 'v2') else 3):
        optimizer.zero_grad()
        backbone_loss(model(image)).backward()
        optimizer.step()
    if rank == 0:
        torch.save(model.module.state_dict(), os.path.join(out_dir, f'{mode}.pth'))
    dist.barrier()
    print(f'rank {rank}: trained', flush=True)
    dist.destroy_process_group()


if __name__ == '__main__':
    main()
