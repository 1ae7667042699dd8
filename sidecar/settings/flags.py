"""The ``sidecar serve`` flags: one per setting, named after its field."""

from __future__ import annotations

import argparse
from dataclasses import fields
from typing import Any

from sidecar.settings.parsing import parse_bool
from sidecar.settings.settings import Settings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add one ``--flag`` per setting to ``parser``; each defaults to "not given"."""
    for f in fields(Settings):
        kind: Any = type(f.default)
        flag = "--" + f.name.replace("_", "-")
        parser.add_argument(
            flag,
            dest=f.name,
            type=parse_bool if kind is bool else kind,
            default=None,
            choices=f.metadata.get("choices"),
            help=f"{f.metadata['help']} [{f.metadata['env']}; default {f.default!r}]",
            metavar=None if "choices" in f.metadata else f.name.split("_")[-1].upper(),
        )
