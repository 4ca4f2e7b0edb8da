"""The dashboard, headless (Streamlit's AppTest): its controls, its checks, and whole runs on the tiny entries.

Training happens in the job queue's worker process, so a test clicks Run, then waits on the job
and re-runs the script until the page shows the finished state (AppTest sees one script run at a
time, never the live updates: the browser tests cover those). The server's queue and run store
live in `st.cache_resource`, one for this whole module, with the store in a temporary folder.
"""

import base64
import html
import json
import re
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from streamlit.testing.v1 import AppTest

from tests.waiting import wait_until
from transferlab import Prediction, backbone_status, list_backbones
from transferlab.serve.job import DONE, RUNNING, STOPPED

APP = Path(__file__).resolve().parent.parent / "app.py"
SESSION_ID = re.compile(r"^[0-9a-f]{32}$")
SCRIPT_TIMEOUT = 60  # seconds per script run: the first one imports torch and builds EfficientNet


@pytest.fixture(scope="module", autouse=True)
def server_settings(tmp_path_factory):
    """The module's one run store (in a temporary folder) and the test entries in the menus."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TRANSFERLAB_STORE", str(tmp_path_factory.mktemp("store") / "runs.sqlite"))
        mp.setenv("TRANSFERLAB_SHOW_TEST_ENTRIES", "1")
        yield


def open_page(cookie: str | None = None, **address) -> AppTest:
    """A new browser session, opened at an address with these query parameters; with `cookie`,
    from a browser whose session cookie holds that id (a reload, a new tab)."""
    from unittest import mock

    import dashboard.server

    at = AppTest.from_file(str(APP), default_timeout=SCRIPT_TIMEOUT)
    for name, value in address.items():
        at.query_params[name] = str(value)
    cookies = {dashboard.server.COOKIE: cookie} if cookie else {}
    with mock.patch.object(dashboard.server, "browser_cookies", lambda: cookies):
        at.run()
    assert not at.exception
    return at


@pytest.fixture
def app() -> AppTest:
    return open_page()


def use_tiny(at: AppTest, **sliders) -> AppTest:
    """The tiny backbone on the synthetic blobs: a whole comparison in about a second."""
    at.selectbox(key="backbone").set_value("test_tiny").run()
    at.selectbox(key="dataset").set_value("test_blobs").run()
    for key, value in sliders.items():
        at.select_slider(key=key).set_value(value).run()
    assert not at.exception and not at.error
    return at


def run_to_the_end(at: AppTest, timeout: float = 120):
    """Press Run, then re-run the script until the job is over; returns the job."""
    at.button(key="run").click().run()
    job = at.session_state["job"]
    assert job.wait(timeout), f"job still {job.status} after {timeout} s"
    at.run()
    assert not at.exception
    return job


def chart(at: AppTest, key: str) -> dict:
    """The Plotly figure of the chart with this key, from the element's JSON spec."""
    for element in at.get("plotly_chart"):
        if element.key == key:
            return json.loads(element.proto.spec)
    raise AssertionError(f"no chart {key!r}; charts: {[e.key for e in at.get('plotly_chart')]}")


def values(encoded) -> list:
    if isinstance(encoded, dict):  # Plotly's typed-array encoding: {"dtype": "f8", "bdata": base64}
        return np.frombuffer(base64.b64decode(encoded["bdata"]), dtype=encoded["dtype"]).tolist()
    return list(encoded)


def points(encoded) -> int:
    return len(values(encoded))


def text(at: AppTest) -> str:
    return "\n".join(str(m.value) for m in at.markdown)


def summaries(at) -> list[str]:
    """The one-sentence summaries written under the charts (`dashboard.charts.chart`)."""
    return [
        html.unescape(m.value.split(">", 1)[1].rsplit("<", 1)[0]) for m in at.markdown if "chart-summary" in m.value
    ]


