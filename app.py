"""transferlab's dashboard: fine-tune a pretrained network and train the same network from scratch, live.

    make app                   # http://127.0.0.1:8501
    HOST=0.0.0.0 make app      # serve a classroom; ?view=board is the class board

The page configures, calls the engine and displays; it holds no training logic. Comparisons train
in the job queue's worker processes (`transferlab.jobs`), in the order they came, for every session
on the server; this process only serves pages. A session sees its own comparisons: the running one
is redrawn from its record stream in a fragment that reruns itself, the finished ones come from the
run store. The settings live in the address, so a link reproduces a comparison. Every chart comes
from `transferlab.plots`. `TRANSFERLAB_SHOW_TEST_ENTRIES=1` adds the test suite's tiny backbone and
dataset (test_tiny, test_blobs) to the menus.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pandas as pd
import streamlit as st
import torch
from streamlit.delta_generator import DeltaGenerator

from dashboard import board
from dashboard.address import run_requested, settings_from_address, share_link, show_in_address
from dashboard.server import job_queue, max_work, run_store, session_id
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
from transferlab.jobs import FAILED, QUEUED, Job
from transferlab.store import RunStore
from transferlab.training import check_work

DEFAULT_BACKBONE, DEFAULT_DATASET = "efficientnet_lite0", "fashion_mnist"
SIZES = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, "all"]  # images per class, log-spaced
LEARNING_RATES = [1e-4, 3e-4, 1e-3, 3e-3, 1e-2]
HEAD_LR_MULTS = [1, 2, 5, 10, 20]
INPUT_SIZES = [32, 48, 64, 96, 128, 160, 192, 224]
X_AXES = {"epoch": "epoch", "seconds": "seconds", "images_seen": "images seen"}
REFRESH_SECONDS = {"cuda": 0.5, "cpu": 1.0}  # how often a running job's charts are redrawn, by device
WAITING_REFRESH_SECONDS = 4.0  # how often a page waiting in the queue checks its place
STOP_HELP = "Stops within one batch. A comparison other sessions asked for too goes on for them."
LONG_RUN_IMAGES = 30_000  # training images x epochs per arm beyond which a CPU run takes minutes
CHART_HEIGHT = 420  # pixels: the controls and both curves fit on one projected screen
# Less empty space above the title, for the same reason.
PAGE_CSS = '[data-testid="stMainBlockContainer"] { padding-top: 2.5rem; }'


def show_test_entries() -> bool:
    return os.environ.get("TRANSFERLAB_SHOW_TEST_ENTRIES") == "1"


# --- cached resources (the queue and the store are in dashboard.server) ------------------


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


def choose(options: list, given, fallback, name: str, ignored: list[str]):
    """`given` (a setting from the address) when it is one of `options`, else `fallback`, noting why."""
    if given is None or given in options:
        return fallback if given is None else given
    ignored.append(f"{name}={given}")
    return fallback


# --- widgets: each *_ui() draws and returns plain values -----------------------------------


def source_ui(given: dict, ignored: list[str]) -> dict:
    """Backbone and dataset menus (sidebar). Unavailable entries stay listed, marked, with the reason."""
    st.header("Network and data")
    backbones = list_backbones(include_test=show_test_entries())
    backbone = st.selectbox(
        "Pretrained backbone",
        backbones,
        index=backbones.index(choose(backbones, given.get("backbone"), DEFAULT_BACKBONE, "backbone", ignored)),
        format_func=lambda n: n if backbone_status(n)[0] else f"{n} (not available here)",
        key="backbone",
    )
    spec = get_spec(backbone)
    st.caption(f"{spec.description}. Pretrained on {spec.pretrained_on}.")

    datasets = list_datasets(include_test=show_test_entries())
    dataset = st.selectbox(
        "Dataset",
        datasets,
        index=datasets.index(choose(datasets, given.get("dataset"), DEFAULT_DATASET, "dataset", ignored)),
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


def advanced_ui(backbone: str, defaults: dict, ignored: list[str]) -> dict:
    """The optimisation settings most people leave alone, folded away (sidebar)."""
    spec = get_spec(backbone)
    sizes = sorted({*INPUT_SIZES, spec.train_size, spec.input_size})
    default_size = choose(sizes, defaults.get("image_size"), spec.train_size, "px", ignored)
    default_size = spec.input_size if defaults["gpu"] and "image_size" not in defaults else default_size
    with st.expander("Advanced"):
        lr = st.select_slider(
            "Learning rate",
            LEARNING_RATES,
            value=choose(LEARNING_RATES, defaults.get("lr"), 1e-3, "lr", ignored),
            format_func=lambda v: f"{v:g}",
            key="lr",
        )
        head_lr_mult = st.select_slider(
            "Head learning-rate multiplier",
            HEAD_LR_MULTS,
            value=choose(HEAD_LR_MULTS, defaults.get("head_lr_mult"), 1, "head", ignored),
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
        augment = st.toggle("Augmentation (flips, scales, shifts)", value=defaults.get("augment", False), key="augment")
    return {"lr": lr, "head_lr_mult": head_lr_mult, "image_size": image_size, "augment": augment}


def count(n: int) -> str:
    return f"{n / 1e6:.2f} M" if n >= 1e6 else f"{n:,}"


def freeze_label(k: int, blocks: tuple[str, ...]) -> str:
    if k == 0:
        return "0: nothing frozen"
    if k == len(blocks):
        return f"{k}: all frozen (probe)"
    return f"{k}: up to {blocks[k - 1]}"


def experiment_ui(backbone: str, num_classes: int, defaults: dict, ignored: list[str]) -> tuple[dict, DeltaGenerator]:
    """The two controls the lesson is about, freeze depth and dataset size, with their picture.

    Returns the settings, and the place under them kept for the Run button.
    """
    spec = get_spec(backbone)
    depths = list(range(spec.num_blocks + 1))
    freeze_col, size_col, picture_col = st.columns([6, 5, 5], gap="medium")
    with freeze_col:
        k = st.select_slider(
            "Freeze depth k: the first k blocks stay frozen",
            options=depths,
            value=choose(
                depths, defaults.get("freeze_depth"), min(ExperimentConfig.freeze_depth, spec.num_blocks), "k", ignored
            ),
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
            value="all" if defaults["per_class"] is None else choose(SIZES, defaults["per_class"], 10, "n", ignored),
            key="per_class",
            help="Drawn at random (by the seed) from the training split; the test split never shrinks.",
        )
        epochs_col, seed_col = st.columns([3, 2])
        epochs = epochs_col.slider(
            "Epochs", 1, 50, choose(range(1, 51), defaults["epochs"], 15, "epochs", ignored), key="epochs"
        )
        seed = seed_col.number_input(
            "Seed",
            0,
            9999,
            choose(range(10_000), defaults.get("seed"), 0, "seed", ignored),
            key="seed",
            help="Which images are drawn, and the init.",
        )
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
        "seed": int(seed),
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


def check_config(config: ExperimentConfig, facts: dict | None, cap: int) -> list[str]:
    try:
        config.validate()
    except ConfigError as error:
        return [str(error)]
    if not facts:
        return []
    if config.per_class is not None and config.per_class > facts["smallest_class"]:
        fits = max([s for s in SIZES if s != "all" and s <= facts["smallest_class"]], default=1)
        return [
            f"{config.dataset} has only {facts['smallest_class']} training images in its smallest class: "
            f"choose {fits} images per class or fewer, or 'all'."
        ]
    try:
        check_work(config, train_images(config, facts), len(facts["classes"]), cap)
    except ConfigError as error:
        return [str(error)]
    return []


def train_images(config: ExperimentConfig, facts: dict) -> int:
    return config.per_class * len(facts["classes"]) if config.per_class else facts["train"]


# --- a job in the queue or training, redrawn from its record stream ----------------------------


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
            f"Waiting for a worker: {ahead} job{'s' if ahead != 1 else ''} ahead of yours. "
            "The server trains the class's comparisons in the order they came."
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


def live_ui(job: Job) -> None:
    """A job in the queue or training: redrawn every second or so while it trains; while it waits,
    only checked every few seconds, and the page redrawn when its place in the queue changes."""
    st.markdown(f"#### {run_title(job)}")
    if len(job.owners) > 1:
        st.caption(f"{len(job.owners) - 1} other session(s) asked for the same comparison: it trains once for all.")
    if job.status == QUEUED:
        info_col, stop_col = st.columns([9, 1], vertical_alignment="bottom")
        with info_col:
            status_ui(job)
        stop_button(stop_col, job)
        st.fragment(run_every=WAITING_REFRESH_SECONDS)(watch_queue)(job, job.position)
    else:
        st.fragment(run_every=REFRESH_SECONDS.get(pick_device().type, 1.0))(live_view)(job)


def watch_queue(job: Job, position: int | None) -> None:
    """Draws nothing: a waiting page costs the server and the browser (measured: seven waiting pages
    that redrew every second took a third of a core in Chromium, from a 2-core server) almost nothing."""
    if job.status != QUEUED or job.position != position:
        st.rerun()  # the whole page: its new place, or the live view


def live_view(job: Job) -> None:
    if job.done:
        st.rerun()  # the whole page: the verdict and the Run button back
    status_col, axis_col, stop_col = st.columns([6, 3, 1], vertical_alignment="bottom")
    with status_col:
        status_ui(job)
    with axis_col:
        x = x_axis_ui()
    stop_button(stop_col, job)
    curves_ui(job, x)


def stop_button(column: DeltaGenerator, job: Job) -> None:
    sid = st.session_state.sid
    column.button("Stop", key=f"stop-{job.id}", on_click=job.stop, args=(sid,), width="stretch", help=STOP_HELP)


# --- a finished job ------------------------------------------------------------------------


def result_ui(job: Job, sid: str) -> None:
    """The verdict, the final curves, and where each arm goes wrong."""
    st.markdown(f"#### {run_title(job)}")
    if job.status == FAILED:
        st.error(f"The run failed: {job.error}")
        return
    if sid not in job.owners:
        st.info("You stopped following this run; it went on for the other sessions that asked for it.")
        return
    outcome = job.outcome
    if outcome is None:
        st.warning("Stopped before it started: it never left the queue.")
        return
    if outcome.stopped:
        st.warning("Stopped before the end: no verdict. The curves show how far it got.")
    else:
        if job.started and job.submitted > job.started:  # finished before this session asked for it
            st.info("From the run store: this comparison was trained on this server before, so it is shown at once.")
        st.success(f"### {outcome.verdict()}")
        table = outcome.table.set_index("arm")
        cols = st.columns(len(table) + 1)
        for col, (arm, row) in zip(cols, table.iterrows()):
            col.metric(f"{arm} test accuracy", f"{row.test_accuracy:.1%}", help=f"{row.seconds:.0f} s of training")
        if {"finetune", "scratch"} <= set(table.index):
            cols[-1].metric("Gap (finetune - scratch)", f"{outcome.gap * 100:+.1f} points")
        st.caption(f"Share this comparison: {share_link(job.config)}")
    curves_ui(job, x_axis_ui())
    if not outcome.stopped:
        details_ui(job)


def details_ui(job: Job) -> None:
    outcome = job.outcome
    labels, classes, predictions = outcome.labels, outcome.classes, outcome.predictions
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
        for arm, (images, truth, preds) in outcome.mistakes.items():
            title = f"{arm}: test images it gets wrong"
            fig = plots.misclassified_grid(torch.from_numpy(images), truth, preds, classes, title=title)
            st.plotly_chart(fig, theme=None, key=f"job{job.id}-mistakes-{arm}")


# --- the session's history, from the run store ---------------------------------------------------


def run_title(job: Job) -> str:
    c = job.config
    return (
        f"{c.backbone} on {c.dataset}, k={c.freeze_depth}, {c.per_class or 'all'} per class, "
        f"{c.epochs} epochs, {c.size} px, seed {c.seed}"
    )


HISTORY_COLUMNS = {
    "id": "run",
    "backbone": "backbone",
    "dataset": "dataset",
    "per_class": "per class",
    "freeze_depth": "k",
    "epochs": "epochs",
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
    st.header("Run history (this session)")
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
    st.download_button(
        "Download as CSV", runs_csv(store, sid), file_name="transferlab_runs.csv", mime="text/csv", key="csv"
    )
    labels = {  # oldest first, as the runs were made
        f"#{r.id} k={r.freeze_depth} n={'all' if pd.isna(r.per_class) else int(r.per_class)}": r.id
        for r in runs[::-1].itertuples()
    }
    if len(labels) < 2:
        st.caption("Finish another run (say, the same size at another freeze depth) to overlay their curves here.")
        return
    chosen = st.multiselect("Overlay runs", list(labels), default=list(labels)[-3:], key="overlay")
    if chosen:
        x = st.session_state.get("x_axis") or "epoch"
        histories = store.histories([labels[label] for label in chosen])
        fig = plots.overlay_curves({label: histories[labels[label]] for label in chosen}, x=x)
        st.plotly_chart(fig, theme=None, key="overlay-chart")


def runs_csv(store: RunStore, sid: str) -> bytes:
    """This session's comparisons as CSV, a row per arm."""
    with tempfile.TemporaryDirectory() as folder:
        return store.export_csv(Path(folder) / "runs.csv", owner=sid).read_bytes()


