"""Images (handout C2): the transform, decoding, and the decoded tensor cache every dataset keeps.

Map of this module:
    reid_transform            C2  ToTensor → Normalize → resize longer side to 128 → zero-pad to 128×128
    person_transform              ToTensor → Normalize → resize to exactly (H, W), no padding (stronger recipe)
    image_transform, image_shape  the transform and the `(H, W)` an `image_size` stands for
    load_image                    open and decode one file as RGB (any PIL mode), clear errors
    ImageCache, decode_images     decode once, keep `[N, 3, H, W]` float16 on a device

Input shape: an `image_size` int (default 128) is the handout's C2 padded square `[3, 128, 128]`;
a tuple `(H, W)` is the person at their own shape, resized to exactly `[3, H, W]` with no padding
(the stronger recipe: `(128, 64)` on a CPU, `(256, 128)` as Bag of Tricks and torchreid).
The CSV tables and datasets built on these are in reid/data.py.
"""
from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch import Tensor
from torchvision import transforms
from torchvision.transforms import v2

__all__ = ["IMAGE_SIZE", "IMAGENET_MEAN", "IMAGENET_STD", "CACHE_DTYPE", "PERSON_SIZE", "ImageSize", "DataError",
           "ImageDecodeError", "PadToSquare", "reid_transform", "person_transform", "image_shape",
           "image_transform", "to_rgb", "load_image", "single_thread", "ImageCache", "decode_images"]

IMAGE_SIZE = 128
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CACHE_DTYPE = torch.float16
"""float16 keeps one 3×128×128 image at 96 KiB (98,304 bytes), within the 100 KB budget
(a 3×128×64 one at 48 KiB)."""
PERSON_SIZE = (128, 64)
"""`(H, W)` of the stronger recipe's input on a CPU: the person's own 1:2 shape, no padding."""
ImageSize = int | tuple[int, int]
"""An int: the C2 padded square of that side; a tuple `(H, W)`: the person resized to exactly H×W."""


# --------------------------------------------------------------------------- errors
class DataError(ValueError):
    """A data file does not hold what the layout (../shared/DATA.md) says it should."""


class ImageDecodeError(DataError):
    """An image file exists but cannot be decoded (truncated, empty, not an image)."""


# --------------------------------------------------------------------------- C2: transform
class PadToSquare(torch.nn.Module):
    """Zero-pad a `[3, h, w]` tensor to `[3, size, size]`, centring the image.

    Centring keeps the person in the middle of the frame whatever the aspect ratio, so
    the 8×8 map entering the pooling layer is symmetric; when the padding is odd the
    extra pixel goes to the right / bottom.  The pad value is 0 *after* normalisation,
    i.e. the ImageNet mean colour, because the handout normalises before it pads.
    """

    def __init__(self, size: int = IMAGE_SIZE) -> None:
        super().__init__()
        self.size = size

    def forward(self, img: Tensor) -> Tensor:
        h, w = img.shape[-2:]
        if h > self.size or w > self.size:
            raise ValueError(f"PadToSquare got {h}×{w}, larger than {self.size}: resize first")
        left, top = (self.size - w) // 2, (self.size - h) // 2
        return torch.nn.functional.pad(img, (left, self.size - w - left, top, self.size - h - top))


def reid_transform(size: int = IMAGE_SIZE) -> Callable[[Image.Image], Tensor]:
    """C2, in the handout's order: ToTensor → Normalize → resize → pad.

    ToTensor gives RGB in [0, 1]; Normalize uses the ImageNet mean/std; the resize makes
    the longer side `size` pixels with the aspect ratio kept (antialiased bilinear);
    the pad adds zeros to reach `size`×`size` (see `PadToSquare`).

    Returns:
        A callable taking an RGB PIL image and returning a float32 tensor `[3, size, size]`.
    """
    return transforms.Compose([
        transforms.ToTensor(),
        transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD),
        v2.Resize(size=None, max_size=size, antialias=True),
        PadToSquare(size),
    ])


def person_transform(size: tuple[int, int] = PERSON_SIZE) -> Callable[[Image.Image], Tensor]:
    """The person at their own shape, as Bag of Tricks feeds them: ToTensor → Normalize → resize.

    ToTensor and Normalize are C2's; the resize makes the image exactly `size` = (H, W)
    (antialiased bilinear) with no padding, so a crop that is not H:W (Market's are 1:2,
    some course crops are not) is stretched to the recipe's shape rather than padded.

    Returns:
        A callable taking an RGB PIL image and returning a float32 tensor `[3, H, W]`.
    """
    h, w = image_shape(size)
    return transforms.Compose([
        transforms.ToTensor(),
        transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD),
        v2.Resize(size=[h, w], antialias=True),
    ])


def image_shape(image_size: ImageSize) -> tuple[int, int]:
    """`(H, W)` of the images an `image_size` gives: `128` → (128, 128), `(128, 64)` → (128, 64).

    Raises ValueError for anything but a positive int or a pair of positive ints."""
    if isinstance(image_size, (tuple, list)) and len(image_size) == 2:
        h, w = image_size
    else:
        h = w = image_size
    if any(isinstance(v, bool) or not isinstance(v, int) or v <= 0 for v in (h, w)):
        raise ValueError(f"image_size: expected a positive int (C2's padded square) or a pair (H, W) "
                         f"of positive ints (the person transform), got {image_size!r}")
    return int(h), int(w)


def image_transform(image_size: ImageSize = IMAGE_SIZE) -> Callable[[Image.Image], Tensor]:
    """The transform an `image_size` stands for: an int → `reid_transform(image_size)` (C2,
    padded square); a pair (H, W) → `person_transform((H, W))` (no padding)."""
    h, w = image_shape(image_size)
    return reid_transform(h) if isinstance(image_size, int) else person_transform((h, w))


