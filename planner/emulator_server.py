"""The embedded emulator's process: moto's server, without two per-request costs.

    python -m planner.emulator_server -H 127.0.0.1 -p PORT     (what `trainctl local up` runs)

For every request moto's server lists its ~200 service packages on disk (a listdir and
an isdir each, under the dispatcher's global lock) and collects the response class's
method names with `inspect.getmembers`; neither changes while it runs, so both are
computed once here. It also logs every request line; only warnings and errors are kept.
py-spy on the emulator during B3 (docs/benchmarks.md) put these at about 40 % of its CPU.
Everything else is moto's own `moto.server.main`, unchanged.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Sequence


def _once_per_process() -> None:
    from moto import backends
    from moto.core import responses

    modules = tuple(backends.list_of_moto_modules())
    backends.list_of_moto_modules = lambda: modules        # type: ignore[assignment]
    if hasattr(responses, "method_names_from_class"):
        responses.method_names_from_class = functools.cache(   # type: ignore[assignment]
            responses.method_names_from_class)
    logging.getLogger("werkzeug").setLevel(logging.WARNING)


def main(argv: Sequence[str] | None = None) -> None:
    _once_per_process()
    from moto.server import main as moto_main

    moto_main(list(argv) if argv is not None else None)


if __name__ == "__main__":
    main()
