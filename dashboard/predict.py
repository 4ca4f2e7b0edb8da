"""Predict, then run: the question before Run, the answer after the verdict, and the room's guesses
on the class board (`transferlab.training.prediction`)."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from dashboard.charts import chart
from transferlab import Prediction, plots
from transferlab.serve import Job, RunStore

TIE = "within noise"
CHOICES = ["finetune", TIE, "scratch"]


def prediction_ui() -> Prediction | None:
    """Before Run: which arm will win, and by about how many points. None when the learner skips it."""
    st.markdown("**Before you run it: what will happen?** (optional)")
    left, right = st.columns([3, 2], vertical_alignment="bottom")
    winner = left.segmented_control(
        "Which will win?", CHOICES, key="guess_winner", help="Beyond noise: its 95% interval excludes a tie."
    )
    points = right.number_input(
        "By about how many points?", 0, 100, 20, step=5, key="guess_points", disabled=winner in (None, TIE)
    )
    if winner is None:
        return None
    return Prediction("tie") if winner == TIE else Prediction(winner, float(points))


def outcome_ui(job: Job, store: RunStore, sid: str) -> None:
    """After the verdict: what this session predicted, and how it held up."""
    if (guess := store.prediction(job.key, sid)) is not None:
        st.info(guess.against(job.outcome))


def class_predictions_ui(store: RunStore, runs: pd.DataFrame) -> None:
    """The class board: the room's guesses for a comparison, and where the result fell."""
    st.subheader("What the class predicted")
    room = store.predictions()
    room = room[room.gap.notna()]
    if room.empty:
        st.caption("No predictions yet: on the dashboard, say which arm will win before pressing Run.")
        return
    keys = list(dict.fromkeys(room.key))  # newest first
    finished = runs.drop_duplicates("key").set_index("key")
    shown = {key: question(key, finished) for key in keys}
    key = st.selectbox("Question", keys, format_func=shown.get, key="board-question")
    gaps = room[room.key == key].gap * 1.0
    result = None
    if key in finished.index:
        row = finished.loc[key]
        result = (row.gap * 100, row.gap_low * 100, row.gap_high * 100)
    chart(plots.predictions_histogram(gaps, result), key="board-predictions")


def question(key: str, finished: pd.DataFrame) -> str:
    if key not in finished.index:
        return "a comparison still running"
    row = finished.loc[key]
    return f"{row.backbone} on {row.dataset}, k={row.freeze_depth}, {row.per_class or 'all'} per class"