def to_rgb(img: Image.Image) -> Image.Image:
    """Any PIL mode (L, LA, RGBA, P, CMYK, I;16, I, F, 1) → RGB; alpha is composited on black."""
    if img.mode == "RGB":
        return img
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        top = 65535.0 if img.mode.startswith("I;16") else max(float(arr.max()), 1.0)
        arr = np.clip(arr / top * 255.0, 0, 255).astype(np.uint8)
        return Image.fromarray(arr, mode="L").convert("RGB")
    if img.mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "PA"):
        rgba = img.convert("RGBA")
        black = Image.new("RGBA", rgba.size, (0, 0, 0, 255))
        return Image.alpha_composite(black, rgba).convert("RGB")
    return img.convert("RGB")


def load_image(path: str | Path) -> Image.Image:
    """Open and fully decode one image as RGB; a file that cannot be decoded raises ImageDecodeError."""
    path = Path(path)
    try:
        if path.stat().st_size == 0:
            raise ImageDecodeError(f"{path}: the file is empty (0 bytes), expected an image")
        with Image.open(path) as img:
            img.load()
            return to_rgb(img)
    except ImageDecodeError:
        raise
    except FileNotFoundError:
        raise
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
        raise ImageDecodeError(f"{path}: cannot decode the image ({err})") from err

# --------------------------------------------------------------------------- the tensor cache
@contextlib.contextmanager
def single_thread() -> Iterator[None]:
    """Run torch ops on one thread: per-image transforms on tiny tensors are ~100× slower when
    torch's thread pool competes for busy cores (measured: 4 ms vs 0.05 ms for one pad)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


class ImageCache:
    """Every image of a dataset, decoded and transformed once: `images` is `[N, 3, H, W]` float16
    (`[N, 3, 128, 128]` for C2's padded square, `[N, 3, 128, 64]` for the person at 128×64).

    The cache lives on `device` (the GPU when there is one), so epochs and evaluation
    only index it: `batch(idx)` returns `[B, 3, H, W]` float32 on the same device.
    """

    def __init__(self, paths: Sequence[Path], images: Tensor, device: str | torch.device | None = None) -> None:
        """`paths`: the N files the rows came from; `images`: their decoded tensors `[N, 3, H, W]`
        (float16, made by `_decode_checked`); `device`: where to keep them (default: where they are)."""
        if len(paths) != len(images):
            raise ValueError(f"ImageCache got {len(paths)} paths but {len(images)} images")
        self.paths = [Path(p) for p in paths]
        self.images = images if device is None else images.to(device)

    @property
    def device(self) -> torch.device:
        return self.images.device

    @property
    def image_size(self) -> tuple[int, int]:
        """`(H, W)` of the cached images: (128, 128) for C2, (128, 64) for the person at 128×64."""
        h, w = self.images.shape[-2:]
        return int(h), int(w)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> Tensor:
        """One image, `[3, H, W]` float32."""
        return self.images[i].float()

    def batch(self, idx: Tensor) -> Tensor:
        """Images at `idx` (LongTensor `[B]`), `[B, 3, H, W]` float32 on the cache's device."""
        return self.images[idx.to(self.images.device)].float()

    def to(self, device: str | torch.device) -> "ImageCache":
        return ImageCache(self.paths, images=self.images.to(device))

    @property
    def nbytes(self) -> int:
        return self.images.numel() * self.images.element_size()


def _decode_checked(paths: Sequence[Path], where: Sequence[str], skip_bad: bool,
                    device: str | torch.device, skippable: bool = True,
                    image_size: ImageSize = IMAGE_SIZE) -> tuple[ImageCache, list[int], list[str]]:
    """Decode `paths` into a cache of `[N, 3, H, W]` images (`image_transform(image_size)`);
    returns (cache, kept row positions, skipped messages).

    A file that cannot be decoded raises ImageDecodeError naming the CSV row, unless
    `skip_bad`, in which case it is left out and counted; leaving out every file is an error.
    `skippable`: whether the caller offers `skip_bad` (the error then suggests it).
    """
    transform = image_transform(image_size)
    kept, skipped = [], []
    # Filled in place: torch.stack of float16 tensors is ~50× slower on the CPU.
    images = torch.empty((len(paths), 3, *image_shape(image_size)), dtype=CACHE_DTYPE)
    with single_thread():
        for i, (path, loc) in enumerate(zip(paths, where)):
            try:
                images[len(kept)] = transform(load_image(path))
                kept.append(i)
            except ImageDecodeError as err:
                if not skip_bad:
                    hint = " (pass skip_bad=True to leave such files out)" if skippable else ""
                    raise ImageDecodeError(f"{loc}: {err}{hint}") from err
                skipped.append(f"{loc}: {err}")
    if paths and not kept:
        raise ImageDecodeError(f"none of the {len(paths)} images could be decoded; first: {skipped[0]}")
    if skipped:
        print(f"Skipped {len(skipped)} image(s) that could not be decoded; first: {skipped[0]}")
    images = images[:len(kept)].clone() if skipped else images
    return ImageCache([paths[i] for i in kept], device=device, images=images), kept, skipped


def decode_images(paths: Sequence[str | Path], image_size: ImageSize = IMAGE_SIZE,
                  device: str | torch.device = "cpu") -> ImageCache:
    """Decode image files that no CSV lists (a pool of crops, say) into an :class:`ImageCache`
    `[N, 3, H, W]` at `image_size`; a file that cannot be decoded raises ImageDecodeError naming it."""
    paths = [Path(p) for p in paths]
    cache, _, _ = _decode_checked(paths, [str(p) for p in paths], False, device, skippable=False,
                                  image_size=image_size)
    return cache
