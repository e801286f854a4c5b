"""The benchmark's images: real photos and drawn shapes, re-encoded as JPEGs of a realistic size.

scikit-image ships a handful of photographs (no download); the procedural shapes of
`model.data.shapes` add variety. Each is resized to a camera-like 640x480 (or
480x640 for portrait sources) and saved at JPEG quality 90, which is what a phone
or a web client typically uploads.
"""

from __future__ import annotations

import io
import uuid
from dataclasses import dataclass

import numpy as np
from PIL import Image

PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "camera", "hubble_deep_field", "retina")
SIZE = (640, 480)


@dataclass(frozen=True)
class Upload:
    """One image file as a client sends it."""

    name: str
    data: bytes


def _photo_arrays() -> dict[str, np.ndarray]:
    from skimage import data as skdata

    arrays = {}
    for name in PHOTOS:
        loader = getattr(skdata, name, None)
        if loader is None:
            continue
        try:
            arrays[name] = loader()
        except Exception:  # a data file this scikit-image build lacks (it would download it)
            continue
    return arrays


def _shape_images(count: int) -> dict[str, Image.Image]:
    try:
        from model.data.shapes import SHAPE_CLASSES, generate_image
    except ImportError:
        return {}
    rng = np.random.default_rng(0)
    return {
        f"shape_{i}": generate_image(i % len(SHAPE_CLASSES), rng, 256).resize((480, 480))
        for i in range(count)
    }


def encode_jpeg(image: Image.Image, quality: int = 90) -> bytes:
    """An image as JPEG bytes."""
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def fit(image: Image.Image, size: tuple[int, int] = SIZE) -> Image.Image:
    """Resize to `size` (or its transpose for portrait images), cropping to keep the aspect."""
    width, height = size if image.width >= image.height else size[::-1]
    scale = max(width / image.width, height / image.height)
    resized = image.resize((round(image.width * scale), round(image.height * scale)))
    left, top = (resized.width - width) // 2, (resized.height - height) // 2
    return resized.crop((left, top, left + width, top + height))


def build_corpus(shapes: int = 5) -> list[Upload]:
    """Photos and shapes as 640x480 JPEGs, photos first."""
    uploads = [
        Upload(f"{name}.jpg", encode_jpeg(fit(Image.fromarray(array).convert("RGB"))))
        for name, array in _photo_arrays().items()
    ]
    shaped = _shape_images(shapes)
    uploads += [Upload(f"{name}.jpg", encode_jpeg(image)) for name, image in shaped.items()]
    if not uploads:
        raise RuntimeError("no benchmark images: scikit-image's photos are missing")
    return uploads


def large_rgb_jpeg(side: int = 1024) -> bytes:
    """A side x side RGB photo (the astronaut, upscaled) for the convolution comparison."""
    from skimage import data as skdata

    image = Image.fromarray(skdata.astronaut()).resize((side, side), Image.Resampling.BICUBIC)
    return encode_jpeg(image, 90)


@dataclass(frozen=True)
class Multipart:
    """A ready-made multipart/form-data body and its content type."""

    body: bytes
    content_type: str


def multipart(
    files: list[Upload], fields: dict[str, str] | None = None, boundary: str | None = None
) -> Multipart:
    """A form with each upload in the field `image` plus plain text fields."""
    boundary = boundary or f"bench{uuid.uuid4().hex}"
    parts: list[bytes] = []
    for key, value in (fields or {}).items():
        head = f'--{boundary}\r\nContent-Disposition: form-data; name="{key}"\r\n\r\n'
        parts.append(f"{head}{value}\r\n".encode())
    for upload in files:
        head = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="image"; '
            f'filename="{upload.name}"\r\nContent-Type: image/jpeg\r\n\r\n'
        )
        parts.append(head.encode() + upload.data + b"\r\n")
    parts.append(f"--{boundary}--\r\n".encode())
    return Multipart(b"".join(parts), f"multipart/form-data; boundary={boundary}")
