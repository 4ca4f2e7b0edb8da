"""transferlab's dashboard: fine-tune a pretrained network and train the same network from scratch, live.

    make app                   # http://127.0.0.1:8501
    HOST=0.0.0.0 make app      # serve a classroom

The page configures, calls the engine and displays; it holds no training logic. Training runs
in `transferlab.jobs`' worker thread, one job at a time for every session on the server (the
queue comes from `st.cache_resource`); each session keeps its own jobs in `st.session_state` and
redraws the running one from its record stream in a fragment that reruns itself. Every chart
comes from `transferlab.plots`. `TRANSFERLAB_SHOW_TEST_ENTRIES=1` adds the test suite's tiny
backbone and dataset (test_tiny, test_blobs) to the menus.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pandas as pd
import streamlit as st
import torch
from streamlit.delta_generator import DeltaGenerator

from transferlab import (
    ConfigError,
    ExperimentConfig,
    TransferlabError,
    backbone_status,
    create_backbone,
    dataset_status,
    device_name,
    freeze_to,
    get_spec,
    list_backbones,
    list_datasets,
    load_dataset,
    pick_device,
    plots,
)
from transferlab.datasets import describe_dataset
from transferlab.jobs import FAILED, QUEUED, Job, JobQueue

DEFAULT_BACKBONE, DEFAULT_DATASET = "efficientnet_lite0", "fashion_mnist"
SIZES = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, "all"]  # images per class, log-spaced
LEARNING_RATES = [1e-4, 3e-4, 1e-3, 3e-3, 1e-2]
HEAD_LR_MULTS = [1, 2, 5, 10, 20]
INPUT_SIZES = [32, 48, 64, 96, 128, 160, 192, 224]
X_AXES = {"epoch": "epoch", "seconds": "seconds", "images_seen": "images seen"}
REFRESH_SECONDS = {"cuda": 0.5, "cpu": 1.0}  # how often a running job's charts are redrawn, by device
LONG_RUN_IMAGES = 30_000  # training images x epochs per arm beyond which a CPU run takes minutes
CHART_HEIGHT = 420  # pixels: the controls and both curves fit on one projected screen
# Less empty space above the title, for the same reason.
PAGE_CSS = '[data-testid="stMainBlockContainer"] { padding-top: 2.5rem; }'


def show_test_entries() -> bool:
    return os.environ.get("TRANSFERLAB_SHOW_TEST_ENTRIES") == "1"


# --- shared, cached resources --------------------------------------------------------------


@st.cache_resource
def job_queue() -> JobQueue:
    """The one queue of every session on this server: the device trains one job at a time."""
    return JobQueue()


@st.cache_data(show_spinner=False)
def freeze_summary(backbone: str, k: int, num_classes: int) -> pd.DataFrame:
    """Parameters per block and whether they train at depth k (random weights: cheap, same shapes)."""
    return freeze_to(create_backbone(backbone, num_classes, pretrained=False), k)


@st.cache_resource(max_entries=64, show_spinner=False)
def curve_figure(job_id: int, n_records: int, x: str, metric: str, epochs: int, _history: pd.DataFrame):
    """A job's learning curves, built once per new record: redraws without news cost no figure building.

    Records only ever append, so (job, number of records) names the history; `_history` is not hashed.
    """
    fig = plots.learning_curves(_history, x=x, metric=metric)
    if x == "epoch":  # the whole run's axis from the start: the curves grow across it
        fig.update_xaxes(range=[0.5, epochs + 0.5])
    return fig


@st.cache_data(show_spinner="Loading the dataset...")
def dataset_facts(name: str, root: str | None) -> dict:
    """What the menus and checks need to know about a dataset (loading it once per server)."""
    ds = load_dataset(name, root=root)
    return {
        "classes": ds.classes,
        "smallest_class": int(torch.bincount(ds.train_labels, minlength=ds.num_classes).min()),
        "smallest_test_class": int(torch.bincount(ds.test_labels, minlength=ds.num_classes).min()),
        "train": len(ds.train_labels),
        "test": len(ds.test_labels),
    }


def defaults_for(dev: torch.device) -> dict:
    """Settings that keep a run live on this device: a GPU affords bigger images and more data."""
    if dev.type == "cuda":
        return {"per_class": 200, "epochs": 15, "gpu": True}
    return {"per_class": 10, "epochs": 15, "gpu": False}


# --- widgets: each *_ui() draws and returns plain values -----------------------------------


def source_ui() -> dict:
    """Backbone and dataset menus (sidebar). Unavailable entries stay listed, marked, with the reason."""
    st.header("Network and data")
    backbones = list_backbones(include_test=show_test_entries())
    backbone = st.selectbox(
        "Pretrained backbone",
        backbones,
        index=backbones.index(DEFAULT_BACKBONE),
        format_func=lambda n: n if backbone_status(n)[0] else f"{n} (not available here)",
        key="backbone",
    )
    spec = get_spec(backbone)
    st.caption(f"{spec.description}. Pretrained on {spec.pretrained_on}.")

    datasets = list_datasets(include_test=show_test_entries())
    dataset = st.selectbox(
        "Dataset",
        datasets,
        index=datasets.index(DEFAULT_DATASET),
        format_func=lambda n: n if n == "image_folder" or dataset_status(n)[0] else f"{n} (not available here)",
        key="dataset",
    )
    st.caption(describe_dataset(dataset))
    root = None
    if dataset == "image_folder":
        root = st.text_input(
            "Folder of your photos",
            key="root",
            placeholder="/path/to/photos",
            help="One sub-folder of images per class (optionally inside train/ and test/).",
        ).strip()
    return {"backbone": backbone, "dataset": dataset, "root": root or None}


def advanced_ui(backbone: str, defaults: dict) -> dict:
    """The optimisation settings most people leave alone, folded away (sidebar)."""
    spec = get_spec(backbone)
    default_size = spec.input_size if defaults["gpu"] else spec.train_size
    sizes = sorted({*INPUT_SIZES, spec.train_size, spec.input_size})
    with st.expander("Advanced"):
        lr = st.select_slider("Learning rate", LEARNING_RATES, value=1e-3, format_func=lambda v: f"{v:g}", key="lr")
        head_lr_mult = st.select_slider(
            "Head learning-rate multiplier",
            HEAD_LR_MULTS,
            value=1,
            format_func=lambda v: f"x{v}",
            key="head_lr_mult",
            help="The new head learns at learning rate x this; the blocks at the learning rate.",
        )
        image_size = st.select_slider(
            "Input size (pixels)",
            sizes,
            value=default_size,
            key=f"size-{backbone}",
            help=f"Images are resized to this. {spec.name} was pretrained at {spec.input_size} px; "
            "bigger is slower (a GPU makes 224 px live).",
        )
        augment = st.toggle("Augmentation (flips, scales, shifts)", value=False, key="augment")
    return {"lr": lr, "head_lr_mult": head_lr_mult, "image_size": image_size, "augment": augment}


def count(n: int) -> str:
    return f"{n / 1e6:.2f} M" if n >= 1e6 else f"{n:,}"


def freeze_label(k: int, blocks: tuple[str, ...]) -> str:
    if k == 0:
        return "0: nothing frozen"
    if k == len(blocks):
        return f"{k}: all frozen (probe)"
    return f"{k}: up to {blocks[k - 1]}"


def experiment_ui(backbone: str, num_classes: int, defaults: dict) -> tuple[dict, DeltaGenerator]:
    """The two controls the lesson is about, freeze depth and dataset size, with their picture.

    Returns the settings, and the place under them kept for the Run button.
    """
    spec = get_spec(backbone)
    freeze_col, size_col, picture_col = st.columns([6, 5, 5], gap="medium")
    with freeze_col:
        k = st.select_slider(
            "Freeze depth k: the first k blocks stay frozen",
            options=list(range(spec.num_blocks + 1)),
            value=min(ExperimentConfig.freeze_depth, spec.num_blocks),
            format_func=lambda k: freeze_label(k, spec.blocks),
            key=f"freeze-{backbone}",
        )
        summary = freeze_summary(backbone, k, num_classes)
        trained = summary[summary.trainable]
        share = trained.parameters.sum() / summary.parameters.sum()
        frozen = ", ".join(summary.block[~summary.trainable]) or "nothing"
        st.markdown(
            f"**{share:.0%} of the parameters train** ({count(trained.parameters.sum())} of "
            f"{count(summary.parameters.sum())}). Frozen: {frozen}. The scratch arm trains everything."
        )
    with size_col:
        per_class = st.select_slider(
            "Dataset size: training images per class",
            options=SIZES,
            value=defaults["per_class"],
            key="per_class",
            help="Drawn at random (by the seed) from the training split; the test split never shrinks.",
        )
        epochs_col, seed_col = st.columns([3, 2])
        epochs = epochs_col.slider("Epochs", 1, 50, defaults["epochs"], key="epochs")
        seed = int(seed_col.number_input("Seed", 0, 9999, 0, key="seed", help="Which images are drawn, and the init."))
        run_area = st.container()
    with picture_col:
        fig = plots.freeze_diagram(summary, title=f"k = {k}: {share:.0%} of parameters train")
        fig.update_layout(height=240, margin=dict(l=10, r=10, t=40, b=10), yaxis_title=None, title_font_size=17)
        fig.update_xaxes(tickangle=-45)
        st.plotly_chart(fig, theme=None, key="freeze-diagram", config={"displayModeBar": False})
    settings = {
        "freeze_depth": k,
        "per_class": None if per_class == "all" else per_class,
        "epochs": epochs,
        "seed": seed,
    }
    return settings, run_area


# --- checks: settings that cannot work become an error that says what to do ---------------


def check_sources(backbone: str, dataset: str, root: str | None) -> tuple[list[str], dict | None]:
    """(problems, dataset facts or None)."""
    problems = []
    ok, why = backbone_status(backbone)
    if not ok:
        problems.append(
            f"The {backbone} weights are not available here: {why}. "
            f"(`python -m transferlab compare --backbone {backbone}` fetches them once online.) "
            "Meanwhile choose efficientnet_lite0, which ships with the kit."
        )
    if dataset == "image_folder":
        if root is None:
            problems.append("Type the path of a folder of your photos: one sub-folder of images per class.")
            return problems, None
        if not Path(root).expanduser().is_dir():
            problems.append(f"{root} is not a folder here: give a folder with one sub-folder of images per class.")
            return problems, None
    else:
        ok, why = dataset_status(dataset)
        if not ok:
            problems.append(
                f"{dataset} is not available here: {why}. "
                f"(`python -m transferlab compare --dataset {dataset}` fetches it once online.) "
                "Offline, fashion_mnist, digits and mnist work."
            )
            return problems, None
    try:
        return problems, dataset_facts(dataset, root)
    except TransferlabError as error:
        problems.append(str(error))
        return problems, None


def check_config(config: ExperimentConfig, facts: dict | None) -> list[str]:
    try:
        config.validate()
    except ConfigError as error:
        return [str(error)]
    if facts and config.per_class is not None and config.per_class > facts["smallest_class"]:
        fits = max([s for s in SIZES if s != "all" and s <= facts["smallest_class"]], default=1)
        return [
            f"{config.dataset} has only {facts['smallest_class']} training images in its smallest class: "
            f"choose {fits} images per class or fewer, or 'all'."
        ]
    return []


# --- a running job, redrawn from its record stream -------------------------------------------


def x_axis_ui() -> str:
    """The curves' horizontal axis: epochs, seconds of training, or images seen."""
    x = st.segmented_control(
        "Horizontal axis", list(X_AXES), format_func=X_AXES.get, default="epoch", required=True, key="x_axis"
    )
    return x or "epoch"


