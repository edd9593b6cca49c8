"""Decode any image file a user may hand us into an RGB uint8 array, or say why it cannot be used."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm")
MAX_PIXELS = 100_000_000  # above this a file is treated as a decompression bomb, not decoded


class UnusableImage(Exception):
    """The file is not a usable image; the message is the reason that goes into a report."""


def is_image_file(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES


def test_images(folder: Path) -> list[Path]:
    """The image files of a test set's folder, sorted; one line when there are none."""
    from srlab.errors import SrlabError

    images = sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not images:
        raise SrlabError(f"{folder}: no test images")
    return images


def load_rgb(path: str | Path, max_pixels: int = MAX_PIXELS) -> tuple[np.ndarray, str | None]:
    """Return (HxWx3 uint8 array, conversion note or None). EXIF orientation is applied."""
    path = Path(path)
    if path.stat().st_size == 0:
        raise UnusableImage("empty file")
    try:
        with warnings.catch_warnings():
            # Pillow warns from 89.5 megapixels; the limit in force is ours (max_pixels), checked
            # from the header before any pixel is decoded. Pillow's own error, at twice its
            # warning, still refuses larger files when opening them.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                if im.width * im.height > max_pixels:
                    raise UnusableImage(f"{im.width}x{im.height} pixels is over the limit of {max_pixels}")
                mode = im.mode
                im = ImageOps.exif_transpose(im)
                im.load()
    except UnusableImage:
        raise
    except Image.DecompressionBombError as exc:
        raise UnusableImage(f"decompression bomb: {exc}") from None
    except (OSError, SyntaxError, ValueError) as exc:  # PIL's ways of saying "not an image / truncated"
        raise UnusableImage(f"cannot decode: {exc}") from None
    return _to_rgb(im), (None if mode == "RGB" else f"converted from {mode}")


def _to_rgb(im: Image.Image) -> np.ndarray:
    if im.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        # 16-bit and 32-bit grey: scale the full range down to 8 bits instead of clipping
        wide = np.asarray(im, dtype=np.float64)
        top = 65535.0 if im.mode.startswith("I;16") or wide.max() > 255 else 255.0
        grey = np.clip(np.rint(wide / top * 255.0), 0, 255).astype(np.uint8)
        return np.repeat(grey[..., None], 3, axis=2)
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        # composite on white: transparent pixels have arbitrary colours underneath
        im = im.convert("RGBA")
        canvas = Image.new("RGBA", im.size, (255, 255, 255, 255))
        im = Image.alpha_composite(canvas, im)
    return np.ascontiguousarray(np.asarray(im.convert("RGB"), dtype=np.uint8))


def save_png(path: str | Path, rgb: np.ndarray) -> None:
    from srlab.fileio import atomic_path

    with atomic_path(path) as tmp:
        Image.fromarray(rgb).save(tmp, format="PNG")
