"""Work besides training that a page hands to the workers: importing images, exporting a model.

A page server that decodes a 500 MB upload, or traces a network to ONNX, stops serving every other
page while it does. So the dashboard only writes what the browser sent to a staging file
(`stage_upload`: copying bytes, nothing decoded) and queues a task; a worker does it, with
progress, and the page shows the result when it ends.

    >>> staged = stage_upload(uploaded_zip, owner=sid)
    >>> job = queue.submit_task(IMPORT, {"staged": str(staged), "name": "flowers", "owner": sid}, owner=sid)
    >>> job.wait(); job.result                  # an `ImportReport`
    >>> job = queue.submit_task(EXPORT, {"key": key, "suffix": ".onnx"}, owner=sid)
    >>> job.wait(); Path(job.result).read_bytes()

A task function takes its arguments, `progress(done, total)` and `stop` (a `threading.Event`),
and returns what the page needs (plain data: it crosses a process, or a Ray cluster). A stop is
seen at the next `progress` call; an import stopped there writes nothing.
"""

from __future__ import annotations

import threading
import time
import uuid
import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path

from .._paths import atomic_path, data_dir
from ..data.uploads import sent_name
from ..errors import StopTraining

__all__ = ["EXPORT", "IMPORT", "TASKS", "export_kept", "exported_path", "import_staged", "stage_upload"]

IMPORT, EXPORT = "import", "export"
STAGED_FOR = 24 * 3600  # seconds a staged upload may wait (a server stopped meanwhile leaves it behind)

Progress = Callable[[int, int], None]


def staging_dir() -> Path:
    return data_dir() / "staging"


def stage_upload(source, owner: str) -> Path:
    """Write what the browser sent, a zip (a file object) or {class: [(file name, bytes)]}, to a
    zip in the staging folder, for a worker's import to read. Nothing is decoded here."""
    folder = staging_dir()
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.zip"):  # left by a server that stopped before its worker imported them
        if time.time() - old.stat().st_mtime > STAGED_FOR:
            old.unlink(missing_ok=True)
    path = folder / f"{owner}-{uuid.uuid4().hex}.zip"
    with atomic_path(path) as tmp:
        if isinstance(source, Mapping):
            _zip_classes(source, tmp)
        else:
            source.seek(0)
            with open(tmp, "wb") as out:
                while chunk := source.read(1 << 20):
                    out.write(chunk)
    return path


def _zip_classes(by_class: Mapping, path: Path) -> None:
    """{class: [(file name, bytes)]} as a zip of class folders, stored as sent (no compression)."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
        for cls, items in by_class.items():
            used: set[str] = set()
            for filename, data in items:
                base = sent_name(filename)
                name, n = base, 1
                while name in used:  # the same name picked from two folders: both kept
                    n += 1
                    stem, dot, suffix = base.rpartition(".")
                    name = f"{stem} ({n}).{suffix}" if dot else f"{base} ({n})"
                used.add(name)
                archive.writestr(f"{cls}/{name}", data)


def import_staged(staged: str, name: str, owner: str | None, progress: Progress, stop: threading.Event):
    """Import the staged zip as the dataset `name` of `owner` (`import_images`); the staged file
    is removed whatever happens. Returns the `ImportReport`."""
    from ..data.imports import import_images

    def checked(done: int, total: int) -> None:
        if stop.is_set():
            raise StopTraining("the import was stopped; nothing was written")
        progress(done, total)

    try:
        return import_images(Path(staged), name, owner=owner, progress=checked)
    finally:
        Path(staged).unlink(missing_ok=True)


def exported_path(key: str, suffix: str) -> Path:
    return data_dir() / "exports" / f"{key}{suffix}"


def export_kept(key: str, suffix: str, progress: Progress, stop: threading.Event) -> str:
    """The kept model of the comparison `key` (`keep_model`) as an ONNX or TorchScript file,
    written once beside it; returns its path."""
    from ..errors import ConfigError
    from .export import kept_model, load_model

    kept, path = kept_model(key), exported_path(key, suffix)
    if kept is None:
        raise ConfigError("this comparison's model is no longer kept on the server: run it again to download it")
    progress(0, 1)
    if not path.is_file() or path.stat().st_mtime < kept.stat().st_mtime:
        path.parent.mkdir(parents=True, exist_ok=True)
        load_model(kept).export(path)
    progress(1, 1)
    return str(path)


TASKS: dict[str, Callable] = {IMPORT: import_staged, EXPORT: export_kept}
