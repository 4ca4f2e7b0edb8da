"""A corpus of uploads a room of laptops produces, each with the outcome it must have.

Each `Case` builds its input (the bytes of a zip, a folder, or files sent class by class) and says
what `import_images` must do with it: "ok" (with the classes and per-class train+test counts it
must find, and the files it must skip), or "refused" (with words the message must contain). The
inputs are made here, from code, so that every one is readable and none is a binary blob.
"""

from __future__ import annotations

import io
import os
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from transferlab.data.uploads import MB, ImportLimits


def image(color=(200, 30, 30), size=(48, 32), mode="RGB", fmt="PNG", **save) -> bytes:
    """A small image file's bytes, with a little noise so that no two are alike."""
    noise = np.random.default_rng(sum(color) + size[0]).integers(0, 20, (size[1], size[0], 3), dtype=np.uint8)
    im = Image.fromarray(np.clip(np.array(color, np.uint8) + noise, 0, 255).astype(np.uint8))
    im = im.convert(mode) if mode not in ("RGB",) else im
    out = io.BytesIO()
    im.save(out, fmt, **save)
    return out.getvalue()


def zip_of(entries: dict[str, bytes], links: dict[str, str] | None = None) -> io.BytesIO:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in entries.items():
            info = zipfile.ZipInfo(name)  # written as given: ZipFile.writestr would clean '../' away
            info.compress_type = zipfile.ZIP_DEFLATED
            z.writestr(info, data)
        for name, target in (links or {}).items():
            info = zipfile.ZipInfo(name)
            info.external_attr = (0o120777 << 16) | 0
            z.writestr(info, target)
    out.seek(0)
    return out


def two_classes(prefix="", n=5) -> dict[str, bytes]:
    files = {f"{prefix}cats/{i}.png": image((200, 30, 30), (48 + i, 32)) for i in range(n)}
    return files | {f"{prefix}dogs/{i}.png": image((30, 30, 200), (48 + i, 32)) for i in range(n)}


def exif_rotated() -> bytes:
    """A 60 x 20 JPEG whose EXIF orientation (6) says: show it turned, 20 wide and 60 tall."""
    im = Image.fromarray(np.full((20, 60, 3), 120, np.uint8))
    exif = Image.Exif()
    exif[0x0112] = 6
    out = io.BytesIO()
    im.save(out, "JPEG", exif=exif.tobytes())
    return out.getvalue()


def sixteen_bit(level: int) -> bytes:
    out = io.BytesIO()
    Image.fromarray(np.full((24, 24), level, np.uint16)).save(out, "PNG")
    return out.getvalue()


def palette_with_transparency() -> bytes:
    im = Image.new("P", (24, 24), 0)
    im.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    out = io.BytesIO()
    im.save(out, "PNG", transparency=0)
    return out.getvalue()


def huge_pixels(side: int) -> bytes:
    """A bilevel PNG of side x side pixels: tiny on disk, absurd in memory."""
    out = io.BytesIO()
    Image.new("1", (side, side)).save(out, "PNG")
    return out.getvalue()


def bad_crc_zip() -> io.BytesIO:
    out = zip_of(two_classes() | {"cats/broken.png": b"\x89PNG" + b"x" * 400})
    data = bytearray(out.getvalue())
    at = data.find(b"xxxxxxxx")  # stored deflated, so corrupt the compressed stream's bytes instead
    if at < 0:
        name = data.find(b"cats/broken.png")
        at = name + len("cats/broken.png") + 2
    data[at : at + 4] = b"\xff\xff\xff\xff"
    return io.BytesIO(bytes(data))


def folder(tmp: Path, files: dict[str, bytes]) -> Path:
    root = tmp / "upload"
    for name, data in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    return root


def folder_with_link(tmp: Path) -> Path:
    root = folder(tmp, two_classes())
    secret = tmp / "secret.png"
    secret.write_bytes(image((1, 2, 3)))
    os.symlink(secret, root / "cats" / "link.png")
    return root