# --- the page ----------------------------------------------------------------------------------


def workload_note(config: ExperimentConfig, facts: dict, dev: torch.device) -> str:
    """How much work the Run button starts, in images."""
    classes = len(facts["classes"])
    n = train_images(config, facts)
    per_test = config.test_per_class  # the engine takes the whole test split when a class has fewer
    tested = per_test * classes if per_test and per_test <= facts["smallest_test_class"] else facts["test"]
    note = f"{n:,} training images per arm x {config.epochs} epochs; {tested:,} test images."
    if dev.type == "cpu" and n * config.epochs > LONG_RUN_IMAGES:
        note += " That takes minutes on a CPU: Stop ends it any time."
    return note


def dashboard() -> None:
    state = st.session_state
    sid = session_id()
    queue, store, dev = job_queue(), run_store(), pick_device()
    given, ignored = settings_from_address()
    ignored = list(ignored)
    defaults = defaults_for(dev) | given

    with st.sidebar:
        source = source_ui(given, ignored)
        advanced = advanced_ui(source["backbone"], defaults, ignored)
        st.divider()
        st.caption(f"Device: **{device_name(dev)}**. Queue: {len(queue.jobs())} comparison(s) running or waiting.")
        st.markdown("[Class board: every run on this server](?view=board)")

    spec = get_spec(source["backbone"])
    st.html(f"<style>{PAGE_CSS}</style>")
    st.title("Does a pretrained network learn faster?")
    st.markdown(
        f"**finetune**: {spec.name} with its {spec.pretrained_on} weights, the first k blocks frozen. "
        f"**scratch**: the same network from random weights, all of it trained. Same {source['dataset']} "
        "images, same test split."
    )
    problems, facts = check_sources(**source)
    num_classes = len(facts["classes"]) if facts else 10
    experiment, run_area = experiment_ui(source["backbone"], num_classes, defaults, ignored)
    config = ExperimentConfig(
        dataset=source["dataset"], backbone=source["backbone"], root=source["root"], **experiment, **advanced
    )
    show_in_address(config)
    if ignored and not state.get("address_warned"):  # said once, when the page opens
        st.warning(f"The address had settings this page cannot use, so it ignored them: {', '.join(ignored)}.")
        state.address_warned = True
    problems += check_config(config, facts, max_work(dev))
    for problem in problems:
        st.error(problem)

    # This session's comparison: the one it ran last, or after a reload the one it still has in the queue.
    job: Job | None = state.get("job") or next(iter(queue.jobs(sid)), None)
    active = job is not None and job.active and sid in job.owners
    with run_area:
        pressed = st.button("Run", type="primary", disabled=bool(problems or active), key="run", width="stretch")
        if (pressed or run_requested()) and not (problems or active):
            job = queue.submit(config, owner=sid)
            active = job.active
        if facts and not problems:
            st.caption(workload_note(config, facts, dev))
    state.job = job

    if active:
        live_ui(job)
    elif job is not None:
        result_ui(job, sid)
    history_ui(store, sid)


def main() -> None:
    st.set_page_config(page_title="transferlab", layout="wide")
    if st.query_params.get("view") == "board":
        board.page(job_queue(), run_store())
    else:
        dashboard()


if __name__ == "__main__":  # as `streamlit run app.py` (and AppTest) run it; importing it runs nothing
    main()