def test_the_page_opens_on_the_real_default(app):
    assert app.selectbox(key="backbone").value == "efficientnet_lite0"
    assert app.selectbox(key="dataset").value == "fashion_mnist"
    freeze = app.select_slider(key="freeze-efficientnet_lite0")
    assert freeze.value == 4 and freeze.options[0] == "0: nothing frozen" and freeze.options[4] == "4: up to stage3"
    assert freeze.options[-1] == "9: all frozen (probe)"
    assert app.select_slider(key="per_class").options == [
        str(s) for s in (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000)
    ] + ["all"]
    assert "98% of the parameters train" in text(app)
    diagram = chart(app, "freeze-diagram")["data"][0]
    assert diagram["text"] == ["frozen"] * 4 + ["trained"] * 6  # 9 blocks and the head
    assert any("parameters train: blocks stem, " in said for said in summaries(app))  # the picture in words
    assert not app.error and not app.button(key="run").disabled
    # The budget in both units: steps, the same for every size, and what they are in epochs.
    assert "Each arm: 60 steps of up to 32 images = 15 epochs of 100 images; 2,000 test images." in app.caption.values


def test_the_freeze_slider_redraws_the_share_and_the_picture(app):
    use_tiny(app)
    slider = app.select_slider(key="freeze-test_tiny")
    assert slider.options == ["0: nothing frozen", "1: up to block1", "2: up to block2", "3: all frozen (probe)"]
    slider.set_value(0).run()
    assert "100% of the parameters train" in text(app)
    assert set(chart(app, "freeze-diagram")["data"][0]["text"]) == {"trained"}
    app.select_slider(key="freeze-test_tiny").set_value(2).run()
    assert chart(app, "freeze-diagram")["data"][0]["text"] == ["frozen", "frozen", "trained", "trained"]
    assert "Frozen: block1, block2" in text(app)


def test_more_images_per_class_than_the_dataset_has_is_an_error_not_a_traceback(app):
    use_tiny(app)
    app.select_slider(key="per_class").set_value(50).run()  # test_blobs: 40 per class, 8 held out for validation
    assert not app.exception
    assert any(
        "only 32 training images" in e.value and "choose 20 images per class or fewer" in e.value for e in app.error
    )
    assert app.button(key="run").disabled
    app.select_slider(key="per_class").set_value("all").run()
    assert not app.error and not app.button(key="run").disabled


def test_an_unavailable_backbone_is_listed_marked_and_explained(tmp_path, monkeypatch):
    # torchvision's weights looked for in an empty folder: missing on every machine, cached or not.
    import transferlab.models.torchvision_nets as tv_nets

    monkeypatch.setattr(tv_nets, "torch_checkpoint_dir", lambda: tmp_path / "checkpoints")
    missing = [name for name in list_backbones() if not backbone_status(name)[0]]
    assert set(missing) == {"resnet18", "mobilenet_v3_small"}
    app = open_page()
    box = app.selectbox(key="backbone")
    assert f"{missing[0]} (not available here)" in box.options
    box.set_value(missing[0]).run()
    assert not app.exception
    assert any(f"The {missing[0]} weights are not available here" in e.value for e in app.error)
    assert app.button(key="run").disabled


def test_image_folder_asks_for_a_folder_and_checks_it(app, tmp_path, listening_on):
    listening_on("127.0.0.1")  # make app's default: this computer only, so any folder may be typed
    app.selectbox(key="dataset").set_value("image_folder").run()
    assert any("Type the path of a folder" in e.value for e in app.error) and app.button(key="run").disabled
    app.text_input(key="root").input(str(tmp_path / "nowhere")).run()
    assert any("is not a folder here" in e.value for e in app.error)
    for c, colour in enumerate([(200, 30, 30), (30, 30, 200)]):
        (tmp_path / f"class{c}").mkdir()
        for i in range(5):
            Image.new("RGB", (40, 40), tuple(v + 5 * i for v in colour)).save(tmp_path / f"class{c}" / f"{i}.png")
    app.text_input(key="root").input(str(tmp_path)).run()
    assert any("only 4 training images" in e.value for e in app.error)  # 10 per class asked, 4 there
    app.select_slider(key="per_class").set_value(2).run()
    assert not app.error and not app.button(key="run").disabled


