"""The files of an upload, checked before any is read: a zip, a folder, or files sent class by class.

`gather` lists every file with its path inside the upload (hidden and system files dropped) and
refuses, raising `ImportRefused`, an upload that is too large, has too many files, or holds an
archive entry that climbs out of its folder, names an absolute path or is a link. A folder's links
are not followed. Nothing here writes anything; `transferlab.data.imports` decides what the files become.
"""

from __future__ import annotations

import io
import os
import re
import zipfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import ConfigError

__all__ = ["File", "ImportLimits", "ImportRefused", "Skip", "check_class_names", "gather"]

MB = 1 << 20

IGNORED = {"__MACOSX", "Thumbs.db", "desktop.ini"}


class ImportRefused(ConfigError):
    """The upload as a whole cannot be used; nothing was written."""


@dataclass(frozen=True)
class ImportLimits:
    """What one import may take, and all imports on one server together (bytes, files, pixels)."""

    upload_bytes: int = 500 * MB  # the zip, the folder's files or the files sent
    expanded_bytes: int = 2000 * MB  # what an archive's files add up to, unpacked
    files: int = 50_000
    pixels: int = 50_000_000  # one image's width x height (a 7 000 x 7 000 photo)
    depth: int = 8  # folders inside a class's folder
    server_bytes: int = 5000 * MB  # every imported set under the data directory together

    @classmethod
    def from_env(cls) -> ImportLimits:
        """The defaults, with `$TRANSFERLAB_UPLOAD_MB` and `$TRANSFERLAB_IMPORTS_MB` if set."""
        upload = int(os.environ.get("TRANSFERLAB_UPLOAD_MB", 0)) * MB
        server = int(os.environ.get("TRANSFERLAB_IMPORTS_MB", 0)) * MB
        d = cls()
        return cls(upload_bytes=upload or d.upload_bytes, server_bytes=server or d.server_bytes)


@dataclass(frozen=True)
class File:
    parts: tuple[str, ...]  # folders and file name inside the upload
    size: int
    read: Callable[[], bytes]

    @property
    def shown(self) -> str:
        return "/".join(self.parts)


Source = str | Path | io.IOBase | Mapping[str, Sequence[tuple[str, bytes]]]


class Skip(Exception):
    """One file left out; the message says why."""


def sent_name(filename) -> str:
    """An uploaded file's name without any folders: browsers send names, not paths."""
    return str(filename).replace("\\", "/").rsplit("/", 1)[-1]


def _safe_parts(entry: str) -> tuple[str, ...]:
    """An archive entry's path as folder names; refuses one that leaves the archive's folder."""
    path = entry.replace("\\", "/")
    if path.startswith("/") or re.match(r"^[A-Za-z]:", path):
        raise ImportRefused(f"the archive entry {entry!r} names an absolute path: refused; zip the folder itself")
    parts = tuple(p for p in path.split("/") if p not in ("", "."))
    if ".." in parts:
        raise ImportRefused(f"the archive entry {entry!r} climbs out of its folder ('..'): refused")
    if any(ord(ch) < 32 for p in parts for ch in p):
        raise ImportRefused(f"the archive entry {entry!r} has control characters in its name: refused")
    return parts


def _hidden(parts: tuple[str, ...]) -> bool:
    return any(p.startswith(".") or p in IGNORED for p in parts)


def gather(source: Source, limits: ImportLimits) -> tuple[list[File], list[tuple[str, str]]]:
    """Every file of the upload (hidden ones dropped), after the checks on sizes and counts."""
    skipped: list[tuple[str, str]] = []
    if isinstance(source, Mapping):
        check_class_names(set(source))
        files = []
        for cls, items in source.items():
            for filename, data in items:
                files.append(File((cls, sent_name(filename)), len(data), lambda data=data: bytes(data)))
        sent = sum(f.size for f in files)
    elif isinstance(source, (str, Path)) and Path(source).expanduser().is_dir():
        files, sent = _folder_files(Path(source).expanduser(), limits, skipped), None
    else:
        files, sent = _zip_files(source, limits)
    files = [f for f in files if not _hidden(f.parts)]
    expanded = sum(f.size for f in files)
    if sent is not None and sent > limits.upload_bytes:
        raise ImportRefused(
            f"the upload is {sent / MB:.0f} MB, more than the {limits.upload_bytes / MB:.0f} MB allowed: "
            "send fewer or smaller images"
        )
    if expanded > limits.expanded_bytes:
        raise ImportRefused(
            f"the images add up to {expanded / MB:.0f} MB unpacked, more than the "
            f"{limits.expanded_bytes / MB:.0f} MB allowed: import fewer or smaller images"
        )
    if len(files) > limits.files:
        raise ImportRefused(f"{len(files)} files, more than the {limits.files} allowed in one import")
    if not files:
        raise ImportRefused("the upload holds no files: give one folder of images per class")
    return files, skipped


