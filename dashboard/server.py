"""What every session on one server shares: the job queue, the run store, the caps; and who a session is.

The queue's worker processes train; this process only serves pages. A session is named by `sid` in
its address, so its history (in the run store) survives a reload and a server restart.
"""

from __future__ import annotations

import os
import re
import uuid

import streamlit as st
import torch

from transferlab import pick_device
from transferlab.serve import JobQueue, RunStore, default_store_path

# Training images per arm (steps x batch) that one comparison may take, by device: on a 2-core CPU
# the default (60 steps = 1 500 images) takes seconds and the cap several minutes; a GPU does far more.
MAX_WORK = {"cpu": 150_000, "cuda": 3_000_000}
WARM = "fashion_mnist:efficientnet_lite0"  # what the workers load before the first Run
SESSION = re.compile(r"^[0-9a-f]{32}$")


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
    given): then a typed folder path is read only inside the kit's data directory."""
    return st.get_option("server.address") not in LOCAL


def session_id() -> str:
    """This browser session's id, kept in the address (`?sid=...`) so a reload keeps its history."""
    state = st.session_state
    if "sid" not in state:
        given = st.query_params.get("sid", "")
        state.sid = given if SESSION.match(given) else uuid.uuid4().hex
    if st.query_params.get("sid") != state.sid:
        st.query_params["sid"] = state.sid
    return state.sid