def test_a_run_grows_both_curves_and_ends_with_a_verdict(app):
    use_tiny(app, steps=15, per_class=5)
    job = run_to_the_end(app)
    assert job.status == DONE
    accuracy = chart(app, f"job{job.id}-accuracy")
    curves = {t["name"]: points(t["x"]) for t in accuracy["data"]}
    assert curves["finetune"] == 15 and curves["scratch"] == 15  # a validation point per step here
    assert curves["finetune (test split)"] == 1 and curves["scratch (test split)"] == 1
    assert chart(app, f"job{job.id}-loss")["layout"]["yaxis"]["title"]["text"] == "loss"
    assert any("95% interval" in s.value for s in app.success)
    assert app.success[0].value == "### " + job.outcome.verdict()
    # The details: per-class accuracy, a confusion matrix and the mistakes of each arm.
    assert [t["name"] for t in chart(app, f"job{job.id}-per-class")["data"]] == ["finetune", "scratch"]
    assert chart(app, f"job{job.id}-confusion-scratch")["data"][0]["type"] == "heatmap"
    changed = chart(app, f"job{job.id}-changed")["data"]  # where the network changed: k = 1, block 1 frozen
    assert [t["name"] for t in changed] == ["finetune", "scratch"] and changed[0]["text"][0] == "frozen"
    said = summaries(app)  # every chart in words, under it
    assert sum(s.startswith("scratch: confusion matrix: ") and "test images right" in s for s in said) == 1
    assert any(s.startswith("Accuracy per class: finetune ") for s in said)
    mistakes = chart(app, f"job{job.id}-mistakes-finetune")["layout"]["title"]["text"]
    assert mistakes == "finetune: test images it gets wrong"
    # The switch to seconds redraws the axis; the Run button is back.
    app.segmented_control(key="x_axis").set_value("seconds").run()
    assert chart(app, f"job{job.id}-accuracy")["layout"]["xaxis"]["title"]["text"] == "seconds of training"
    assert not app.button(key="run").disabled
    history = app.dataframe[0].value
    assert len(history) == 1 and history.loc[0, "k"] == 3 and history.loc[0, "comparison"] == job.stored


def test_the_settings_live_in_the_address_and_a_link_reproduces_the_comparison(app):
    use_tiny(app, steps=30, per_class=2)
    app.select_slider(key="freeze-test_tiny").set_value(2).run()
    address = app.query_params
    assert {k: address[k] for k in ("backbone", "dataset", "k", "n", "steps", "seed", "lr", "px")} == {
        "backbone": "test_tiny",
        "dataset": "test_blobs",
        "k": "2",
        "n": "2",
        "steps": "30",
        "seed": "0",
        "lr": "0.001",
        "px": "16",
    }
    job = run_to_the_end(app)
    link = next(c for c in app.caption.values if c.startswith("Share this comparison: "))
    assert "sid=" not in link and "run=1" in link and "k=2" in link
    # Another student opens the link: the same settings, and the comparison shown at once from the store.
    query = dict(pair.split("=") for pair in link.split("?", 1)[1].split("&"))
    other = open_page(**query)
    assert other.session_state["sid"] != app.session_state["sid"]
    assert other.select_slider(key="freeze-test_tiny").value == 2
    shown = other.session_state["job"]
    assert shown.status == DONE and shown.stored == job.stored and shown is not job
    assert any("From the run store" in i.value for i in other.info)
    assert other.success[0].value == app.success[0].value
    assert "run" not in other.query_params  # it asks once


def test_an_address_with_settings_the_page_cannot_use_says_so():
    at = open_page(k="99", n="seven", backbone="test_tiny")
    assert at.select_slider(key="freeze-test_tiny").value == 3
    assert any("ignored them: n=seven, k=99." in w.value for w in at.warning)
    at.run()  # said once, not on every redraw
    assert not at.warning


