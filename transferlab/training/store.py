"""The run store: every finished comparison in one SQLite file, kept across restarts and shared.

The dashboard forgets a session's results when its process ends, and two students who ask for
the same comparison should not train it twice. `RunStore` keeps each `Outcome` as a row (the
numbers a table or a chart needs as cheap columns, the rest as JSON and one compressed blob of
mistake images), finds an earlier comparison by its key, and remembers which browser sessions own it.

    >>> store = RunStore()                    # $TRANSFERLAB_STORE, else data/cache/runs-v3.sqlite
    >>> cid = store.find(outcome.key) or store.save(outcome, owner="session-1")
    >>> store.comparisons(owner="session-1"); store.load(cid).verdict()

SQLite in WAL mode: several processes and threads may write at once (each waits its turn), and a
process killed mid-write leaves every committed comparison intact. Nothing is ever pickled.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import sqlite3
from collections.abc import Iterator
from dataclasses import asdict, fields
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from .._paths import atomic_path, data_dir
from ..errors import TransferlabError
from .config import ExperimentConfig
from .outcome import Outcome
from .prediction import Prediction

__all__ = ["RunStore", "default_store_path"]

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS comparisons (
        id INTEGER PRIMARY KEY AUTOINCREMENT, key TEXT NOT NULL, created TEXT NOT NULL,
        dataset TEXT, backbone TEXT, per_class INTEGER, freeze_depth INTEGER, steps INTEGER, epochs INTEGER,
        image_size INTEGER, seed INTEGER, finetune REAL, scratch REAL, gap REAL, gap_low REAL, gap_high REAL,
        dataset_version TEXT NOT NULL,
        stopped INTEGER NOT NULL, device TEXT, elapsed REAL, config TEXT NOT NULL, arms TEXT NOT NULL,
        versions TEXT NOT NULL, result_table TEXT NOT NULL, history TEXT NOT NULL, classes TEXT NOT NULL,
        labels TEXT NOT NULL, predictions TEXT NOT NULL, mistakes BLOB NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS comparisons_key ON comparisons (key, stopped)",
    """CREATE TABLE IF NOT EXISTS owners (
        comparison_id INTEGER NOT NULL REFERENCES comparisons (id) ON DELETE CASCADE,
        owner TEXT NOT NULL, added TEXT NOT NULL, UNIQUE (comparison_id, owner))""",
    "CREATE INDEX IF NOT EXISTS owners_owner ON owners (owner)",
    # What a session predicted for a comparison (by its key) before it ran; one per session.
    """CREATE TABLE IF NOT EXISTS predictions (
        key TEXT NOT NULL, owner TEXT NOT NULL, winner TEXT NOT NULL, points REAL, a TEXT NOT NULL, b TEXT NOT NULL,
        made TEXT NOT NULL, UNIQUE (key, owner))""",
)
_QUERIED = (
    "dataset",
    "backbone",
    "per_class",
    "freeze_depth",
    "steps",
    "epochs",
    "seed",
)  # config fields kept as columns
_LISTED = ", ".join(
    (
        "id",
        "key",
        "created",
        *_QUERIED,
        "image_size",
        "finetune",
        "scratch",
        "gap",
        "gap_low",
        "gap_high",
        "stopped",
        "device",
        "elapsed",
        "dataset_version",
    )  # fmt: skip
)
_EXPORTED = "id, key, created, config, device, versions, result_table, classes, labels, predictions"


def default_store_path() -> Path:
    """Where the run store lives: `$TRANSFERLAB_STORE`, else `runs-v3.sqlite` in the data folder."""
    # v3: keys hold the dataset's version, rows the gap's interval. Older files are left as they were.
    return (
        Path(os.environ["TRANSFERLAB_STORE"]) if os.environ.get("TRANSFERLAB_STORE") else data_dir() / "runs-v3.sqlite"
    )


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _plain(value: object) -> object:
    """JSON for numpy scalars in object columns (anything else is a bug worth failing on)."""
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"cannot store a {type(value).__name__} in the run store")


def _frame_json(frame: pd.DataFrame) -> str:
    # Records plus the dtypes, so a loaded table has the same columns and dtypes as the saved one.
    data = {"columns": list(frame.columns), "dtypes": [str(t) for t in frame.dtypes]}
    return json.dumps(data | {"records": frame.to_dict(orient="records")}, default=_plain)


def _frame(text: str) -> pd.DataFrame:
    data = json.loads(text)
    columns = {}
    for name, dtype in zip(data["columns"], data["dtypes"]):
        values = [r[name] for r in data["records"]]
        try:  # column by column: a DataFrame from records would turn [None, 10] into floats
            columns[name] = pd.Series(values, dtype=dtype)
        except (TypeError, ValueError):
            columns[name] = pd.Series(values)
    return pd.DataFrame(columns, columns=data["columns"])


def _accuracy(table: pd.DataFrame, arm: str) -> float | None:
    rows = table.loc[table["arm"] == arm, "test_accuracy"] if "arm" in table else []
    return float(rows.iloc[0]) if len(rows) and pd.notna(rows.iloc[0]) else None


def _config(text: str) -> ExperimentConfig:
    # JSON has no tuples (`classes`), and a field dropped from ExperimentConfig since must not break old rows.
    known = {f.name for f in fields(ExperimentConfig)}
    d = {k: tuple(v) if isinstance(v, list) else v for k, v in json.loads(text).items() if k in known}
    return ExperimentConfig(**d)


def _mistakes_blob(mistakes: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]) -> bytes:
    arrays: dict[str, np.ndarray] = {"arms": np.array(list(mistakes), dtype=str)}
    for i, (images, labels, preds) in enumerate(mistakes.values()):
        arrays |= {f"images_{i}": images, f"labels_{i}": labels, f"predictions_{i}": preds}
    if any(np.asarray(a).dtype.hasobject for a in arrays.values()):  # savez would pickle these
        raise TypeError("mistakes must be numeric arrays: the run store pickles nothing")
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    return buffer.getvalue()


def _mistakes(blob: bytes) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    with np.load(io.BytesIO(blob), allow_pickle=False) as z:  # never unpickle what a file holds
        return {str(a): (z[f"images_{i}"], z[f"labels_{i}"], z[f"predictions_{i}"]) for i, a in enumerate(z["arms"])}


def _columns(outcome: Outcome) -> dict:
    """An outcome as a row of the comparisons table."""
    config, table = outcome.config, outcome.table
    finetune, scratch = _accuracy(table, "finetune"), _accuracy(table, "scratch")
    both = finetune is not None and scratch is not None and {"finetune", "scratch"} <= set(outcome.predictions)
    gap = outcome.difference("finetune", "scratch") if both else None
    size = table["image_size"].iloc[0] if "image_size" in table and len(table) else config.image_size
    return {
        "key": outcome.key,
        "created": _now(),
        **{name: getattr(config, name) for name in _QUERIED},
        "image_size": None if size is None or pd.isna(size) else int(size),  # the size it ran at, never None
        "finetune": finetune,
        "scratch": scratch,
        "gap": None if finetune is None or scratch is None else finetune - scratch,
        "gap_low": gap.low if gap else None,
        "gap_high": gap.high if gap else None,
        "dataset_version": outcome.dataset_version,
        "stopped": int(outcome.stopped),
        "device": outcome.device,
        "elapsed": float(outcome.elapsed),
        "config": json.dumps(asdict(config)),
        "arms": json.dumps(list(outcome.arms)),
        "versions": json.dumps(outcome.versions),
        "result_table": _frame_json(table),
        "history": _frame_json(outcome.history),
        "classes": json.dumps(list(outcome.classes)),
        "labels": json.dumps(np.asarray(outcome.labels).tolist()),
        "predictions": json.dumps({a: np.asarray(p).tolist() for a, p in outcome.predictions.items()}),
        "mistakes": _mistakes_blob(outcome.mistakes),
    }


def _outcome(row: sqlite3.Row) -> Outcome:
    """A row of the comparisons table as the `Outcome` it was saved from."""
    return Outcome(
        config=_config(row["config"]),
        arms=tuple(json.loads(row["arms"])),
        table=_frame(row["result_table"]),
        history=_frame(row["history"]),
        classes=tuple(json.loads(row["classes"])),
        labels=np.asarray(json.loads(row["labels"]), dtype=np.int64),
        predictions={a: np.asarray(p, dtype=np.int64) for a, p in json.loads(row["predictions"]).items()},
        mistakes=_mistakes(row["mistakes"]),
        stopped=bool(row["stopped"]),
        device=row["device"],
        versions=json.loads(row["versions"]),
        elapsed=row["elapsed"],
        dataset_version=row["dataset_version"],
    )


def _arm_rows(c, class_accuracy: bool) -> list[dict]:
    """A comparison's CSV rows, one per arm: its configuration, results, device and versions."""
    config = json.loads(c.config)
    config["classes"] = None if config.get("classes") is None else " ".join(map(str, config["classes"]))
    versions = {f"version_{k}": v for k, v in json.loads(c.versions).items()}
    labels, classes = np.asarray(json.loads(c.labels)), json.loads(c.classes)
    predictions = json.loads(c.predictions)
    rows = []
    for arm in _frame(c.result_table).to_dict(orient="records"):
        row = {"id": c.id, "key": c.key, "created": c.created, **config, "arm": arm.get("arm")}
        row |= {k: arm.get(k) for k in ("val_accuracy", "test_accuracy", "test_loss", "seconds", "trainable_params")}
        row |= {"steps_run": arm.get("steps"), "epochs_run": arm.get("epochs")}
        if class_accuracy and arm.get("arm") in predictions:
            preds = np.asarray(predictions[arm["arm"]])
            for i, name in enumerate(classes):  # as Outcome.per_class(): None for a class with no test images
                mask = labels == i
                row[f"accuracy[{name}]"] = float((preds[mask] == i).mean()) if mask.any() else None
        rows.append(row | {"device": c.device, **versions})
    return rows


