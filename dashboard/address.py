"""The page's settings in its address, so that a link reproduces a comparison.

`?backbone=efficientnet_lite0&dataset=fashion_mnist&k=4&n=10&steps=60&seed=0` (and lr, head, px,
augment; `patience` to train each arm until it stops improving; `tuned=1` to add scratch with its
own tuned learning rate) opens the page with those settings; `run=1` also presses Run once. The
short names are the config fields' own (`ExperimentConfig`'s `address`), and any other field may be
given by its name (`label_noise=0.2`): it is kept in the address while it differs from its default.
The session's own id (`sid`) is never part of a link to share.
"""

from __future__ import annotations

from dataclasses import asdict
from urllib.parse import urlencode

import streamlit as st

from transferlab import ExperimentConfig
from transferlab.serve import SETTINGS

TRUE = ("1", "true", "yes", "on")
TUNED = "tuned"  # not a config field: whether scratch_tuned is one of the arms
NAMES = {s.address or s.name: s for s in SETTINGS}  # a setting's name in the address


def values(config: ExperimentConfig, arms: tuple[str, ...]) -> dict:
    """What the address holds, by name there: every setting the page shows, other fields that
    differ from their default, and `tuned`."""
    given = asdict(config)
    shown = {
        name: s.format(given[s.name])
        for name, s in NAMES.items()
        if (s.address and not (given[s.name] is None and s.default is None)) or given[s.name] != s.default
    }
    return shown | ({TUNED: "1"} if "scratch_tuned" in arms else {})


def settings_from_address() -> tuple[dict, list[str]]:
    """(the config fields the address sets, with `tune_scratch`; the parameters it could not
    read). Read once a session."""
    state = st.session_state
    if "address_settings" not in state:
        settings, bad = {}, []
        for name, text in st.query_params.items():
            if name == TUNED:
                settings["tune_scratch"] = text.lower() in TRUE
            elif name in NAMES:
                try:
                    settings[NAMES[name].name] = NAMES[name].parse(text)
                except ValueError:
                    bad.append(f"{name}={text}")
        state.address_settings, state.address_bad = settings, bad
    return state.address_settings, state.address_bad


def run_requested() -> bool:
    """Whether the address asks to press Run (`run=1`); it asks once: the parameter is then removed."""
    if st.query_params.get("run", "").lower() in TRUE:
        del st.query_params["run"]
        return True
    return False


def show_in_address(config: ExperimentConfig, arms: tuple[str, ...]) -> None:
    """Keep the address in step with the page's settings (changing it does not rerun the page)."""
    given = values(config, arms)
    for name in [*NAMES, TUNED]:
        if name not in given:
            st.query_params.pop(name, None)
        elif st.query_params.get(name) != given[name]:
            st.query_params[name] = given[name]


def share_link(config: ExperimentConfig, arms: tuple[str, ...]) -> str:
    """A link that opens this comparison for anyone on the server, and shows (or trains) it."""
    query = values(config, arms) | {"run": "1"}
    base = (st.context.url or "").split("?")[0]
    return f"{base}?{urlencode(query)}"
