"""Finding the images of a folder: one small read per file, no decoding.

A scan lists every file, keeps those with an image extension whose first
bytes have the structure of a JPEG, PNG, GIF or BMP header, and lists the
others as skipped. Files that pass but do not decode (truncated, corrupt
body) are caught when the pipeline first decodes them (`tltf.data.images`).
The scan also reads the pixel size of a sample of files from their headers,
which is what the cache budget needs to estimate a folder's decoded size.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

__all__ = [
    "IMAGE_EXTENSIONS",
    "image_files",
    "looks_like_image",
    "mean_pixels",
    "pixel_count",
    "read_head",
    "relative",
]

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".gif", ".bmp")
_HEAD = 32  # Bytes read per file by the scan.
_SIZE_HEAD = 1 << 16  # Bytes read to find a JPEG's frame header.
_SAMPLE = 64  # Files whose pixel size is read to estimate a folder's.
# JPEG start-of-frame markers (baseline, progressive, ...): they hold the size.
_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def read_head(path: str | os.PathLike, size: int) -> bytes | None:
    """The first ``size`` bytes of a file; None when it cannot be read.

    An unbuffered ``os.read``: half the cost of ``open(...).read`` per file,
    which is most of what a folder scan costs (10,000 files: ~0.05 s less).
    """
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        return os.read(fd, size)
    except OSError:
        return None
    finally:
        os.close(fd)


def looks_like_image(path: str | os.PathLike) -> bool:
    """True when the file starts with a well-formed JPEG, PNG, GIF or BMP header.

    One read of the first 32 bytes: the signature, and for PNG the header
    chunk that must follow it. Catches non-images, empty and garbage files;
    a truncated file or a corrupt body passes (the pipeline catches those).
    """
    head = read_head(path, _HEAD)
    if head is None:
        return False
    if head.startswith(b"\xff\xd8\xff"):
        return len(head) > 4
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return head[12:16] == b"IHDR"
    if head.startswith((b"GIF87a", b"GIF89a")):
        return len(head) >= 13
    return head.startswith(b"BM") and len(head) >= 26


def image_files(
    directory: str | os.PathLike, *, relative_to: str | os.PathLike | None = None
) -> tuple[list[str], list[str]]:
    """The images under ``directory`` (any depth), and the other files.

    Every file with an image extension has its header checked
    (`looks_like_image`, one small read); nothing is decoded here. Hidden
    files and folders are ignored.

    Args:
        directory: Folder to search, subfolders included.
        relative_to: Folder the skipped paths are given relative to;
            defaults to ``directory``.

    Returns:
        ``(files, skipped)``: the paths of the images (a folder's files in
        sorted order, then its subfolders'), and the relative paths of files
        that are not images or have a broken header.

    Example:
        >>> files, skipped = image_files("photos/")
    """
    root = os.fspath(directory)
    base = os.fspath(relative_to) if relative_to is not None else root
    files: list[str] = []
    skipped: list[str] = []
    # Each folder's files in sorted order, then its subfolders in sorted order.
    for folder, subfolders, names in os.walk(root):
        subfolders[:] = sorted(d for d in subfolders if not d.startswith("."))
        for name in sorted(n for n in names if not n.startswith(".")):
            path = os.path.join(folder, name)
            image = os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS
            if image and looks_like_image(path):
                files.append(path)
            else:
                skipped.append(relative(path, base))
    return files, skipped


def mean_pixels(files: list[str]) -> float | None:
    """Mean ``height * width`` of a sample of ``files``, read from their headers.

    Args:
        files: Image paths (`image_files`).

    Returns:
        The mean over up to 64 files spread over the list, or None when no
        sampled header gives a size.
    """
    step = max(1, len(files) // _SAMPLE)
    sizes = [pixel_count(path) for path in files[::step][:_SAMPLE]]
    sizes = [size for size in sizes if size]
    return sum(sizes) / len(sizes) if sizes else None


def pixel_count(path: str | os.PathLike) -> int | None:
    """``height * width`` of an image from its header; None if not found."""
    head = read_head(path, _SIZE_HEAD)
    if head is None:
        return None
    try:
        if head.startswith(b"\x89PNG"):
            width, height = struct.unpack(">II", head[16:24])
        elif head.startswith(b"GIF"):
            width, height = struct.unpack("<HH", head[6:10])
        elif head.startswith(b"BM"):
            width, height = struct.unpack("<ii", head[18:26])
        elif head.startswith(b"\xff\xd8"):
            width, height = _jpeg_size(head)
        else:
            return None
    except (struct.error, ValueError):
        return None
    return abs(width * height) or None


def _jpeg_size(head: bytes) -> tuple[int, int]:
    """``(width, height)`` from a JPEG's start-of-frame segment."""
    i = 2
    while i + 9 <= len(head):
        if head[i] != 0xFF:
            i += 1
            continue
        marker = head[i + 1]
        if marker in _SOF:
            height, width = struct.unpack(">HH", head[i + 5 : i + 9])
            return width, height
        if marker == 0xFF or marker == 0x01 or 0xD0 <= marker <= 0xD8:
            i += 1 if marker == 0xFF else 2
            continue
        (length,) = struct.unpack(">H", head[i + 2 : i + 4])
        i += 2 + length
    raise ValueError("no frame header")


def relative(path: str, base: str | Path) -> str:
    """``path`` relative to ``base`` (how skipped files are listed)."""
    return os.path.relpath(path, os.fspath(base))
