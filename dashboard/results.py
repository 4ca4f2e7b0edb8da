"""A finished comparison (the verdict, per-class results, mistakes) and the session's history."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pandas as pd
import streamlit as st
import torch

from dashboard.address import share_link
from dashboard.charts import chart
from dashboard.controls import STEPS
from dashboard.live import curves_ui, run_title, x_axis_ui
from dashboard.predict import outcome_ui
from dashboard.server import job_queue
from dashboard.uploads import dataset_label
from transferlab import dataset_modality, plots
from transferlab.serve import DEFAULT_STEPS, EXPORT, FAILED, QUEUED, Job, RunStore, exported_path, kept_model


def result_ui(job: Job, sid: str, store: RunStore) -> None:
    """The verdict, the final curves, and where each arm goes wrong."""
    st.markdown(f"#### {run_title(job)}")
    if job.status == FAILED:
        st.error(f"The comparison failed: {job.error}")
        return
    if sid not in job.owners:
        st.info("You stopped following this comparison; it went on for the other sessions that asked for it.")
        return
    outcome = job.outcome
    if outcome is None:
        st.warning("Stopped before it started: it never left the queue.")
        return
    if job.warning:
        st.warning(job.warning)
    if outcome.stopped:
        st.warning("Stopped before the end: no verdict. The curves show how far it got.")
    else:
        if job.started and job.submitted > job.started:  # finished before this session asked for it
            st.info("From the run store: this comparison was trained on this server before, so it is shown at once.")
        st.success(f"### {outcome.verdict()}")
        outcome_ui(job, store, sid)
        if not job.reused and (estimate := st.session_state.get("estimates", {}).get(job.key)):
            st.caption(f"Took {job.elapsed:.0f} s; estimated {estimate.seconds:.0f} s before it ran.")
        longer_run_ui(job)
        table = outcome.table.set_index("arm")
        cols = st.columns(len(table) + 1)
        for col, (arm, row) in zip(cols, table.iterrows()):
            col.metric(f"{arm} test accuracy", f"{row.test_accuracy:.1%}", help=arm_note(row))
        if {"finetune", "scratch"} <= set(outcome.predictions):
            gap = outcome.difference("finetune", "scratch")
            cols[-1].metric(
                "Gap (finetune - scratch)",
                f"{gap.estimate * 100:+.1f} points",
                help=f"{gap.interval()} ({gap.method}); an interval that covers zero is a tie",
            )
        st.caption(f"Share this comparison: {share_link(job.config, job.arms)}")
    curves_ui(job, x_axis_ui())
    if not outcome.stopped:
        details_ui(job)
        take_away_ui(job)


def arm_note(row) -> str:
    """An arm's cost, and with a patience budget the steps it used."""
    note = f"{row.seconds:.0f} s of training"
    if pd.notna(row.get("best_step")):
        note += f"; {int(row.steps):,} steps, its best weights from step {int(row.best_step):,}"
    if pd.notna(row.get("lr_tried")):
        note += f"; learning rate {row.lr:g} chosen on validation (tried {row.lr_tried})"
    return note


def longer_run_ui(job: Job) -> None:
    """When an arm was still improving as its budget ran out, offer the same comparison, longer,
    or trained until each arm stops improving."""
    steps = job.config.steps or DEFAULT_STEPS
    longer = next((s for s in STEPS if s >= 4 * steps), None)
    if job.config.epochs or job.config.patience or not job.outcome.improving():
        return

    def run_again(**settings) -> None:
        st.session_state.update(settings, run_now=True)

    left, right = st.columns(2)
    if longer is not None:
        left.button(
            f"Run it again with {longer} steps", key=f"longer-{job.id}", on_click=run_again, kwargs={"steps": longer}
        )
    right.button(
        "Run it again, each arm until it stops improving",
        key=f"until-{job.id}",
        on_click=run_again,
        kwargs={"until": True},
    )


def take_away_ui(job: Job) -> None:
    """Download the fine-tuned network as ONNX or TorchScript, its preprocessing inside."""
    if "finetune" not in job.outcome.arms or dataset_modality(job.config.dataset) != "image":
        return  # only image classifiers are exported
    st.markdown("#### Take the fine-tuned model away")
    key = job.outcome.unit_key("finetune")
    if (kept := kept_model(key)) is None:
        st.caption("This comparison's model is no longer kept on the server: run it again to download it.")
        return
    st.caption(
        "It takes an RGB photo of any size as uint8 (height, width, 3) and returns the probability of each "
        "class; its model card (below) is in its metadata and in the .md file beside it. The README shows how "
        "to run it with onnxruntime and Pillow."
    )
    if (card := kept.with_name(f"{kept.name}.md")).is_file():
        with st.expander("Its model card", expanded=True):
            st.markdown(card.read_text().split("\n", 1)[1])  # less the title: the comparison's is above
    c = job.config
    stem = f"{dataset_label(c.dataset).split(' ')[0]}-{c.backbone}-k{c.freeze_depth}"
    for col, suffix in zip(st.columns(2), (".onnx", ".torchscript")):
        with col:
            export_ui(key, f"{stem}{suffix}", suffix)