def test_history_survives_a_reload_and_overlays_the_chosen_runs(app):
    use_tiny(app, steps=15, per_class=5)
    ids = []
    for k in (0, 2):
        app.select_slider(key="freeze-test_tiny").set_value(k).run()
        ids.append(run_to_the_end(app).stored)
    history = app.dataframe[0].value
    assert history.k.tolist() == [2, 0] and history.comparison.tolist() == ids[::-1]  # newest first
    overlay = app.multiselect(key="overlay")
    assert overlay.value == [f"#{ids[0]} k=0 n=5", f"#{ids[1]} k=2 n=5"]
    names = [t["name"] for t in chart(app, "overlay-chart")["data"]]
    assert names[:2] == [f"#{ids[0]} k=0 n=5 finetune", f"#{ids[0]} k=0 n=5 scratch"] and len(names) == 4
    overlay.set_value([f"#{ids[1]} k=2 n=5"]).run()
    assert len(chart(app, "overlay-chart")["data"]) == 2
    # A reload is a new session from the same browser (its cookie): the history comes back from the store.
    reloaded = open_page(cookie=app.session_state["sid"], **app.query_params)
    assert reloaded.dataframe[0].value.comparison.tolist() == ids[::-1]
    # ...and another browser, at the very same address, sees none of it.
    assert "sid" not in app.query_params and not open_page(**app.query_params).dataframe


def test_the_session_lives_in_a_cookie_and_never_in_the_address(app):
    sid = app.session_state["sid"]
    assert SESSION_ID.match(sid) and sid not in json.dumps(dict(app.query_params))
    # The first page sets the cookie the browser sends back on a reload.
    script = next(e.proto.body for e in app.get("html") if "document.cookie" in e.proto.body)
    assert f"transferlab_session={sid}; path=/" in script and "SameSite=Strict" in script
    assert not [e for e in open_page(cookie=sid).get("html") if "document.cookie" in e.proto.body]
    # An id in the address (as links had before) is dropped, never adopted.
    copied = open_page(sid=sid)
    assert copied.session_state["sid"] != sid and "sid" not in copied.query_params
    # A cookie that is not an id the server makes starts a new session.
    assert open_page(cookie="../../etc").session_state["sid"] != "../../etc"


def test_a_job_waits_in_the_shared_queue_shows_its_place_and_can_be_stopped(app, tiny):
    use_tiny(app, steps=60, per_class=2)  # settings no other test runs: not already in the store
    queue = run_to_the_end(app)._queue
    # Another session's long job holds the worker...
    other = queue.submit(replace(tiny, epochs=3_000, seed=99), owner="another session")
    try:
        wait_until(lambda: other.status == RUNNING)
        app.select_slider(key="per_class").set_value(5).run()
        app.button(key="run").click().run()
        mine = app.session_state["job"]
        # Ahead of it: the other's two arms, one training, one next (a comparison's arms are one turn).
        assert mine.status == "queued" and mine.position == 2
        assert any("2 runs ahead of yours" in i.value for i in app.info)
        # A classmate asks for the same settings at another depth: the scratch arm is one run for both.
        classmate = queue.submit(replace(mine.config, freeze_depth=3 - mine.config.freeze_depth), owner="classmate")
        assert classmate.parts[1] is mine.parts[1] and classmate.parts[0] is not mine.parts[0]
        app.run()
        assert "Shared: scratch trains once for this and 1 other session(s)." in app.caption.values
        classmate.stop("classmate")
        # ...which this session never sees: its history has only its own runs.
        assert other not in server_queue().jobs(app.session_state["sid"])
        app.button(key=f"stop-{mine.id}").click().run()
        assert mine.status == STOPPED and mine.started is None
        assert any("Stopped before it started" in w.value for w in app.warning)
    finally:
        other.stop()
        assert other.wait(30)


def test_stop_ends_a_running_job_and_the_page_says_so(app):
    use_tiny(app, steps=1920, per_class=20)
    app.select_slider(key="per_class").set_value(20).run()
    app.button(key="run").click().run()
    job = app.session_state["job"]
    wait_until(lambda: job.status == RUNNING and len(job.records()) > 0)
    app.run()
    assert app.button(key="run").disabled  # one comparison at a time per session
    app.button(key=f"stop-{job.id}").click().run()
    assert job.wait(30) and job.status == STOPPED and job.outcome.stopped
    app.run()
    assert any("Stopped before the end" in w.value for w in app.warning)


