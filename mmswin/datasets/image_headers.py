"""Image sizes and channel counts read from file headers, without decoding the pixels.

The data sets check every image against its annotations (or its label map) before
training; a header costs a file open and the first few kilobytes, not the whole file
and its decoding.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from PIL import Image

# EXIF orientations that rotate by 90 or 270 degrees: OpenCV's decoder applies them, so
# the pixels a pipeline sees have height and width swapped.
SWAPPING_ORIENTATIONS = (5, 6, 7, 8)
EXIF_ORIENTATION = 0x0112


@dataclass(frozen=True)
class ImageHeader:
    """What a file's header says: ``height`` and ``width`` in pixels as stored,
    ``channels`` (1 for grey, palette and integer maps), and whether its EXIF orientation
    swaps height and width when decoded."""

    height: int
    width: int
    channels: int
    swapped_when_decoded: bool = False

    def matches(self, height: int, width: int) -> bool:
        """Whether an image of ``height`` x ``width`` is this file, as stored or as decoded."""
        return (self.height, self.width) == (height, width) or (
            self.swapped_when_decoded and (self.width, self.height) == (height, width)
        )

    @property
    def size_text(self) -> str:
        return f'{self.width}x{self.height}'


def read_header(path: str) -> Optional[ImageHeader]:
    """The header of the image at ``path``, or None when it cannot be read (a missing,
    empty or broken file: named by the data set when it loads the sample)."""
    try:
        with Image.open(path) as image:
            width, height = image.size
            channels = len(image.getbands())
            orientation = image.getexif().get(EXIF_ORIENTATION, 1) if image.format == 'JPEG' else 1
    except (OSError, ValueError, SyntaxError):  # PIL's errors for bad headers (UnidentifiedImageError is an OSError)
        return None
    return ImageHeader(height, width, channels, orientation in SWAPPING_ORIENTATIONS)