def export_ui(key: str, file_name: str, suffix: str) -> None:
    """One format: made by a worker when first asked for (the "export" task), then a download
    read from disk when clicked, so no session holds a copy."""
    made = exported_path(key, suffix)
    if made.is_file():
        st.download_button(f"Download {file_name}", made.read_bytes, file_name=file_name, key=f"download-{key}{suffix}")
        card = made.with_name(f"{made.name}.md")
        parity = [line for line in card.read_text().splitlines() if "**Parity**" in line] if card.is_file() else []
        st.caption(parity[0].removeprefix("- ") if parity else "")
        return
    tasks = st.session_state.setdefault("exports", {})
    task = tasks.get((key, suffix))
    if task is not None and task.active:
        st.fragment(run_every=1.0)(export_progress)(task, file_name)
        return
    if task is not None and task.error:
        st.error(f"{file_name} could not be made: {task.error}")
    if st.button(f"Make {file_name}", key=f"make-{key}{suffix}", help="A worker writes it; a few seconds"):
        tasks[(key, suffix)] = job_queue().submit_task(EXPORT, {"key": key, "suffix": suffix}, st.session_state.sid)
        st.rerun()


def export_progress(task: Job, file_name: str) -> None:
    if task.done:
        st.rerun()  # the whole page: the download button
    where = "waiting for a worker" if task.status == QUEUED else "a worker is writing it"
    st.progress(task.progress, text=f"{file_name}: {where}...")


def details_ui(job: Job) -> None:
    outcome = job.outcome
    labels, classes, predictions = outcome.labels, outcome.classes, outcome.predictions
    per_class, confusion, mistakes, changed = st.tabs(
        ["Accuracy per class", "Confusion matrices", "Mistakes", "Where the network changed"]
    )
    with per_class:
        fig = plots.per_class_accuracy(labels, predictions, classes)
        chart(fig, key=f"job{job.id}-per-class")
    with confusion:
        for col, (arm, preds) in zip(st.columns(len(predictions)), predictions.items()):
            fig = plots.confusion_matrix(labels, preds, classes, title=f"{arm}: confusion matrix")
            fig.update_layout(height=560)
            chart(fig, key=f"job{job.id}-confusion-{arm}", where=col)
    with mistakes:
        for arm, (images, truth, preds) in outcome.mistakes.items():
            if images.dtype.kind == "U":  # a text dataset: the texts themselves
                st.markdown(f"**{arm}: test texts it gets wrong**")
                wrong = {"text": images, "true": [classes[t] for t in truth], "predicted": [classes[p] for p in preds]}
                st.dataframe(pd.DataFrame(wrong), hide_index=True, key=f"job{job.id}-mistakes-{arm}")
                continue
            title = f"{arm}: test images it gets wrong"
            fig = plots.misclassified_grid(torch.from_numpy(images), truth, preds, classes, title=title)
            chart(fig, key=f"job{job.id}-mistakes-{arm}")
    with changed:
        if any(c.startswith("change:") for c in outcome.table.columns):  # older stored runs lack it
            st.caption(
                "How far each block's weights moved during training, relative to where they started (the "
                "pretrained weights for finetune, random ones for scratch). Frozen blocks did not move."
            )
            chart(plots.weight_change(outcome.table), key=f"job{job.id}-changed")


HISTORY_COLUMNS = {
    "id": "comparison",
    "backbone": "backbone",
    "dataset": "dataset",
    "per_class": "per class",
    "freeze_depth": "k",
    "steps": "steps",
    "image_size": "px",
    "seed": "seed",
    "finetune": "finetune",
    "scratch": "scratch",
    "gap": "gap (points)",
    "elapsed": "seconds",
}


def history_ui(store: RunStore, sid: str) -> None:
    """Every finished comparison of this session (kept in the run store); overlay the ones you pick."""
    runs = store.comparisons(owner=sid)
    if runs.empty:
        return
    st.header("Comparison history (this session)")
    table = runs[list(HISTORY_COLUMNS)].rename(columns=HISTORY_COLUMNS)
    table["per class"] = table["per class"].map(lambda n: "all" if pd.isna(n) else str(int(n)))
    table["gap (points)"] = table["gap (points)"] * 100
    st.dataframe(
        table,
        hide_index=True,
        column_config={
            "finetune": st.column_config.NumberColumn(format="percent"),
            "scratch": st.column_config.NumberColumn(format="percent"),
            "gap (points)": st.column_config.NumberColumn(format="%+.1f"),
        },
    )
    st.download_button(  # the CSV is built when clicked, not on every rerun
        "Download as CSV", lambda: runs_csv(store, sid), file_name="transferlab_runs.csv", mime="text/csv", key="csv"
    )
    labels = {  # oldest first, as the runs were made
        f"#{r.id} k={r.freeze_depth} n={'all' if pd.isna(r.per_class) else int(r.per_class)}": r.id
        for r in runs[::-1].itertuples()
    }
    if len(labels) < 2:
        st.caption(
            "Finish another comparison (say, the same size at another freeze depth) to overlay their curves here."
        )
        return
    chosen = st.multiselect("Overlay comparisons", list(labels), default=list(labels)[-3:], key="overlay")
    if chosen:
        x = st.session_state.get("x_axis") or "step"
        histories = store.histories([labels[label] for label in chosen])
        fig = plots.overlay_curves({label: histories[labels[label]] for label in chosen}, x=x)
        chart(fig, key="overlay-chart")


def runs_csv(store: RunStore, sid: str) -> bytes:
    """This session's comparisons as CSV, a row per arm."""
    with tempfile.TemporaryDirectory() as folder:
        return store.export_csv(Path(folder) / "runs.csv", owner=sid).read_bytes()