def curves_ui(job: Job, x: str) -> None:
    """Test accuracy and loss of both arms, side by side."""
    history = job.history()
    left, right = st.columns(2)
    for column, metric in ((left, "accuracy"), (right, "loss")):
        fig = curve_figure(job.id, len(history), x, metric, job.config.epochs, history)
        column.plotly_chart(fig, theme=None, height=CHART_HEIGHT, key=f"job{job.id}-{metric}")


def status_ui(job: Job) -> None:
    """Where the job is: in the queue, training (progress, device, throughput), or finishing."""
    if job.status == QUEUED:
        ahead = job.position or 0
        st.info(
            f"Waiting for the device: {ahead} job{'s' if ahead != 1 else ''} ahead of yours. "
            "It trains one job at a time for everyone on this server."
            if ahead
            else "Starting..."
        )
        return
    st.progress(job.progress, text=f"{job.phase}: {job.progress:.0%}")
    speed = job.images_per_second
    st.markdown(
        f"**Device** {job.device or device_name(pick_device())} &nbsp;·&nbsp; "
        f"**Throughput** {f'{speed:,.0f} images/s' if speed else '...'} &nbsp;·&nbsp; **Elapsed** {job.elapsed:.0f} s"
    )


def live_ui(job: Job, number: int) -> None:
    """Redraws itself every second or so while the job waits or trains, then hands over to the page."""
    st.markdown(f"#### Run {number}: {run_title(job)}")
    st.fragment(run_every=REFRESH_SECONDS.get(pick_device().type, 1.0))(live_view)(job)


