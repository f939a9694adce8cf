"""`--engine NAME` offers exactly the registered engines (the click choice is spelled out
so `apply --help` does not import the registry's dependencies)."""

from __future__ import annotations

import click

from planner.commands.apply import command
from planner.engines import ENGINES


def test_the_engine_option_offers_exactly_the_registry() -> None:
    (option,) = [p for p in command.params if p.name == "engine_name"]
    assert isinstance(option.type, click.Choice)
    assert sorted(option.type.choices) == sorted(ENGINES)