def test_a_comparison_beyond_the_servers_cap_is_refused_with_what_to_change(app):
    use_tiny(app)
    app.select_slider(key="per_class").set_value("all").run()
    app.select_slider(key="steps").set_value(1920).run()  # 1 920 steps x 32 images = 61 440: under the cap
    assert not app.error
    from dashboard import server

    original = server.MAX_WORK["cpu"]
    server.MAX_WORK["cpu"] = 1_000
    try:
        app.run()
        assert any("this server allows 1,000" in e.value and "at most 31 steps" in e.value for e in app.error)
        assert app.button(key="run").disabled
    finally:
        server.MAX_WORK["cpu"] = original


def test_the_class_board_shows_the_queue_the_verdicts_and_the_transfer_map(app):
    use_tiny(app, steps=15, per_class=1)
    done = run_to_the_end(app)
    board = open_page(view="board")
    assert any("Class board" in t.value for t in board.title)
    verdicts = next(d.value for d in board.dataframe if "gap (points)" in d.value.columns)
    assert len(verdicts) >= 1 and "k=3 n=1 15 steps seed 0" in verdicts.settings.tolist()
    row = verdicts[verdicts.settings == "k=3 n=1 15 steps seed 0"].iloc[0]
    gap = done.outcome.difference("finetune", "scratch")
    assert row["95% interval"].startswith(f"{gap.low * 100:+.1f} to {gap.high * 100:+.1f}")
    assert row["95% interval"].endswith("(tie)") == (not gap.beyond_noise)
    assert any("exploratory" in c.value and "more seeds" in c.value for c in board.caption)  # one draw, unadjusted
    assert board.selectbox(key="board-pair").value == "test_tiny on test_blobs"
    transfer_map = chart(board, "board-map")["data"][0]
    assert transfer_map["type"] == "scatter" and points(transfer_map["x"]) >= 1
    curves = [t["name"] for t in chart(board, "board-curves")["data"]]
    assert f"#{done.stored} k=3 n=1 15 steps seed 0 finetune" in curves
    # Anonymous: no session ids anywhere on the board.
    assert app.session_state["sid"] not in " ".join(str(d.value.to_dict()) for d in board.dataframe)


def test_a_gpu_gets_bigger_defaults(monkeypatch):
    """On a GPU the page starts at 200 images per class and 224 px (CI has none: pretend)."""
    import transferlab

    monkeypatch.setattr(transferlab, "pick_device", lambda name="auto": torch.device("cuda"))
    monkeypatch.setattr(transferlab, "device_name", lambda device: "NVIDIA Pretend GPU")
    at = AppTest.from_file(str(APP), default_timeout=SCRIPT_TIMEOUT).run()
    assert not at.exception
    assert at.select_slider(key="per_class").value == 200
    assert at.select_slider(key="size-efficientnet_lite0").value == 224
    assert any("NVIDIA Pretend GPU" in c for c in at.caption.values)


def server_queue():
    from dashboard.server import job_queue

    return job_queue()


def test_an_arm_still_improving_is_offered_a_longer_run(app, monkeypatch):
    from transferlab.training.comparison import Verdicts

    monkeypatch.setattr(Verdicts, "improving", lambda self: [])
    use_tiny(app, steps=30, per_class=1)
    job = run_to_the_end(app)
    assert f"longer-{job.id}" not in [b.key for b in app.button]  # nothing to offer
    monkeypatch.setattr(Verdicts, "improving", lambda self: ["scratch"])  # as if scratch were still rising
    app.run()
    assert "scratch was still improving when the budget ran out" in app.success[0].value
    app.button(key=f"longer-{job.id}").click().run()
    longer = app.session_state["job"]
    assert longer is not job and longer.config.steps == 120  # four times the budget, on the steps slider
    assert app.select_slider(key="steps").value == 120
    assert longer.wait(120)