def live_view(job: Job) -> None:
    if job.done:
        st.rerun()  # the whole page: verdict, details, history, and the Run button back
    status_col, axis_col, stop_col = st.columns([6, 3, 1], vertical_alignment="bottom")
    with status_col:
        status_ui(job)
    with axis_col:
        x = x_axis_ui()
    stop_col.button("Stop", key=f"stop-{job.id}", on_click=job.stop, width="stretch", help="Stops within one batch.")
    curves_ui(job, x)


# --- a finished job ------------------------------------------------------------------------


def result_ui(job: Job, number: int) -> None:
    """The verdict, the final curves, and where each arm goes wrong."""
    st.markdown(f"#### Run {number}: {run_title(job)}")
    if job.status == FAILED:
        st.error(f"The run failed: {job.error}")
        return
    result = job.result
    if result is None:
        st.warning("Stopped before it started: it never left the queue.")
        return
    if result.stopped:
        st.warning("Stopped before the end: no verdict. The curves show how far it got.")
    else:
        st.success(f"### {result.verdict()}")
        table = result.table.set_index("arm")
        cols = st.columns(len(table) + 1)
        for col, (arm, row) in zip(cols, table.iterrows()):
            col.metric(f"{arm} test accuracy", f"{row.test_accuracy:.1%}", help=f"{row.seconds:.0f} s of training")
        if {"finetune", "scratch"} <= set(table.index):
            cols[-1].metric("Gap (finetune - scratch)", f"{result.gap * 100:+.1f} points")
    curves_ui(job, x_axis_ui())
    if not result.stopped:
        details_ui(job)


