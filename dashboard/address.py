"""The page's settings in its address, so that a link reproduces a comparison.

`?backbone=efficientnet_lite0&dataset=fashion_mnist&k=4&n=10&steps=60&seed=0` (and lr, head, px,
augment; `patience` to train each arm until it stops improving; `tuned=1` to add scratch with its
own tuned learning rate) opens the page with those settings; `run=1` also presses Run once. The session's own id
(`sid`) is never part of a link to share.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from urllib.parse import urlencode

import streamlit as st

from transferlab import ExperimentConfig

TRUE = ("1", "true", "yes", "on")


@dataclass(frozen=True)
class Param:
    """One setting in the address: its name there, the config field it sets, and how to read it."""

    name: str
    field: str
    parse: type

    def read(self, text: str):
        if self.parse is bool:
            return text.lower() in TRUE
        if self.field == "per_class" and text == "all":
            return None
        return self.parse(text)

    def write(self, value) -> str:
        if value is None:
            return "all"
        return str(int(value)) if isinstance(value, bool) else f"{value:g}" if isinstance(value, float) else str(value)


PARAMS = (
    Param("backbone", "backbone", str),
    Param("dataset", "dataset", str),
    Param("k", "freeze_depth", int),
    Param("n", "per_class", int),
    Param("steps", "steps", int),
    Param("seed", "seed", int),
    Param("lr", "lr", float),
    Param("head", "head_lr_mult", float),
    Param("px", "image_size", int),
    Param("augment", "augment", bool),
    Param("patience", "patience", int),
    Param("tuned", "tune_scratch", bool),  # not a config field: the arm scratch_tuned
)


OPTIONAL = ("patience", "tune_scratch")


def values(config: ExperimentConfig, arms: tuple[str, ...]) -> dict:
    """What the address holds: the config's fields, and whether scratch_tuned is one of the arms."""
    return asdict(config) | {"tune_scratch": "scratch_tuned" in arms}


def written(value) -> bool:
    """Settings left at "off" stay out of the address (no patience, no tuned scratch)."""
    return value is not None and value is not False


def settings_from_address() -> tuple[dict, list[str]]:
    """(the config fields the address sets, the parameters it could not read). Read once a session."""
    state = st.session_state
    if "address_settings" not in state:
        settings, bad = {}, []
        for p in PARAMS:
            if p.name in st.query_params:
                try:
                    settings[p.field] = p.read(st.query_params[p.name])
                except ValueError:
                    bad.append(f"{p.name}={st.query_params[p.name]}")
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
    for p in PARAMS:
        if p.field in OPTIONAL and not written(given[p.field]):
            st.query_params.pop(p.name, None)
            continue
        text = p.write(given[p.field])
        if st.query_params.get(p.name) != text:
            st.query_params[p.name] = text


def share_link(config: ExperimentConfig, arms: tuple[str, ...]) -> str:
    """A link that opens this comparison for anyone on the server, and shows (or trains) it."""
    given = values(config, arms)
    query = {p.name: p.write(given[p.field]) for p in PARAMS if p.field not in OPTIONAL or written(given[p.field])}
    query |= {"run": "1"}
    base = (st.context.url or "").split("?")[0]
    return f"{base}?{urlencode(query)}"
