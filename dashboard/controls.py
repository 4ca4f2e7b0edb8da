"""The dashboard's controls: what to compare, and the checks that turn settings that cannot work
into an error that says what to do (the engine's own `plan()`, not a copy of it)."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import streamlit as st
import torch
from streamlit.delta_generator import DeltaGenerator

from dashboard.charts import chart
from dashboard.server import shared_server, typed_folders
from dashboard.uploads import UPLOAD, dataset_label, delete_ui, own_datasets, select_pending_upload
from transferlab import (
    ConfigError,
    DatasetFacts,
    ExperimentConfig,
    TransferlabError,
    backbone_status,
    create_backbone,
    dataset_modality,
    dataset_status,
    dataset_version,
    freeze_to,
    get_spec,
    list_backbones,
    list_datasets,
    plan,
    plots,
)
from transferlab import dataset_facts as engine_dataset_facts
from transferlab.serve import (
    DEFAULT_STEPS,
    PATIENCE_CAP,
    TUNED_LRS,
    JobQueue,
    describe_dataset,
    estimate_seconds,
    val_count,
)

DEFAULT_BACKBONE, DEFAULT_DATASET = "efficientnet_lite0", "fashion_mnist"
DEFAULT_BACKBONES = {"image": DEFAULT_BACKBONE, "text": "minilm_l6"}  # the first offered per kind of data
SIZES = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, "all"]  # images per class, log-spaced
STEPS = [15, 30, 60, 120, 240, 480, 960, 1920]  # the training budget, doubling
LEARNING_RATES = [1e-4, 3e-4, 1e-3, 3e-3, 1e-2]
HEAD_LR_MULTS = [1, 2, 5, 10, 20]
INPUT_SIZES = [32, 48, 64, 96, 128, 160, 192, 224]
PATIENCE = 10  # "until it stops improving": validation points without a new best before an arm ends
LONG_RUN_IMAGES = 30_000  # training images per arm beyond which a CPU run takes minutes


def show_test_entries() -> bool:
    return os.environ.get("TRANSFERLAB_SHOW_TEST_ENTRIES") == "1"


@st.cache_data(show_spinner=False)
def freeze_summary(backbone: str, k: int, num_classes: int) -> pd.DataFrame:
    """Parameters per block and whether they train at depth k (random weights: cheap, same shapes)."""
    return freeze_to(create_backbone(backbone, num_classes, pretrained=False), k)


@st.cache_data(show_spinner="Reading the dataset...")
def dataset_facts(name: str, root: str | None, version: str) -> DatasetFacts:
    """What the menus and checks need to know about a dataset: an imported set's come from its
    manifest; another is loaded once per server and version (a re-imported set or an edited
    folder is read again)."""
    return engine_dataset_facts(name, root)


def defaults_for(dev: torch.device) -> dict:
    """Settings that keep a run live on this device: a GPU affords bigger images and more data."""
    if dev.type == "cuda":
        return {"per_class": 200, "steps": 4 * DEFAULT_STEPS, "gpu": True}
    return {"per_class": 10, "steps": DEFAULT_STEPS, "gpu": False}


def comparison_arms(config: ExperimentConfig, tune_scratch: bool = False) -> tuple[str, ...]:
    """The arms the Run button trains: fine-tuned against scratch; for text also the cheap
    baseline from scratch (TF-IDF and logistic regression: a second to fit); and, when asked,
    scratch with its own learning rate chosen on the validation split."""
    text = dataset_modality(config.dataset) == "text"
    arms = ("finetune", "scratch", "tfidf") if text else ("finetune", "scratch")
    return (*arms, "scratch_tuned") if tune_scratch else arms


def choose(options: list, given, fallback, name: str, ignored: list[str]):
    """`given` (a setting from the address) when it is one of `options`, else `fallback`, noting why."""
    if given is None or given in options:
        return fallback if given is None else given
    ignored.append(f"{name}={given}")
    return fallback


# --- widgets: each *_ui() draws and returns plain values -----------------------------------


def menu_label(name: str) -> str:
    if name == UPLOAD or "/" in name:
        return dataset_label(name)
    return name if name == "image_folder" or dataset_status(name)[0] else f"{name} (not available here)"


def source_ui(given: dict, ignored: list[str], sid: str) -> dict:
    """Backbone and dataset menus (sidebar). Unavailable entries stay listed, marked, with the reason.

    The backbone menu offers the backbones that read the chosen dataset's kind of data (images or
    text); the dataset is drawn below it but known first, from the session or the address."""
    st.header("Network and data")
    modality = dataset_modality(st.session_state.get("dataset") or given.get("dataset") or DEFAULT_DATASET)
    backbones = list_backbones(include_test=show_test_entries(), modality=modality)
    if st.session_state.get("backbone") not in (None, *backbones):  # the data changed kind: start over
        del st.session_state["backbone"]
    default = DEFAULT_BACKBONES[modality] if DEFAULT_BACKBONES[modality] in backbones else backbones[0]
    backbone = st.selectbox(
        "Pretrained backbone",
        backbones,
        index=backbones.index(choose(backbones, given.get("backbone"), default, "backbone", ignored)),
        format_func=lambda n: n if backbone_status(n)[0] else f"{n} (not available here)",
        key="backbone",
    )
    spec = get_spec(backbone)
    st.caption(f"{spec.description}. Pretrained on {spec.pretrained_on}.")

    datasets = list_datasets(include_test=show_test_entries()) + own_datasets(sid) + [UPLOAD]
    select_pending_upload()
    dataset = st.selectbox(
        "Dataset",
        datasets,
        index=datasets.index(choose(datasets, given.get("dataset"), DEFAULT_DATASET, "dataset", ignored)),
        format_func=menu_label,
        key="dataset",
    )
    root = None
    if dataset != UPLOAD:
        st.caption(describe_dataset(dataset))
        delete_ui(dataset, forget=lambda: dataset_facts.clear(dataset, None, dataset_version(dataset, None)))
    if dataset == "image_folder":
        where = f"a folder inside {typed_folders()} on the server" if shared_server() else "a folder on this computer"
        root = st.text_input(
            "Folder of your photos",
            key="root",
            placeholder="/path/to/photos",
            help=f"One sub-folder of images per class (optionally inside train/ and test/): {where}.",
        ).strip()
    return {"backbone": backbone, "dataset": dataset, "root": root or None}


def advanced_ui(backbone: str, defaults: dict, ignored: list[str]) -> tuple[dict, bool]:
    """The optimisation settings most people leave alone, folded away (sidebar); input size and
    augmentation only for images. Returns them, and whether to add scratch with a tuned rate."""
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
        tune_scratch = st.toggle(
            "Also scratch with its own learning rate",
            value=bool(defaults.get("tune_scratch", False)),
            key="tune_scratch",
            help="Was scratch just badly tuned? Adds the arm scratch_tuned: scratch trained at "
            f"{', '.join(f'{m:g}' for m in TUNED_LRS)} times the learning rate, the best on the "
            "validation split kept. Four times scratch's training time.",
        )
        if spec.modality == "text":
            return {"lr": lr, "head_lr_mult": head_lr_mult, "image_size": None, "augment": False}, tune_scratch
        image_size = st.select_slider(
            "Input size (pixels)",
            sizes,
            value=default_size,
            key=f"size-{backbone}",
            help=f"Images are resized to this. {spec.name} was pretrained at {spec.input_size} px; "
            "bigger is slower (a GPU makes 224 px live).",
        )
        augment = st.toggle("Augmentation (flips, scales, shifts)", value=defaults.get("augment", False), key="augment")
    return {"lr": lr, "head_lr_mult": head_lr_mult, "image_size": image_size, "augment": augment}, tune_scratch


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
        examples = "texts" if spec.modality == "text" else "images"
        per_class = st.select_slider(
            f"Dataset size: training {examples} per class",
            options=SIZES,
            value="all" if defaults["per_class"] is None else choose(SIZES, defaults["per_class"], 10, "n", ignored),
            key="per_class",
            help="Drawn at random (by the seed) from the training split; the test split never shrinks.",
        )
        steps_col, seed_col = st.columns([3, 2])
        steps = steps_col.select_slider(
            "Training steps (every arm)",
            options=STEPS,
            value=choose(STEPS, defaults.get("steps"), DEFAULT_STEPS, "steps", ignored),
            key="steps",
            help="The budget: optimiser steps of 32 images, the same for every dataset size and both arms, "
            "so more data never means more training. Below the button: what it is in epochs.",
        )
        until = steps_col.toggle(
            "Train each arm until it stops improving",
            value=defaults.get("patience") is not None,
            key="until",
            help=f"Each arm ends once its validation accuracy has not improved for {PATIENCE} validation "
            f"points, keeps its best weights, and reports the steps it used; at most {PATIENCE_CAP} times "
            "the steps above. A fair chance for an arm that learns slowly (scratch, usually).",
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
        chart(fig, key="freeze-diagram", config={"displayModeBar": False})
    settings = {
        "freeze_depth": k,
        "per_class": None if per_class == "all" else per_class,
        "steps": steps,
        "patience": (defaults.get("patience") or PATIENCE) if until else None,
        "seed": int(seed),
    }
    return settings, run_area


# --- checks: settings that cannot work become an error that says what to do ---------------


def check_sources(backbone: str, dataset: str, root: str | None, sid: str) -> tuple[list[str], dict | None]:
    """(problems, dataset facts or None)."""
    problems = []
    if "/" in dataset and dataset.split("/", 1)[0] != sid:  # the menu offers only the session's own
        return [f"{dataset} is not one of your datasets: upload your images (the last entry of the menu)."], None
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
        if shared_server() and not Path(root).expanduser().resolve().is_relative_to(typed_folders().resolve()):
            problems.append(
                f"This server is shared, so it reads typed folders only inside {typed_folders()}, where "
                "whoever runs it puts class sets: upload your images instead (the last entry of the dataset menu)."
            )
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
        return problems, dataset_facts(dataset, root, dataset_version(dataset, root))
    except TransferlabError as error:
        problems.append(str(error))
        return problems, None


def check_config(config: ExperimentConfig, facts: DatasetFacts | None, cap: int) -> list[str]:
    try:
        config.validate()
    except ConfigError as error:
        return [str(error)]
    if not facts:
        return []
    usable = facts.smallest_class - val_count(facts.smallest_class, config.val_per_class)
    if config.per_class is not None and config.per_class > usable:
        fits = max([s for s in SIZES if s != "all" and s <= usable], default=1)
        return [
            f"{dataset_label(config.dataset)} has only {usable} training images in its smallest class (after "
            f"{facts.smallest_class - usable} held out for validation): choose {fits} images per class "
            "or fewer, or 'all'."
        ]
    try:
        plan(config, train_images(config, facts), cap)
    except ConfigError as error:
        return [str(error)]
    return []


def train_images(config: ExperimentConfig, facts: DatasetFacts) -> int:
    if config.per_class:
        return config.per_class * len(facts.classes)
    return facts.train - sum(val_count(n, config.val_per_class) for n in facts.train_counts)


def run_estimate(queue: JobQueue, config: ExperimentConfig, arms: tuple[str, ...], facts: DatasetFacts):
    """How long Run will train on the server's workers, from what they measured (None: nothing yet)."""
    if queue.worker_device is None:
        return None
    steps = plan(config, train_images(config, facts)).steps
    return estimate_seconds(config, arms, queue.worker_device, steps, separately=True)


def workload_note(config: ExperimentConfig, facts: DatasetFacts, dev: torch.device) -> str:
    """How much work the Run button starts: the budget in steps and in epochs."""
    classes = len(facts.classes)
    budget = plan(config, train_images(config, facts))
    per_test = config.test_per_class  # the engine takes the whole test split when a class has fewer
    tested = per_test * classes if per_test and per_test <= facts.smallest_test_class else facts.test
    note = f"Each arm: {budget.describe()}; {tested:,} test images."
    text = dataset_modality(config.dataset) == "text"  # a BERT layer costs far more than a 64 px image
    if dev.type == "cpu" and (text or budget.images > LONG_RUN_IMAGES):
        note += " That takes minutes on a CPU: Stop ends it any time."
    return note