def test_each_arm_until_it_stops_improving_and_scratch_with_its_own_rate(app, monkeypatch):
    from transferlab.training.comparison import Verdicts

    monkeypatch.setattr(Verdicts, "improving", lambda self: ["scratch"])  # offers the run "until"
    use_tiny(app, steps=15, per_class=2)
    first = run_to_the_end(app)
    app.button(key=f"until-{first.id}").click().run()
    assert app.toggle(key="until").value and app.query_params["patience"] == "10"
    job = app.session_state["job"]
    assert job.config.patience == 10 and job.wait(120)
    app.run()
    table = job.outcome.table.set_index("arm")
    assert (table.steps <= 15 * 10).all() and table.best_step.notna().all()
    assert "steps used: " in app.success[0].value  # the verdict says what each arm used
    app.toggle(key="tune_scratch").set_value(True).run()
    assert app.query_params["tuned"] == "1"
    tuned = run_to_the_end(app)
    assert tuned.arms == ("finetune", "scratch", "scratch_tuned") and tuned.status == DONE
    assert "lr_tried" in tuned.outcome.table and "tuned=1" in next(
        c for c in app.caption.values if c.startswith("Share this comparison: ")
    )
    app.toggle(key="until").set_value(False).run()
    assert "patience" not in app.query_params


@pytest.fixture
def listening_on(monkeypatch):
    """Set the address the server listens on, as `--server.address` would."""
    import streamlit

    def set_address(address):
        get_option = streamlit.get_option
        monkeypatch.setattr(
            streamlit, "get_option", lambda name: address if name == "server.address" else get_option(name)
        )

    return set_address


def test_a_shared_server_reads_typed_folders_only_inside_its_folder_for_them(app, tmp_path, listening_on, monkeypatch):
    from tests.upload_corpus import two_classes, zip_of
    from transferlab.data.imports import import_images, imported_path

    monkeypatch.setenv("TRANSFERLAB_DATA", str(tmp_path / "data"))
    listening_on("0.0.0.0")
    app.selectbox(key="dataset").set_value("image_folder").run()
    refused = "reads typed folders only inside"
    app.text_input(key="root").input("/etc").run()
    assert any(refused in e.value for e in app.error) and app.button(key="run").disabled
    app.text_input(key="root").input(str(tmp_path / "data" / "folders" / ".." / "..")).run()  # no climbing out
    assert any(refused in e.value for e in app.error)
    # Not another session's uploads either, though they are inside the data directory.
    import_images(zip_of(two_classes(n=12)), "pets", owner="0" * 32)
    app.text_input(key="root").input(str(imported_path(f"{'0' * 32}/pets"))).run()
    assert any(refused in e.value for e in app.error)
    # A class set the server's keeper put in the folder for them is read.
    (tmp_path / "data" / "folders" / "pets").parent.mkdir(parents=True)
    imported_path(f"{'0' * 32}/pets").rename(tmp_path / "data" / "folders" / "pets")
    app.text_input(key="root").input(str(tmp_path / "data" / "folders" / "pets")).run()
    assert not any(refused in e.value for e in app.error)


def test_the_upload_panel_and_a_sessions_own_sets(app, tmp_path, monkeypatch):
    from tests.upload_corpus import two_classes, zip_of
    from transferlab.data.imports import import_images, imported_path

    monkeypatch.setenv("TRANSFERLAB_DATA", str(tmp_path / "data"))
    app.selectbox(key="dataset").set_value("upload your images").run()
    assert "Your own images" in text(app) and app.button(key="import").disabled
    assert not app.get("plotly_chart"), "no comparison controls until there is a dataset"

    sid = app.session_state["sid"]
    import_images(zip_of(two_classes(n=12)), "pets", owner=sid)  # what Import does with the zip
    mine = open_page(cookie=sid)
    assert "pets (yours)" in mine.selectbox(key="dataset").options
    mine.selectbox(key="dataset").set_value(f"{sid}/pets").run()
    assert any("pets (yours) has only 8 training images" in e.value for e in mine.error)  # 10 asked
    mine.select_slider(key="per_class").set_value(5).run()
    assert not mine.exception and not mine.error, [e.value for e in mine.error]
    assert not mine.button(key="run").disabled
    assert "Same pets (yours) images" in text(mine)
    other = open_page()
    assert "pets (yours)" not in other.selectbox(key="dataset").options, "another session does not see it"
    other = open_page(dataset=f"{sid}/pets")
    assert other.selectbox(key="dataset").value != f"{sid}/pets"

    mine.button(key="delete_dataset").click().run()
    assert imported_path(f"{sid}/pets") is None
    assert mine.selectbox(key="dataset").value == "upload your images"


