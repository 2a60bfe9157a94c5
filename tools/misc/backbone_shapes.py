"""Print SwinBackbone's multi-scale output shapes for a few input sizes that are not
multiples of 32 or of the window: a quick check that the install works."""

import argparse
import time

import torch

from mmswin.models import SwinBackbone


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('--arch', default='tiny', help='tiny | small | base | large')
    parser.add_argument('--threads', type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = SwinBackbone(arch=args.arch).eval()
    print(f'SwinBackbone(arch={args.arch!r}): {sum(p.numel() for p in model.parameters()) / 1e6:.1f} M parameters')
    for height, width in ((97, 131), (224, 224), (333, 501), (512, 683)):
        start = time.perf_counter()
        with torch.no_grad():
            outs = model(torch.randn(1, 3, height, width))
        shapes = ', '.join('x'.join(map(str, o.shape)) for o in outs)
        print(f'  input 1x3x{height}x{width}: {shapes}  ({time.perf_counter() - start:.2f} s)')


if __name__ == '__main__':
    main()
