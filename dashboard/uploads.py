"""Your own images through the browser: a zip of class folders, or images dropped class by class.

The page only writes what was sent to a staging file; a worker checks, decodes and writes the
images (the "import" task: `transferlab.serve.tasks`, `transferlab.data.imports`) while the page
shows its progress. Then this shows what it found (classes, counts, thumbnails, what was skipped and
why) and selects the new dataset. A session's uploads are its own (`OWNER/NAME`): no other session
lists them.
"""

from __future__ import annotations

from collections.abc import Callable

import streamlit as st
import torch

from dashboard.charts import chart
from dashboard.server import job_queue
from transferlab import TransferlabError, load_dataset, plots
from transferlab.serve import (
    DONE,
    IMAGE_SUFFIXES,
    IMPORT,
    QUEUED,
    ImportLimits,
    Job,
    delete_imported,
    list_imported,
    stage_upload,
)

UPLOAD = "upload your images"  # the dataset menu's entry that opens the upload panel
ZIP, BY_CLASS = "A zip of class folders", "Images, class by class"


def own_datasets(sid: str) -> list[str]:
    """This session's uploads, as OWNER/NAME (the shared imported sets are in `list_datasets`)."""
    return [name for name in list_imported(sid) if "/" in name]


def dataset_label(name: str) -> str:
    """How the menu shows a dataset: a session's own upload by its name and '(yours)'."""
    if name == UPLOAD:
        return "Upload your own images..."
    return f"{name.split('/', 1)[1]} (yours)" if "/" in name else name


def select_pending_upload() -> None:
    """Before the dataset menu is drawn: select a set imported in the previous script run."""
    if (name := st.session_state.pop("pending_dataset", None)) is not None:
        st.session_state.dataset = name


def upload_ui(sid: str) -> None:
    """The upload panel (main area): the files, a name, Import; then the report of what was found."""
    limits = ImportLimits.from_env()
    st.markdown(
        "#### Your own images\nOne folder per class, named after the class (optionally inside `train/` and "
        "`test/`); without a test folder, a fifth of each class is held out for testing. Every image is "
        "checked and re-encoded; files that cannot be read are left out and listed. Up to "
        f"{limits.upload_bytes >> 20} MB. Only you see what you upload."
    )
    how = st.radio("How", [ZIP, BY_CLASS], horizontal=True, key="upload_how", label_visibility="collapsed")
    if how == ZIP:
        archive = st.file_uploader("A .zip of class folders", type=["zip"], key="upload_zip")
        source = archive
    else:
        source = class_by_class_ui()
    name = st.text_input("Name of the dataset", key="upload_name", placeholder="my-images", max_chars=40)
    importing = state_import()
    ready = bool(source) and bool(name.strip()) and importing is None
    if st.button("Import", type="primary", disabled=not ready, key="import"):
        try:
            staged = stage_upload(source, sid)  # the bytes as sent: a worker decodes them
            args = {"staged": str(staged), "name": name.strip(), "owner": sid}
            st.session_state.import_job = job_queue().submit_task(IMPORT, args, owner=sid)
        except (TransferlabError, OSError) as error:
            st.error(f"Nothing was imported: {error}")
            return
        st.rerun()
    if importing is not None:
        st.fragment(run_every=1.0)(import_progress)(importing)


def state_import() -> Job | None:
    """This session's import while it waits or runs; once it ended, its report (the new set
    selected), or what went wrong, is shown and it is forgotten."""
    job = st.session_state.get("import_job")
    if job is None or job.active:
        return job
    del st.session_state.import_job
    if job.status == DONE:
        st.session_state.import_report = job.result
        st.session_state.pending_dataset = job.result.name
        st.rerun()
    elif job.error:
        st.error(f"Nothing was imported: {job.error}")
    else:
        st.info("The import was stopped: nothing was imported.")
    return None


def import_progress(job: Job) -> None:
    """The import's bar, redrawn every second by a worker's progress; the page once it ends."""
    if job.done:
        st.rerun()
    bar, stop = st.columns([9, 1], vertical_alignment="bottom")
    if job.status == QUEUED:
        bar.progress(0.0, text=f"Waiting for a worker ({job.position} run(s) before it)...")
    else:
        bar.progress(job.progress, text=f"A worker is {job.phase}: {job.progress:.0%}")
    stop.button("Stop", key="stop-import", on_click=job.stop, args=(st.session_state.sid,))


def class_by_class_ui() -> dict[str, list[tuple[str, bytes]]] | None:
    """A name and a file picker per class; 'Add a class' for more. {class: [(file, bytes)]} or None."""
    state = st.session_state
    state.setdefault("upload_classes", 2)
    found = {}
    for i in range(state.upload_classes):
        left, right = st.columns([1, 3])
        label = left.text_input(f"Class {i + 1}", key=f"upload_class_{i}", placeholder=f"class {i + 1}")
        files = right.file_uploader(
            f"Images of class {i + 1}",
            type=sorted(s.lstrip(".") for s in IMAGE_SUFFIXES),
            accept_multiple_files=True,
            key=f"upload_files_{i}",
        )
        if label.strip() and files:
            found.setdefault(label.strip(), []).extend((f.name, f.getvalue()) for f in files)
    if st.button("Add a class", key="upload_add_class"):
        state.upload_classes += 1
        st.rerun()
    return found or None


def report_ui(dataset: str) -> None:
    """What the last import found, while its dataset is the one selected: counts, thumbnails, skips."""
    report = st.session_state.get("import_report")
    if report is None or report.name != dataset:
        return
    train, test = sum(report.train_counts.values()), sum(report.test_counts.values())
    held = "a fifth of each class held out" if report.test_split == "made" else "from your test/ folder"
    st.success(
        f"Imported **{dataset_label(report.name)}**: {len(report.classes)} classes, {train} training images "
        f"and {test} test images ({held})."
    )
    with st.expander("What was imported", expanded=True):
        st.dataframe(
            {
                "class": list(report.classes),
                "training images": [report.train_counts[c] for c in report.classes],
                "test images": [report.test_counts[c] for c in report.classes],
            },
            hide_index=True,
        )
        ds = load_dataset(report.name)
        picks = [torch.nonzero(ds.train_labels == c).flatten()[:4] for c in range(ds.num_classes)]
        rows = torch.cat(picks)[:24]
        fig = plots.image_grid(ds.train_images[rows], [ds.classes[int(c)] for c in ds.train_labels[rows]])
        chart(fig, key="upload-thumbnails")
        if report.skipped:
            st.warning(f"{len(report.skipped)} file(s) left out:")
            st.dataframe({"file": [f for f, _ in report.skipped], "why": [w for _, w in report.skipped]})


def delete_ui(dataset: str, forget: Callable[[], None]) -> None:
    """A button that deletes the selected dataset when it is this session's own upload (sidebar);
    `forget` drops what the server cached about it, and nothing else."""
    if "/" not in dataset:
        return

    def delete() -> None:
        forget()
        delete_imported(dataset)
        st.session_state.dataset = UPLOAD
        st.session_state.pop("import_report", None)

    st.button("Delete this dataset", key="delete_dataset", on_click=delete)
