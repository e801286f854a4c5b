"""The hostile-input corpus, generated (nothing is downloaded): files, kernels, forms, v2 bodies.

Each valid-but-odd image comes with the RGB picture it shows, so a test can check
that the service answers for that picture.
"""

from __future__ import annotations

import io
import json
import struct
import zlib
from collections.abc import Callable
from typing import Any

import numpy as np
from PIL import Image, ImageOps

RNG = np.random.default_rng(11)
PHOTO = RNG.integers(0, 256, (96, 128, 3), dtype=np.uint8)  # 128 wide, 96 high


# --- files ------------------------------------------------------------------------------


def save(image: Image.Image, fmt: str, **options: Any) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_claiming(width: int, height: int, rows: int) -> bytes:
    """A 1-bit PNG whose header claims width x height; only `rows` rows of data follow."""
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    data = zlib.compress(bytes(rows * (1 + (width + 7) // 8)), 9)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", data)
        + _chunk(b"IEND", b"")
    )


def over_white(rgba: np.ndarray) -> np.ndarray:
    """What the service promises for transparency: composited over white."""
    alpha = rgba[..., 3:].astype(np.float64) / 255
    return np.rint(rgba[..., :3] * alpha + 255 * (1 - alpha)).astype(np.uint8)


def animated_gif() -> tuple[bytes, np.ndarray]:
    frames = [Image.fromarray(PHOTO).quantize(64)]
    frames += [Image.new("P", (128, 96), colour) for colour in (3, 9)]
    blob = save(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=50, loop=0)
    return blob, np.asarray(frames[0].convert("RGB"))


def multipage_tiff() -> tuple[bytes, np.ndarray]:
    pages = [Image.fromarray(PHOTO), Image.new("RGB", (300, 20), (0, 255, 0))]
    return save(pages[0], "TIFF", save_all=True, append_images=pages[1:]), PHOTO


def huge_exif(orientation: int) -> bytes:
    """A JPEG whose EXIF fills its 64 KiB segment, with the given orientation tag."""
    exif = Image.Exif()
    exif[0x0112] = orientation  # Orientation
    exif[0x010E] = "x" * 60_000  # ImageDescription
    exif[0x013B] = "hostile"  # Artist
    return save(Image.fromarray(PHOTO), "JPEG", quality=95, exif=exif.tobytes())


def many_app_segments(count: int = 250) -> bytes:
    """A JPEG carrying `count` junk APP15 segments of 64 KiB each (16 MB) before its image."""
    segment = b"\xff\xef" + struct.pack(">H", 65535) + bytes(65533)
    return JPEG[:2] + segment * count + JPEG[2:]


def exif_with_lying_counts() -> bytes:
    """EXIF whose one IFD entry claims two billion values that are not there."""
    tiff = b"MM\x00\x2a\x00\x00\x00\x08" + b"\x00\x01" + struct.pack(">HHII", 0x010E, 2, 2**31, 26)
    tiff += b"\x00\x00\x00\x00"
    return save(Image.fromarray(PHOTO), "JPEG", exif=b"Exif\x00\x00" + tiff)


def corrupt_scan(jpeg: bytes) -> bytes:
    data = bytearray(jpeg)
    start = data.index(b"\xff\xda") + 20
    data[start : start + 200] = RNG.integers(0, 256, 200, dtype=np.uint8).tobytes()
    return bytes(data)


def corrupt_header(jpeg: bytes) -> bytes:
    data = bytearray(jpeg)
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = b"\x00\x00\x00\x00"  # zero height and width
    return bytes(data)


JPEG = save(Image.fromarray(PHOTO), "JPEG", quality=90)
PNG = save(Image.fromarray(PHOTO), "PNG")

# (name, file bytes, the RGB picture it shows, or None when it must be refused)
Case = tuple[str, bytes, np.ndarray | None]


def _gray() -> np.ndarray:
    return np.asarray(Image.fromarray(PHOTO).convert("L"))


def _rgb(blob: bytes, transpose: bool = False) -> np.ndarray:
    """What Pillow itself shows for a file (first frame, EXIF rotation when asked), as RGB."""
    image = Image.open(io.BytesIO(blob))
    return np.asarray((ImageOps.exif_transpose(image) if transpose else image).convert("RGB"))


def valid_odd_images() -> list[Case]:
    gray = _gray()
    alpha = RNG.integers(0, 256, PHOTO.shape[:2], dtype=np.uint8)
    rgba = np.dstack([PHOTO, alpha])
    palette = Image.fromarray(PHOTO).quantize(32)
    with_trns = palette.copy()
    with_trns.info["transparency"] = 0
    bilevel = Image.fromarray(gray).convert("1")
    cmyk = Image.fromarray(PHOTO).convert("CMYK")
    cmyk_jpeg = save(cmyk, "JPEG", quality=95)
    gif, gif_first = animated_gif()
    tiff, tiff_first = multipage_tiff()
    rotated, unknown_orientation = huge_exif(6), huge_exif(9)
    one_pixel = Image.new("RGB", (1, 1), (200, 30, 90))
    return [
        ("one pixel", save(one_pixel, "PNG"), np.asarray(one_pixel)),
        ("CMYK JPEG", cmyk_jpeg, _rgb(cmyk_jpeg)),
        ("CMYK TIFF", save(cmyk, "TIFF"), np.asarray(cmyk.convert("RGB"))),
        ("16-bit grey", save(Image.fromarray(gray.astype(np.uint16) * 257), "PNG"), grey3(gray)),
        ("grey", save(Image.fromarray(gray), "PNG"), grey3(gray)),
        (
            "grey + alpha",
            save(Image.fromarray(np.dstack([gray, alpha]), "LA"), "PNG"),
            over_white(np.dstack([gray, gray, gray, alpha])),
        ),
        ("palette", save(palette, "PNG"), np.asarray(palette.convert("RGB"))),
        (
            "palette + transparency",
            save(with_trns, "PNG", transparency=0),
            over_white(np.asarray(with_trns.convert("RGBA"))),
        ),
        ("RGBA", save(Image.fromarray(rgba), "PNG"), over_white(rgba)),
        ("1-bit", save(bilevel, "PNG"), np.asarray(bilevel.convert("RGB"))),
        ("animated GIF", gif, gif_first),
        ("multi-page TIFF", tiff, tiff_first),
        ("huge EXIF, rotated", rotated, _rgb(rotated, transpose=True)),
        ("EXIF orientation 9", unknown_orientation, _rgb(unknown_orientation)),
        ("16 MB of APP segments", many_app_segments(), _rgb(JPEG)),
        ("WebP", save(Image.fromarray(PHOTO), "WEBP", lossless=True), PHOTO),
        ("BMP", save(Image.fromarray(PHOTO), "BMP"), PHOTO),
    ]


def grey3(gray: np.ndarray) -> np.ndarray:
    return np.dstack([gray] * 3)


def refused_files() -> list[Case]:
    return [
        ("bomb: 100000 x 100000 claimed", png_claiming(100_000, 100_000, 8), None),
        ("bomb: 8000 x 8000 of nothing", png_claiming(8000, 8000, 8000), None),
        ("bomb: 65535 x 65535 GIF", _gif_claiming(65535, 65535), None),
        ("truncated PNG", PNG[: len(PNG) * 3 // 5], None),
        ("PNG header only", PNG[:33], None),
        ("JPEG with zero size", corrupt_header(JPEG), None),
        ("JPEG cut after its header", JPEG[:700], None),
        ("PDF named .jpg", b"%PDF-1.7\n1 0 obj << /Type /Catalog >> endobj\n%%EOF\n", None),
        ("HTML named .jpg", b"<!doctype html><script>alert(1)</script>", None),
        ("ZIP named .jpg", b"PK\x03\x04" + bytes(100), None),
        ("SVG named .jpg", b'<svg xmlns="http://www.w3.org/2000/svg" width="9e9"/>', None),
        ("ELF named .jpg", b"\x7fELF\x02\x01\x01" + bytes(200), None),
        ("zero bytes", b"", None),
        ("one byte", b"\xff", None),
        ("JPEG magic only", b"\xff\xd8\xff", None),
    ]  # fmt: skip


def _gif_claiming(width: int, height: int) -> bytes:
    screen = struct.pack("<HHBBB", width, height, 0, 0, 0)
    descriptor = b"," + struct.pack("<HHHHB", 0, 0, width, height, 0)
    return b"GIF89a" + screen + descriptor + b"\x02\x02\x44\x01\x00;"


# Bytes that may decode to garbage or fail: either answer is right, a 5xx is not.
EITHER = [
    ("JPEG with a corrupt scan", corrupt_scan(JPEG)),
    ("EXIF with lying counts", exif_with_lying_counts()),
]


# --- kernels, form values and v2 bodies ---------------------------------------------------


def _nested(depth: int) -> str:
    return "[" * depth + "]" * depth


KERNELS = [
    ("nested a million deep", _nested(1_000_000)),
    ("nested 5000 deep", _nested(5000)),
    ("objects nested deep", '{"a":' * 50_000 + "1" + "}" * 50_000),
    ("-Infinity", "[[-Infinity, 1]]"),
    ("1e999 overflows to infinity", "[[1e999, 1]]"),
    ("values that overflow float32 in the sum", "[[3e38, 3e38], [3e38, 3e38]]"),
    ("an integer of 5000 digits", "[[" + "9" * 5000 + "]]"),
    ("numbers as strings", '[["0.5", "-0.5"]]'),
    ("null values", "[[null, 1]]"),
    ("NaN inside a string", '[["NaN"]]'),
    ("a dict", '{"rows": [[1, -1]]}'),
    ("a bare number", "1"),
    ("UTF-16 text", "[[1, -1]]".encode("utf-16").decode("latin-1")),
    ("a NUL byte", "[[1,\x00 -1]]"),
]


CONV1_PNG = {"layers": "conv1", "format": "png"}
FORMS: list[tuple[str, str, dict[str, str]]] = [
    ("stride as a float string", "/v1/convolve", {"preset": "edge", "stride": "1.5"}),
    ("stride in exponent form", "/v1/convolve", {"preset": "edge", "stride": "1e3"}),
    ("stride huge", "/v1/convolve", {"preset": "edge", "stride": "9" * 40}),
    ("top_k NaN", "/v1/predict", {"top_k": "NaN"}),
    ("top_k negative", "/v1/predict", {"top_k": "-1"}),
    ("size huge", "/v1/pool", {"size": str(2**63)}),
    ("layers with 10000 commas", "/v1/activations", {"layers": "," * 10_000 + "conv9"}),
    ("channels not numbers", "/v1/activations", {**CONV1_PNG, "channels": "1,x"}),
    ("channels out of range", "/v1/activations", {**CONV1_PNG, "channels": "99999999999"}),
]  # fmt: skip


def fp32_body(data: Any, shape: Any = (1, 3, 227, 227)) -> dict[str, Any]:
    return {"inputs": [{"name": "input", "datatype": "FP32", "shape": shape, "data": data}]}


PIXELS = 3 * 227 * 227


GZIP = {"Content-Encoding": "gzip"}
DEEP = _nested(100_000).encode()


def _binary_fp32(size: int) -> dict[str, Any]:
    spec = {"name": "input", "datatype": "FP32", "shape": [1, 3, 227, 227]}
    return {"inputs": [{**spec, "parameters": {"binary_data_size": size}}]}


def _json(body: dict[str, Any]) -> bytes:
    return json.dumps(body).encode()


def _gzip(data: bytes, members: int = 1) -> bytes:
    return b"".join(zlib.compress(data, 9, wbits=31) for _ in range(members))


V2_BODIES: list[tuple[str, Callable[[], bytes], dict[str, str]]] = [
    ("nested a million deep", lambda: _nested(1_000_000).encode(), {}),
    ("inputs nested deep", lambda: b'{"inputs": ' + _nested(200_000).encode() + b"}", {}),
    ("data nested deep", lambda: _json(fp32_body(None)).replace(b"null", DEEP), {}),
    ("gzip of a million-deep nesting", lambda: _gzip(_nested(1_000_000).encode()), GZIP),
    ("gzip members adding up past the limit", lambda: _gzip(bytes(40 * 2**20), members=2), GZIP),
    ("deflate bomb", lambda: zlib.compress(bytes(100 * 2**20), 9), {"Content-Encoding": "deflate"}),
    ("NaN in the data", lambda: json.dumps(fp32_body([float("nan")] * PIXELS)).encode(), {}),
    ("Infinity in the data", lambda: json.dumps(fp32_body([float("inf")] * PIXELS)).encode(), {}),
    ("numbers as strings", lambda: json.dumps(fp32_body(["0.5"] * PIXELS)).encode(), {}),
    ("shape as strings", lambda: _json(fp32_body([0.5] * PIXELS, ["1", "3", "227", "227"])), {}),
    ("negative shape", lambda: _json(fp32_body([0.5] * PIXELS, [-1, 3, 227, 227])), {}),
    ("shape of 2**62 images", lambda: _json(fp32_body([0.5] * PIXELS, [2**62, 3, 227, 227])), {}),
    ("binary size past the body", lambda: _json(_binary_fp32(2**40)), {}),
    ("header length negative", lambda: b"{}", {"Inference-Header-Content-Length": "-5"}),
    ("header length huge", lambda: b"{}", {"Inference-Header-Content-Length": "9" * 30}),
    ("not UTF-8", lambda: b'{"inputs": "\xff\xfe"}', {}),
]  # fmt: skip