def write_csv(frame: pd.DataFrame, path: str | Path) -> Path:
    """Write `frame` to `path` whole or not at all."""
    path = Path(path)
    if not path.parent.is_dir():
        raise TransferlabError(f"Cannot export to {path}: its folder {path.parent} does not exist. Create it first.")
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        frame.to_csv(f, index=False)
    return path


class RunStore:
    """Finished comparisons in a SQLite file, safe to use from several threads and processes.

    Args:
        path: the database file (created with its folders if missing); None: `default_store_path()`.

    Raises:
        TransferlabError: the folder cannot be created or the file is not a run store.
    """

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path) if path is not None else default_store_path()
        hint = "Set TRANSFERLAB_STORE to a writable file (or pass another path)."
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise TransferlabError(f"Cannot create the folder of the run store {self.path}: {e}. {hint}") from e
        try:
            with self._connect() as db:
                db.execute("PRAGMA journal_mode=WAL")  # persistent: readers never block the writer
                columns = {row[1] for row in db.execute("PRAGMA table_info(comparisons)")}
                if not columns or "steps" in columns:
                    with self._transaction(db):
                        for statement in _SCHEMA:
                            db.execute(statement)
        except sqlite3.Error as e:
            raise TransferlabError(f"Cannot open the run store {self.path}: {e}. Move the file away. {hint}") from e
        if columns and "steps" not in columns:
            raise TransferlabError(
                f"The run store {self.path} was written by an older transferlab, whose curves were measured on the "
                f"test split and whose budgets were in epochs: its numbers do not compare with today's. Move the "
                f"file away (it stays readable with sqlite3) and a new store starts. {hint}"
            )

    def __repr__(self) -> str:
        return f"RunStore({str(self.path)!r})"

    @contextlib.contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        # A connection per call: sqlite3 connections must not be shared between threads, and opening one is cheap.
        db = sqlite3.connect(self.path, timeout=60, isolation_level=None)  # transactions are explicit
        try:
            db.execute("PRAGMA synchronous=NORMAL")  # with WAL: a killed process still loses no commit
            db.execute("PRAGMA foreign_keys=ON")
            yield db
        finally:
            db.close()

    @staticmethod
    @contextlib.contextmanager
    def _transaction(db: sqlite3.Connection) -> Iterator[None]:
        # IMMEDIATE takes the write lock up front, so a concurrent writer waits (busy timeout) instead of
        # failing when a read lock would have to be upgraded.
        db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    def save(self, outcome: Outcome, owner: str | None = None) -> int:
        """Store a comparison (and, if given, its first owner) in one transaction; returns its id."""
        row = _columns(outcome)
        sql = f"INSERT INTO comparisons ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})"
        with self._connect() as db, self._transaction(db):
            comparison_id = int(db.execute(sql, list(row.values())).lastrowid)
            if owner is not None:
                db.execute("INSERT INTO owners VALUES (?, ?, ?)", (comparison_id, owner, _now()))
        return comparison_id

    def find(self, key: str) -> int | None:
        """The id of the newest comparison with this key that ran to the end (not stopped), else None."""
        with self._connect() as db:
            row = db.execute("SELECT max(id) FROM comparisons WHERE key = ? AND stopped = 0", (key,)).fetchone()
        return row[0]

    def add_owner(self, comparison_id: int, owner: str) -> None:
        """Let another session see a comparison; adding an owner twice changes nothing."""
        with self._connect() as db, self._transaction(db):
            db.execute("INSERT OR IGNORE INTO owners VALUES (?, ?, ?)", (comparison_id, owner, _now()))

    def predict(self, key: str, owner: str, prediction: Prediction) -> None:
        """Keep what `owner` predicted for the comparison `key` (a later one replaces it)."""
        p = prediction
        with self._connect() as db, self._transaction(db):
            db.execute(
                "INSERT OR REPLACE INTO predictions VALUES (?, ?, ?, ?, ?, ?, ?)",
                (key, owner, p.winner, p.points, p.a, p.b, _now()),
            )

    def prediction(self, key: str, owner: str) -> Prediction | None:
        with self._connect() as db:
            row = db.execute(
                "SELECT winner, points, a, b FROM predictions WHERE key = ? AND owner = ?", (key, owner)
            ).fetchone()
        return Prediction(*row) if row else None

    def predictions(self, key: str | None = None) -> pd.DataFrame:
        """Every prediction (for the comparison `key` when given), newest first, with its `gap` in points."""
        where, params = ("WHERE key = ?", [key]) if key is not None else ("", [])
        with self._connect() as db:
            frame = pd.read_sql_query(f"SELECT * FROM predictions {where} ORDER BY made DESC", db, params=params)
        frame["gap"] = [Prediction(*row).gap for row in frame[["winner", "points", "a", "b"]].itertuples(index=False)]
        return frame

    def load(self, comparison_id: int) -> Outcome:
        """The whole `Outcome` saved under this id. Raises `KeyError` if there is none."""
        with self._connect() as db:
            db.row_factory = sqlite3.Row
            row = db.execute("SELECT * FROM comparisons WHERE id = ?", (comparison_id,)).fetchone()
        if row is None:
            raise KeyError(f"No comparison {comparison_id} in the run store {self.path}")
        return _outcome(row)

    def _select(self, columns: str, owner: str | None, limit: int | None = None) -> pd.DataFrame:
        where = "WHERE id IN (SELECT comparison_id FROM owners WHERE owner = ?)" if owner is not None else ""
        sql = f"SELECT {columns} FROM comparisons {where} ORDER BY id DESC LIMIT ?"
        params = ([owner] if owner is not None else []) + [-1 if limit is None else limit]
        with self._connect() as db:
            return pd.read_sql_query(sql, db, params=params)

    def comparisons(self, owner: str | None = None, limit: int | None = None) -> pd.DataFrame:
        """A row per comparison, newest first (only `owner`'s if given); reads no histories or images."""
        frame = self._select(_LISTED, owner, limit)
        frame["created"] = pd.to_datetime(frame["created"], utc=True)
        frame["stopped"] = frame["stopped"].astype(bool)
        return frame

    def histories(self, ids: list[int]) -> dict[int, pd.DataFrame]:
        """The histories of these comparisons, by id, to overlay their curves. Raises `KeyError` for a missing id."""
        ids = [int(i) for i in ids]
        sql = f"SELECT id, history FROM comparisons WHERE id IN ({', '.join('?' * len(ids))})"
        with self._connect() as db:
            found = dict(db.execute(sql, ids))
        if missing := [i for i in ids if i not in found]:
            raise KeyError(f"No comparison {missing} in the run store {self.path}")
        return {i: _frame(found[i]) for i in ids}

    def export_csv(self, path: str | Path, owner: str | None = None, class_accuracy: bool = False) -> Path:
        """Write a CSV row per (comparison, arm): its configuration, test results, device and versions.

        Args:
            path: the CSV file; its folder must exist. Written whole or not at all.
            owner: only this session's comparisons.
            class_accuracy: add an `accuracy[<class>]` column per class name.
        """
        rows = [row for c in self._select(_EXPORTED, owner).itertuples() for row in _arm_rows(c, class_accuracy)]
        return write_csv(pd.DataFrame(rows, columns=None if rows else ["id", "key", "arm"]), path)

    def export_histories_csv(self, path: str | Path, owner: str | None = None) -> Path:
        """Write a CSV row per record of every comparison (only `owner`'s if given), with its id."""
        frames = [_frame(h).assign(id=i) for i, h in self._select("id, history", owner).itertuples(index=False)]
        frame = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["id"])
        return write_csv(frame[["id", *[c for c in frame.columns if c != "id"]]], path)

    def __len__(self) -> int:
        with self._connect() as db:
            return db.execute("SELECT count(*) FROM comparisons").fetchone()[0]
