"""What every session on one server shares: the job queue, the run store, the caps; and who a session is.

The queue's worker processes train; this process only serves pages. A session is named by a cookie
the browser keeps, so its history (in the run store) survives a reload and a server restart, and
never by the address: a link a student copies or projects opens the same settings, not their
history, uploads, Delete and Stop.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Mapping
from pathlib import Path

import streamlit as st
import torch

from transferlab import pick_device
from transferlab.serve import JobQueue, RunStore, data_dir, default_store_path

# Training images per arm (steps x batch) that one comparison may take, by device: on a 2-core CPU
# the default (60 steps = 1 500 images) takes seconds and the cap several minutes; a GPU does far more.
MAX_WORK = {"cpu": 150_000, "cuda": 3_000_000}
WARM = "fashion_mnist:efficientnet_lite0"  # what the workers load before the first Run
SESSION = re.compile(r"^[0-9a-f]{32}$")
COOKIE = "transferlab_session"
COOKIE_SECONDS = 365 * 24 * 3600
FOLDERS = "folders"  # on a shared server, typed folder paths are read only inside data_dir()/folders


def max_work(device: torch.device) -> int:
    """The server's cap on one arm's work: `$TRANSFERLAB_MAX_WORK`, else by device."""
    return int(os.environ.get("TRANSFERLAB_MAX_WORK", 0)) or MAX_WORK.get(device.type, MAX_WORK["cpu"])


@st.cache_resource
def run_store() -> RunStore:
    """Every finished comparison on this server (`$TRANSFERLAB_STORE`, else data/cache/runs-v3.sqlite)."""
    return RunStore(default_store_path())


@st.cache_resource
def job_queue() -> JobQueue:
    """The one queue of every session on this server, with its worker processes."""
    return JobQueue(store=run_store(), max_work=max_work(pick_device()), warm=WARM)


LOCAL = ("127.0.0.1", "localhost", "::1")


def shared_server() -> bool:
    """Whether the server listens beyond this computer (`HOST=0.0.0.0 make app`, or no address
    given): then a typed folder path is read only inside `typed_folders()`."""
    return st.get_option("server.address") not in LOCAL


def typed_folders() -> Path:
    """Where a shared server reads typed folder paths: a folder of its own, never the uploads."""
    return data_dir() / FOLDERS


def browser_cookies() -> Mapping[str, str]:
    """The cookies the browser sent when the session opened (tests replace this)."""
    return st.context.cookies


def session_id() -> str:
    """This browser's session id: from its cookie, else new (and the cookie set). An id in the
    address (`?sid=`, as links had before) is dropped, never adopted."""
    state = st.session_state
    if "sid" not in state:
        given = browser_cookies().get(COOKIE)
        state.sid = given if isinstance(given, str) and SESSION.match(given) else uuid.uuid4().hex
        if given != state.sid:
            cookie = f"{COOKIE}={state.sid}; path=/; max-age={COOKIE_SECONDS}; SameSite=Strict"
            st.html(f"<script>document.cookie = {cookie!r};</script>", unsafe_allow_javascript=True)
    if "sid" in st.query_params:
        del st.query_params["sid"]
    return state.sid