def _zip_files(source, limits: ImportLimits) -> tuple[list[File], int]:
    if isinstance(source, (str, Path)):
        path = Path(source).expanduser()
        if not path.is_file():
            raise ImportRefused(f"{path} is neither a folder nor a zip file: give one of them")
        sent = path.stat().st_size
    else:
        source.seek(0, io.SEEK_END)
        sent = source.tell()
        source.seek(0)
    if sent > limits.upload_bytes:  # checked before the archive is opened
        raise ImportRefused(
            f"the upload is {sent / MB:.0f} MB, more than the {limits.upload_bytes / MB:.0f} MB allowed: "
            "send fewer or smaller images"
        )
    try:
        archive = zipfile.ZipFile(source)
        infos = [i for i in archive.infolist() if not i.is_dir()]
    except (zipfile.BadZipFile, OSError, ValueError) as error:
        raise ImportRefused(f"this is not a zip archive Python can read ({error}): zip the folder again") from None
    if len(infos) > limits.files:
        raise ImportRefused(f"the archive has {len(infos)} files, more than the {limits.files} allowed")
    files = []
    for info in infos:
        parts = _safe_parts(info.filename)
        if (info.external_attr >> 16) & 0o170000 == 0o120000:
            raise ImportRefused(f"the archive entry {info.filename!r} is a link: refused; zip the images themselves")
        files.append(File(parts, info.file_size, lambda info=info: _read_member(archive, info)))
    return files, sent


def _read_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> bytes:
    """One entry's bytes; zipfile stops at the declared size, which the limits were checked on."""
    try:
        return archive.read(info)
    except (zipfile.BadZipFile, RuntimeError, OSError, EOFError, NotImplementedError) as error:
        raise Skip(f"cannot be unpacked ({type(error).__name__}: {error})") from None


def _folder_files(root: Path, limits: ImportLimits, skipped: list) -> list[File]:
    files = []

    def unreadable(error: OSError) -> None:
        skipped.append((str(Path(error.filename).relative_to(root)), f"cannot be read ({error.strerror})"))

    for folder, dirs, names in os.walk(root, onerror=unreadable):  # links to folders are not followed
        dirs.sort()
        rel = Path(folder).relative_to(root).parts
        for name in sorted(names):
            path = Path(folder) / name
            if path.is_symlink():
                skipped.append(("/".join((*rel, name)), "a link: not followed"))
                continue
            try:
                size = path.stat().st_size
            except OSError as error:
                skipped.append(("/".join((*rel, name)), f"cannot be read ({error.strerror})"))
                continue
            files.append(File((*rel, name), size, lambda path=path: _read_file(path)))
            if len(files) > limits.files:
                raise ImportRefused(f"the folder has more than the {limits.files} files allowed in one import")
    return files


def _read_file(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as error:
        raise Skip(f"cannot be read ({error.strerror})") from None


def check_class_names(classes: set[str]) -> None:
    folded: dict[str, list[str]] = {}
    for c in classes:
        folded.setdefault(c.casefold(), []).append(c)
        if not c.strip() or c.startswith(".") or any(ch in "/\\" or ord(ch) < 32 for ch in c):
            raise ImportRefused(f"{c!r} cannot name a class: use a name without '/', '\\' or a leading '.'")
        if len(c) > 100:
            raise ImportRefused(f"the class name {c[:40]!r}... is over 100 characters: shorten the folder's name")
    clashes = [sorted(v) for v in folded.values() if len(v) > 1]
    if clashes:
        shown = "; ".join(" and ".join(v) for v in clashes)
        raise ImportRefused(
            f"class folders differ only in case ({shown}): merge them or rename one, as on many computers "
            "they are the same folder"
        )
