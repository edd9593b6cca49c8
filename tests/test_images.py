"""Every kind of image a user may drop in a folder is converted to RGB, or skipped with a reason."""

import io

import numpy as np
import pytest
from PIL import Image

from srlab.data.images import MAX_PIXELS, UnusableImage, load_rgb


def _save(tmp_path, name, image, **kwargs):
    path = tmp_path / name
    image.save(path, **kwargs)
    return path


def test_rgb_passes_through_unchanged(tmp_path, photo):
    rgb, note = load_rgb(_save(tmp_path, "a.png", Image.fromarray(photo)))
    assert note is None and np.array_equal(rgb, photo)


@pytest.mark.parametrize("mode", ["L", "RGBA", "P", "CMYK", "LA"])
def test_other_modes_become_rgb(tmp_path, photo, mode):
    suffix = "jpg" if mode == "CMYK" else "png"
    path = _save(tmp_path, f"a.{suffix}", Image.fromarray(photo).convert(mode))
    rgb, note = load_rgb(path)
    assert rgb.shape == photo.shape and rgb.dtype == np.uint8
    assert note == f"converted from {mode}"


def test_16_bit_greyscale_is_scaled_not_clipped(tmp_path):
    wide = (np.linspace(0, 65535, 40 * 30).reshape(30, 40)).astype(np.uint16)
    path = _save(tmp_path, "deep.png", Image.fromarray(wide))
    rgb, _ = load_rgb(path)
    assert rgb[0, 0, 0] == 0 and rgb[-1, -1, 0] == 255
    assert 120 < rgb[15, 20, 0] < 135


@pytest.mark.parametrize(
    "orientation, turn", [(3, 2), (6, -1), (8, 1)], ids=["180", "90-clockwise", "90-anticlockwise"]
)
def test_exif_orientation_turns_the_photo_the_way_it_is_displayed(tmp_path, photo, orientation, turn):
    """EXIF 6 means "rotate 90 degrees clockwise to display": the array must come out turned that
    way, not merely with its sides swapped (lossless PNG, so the pixels can be compared exactly)."""
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = _save(tmp_path, "turned.png", Image.fromarray(photo), exif=exif.tobytes())
    rgb, _ = load_rgb(path)
    assert np.array_equal(rgb, np.rot90(photo, k=turn))  # np.rot90 turns anticlockwise for k > 0


def test_transparent_pixels_become_white(tmp_path):
    rgba = np.zeros((8, 8, 4), np.uint8)
    rgb, _ = load_rgb(_save(tmp_path, "clear.png", Image.fromarray(rgba)))
    assert (rgb == 255).all()


@pytest.mark.parametrize(
    "content, reason",
    [(b"", "empty file"), (b"this is not an image", "cannot decode"), (None, "cannot decode")],
)
def test_broken_files_are_unusable_with_a_reason(tmp_path, photo, content, reason):
    path = tmp_path / "broken.png"
    if content is None:  # a truncated PNG: the first half of a real one
        buffer = io.BytesIO()
        Image.fromarray(photo).save(buffer, format="PNG")
        content = buffer.getvalue()[: len(buffer.getvalue()) // 2]
    path.write_bytes(content)
    with pytest.raises(UnusableImage, match=reason):
        load_rgb(path)


def _png_header_only(path, width: int, height: int):
    """A PNG that claims width x height pixels but holds no pixel data: opening it reads the size,
    decoding it fails. Nothing of its claimed size is ever allocated by a loader that checks first."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")
    )
    return path


def test_the_default_bomb_limit_is_100_megapixels_checked_before_decoding(tmp_path):
    """The limit docs/guarantees.md states, at its edge: 100,000,000 pixels may be decoded (this file
    then fails as truncated), one pixel more is refused from the header alone."""
    assert MAX_PIXELS == 100_000_000
    at_limit = _png_header_only(tmp_path / "at.png", 10_000, 10_000)
    with pytest.raises(UnusableImage, match="cannot decode"):
        load_rgb(at_limit)
    over = _png_header_only(tmp_path / "over.png", 10_000, 10_001)
    with pytest.raises(UnusableImage, match="10000x10001 pixels is over the limit of 100000000"):
        load_rgb(over)
    huge = _png_header_only(tmp_path / "huge.png", 100_000, 100_000)  # past Pillow's own refusal too
    with pytest.raises(UnusableImage, match="decompression bomb|over the limit"):
        load_rgb(huge)


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "GIF", "TIFF", "BMP", "WEBP"])
def test_fuzzed_files_load_or_are_refused_never_crash(tmp_path, photo, fmt):
    """Seeded corruption of real encodings (flipped bytes, cuts, splices): an image or a reason."""
    buffer = io.BytesIO()
    Image.fromarray(photo).save(buffer, format=fmt)
    clean = buffer.getvalue()
    rng = np.random.default_rng(len(clean))
    outcomes = set()
    for case in range(60):
        data = bytearray(clean)
        kind = case % 3
        if kind == 0:  # flip a few bytes, headers included
            for at in rng.integers(0, len(data), size=rng.integers(1, 12)):
                data[at] = rng.integers(0, 256)
        elif kind == 1:  # cut short
            data = data[: rng.integers(1, len(data))]
        else:  # splice in random bytes
            at = rng.integers(0, len(data))
            data[at:at] = rng.integers(0, 256, size=rng.integers(1, 400), dtype=np.uint8).tobytes()
        path = tmp_path / f"fuzz{case}.{fmt.lower()}"
        path.write_bytes(bytes(data))
        try:
            img, _ = load_rgb(path)
        except UnusableImage as exc:
            assert str(exc) and "\n" not in str(exc)
            outcomes.add("refused")
        else:
            assert img.dtype == np.uint8 and img.ndim == 3 and img.shape[2] == 3
            outcomes.add("loaded")
    assert "refused" in outcomes  # the corruption did reach the decoder's error paths


def test_random_bytes_with_image_extensions_are_refused(tmp_path):
    rng = np.random.default_rng(1)
    for case in range(40):
        path = tmp_path / f"noise{case}{['.png', '.jpg', '.tif', '.webp'][case % 4]}"
        path.write_bytes(rng.integers(0, 256, size=rng.integers(1, 5000), dtype=np.uint8).tobytes())
        with pytest.raises(UnusableImage):
            load_rgb(path)
