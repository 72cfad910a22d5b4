"""The check that a local file is a Cloud-Optimized GeoTIFF, from its TIFF directories.

It makes the checks of ``rio cogeo validate --strict`` (GDAL's
``validate_cloud_optimized_geotiff.py``, which rio-cogeo follows): the directories of the
full resolution and of its overviews come first, in order, before any pixel; the blocks
of the smallest overview come first and those of the full resolution last; an image
wider or taller than 512 pixels is tiled (its overviews too) and has overviews; GDAL's
structural metadata does not say the layout was broken by a later edit. rio-cogeo opens
the file once per overview level through GDAL (2-7 ms for a small COG, as much as the
rest of its statistics, item and preview); reading the directories with :mod:`struct`
takes a tenth of that. The tests check both say the same on valid and invalid files.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

_NEW_SUBFILE_TYPE, _WIDTH, _HEIGHT = 254, 256, 257
_STRIP_OFFSETS, _TILE_WIDTH, _TILE_OFFSETS = 273, 322, 324
_MASK = 4  # NewSubfileType bit of a transparency mask
# TIFF field types: (struct code, size)
_TYPES = {1: ("B", 1), 3: ("H", 2), 4: ("I", 4), 16: ("Q", 8), 13: ("I", 4), 18: ("Q", 8)}
_WANTED = {_NEW_SUBFILE_TYPE, _WIDTH, _HEIGHT, _STRIP_OFFSETS, _TILE_WIDTH, _TILE_OFFSETS}
_MAX_IFDS = 64
_LIMIT = 512  # rio-cogeo's: above this size an image must be tiled and have overviews


@dataclass(frozen=True)
class _Directory:
    offset: int
    width: int
    height: int
    block_width: int  # the image width when striped
    first_block: int  # offset of the first block of band 1 that is written (0: none)
    subfile_type: int


def cog_layout_errors(path: str | Path) -> list[str]:
    """What makes the local file at ``path`` no valid COG (rio-cogeo's strict
    validation); empty for a valid one."""
    with open(path, "rb") as handle:
        try:
            directories, ghost = _read_tiff(handle)
        except (ValueError, struct.error) as exc:
            return [f"not a readable GeoTIFF: {exc}"]
    if Path(f"{path}.ovr").exists():
        return ["Overviews found in external .ovr file. They should be internal"]
    images = [d for d in directories if not d.subfile_type & _MASK]
    main, overviews = images[0], images[1:]
    errors = []
    if main.width > _LIMIT or main.height > _LIMIT:
        if main.block_width == main.width:
            errors.append("The file is greater than 512xH or 512xW, but is not tiled")
        if not overviews:
            errors.append("The file is greater than 512xH or 512xW, without internal overviews")
    if main.offset > 300:
        errors.append(f"The offset of the main IFD should be < 300. It is {main.offset} instead")
    if "KNOWN_INCOMPATIBLE_EDITION=YES" in ghost:
        errors.append("The COG layout was, at least partly, invalidated by later changes")
    factors = [round(main.width / max(1, ovr.width)) for ovr in overviews]
    if factors != sorted(factors) or any(factor <= 1 for factor in factors):
        errors.append(f"Overviews should be sorted, with factors above 1: {factors}")
    for index, ovr in enumerate(overviews):
        before = images[index]
        if ovr.offset < before.offset:
            errors.append(f"The IFD of overview {index} is before the one of the level above it")
        if (ovr.width > _LIMIT or ovr.height > _LIMIT) and ovr.block_width == ovr.width:
            errors.append(f"Overview of index {index} is not tiled")
    data = [d.first_block for d in images if d.first_block > 0]
    if data and data[-1] < images[-1].offset:
        errors.append("The first block of the smallest level should be after its IFD")
    if any(later < earlier for earlier, later in zip(data[1:], data[:-1], strict=False)):
        errors.append("The blocks of a level are before those of a smaller level")
    return errors


def _read_tiff(handle: BinaryIO) -> tuple[list[_Directory], str]:
    """The directories of a TIFF or BigTIFF file and its GDAL ghost header (or '')."""
    head = handle.read(16)
    order = {b"II": "<", b"MM": ">"}.get(head[:2])
    if order is None:
        raise ValueError("no TIFF byte order mark")
    version = struct.unpack(f"{order}H", head[2:4])[0]
    if version == 42:
        big, offset, ghost_at = False, struct.unpack(f"{order}I", head[4:8])[0], 8
    elif version == 43:
        big, offset, ghost_at = True, struct.unpack(f"{order}Q", head[8:16])[0], 16
    else:
        raise ValueError(f"TIFF version {version}")
    ghost = _ghost_header(handle, ghost_at)
    directories = []
    while offset and len(directories) < _MAX_IFDS:
        directory, offset = _read_directory(handle, order, big, offset)
        directories.append(directory)
    if not directories:
        raise ValueError("no image directory")
    return directories, ghost


def _ghost_header(handle: BinaryIO, at: int) -> str:
    handle.seek(at)
    start = handle.read(43)
    marker = b"GDAL_STRUCTURAL_METADATA_SIZE="
    if not start.startswith(marker):
        return ""
    size = int(start[len(marker) : len(marker) + 6])
    return handle.read(size).decode("ascii", "replace")


def _read_directory(handle: BinaryIO, order: str, big: bool, offset: int) -> tuple[_Directory, int]:
    count_format, entry_size, next_format = ("Q", 20, "Q") if big else ("H", 12, "I")
    handle.seek(offset)
    count = struct.unpack(f"{order}{count_format}", handle.read(8 if big else 2))[0]
    body = handle.read(count * entry_size + (8 if big else 4))
    fields: dict[int, list[int]] = {}
    for index in range(count):
        entry = body[index * entry_size : (index + 1) * entry_size]
        tag, kind = struct.unpack(f"{order}HH", entry[:4])
        if tag not in _WANTED:
            continue
        number = struct.unpack(f"{order}{'Q' if big else 'I'}", entry[4 : 12 if big else 8])[0]
        fields[tag] = _values(handle, order, big, kind, number, entry[12 if big else 8 :])
    (next_offset,) = struct.unpack(f"{order}{next_format}", body[count * entry_size :])
    width, height = fields[_WIDTH][0], fields[_HEIGHT][0]
    tiled = _TILE_WIDTH in fields
    offsets = fields.get(_TILE_OFFSETS if tiled else _STRIP_OFFSETS, [])
    first = next((value for value in offsets if value > 0), 0)
    directory = _Directory(
        offset=offset,
        width=width,
        height=height,
        block_width=fields[_TILE_WIDTH][0] if tiled else width,
        first_block=first,
        subfile_type=fields.get(_NEW_SUBFILE_TYPE, [0])[0],
    )
    return directory, next_offset


def _values(
    handle: BinaryIO, order: str, big: bool, kind: int, number: int, inline: bytes
) -> list[int]:
    """The integer values of one field: inline where they fit, else at its offset."""
    if kind not in _TYPES:
        raise ValueError(f"TIFF field type {kind} where integers were expected")
    code, size = _TYPES[kind]
    length = size * number
    if length <= len(inline):
        raw = inline[:length]
    else:
        (at,) = struct.unpack(f"{order}{'Q' if big else 'I'}", inline)
        position = handle.tell()
        handle.seek(at)
        raw = handle.read(length)
        handle.seek(position)
    return list(struct.unpack(f"{order}{number}{code}", raw))
