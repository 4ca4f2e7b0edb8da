"""transferlab's dashboard: fine-tune a pretrained network and train the same network from scratch, live.

    transferlab app                    # http://127.0.0.1:8501 (make app does the same): streamlit run app.py
    transferlab app --host 0.0.0.0     # serve a classroom; ?view=board is the class board

The page configures, calls the engine and displays; it holds no training logic. Comparisons train
in the job queue's worker processes (`transferlab.serve.jobs`), every session's in turn, each arm
shared with every comparison that needs it; this process only serves pages. A session (named by a
cookie, `dashboard.server.session_id`) sees its own comparisons: the running one is redrawn from its
record stream in a fragment that reruns itself, the finished ones come from the run store. The
settings live in the address, so a link reproduces a comparison, and never the session. Every chart comes
from `transferlab.plots`. `TRANSFERLAB_SHOW_TEST_ENTRIES=1` adds the test suite's tiny backbone and
dataset (test_tiny, test_blobs) to the menus.
"""

from __future__ import annotations

import streamlit as st

from dashboard import board, transfer_map
from dashboard.address import run_requested, settings_from_address, show_in_address
from dashboard.controls import (
    advanced_ui,
    check_config,
    check_sources,
    comparison_arms,
    defaults_for,
    experiment_ui,
    run_estimate,
    source_ui,
    workload_note,
)
from dashboard.live import live_ui
from dashboard.predict import prediction_ui
from dashboard.results import history_ui, result_ui
from dashboard.server import job_queue, max_work, run_store, session_id
from dashboard.uploads import UPLOAD, dataset_label, report_ui, upload_ui
from transferlab import ExperimentConfig, device_name, get_spec, pick_device
from transferlab.serve import COMPARISON, Job, QueueFull

# Less empty space above the title: the controls and both curves fit on one projected screen.
PAGE_CSS = '[data-testid="stMainBlockContainer"] { padding-top: 2.5rem; }'


def dashboard() -> None:
    state = st.session_state
    sid = session_id()
    queue, store, dev = job_queue(), run_store(), pick_device()
    given, ignored = settings_from_address()
    ignored = list(ignored)
    defaults = defaults_for(dev) | given

    with st.sidebar:
        source = source_ui(given, ignored, sid)
        advanced, tune_scratch = advanced_ui(source["backbone"], defaults, ignored)
        st.divider()
        st.caption(f"Device: **{device_name(dev)}**. Queue: {len(queue.jobs())} run(s) training or waiting.")
        st.markdown("[Transfer map: a grid of comparisons](?view=map)")
        st.markdown("[Class board: every comparison on this server](?view=board)")

    spec = get_spec(source["backbone"])
    text = spec.modality == "text"
    st.html(f"<style>{PAGE_CSS}</style>")
    st.title("Does a pretrained network learn faster?")
    st.markdown(
        f"**finetune**: {spec.name} with its {spec.pretrained_on} weights, the first k blocks frozen. "
        "**scratch**: the same network from random weights, all of it trained. "
        + ("**tfidf**: logistic regression on the texts' word counts (TF-IDF), no network. " if text else "")
        + f"Same {dataset_label(source['dataset'])} {'texts' if text else 'images'}, same test split."
    )
    if source["dataset"] == UPLOAD:
        upload_ui(sid)
        history_ui(store, sid)
        return
    report_ui(source["dataset"])
    problems, facts = check_sources(**source, sid=sid)
    num_classes = len(facts.classes) if facts else 10
    experiment, run_area = experiment_ui(source["backbone"], num_classes, defaults, ignored)
    chosen = {"dataset": source["dataset"], "backbone": source["backbone"], "root": source["root"]}
    chosen |= experiment | advanced
    # A field the page has no control for keeps what the address gave it (label_noise=0.2, say).
    config = ExperimentConfig(**{f: v for f, v in given.items() if f != "tune_scratch"} | chosen)
    arms = comparison_arms(config, tune_scratch)
    show_in_address(config, arms)
    if ignored and not state.get("address_warned"):  # said once, when the page opens
        st.warning(f"The address had settings this page cannot use, so it ignored them: {', '.join(ignored)}.")
        state.address_warned = True
    problems += check_config(config, facts, max_work(dev))
    if facts and facts.skipped:
        skipped = facts.skipped
        st.warning(
            f"{len(skipped)} file(s) in the folder could not be read and were left out: "
            + ", ".join(skipped[:10])
            + (" ..." if len(skipped) > 10 else "")
        )
    for problem in problems:
        st.error(problem)

    # This session's comparison: the one it ran last, or after a reload the one it still has in the queue.
    job: Job | None = state.get("job") or next(iter(queue.jobs(sid, COMPARISON)), None)
    active = job is not None and job.active and sid in job.owners
    estimate = run_estimate(queue, config, arms, facts) if facts and not problems else None
    with run_area:
        guess = prediction_ui()
        pressed = st.button("Run", type="primary", disabled=bool(problems or active), key="run", width="stretch")
        if (pressed or run_requested() or state.pop("run_now", False)) and not (problems or active):
            try:
                job = queue.submit(config, arms, owner=sid)
                active = job.active
                if guess is not None:
                    store.predict(job.key, sid, guess)
                state.setdefault("estimates", {})[job.key] = estimate
            except QueueFull as error:
                st.error(str(error))
        if facts and not problems:
            st.caption(workload_note(config, facts, dev))
            st.caption(f"Time: {estimate}." if estimate else "Time: no estimate yet; the first run measures it.")
    state.job = job

    if active:
        live_ui(job)
    elif job is not None:
        result_ui(job, sid, store)
    history_ui(store, sid)


def main() -> None:
    st.set_page_config(page_title="transferlab", layout="wide")
    if st.query_params.get("view") == "board":
        board.page(job_queue(), run_store())
    elif st.query_params.get("view") == "map":
        transfer_map.page(job_queue(), session_id())
    else:
        dashboard()


if __name__ == "__main__":  # as `transferlab app` (streamlit run app.py) and AppTest run it; importing it runs nothing
    main()