def details_ui(job: Job) -> None:
    result = job.result
    labels = result.data.test_labels.cpu()
    classes = result.data.dataset.classes
    predictions = {arm: run.test_predictions.cpu() for arm, run in result.runs.items()}
    per_class, confusion, mistakes = st.tabs(["Accuracy per class", "Confusion matrices", "Mistakes"])
    with per_class:
        fig = plots.per_class_accuracy(labels, predictions, classes)
        st.plotly_chart(fig, theme=None, key=f"job{job.id}-per-class")
    with confusion:
        for col, (arm, preds) in zip(st.columns(len(predictions)), predictions.items()):
            fig = plots.confusion_matrix(labels, preds, classes, title=f"{arm}: confusion matrix")
            fig.update_layout(height=560)
            col.plotly_chart(fig, theme=None, key=f"job{job.id}-confusion-{arm}")
    with mistakes:
        images = result.data.test_images.cpu()
        for arm, preds in predictions.items():
            fig = plots.misclassified_grid(images, labels, preds, classes, title=f"{arm}: test images it gets wrong")
            st.plotly_chart(fig, theme=None, key=f"job{job.id}-mistakes-{arm}")


# --- the session's history -------------------------------------------------------------------


def run_title(job: Job) -> str:
    c = job.config
    return (
        f"{c.backbone} on {c.dataset}, k={c.freeze_depth}, {c.per_class or 'all'} per class, "
        f"{c.epochs} epochs, {c.size} px, seed {c.seed}"
    )


def history_row(number: int, job: Job) -> dict:
    c = job.config
    row = {
        "run": number,
        "status": job.status,
        "backbone": c.backbone,
        "dataset": c.dataset,
        "per class": str(c.per_class or "all"),
        "k": c.freeze_depth,
        "epochs": c.epochs,
        "px": c.size,
        "seed": c.seed,
        "lr": c.lr,
        "finetune": None,
        "scratch": None,
        "gap (points)": None,
        "seconds": round(job.elapsed, 1),
    }
    if job.result is not None and not job.result.stopped:
        acc = job.result.table.set_index("arm").test_accuracy
        row.update(finetune=acc.get("finetune"), scratch=acc.get("scratch"), **{"gap (points)": job.result.gap * 100})
    return row