@dataclass
class Case:
    id: str
    build: Callable[[Path], object]  # tmp folder -> the source to import
    expect: str  # "ok" or "refused"
    says: str = ""  # words the refusal must contain
    counts: dict[str, str] = field(default_factory=dict)  # class -> "train+test"
    skipped: tuple[str, ...] = ()  # file paths the report must list as skipped
    limits: ImportLimits | None = None
    name: str = "mine"


CASES = [
    # what should simply work
    Case("flat-zip", lambda t: zip_of(two_classes()), "ok", counts={"cats": "4+1", "dogs": "4+1"}),
    Case("wrapped-twice", lambda t: zip_of(two_classes("a/b/")), "ok", counts={"cats": "4+1", "dogs": "4+1"}),
    Case(
        "train-test-given",
        lambda t: zip_of(two_classes("train/", 3) | two_classes("test/", 2)),
        "ok",
        counts={"cats": "3+2", "dogs": "3+2"},
    ),
    Case("folder", lambda t: folder(t, two_classes()), "ok", counts={"cats": "4+1", "dogs": "4+1"}),
    Case(
        "class-by-class",
        lambda t: {
            c: [(f"{i}.png", image(col, (40 + i, 30))) for i in range(3)]
            for c, col in [("a", (9,) * 3), ("b", (99,) * 3)]
        },
        "ok",
        counts={"a": "2+1", "b": "2+1"},
    ),
    Case(
        "nested-in-class-and-mac-junk",
        lambda t: zip_of(
            two_classes() | {"cats/2019/x.png": image(), "__MACOSX/cats/._0.png": b"junk", ".DS_Store": b"x"}
        ),
        "ok",
        counts={"cats": "5+1", "dogs": "4+1"},
    ),
    Case(
        "unusual-modes",
        lambda t: zip_of(
            two_classes()
            | {
                "cats/cmyk.jpg": image(mode="CMYK", fmt="JPEG"),
                "cats/sixteen.png": sixteen_bit(40000),
                "cats/palette.png": palette_with_transparency(),
                "cats/alpha.png": image(mode="RGBA"),
                "cats/grey.png": image(mode="L"),
                "cats/bilevel.png": image(mode="1"),
                "cats/rotated.jpg": exif_rotated(),
                "cats/anim.gif": image(fmt="GIF", save_all=True, append_images=[Image.new("RGB", (48, 32))]),
                "cats/x.webp": image(fmt="WEBP"),
                "cats/x.tif": image(fmt="TIFF"),
                "cats/x.bmp": image(fmt="BMP"),
            }
        ),
        "ok",
        counts={"cats": "13+3", "dogs": "4+1"},
    ),
    # files left out, the rest imported
    Case(
        "bad-files-skipped",
        lambda t: zip_of(
            two_classes()
            | {
                "cats/empty.jpg": b"",
                "cats/notes.txt": b"these are my cats",
                "cats/truncated.jpg": image(fmt="JPEG", size=(300, 200))[:700],
                "cats/nested.zip": zip_of(two_classes()).getvalue(),
                "loose.png": image(),
            }
        ),
        "ok",
        counts={"cats": "4+1", "dogs": "4+1"},
        skipped=("cats/empty.jpg", "cats/notes.txt", "cats/truncated.jpg", "cats/nested.zip", "loose.png"),
    ),
    Case(
        "absurd-pixels-skipped",
        lambda t: zip_of(two_classes() | {"cats/huge.png": huge_pixels(9000), "dogs/bomb.png": huge_pixels(20000)}),
        "ok",
        counts={"cats": "4+1", "dogs": "4+1"},
        skipped=("cats/huge.png", "dogs/bomb.png"),
    ),
    Case(
        "empty-class-left-out",
        lambda t: zip_of(two_classes() | {"birds/a.png": b"", "birds/b.txt": b"tweet"}),
        "ok",
        counts={"cats": "4+1", "dogs": "4+1"},
        skipped=("birds/a.png", "birds/b.txt", "birds/"),
    ),
    Case(
        "bad-crc-skipped",
        lambda t: bad_crc_zip(),
        "ok",
        counts={"cats": "4+1", "dogs": "4+1"},
        skipped=("cats/broken.png",),
    ),
    Case(
        "folder-link-not-followed",
        folder_with_link,
        "ok",
        counts={"cats": "4+1", "dogs": "4+1"},
        skipped=("cats/link.png",),
    ),
    # refused whole, nothing written
    Case("climbs-out", lambda t: zip_of(two_classes() | {"../../evil.png": image()}), "refused", "climbs out"),
    Case(
        "climbs-out-inside", lambda t: zip_of(two_classes() | {"cats/../../evil.png": image()}), "refused", "climbs out"
    ),
    Case("absolute-path", lambda t: zip_of(two_classes() | {"/tmp/evil.png": image()}), "refused", "absolute path"),
    Case("windows-drive", lambda t: zip_of(two_classes() | {"C:\\evil.png": image()}), "refused", "absolute path"),
    Case(
        "link-entry", lambda t: zip_of(two_classes(), links={"cats/passwd.png": "/etc/passwd"}), "refused", "is a link"
    ),
    Case(
        "expands-too-far",
        lambda t: zip_of(two_classes() | {"cats/zeros.png": bytes(20 * MB)}),
        "refused",
        "unpacked",
        limits=ImportLimits(expanded_bytes=10 * MB),
    ),
    Case(
        "upload-too-large",
        lambda t: zip_of(two_classes()),
        "refused",
        "more than the 0 MB",
        limits=ImportLimits(upload_bytes=100),
    ),
    Case("too-many-files", lambda t: zip_of(two_classes()), "refused", "more than the 4", limits=ImportLimits(files=4)),
    Case(
        "server-full",
        lambda t: zip_of(two_classes()),
        "refused",
        "space for imported images is full",
        limits=ImportLimits(server_bytes=1000),
    ),
    Case("not-a-zip", lambda t: io.BytesIO(b"PK\x03\x04 this is not really a zip"), "refused", "not a zip archive"),
    Case(
        "one-class",
        lambda t: zip_of({f"cats/{i}.png": image(size=(40 + i, 30)) for i in range(5)}),
        "refused",
        "at least 2 classes",
    ),
    Case(
        "nothing-readable", lambda t: zip_of({"cats/a.txt": b"a", "dogs/b.txt": b"b"}), "refused", "at least 2 classes"
    ),
    Case("no-files", lambda t: zip_of({}), "refused", "no files"),
    Case(
        "case-only-names",
        lambda t: zip_of(two_classes() | {"Cats/0.png": image(size=(70, 30))}),
        "refused",
        "differ only in case",
    ),
    Case(
        "one-image-class",
        lambda t: zip_of(two_classes() | {"birds/0.png": image(size=(70, 30))}),
        "refused",
        "at least 2 (one to train",
    ),
    Case(
        "class-missing-from-test",
        lambda t: zip_of(two_classes("train/", 3) | {"test/cats/0.png": image(size=(80, 30)), "test/dogs/0.txt": b"x"}),
        "refused",
        "no readable images in test/",
    ),
    Case(
        "deep-nesting",
        lambda t: zip_of(two_classes() | {"cats/" + "d/" * 12 + "x.png": image()}),
        "refused",
        "folders deep",
    ),
    Case("bad-dataset-name", lambda t: zip_of(two_classes()), "refused", "cannot name a dataset", name="../mine"),
    Case("built-in-name", lambda t: zip_of(two_classes()), "refused", "built-in dataset", name="fashion_mnist"),
    Case(
        "class-name-with-slash",
        lambda t: {"../x": [("a.png", image())], "b": [("b.png", image())]},
        "refused",
        "cannot name a class",
    ),
    Case("missing-path", lambda t: t / "no-such-thing.zip", "refused", "neither a folder nor a zip"),
]
