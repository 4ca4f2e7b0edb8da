"""The configuration's fields as settings a person types: on the command line and in the
dashboard's address. Everything here is read off `ExperimentConfig`'s fields (name, type,
default, help, address name), so a new field needs no other list.

    >>> [s.option for s in SETTINGS][:3]
    ['--dataset', '--backbone', '--per-class']
    >>> setting("per_class").parse("all"), setting("classes").parse("0,2,4")
    (None, (0, 2, 4))
"""

from __future__ import annotations

import argparse
import typing
from collections.abc import Iterable
from dataclasses import MISSING, dataclass, fields

from .config import ExperimentConfig

__all__ = ["SETTINGS", "Setting", "add_config_arguments", "config_from_arguments", "setting"]

TRUE, FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")
NONE = ("all", "none", "")


@dataclass(frozen=True)
class Setting:
    """One field of `ExperimentConfig`, as text: its kind (int, float, str, bool or a tuple of
    ints), whether it may be None, its default, its help, and its name in the address (None:
    not a dashboard setting; the address may still set it by its own name)."""

    name: str
    kind: type
    optional: bool
    default: object
    help: str
    address: str | None

    @property
    def option(self) -> str:
        return "--" + self.name.replace("_", "-")

    def parse(self, text: str):
        """A value from text: 'all' or 'none' for None, 'true'/'false' (or 1/0), '0,2,4' for a tuple."""
        text = text.strip()
        if self.optional and text.lower() in NONE:
            return None
        if self.kind is bool:
            if text.lower() not in TRUE + FALSE:
                raise ValueError(f"{self.name}: give true or false, not {text!r}")
            return text.lower() in TRUE
        if self.kind is tuple:
            return tuple(int(v) for v in text.split(","))
        return self.kind(text)

    def format(self, value) -> str:
        """The text `parse` reads back as `value`."""
        if value is None:
            return "all" if self.name == "per_class" else "none"
        if isinstance(value, bool):
            return str(int(value))
        if isinstance(value, tuple):
            return ",".join(map(str, value))
        return f"{value:g}" if isinstance(value, float) else str(value)


def _settings() -> tuple[Setting, ...]:
    hints = typing.get_type_hints(ExperimentConfig)
    out = []
    for f in fields(ExperimentConfig):
        hint = hints[f.name]
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        optional = type(None) in typing.get_args(hint)
        kind = typing.get_origin(args[0]) or args[0] if optional else typing.get_origin(hint) or hint
        default = f.default if f.default is not MISSING else None
        out.append(Setting(f.name, kind, optional, default, f.metadata["help"], f.metadata["address"]))
    return tuple(out)


SETTINGS = _settings()


def setting(name: str) -> Setting:
    return next(s for s in SETTINGS if s.name == name)


def _argument_type(s: Setting):
    def parse(text: str):
        try:
            return s.parse(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a {s.kind.__name__} for {s.option}") from None

    parse.__name__ = s.kind.__name__  # argparse names the type in its own messages
    return parse


def add_config_arguments(parser: argparse.ArgumentParser, skip: Iterable[str] = (), **defaults) -> None:
    """An option per config field (`--per-class 10`, `--augment`/`--no-augment`, `--classes 0,2,4`),
    with its help and default; `skip` leaves out fields the command sets another way, `defaults`
    changes a default."""
    group = parser.add_argument_group("experiment settings (ExperimentConfig's fields)")
    for s in SETTINGS:
        if s.name in skip:
            continue
        default = defaults.get(s.name, s.default)
        shown = f"default {s.format(default)}" if s.kind is not bool else f"default {'on' if default else 'off'}"
        if s.kind is bool:
            group.add_argument(s.option, dest=s.name, action=argparse.BooleanOptionalAction, default=default,
                               help=f"{s.help} ({shown})")  # fmt: skip
        else:
            metavar = "N,N,..." if s.kind is tuple else s.name.upper()
            group.add_argument(s.option, dest=s.name, type=_argument_type(s), default=default, metavar=metavar,
                               help=f"{s.help} ({shown})")  # fmt: skip


def config_from_arguments(args: argparse.Namespace, **overrides) -> ExperimentConfig:
    """The config the parsed options describe (fields the command did not offer keep their default)."""
    given = {s.name: getattr(args, s.name) for s in SETTINGS if hasattr(args, s.name)}
    return ExperimentConfig(**(given | overrides))