def test_the_transfer_map_fills_from_the_queue_and_the_store():
    at = open_page(view="map")
    at.selectbox(key="map_backbone").set_value("test_tiny").run()
    at.selectbox(key="map_dataset").set_value("test_blobs").run()
    at.multiselect(key="map_sizes").set_value([2, 5]).run()
    at.select_slider(key="map_steps").set_value(15).run()
    assert "8 cells, 12 runs of 15 steps each." in "\n".join(c.value for c in at.caption)  # scratch, probe once a size
    at.button(key="map_run").click().run()
    grid, jobs, cheap = at.session_state["map"]
    # The raw-pixel baselines are map units too, trained by the workers, not by the page server.
    assert sorted(cheap) == [(2, 0), (5, 0)] and {job.arms for job in cheap.values()} == {("pixels",)}
    assert {job.kind for job in [*jobs.values(), *cheap.values()]} == {"map unit"}
    assert len(jobs) == 12 and all(job.wait(120) for job in [*jobs.values(), *cheap.values()])
    at.run()
    assert not at.exception
    heatmap = chart(at, "map-heatmap")["data"][0]
    assert heatmap["type"] == "heatmap" and heatmap["z"]["shape"] == "4, 2", "freeze depths 0..3 x 2 sizes"
    assert all(text for row in heatmap["text"] for text in row), "every cell filled"
    assert any(s.startswith("Transfer map of fine-tune minus scratch, 8 of 8 cells finished") for s in summaries(at))
    efficiency = chart(at, "map-efficiency")
    assert {trace["name"] for trace in efficiency["data"]} == {"finetune", "scratch", "probe", "pixels"}
    pixels = next(trace for trace in efficiency["data"] if trace["name"] == "pixels")
    assert sorted(values(pixels["y"])) == sorted(job.outcome.accuracy("pixels") for job in cheap.values())
    assert chart(at, "map-cell-curves")["data"]

    again = open_page(view="map")  # another session, the same grid: every unit comes from the store
    again.selectbox(key="map_backbone").set_value("test_tiny").run()
    again.selectbox(key="map_dataset").set_value("test_blobs").run()
    again.multiselect(key="map_sizes").set_value([2, 5]).run()
    again.select_slider(key="map_steps").set_value(15).run()
    again.button(key="map_run").click().run()
    assert "12 of 12 runs finished (12 from the run store)" in str(again.get("progress")[0].proto.text)


def test_choosing_the_text_dataset_offers_the_text_backbones_and_shows_mistakes_as_text(app):
    app.selectbox(key="dataset").set_value("wordnet").run()
    assert app.selectbox(key="backbone").options == ["minilm_l6", "test_tiny_text"]
    assert app.selectbox(key="backbone").value == "minilm_l6"
    assert "Augmentation (flips, scales, shifts)" not in [t.label for t in app.toggle]
    assert "tfidf" in text(app)
    app.selectbox(key="backbone").set_value("test_tiny_text").run()
    app.select_slider(key="per_class").set_value(5).run()
    app.select_slider(key="steps").set_value(15).run()
    assert not app.exception and not app.error
    assert any("That takes minutes on a CPU" in c.value for c in app.caption)  # text layers are slow on a CPU
    job = run_to_the_end(app)
    assert job.status == DONE and job.arms == ("finetune", "scratch", "tfidf")
    curves = {t["name"] for t in chart(app, f"job{job.id}-accuracy")["data"]}
    assert {"finetune", "scratch", "tfidf"} <= curves
    wrong = next(d.value for d in app.dataframe if "predicted" in d.value.columns)
    texts, truth, _ = job.outcome.mistakes["finetune"]
    assert list(wrong.text) == list(texts) and set(wrong.true) <= set(job.outcome.classes)
    assert "Take the fine-tuned model away" not in text(app)  # only image classifiers are exported
    app.selectbox(key="dataset").set_value("test_blobs").run()  # back to images: an image backbone again
    assert "minilm_l6" not in app.selectbox(key="backbone").options and not app.exception


