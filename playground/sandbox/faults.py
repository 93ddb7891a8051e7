"""SANDBOX_FAULTS items, checked: what the sandbox can be asked to do wrong, and a sentence for anything else."""

from __future__ import annotations

import re
import typing
from typing import Literal

Outcome = Literal["success", "fail", "moderate", "never"]
HttpFault = Literal["401", "429", "500", "503", "455", "malformed"]
FAULTS: tuple[str, ...] = typing.get_args(HttpFault)
OUTCOMES: tuple[str, ...] = typing.get_args(Outcome)
STAGES = ("create", "status", "upload", "job")
MAX_FAULT_TIMES = 1000


def fault_item(item: str, providers: typing.Collection[str] | None) -> tuple[str, str, str, int]:
    """(provider, stage, fault or outcome, times) from one SANDBOX_FAULTS item; ValueError saying what is wrong."""
    match = re.fullmatch(r"(\w+):(\w+)=(\w+)(?:\*(\d+))?", item)
    if not match:
        raise ValueError(f"SANDBOX_FAULTS item {item!r} is not provider:stage=fault[*times], e.g. kie:create=500.")
    provider, stage, what, times = match.groups()
    if providers is not None and provider not in providers:
        raise ValueError(f"SANDBOX_FAULTS item {item!r} names no provider; choose one of: {', '.join(providers)}.")
    if stage not in STAGES:
        raise ValueError(f"SANDBOX_FAULTS item {item!r} has stage {stage!r}; use one of: {', '.join(STAGES)}.")
    allowed = OUTCOMES if stage == "job" else FAULTS
    if what not in allowed:
        raise ValueError(f"SANDBOX_FAULTS item {item!r} asks for {what!r}; {stage} takes one of: {', '.join(allowed)}.")
    count = int(times or 1)
    if not 1 <= count <= MAX_FAULT_TIMES:
        raise ValueError(f"SANDBOX_FAULTS item {item!r} repeats {count} times; use 1 to {MAX_FAULT_TIMES}.")
    return provider, stage, what, count