def history_ui(jobs: list[Job]) -> None:
    """Every finished run of this session as a row; overlay the curves of the runs you pick."""
    finished = [(i, job) for i, job in enumerate(jobs, start=1) if job.done]
    if not finished:
        return
    st.header("Run history (this session)")
    table = pd.DataFrame([history_row(i, job) for i, job in finished])
    st.dataframe(
        table,
        hide_index=True,
        column_config={
            "finetune": st.column_config.NumberColumn(format="percent"),
            "scratch": st.column_config.NumberColumn(format="percent"),
            "gap (points)": st.column_config.NumberColumn(format="%+.1f"),
        },
    )
    labels = {f"#{i} k={j.config.freeze_depth} n={j.config.per_class or 'all'}": j for i, j in finished if j.result}
    if len(labels) < 2:
        st.caption("Finish another run (say, the same size at another freeze depth) to overlay their curves here.")
        return
    chosen = st.multiselect("Overlay runs", list(labels), default=list(labels)[-3:], key="overlay")
    if chosen:
        x = st.session_state.get("x_axis") or "epoch"
        fig = plots.overlay_curves({label: labels[label].history() for label in chosen}, x=x)
        st.plotly_chart(fig, theme=None, key="overlay-chart")


# --- the page ----------------------------------------------------------------------------------


def workload_note(config: ExperimentConfig, facts: dict, dev: torch.device) -> str:
    """How much work the Run button starts, in images."""
    classes = len(facts["classes"])
    n = config.per_class * classes if config.per_class else facts["train"]
    per_test = config.test_per_class  # the engine takes the whole test split when a class has fewer
    tested = per_test * classes if per_test and per_test <= facts["smallest_test_class"] else facts["test"]
    note = f"{n:,} training images per arm x {config.epochs} epochs; {tested:,} test images."
    if dev.type == "cpu" and n * config.epochs > LONG_RUN_IMAGES:
        note += " That takes minutes on a CPU: Stop ends it any time."
    return note


def main() -> None:
    st.set_page_config(page_title="transferlab", layout="wide")
    state = st.session_state
    state.setdefault("session_id", uuid.uuid4().hex)
    jobs: list[Job] = state.setdefault("jobs", [])  # this session's jobs, and only its own
    queue, dev = job_queue(), pick_device()
    defaults = defaults_for(dev)

    with st.sidebar:
        source = source_ui()
        advanced = advanced_ui(source["backbone"], defaults)
        st.divider()
        st.caption(f"Device: **{device_name(dev)}**. Queue: {len(queue.jobs())} job(s) running or waiting here.")

    spec = get_spec(source["backbone"])
    st.html(f"<style>{PAGE_CSS}</style>")
    st.title("Does a pretrained network learn faster?")
    st.markdown(
        f"**finetune**: {spec.name} with its {spec.pretrained_on} weights, the first k blocks frozen. "
        f"**scratch**: the same network from random weights, all of it trained. Same {source['dataset']} "
        "images, same test split."
    )
    problems, facts = check_sources(**source)
    experiment, run_area = experiment_ui(source["backbone"], len(facts["classes"]) if facts else 10, defaults)
    config = ExperimentConfig(
        dataset=source["dataset"], backbone=source["backbone"], root=source["root"], **experiment, **advanced
    )
    problems += check_config(config, facts)
    for problem in problems:
        st.error(problem)

    active = next((job for job in jobs if job.active), None)
    with run_area:
        if st.button("Run", type="primary", disabled=bool(problems or active), key="run", width="stretch"):
            active = queue.submit(config, owner=state.session_id)
            jobs.append(active)
        if facts and not problems:
            st.caption(workload_note(config, facts, dev))

    if active is not None:
        live_ui(active, jobs.index(active) + 1)
    elif jobs:
        result_ui(jobs[-1], len(jobs))
    history_ui(jobs)


if __name__ == "__main__":  # as `streamlit run app.py` (and AppTest) run it; importing it runs nothing
    main()