def test_imports_and_exports_are_done_by_a_worker_and_shown_when_they_end(app):
    """The page only stages what was sent; the server's worker decodes it (the "import" task),
    and makes the ONNX file when it is first asked for (the "export" task)."""
    from tests.upload_corpus import two_classes, zip_of
    from transferlab.data.imports import imported_path
    from transferlab.serve import IMPORT, exported_path, stage_upload

    app.selectbox(key="dataset").set_value("upload your images").run()
    sid = app.session_state["sid"]
    staged = stage_upload(zip_of(two_classes(n=12)), sid)  # what Import does with the zip it was sent
    job = server_queue().submit_task(IMPORT, {"staged": str(staged), "name": "pets", "owner": sid}, owner=sid)
    app.session_state["import_job"] = job
    app.run()
    assert job.done or app.button(key="import").disabled, "one import at a time"
    assert job.wait(120) and job.status == DONE, job.error
    app.run()
    assert not app.exception
    assert app.selectbox(key="dataset").value == f"{sid}/pets", "the new set is selected"
    assert any("Imported **pets (yours)**: 2 classes" in s.value for s in app.success)
    app.button(key="delete_dataset").click().run()
    assert imported_path(f"{sid}/pets") is None

    use_tiny(app, steps=15, per_class=1)
    done = run_to_the_end(app)
    key = done.outcome.unit_key("finetune")
    exported_path(key, ".onnx").unlink(missing_ok=True)  # made by an earlier run of this test
    app.run()
    make = app.button(key=f"make-{key}.onnx")
    assert make.label == "Make test_blobs-test_tiny-k3.onnx"
    assert not [b for b in app.get("download_button") if ".onnx" in b.proto.label], "not made until asked for"
    assert any("**Test accuracy**" in m.value for m in app.markdown), "the model card, before the download"
    make.click().run()
    export = app.session_state["exports"][(key, ".onnx")]
    assert export.wait(120) and export.status == DONE, export.error
    app.run()
    labels = [b.proto.label for b in app.get("download_button")]
    assert "Download test_blobs-test_tiny-k3.onnx" in labels, labels
    assert any("**Parity** (onnx" in c and "every predicted class agreed" in c for c in app.caption.values)


def test_a_prediction_made_before_run_is_told_back_after_the_verdict_and_shown_on_the_board(app):
    use_tiny(app, steps=15, per_class=2)
    app.segmented_control(key="guess_winner").set_value("finetune").run()
    app.number_input(key="guess_points").set_value(30).run()
    done = run_to_the_end(app)
    told = [i.value for i in app.info if i.value.startswith("You predicted finetune by about 30 points. It came out: ")]
    assert told, [i.value for i in app.info]
    assert told[0].endswith(Prediction("finetune", 30.0).against(done.outcome).split(". It came out: ")[1])
    board = open_page(view="board")
    board.selectbox(key="board-question").set_value(done.key).run()
    figure = chart(board, "board-predictions")
    assert figure["data"][0]["type"] == "histogram" and 30 in figure["data"][0]["x"]
    summary = next(s for s in summaries(board) if "prediction(s):" in s)
    assert "finetune ahead" in summary and "The result: " in summary
    # Skipping it is allowed: no prediction, nothing told.
    app.segmented_control(key="guess_winner").set_value(None).run()
    app.number_input(key="seed").set_value(7).run()
    # The cost before the run, from what the worker measured on the first one; and after it, beside the time taken.
    assert any(c.startswith("Time: about ") and "measured here" in c for c in app.caption.values), app.caption.values
    again = run_to_the_end(app)
    assert any(c.startswith("Took ") and "s before it ran" in c for c in app.caption.values)
    assert not [i for i in app.info if i.value.startswith("You predicted")]
    assert server_store().prediction(again.key, app.session_state["sid"]) is None


def server_store():
    from dashboard.server import run_store

    return run_store()
