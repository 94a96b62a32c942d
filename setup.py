"""Build hook: an optional compiled build of the hot code, with mypyc.

``pip install .`` gives the plain Python package. ``DAMSELFLY_COMPILE=1 pip install .``
also compiles, from the same sources, the scheduling core and the simulator's per-piece
path (its event engine and the Python side of its flow network) into C extensions with
mypyc, which ships with mypy. The compiled core makes 2.5 to 2.8 times as many scheduling
decisions per second and a simulation runs 1.3 to 1.5 times as fast; results are identical
(docs/benchmarks.md). It needs a C compiler and Python's headers.

Compile only into a regular install, never an editable one: the extensions would sit
beside the sources and run instead of them, so edits would not take effect.
``damselfly.compiled()`` tells which kind of build is running.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from setuptools import setup

# The modules compiled: every module of the scheduling core, and the simulator's engine and
# network. The network's numba kernel (sim/flowkernel.py) is compiled by numba instead.
COMPILED = [
    *sorted(str(path) for path in Path("src/damselfly/scheduling").glob("*.py")),
    "src/damselfly/sim/engine.py",
    "src/damselfly/sim/network.py",
]


def _wants_compiled() -> bool:
    value = os.environ.get("DAMSELFLY_COMPILE", "").strip().lower()
    if value in ("", "0", "no", "false"):
        return False
    if value in ("1", "yes", "true"):
        return True
    raise SystemExit(f"DAMSELFLY_COMPILE must be 1 or 0, got {value!r}")


def _extensions() -> list[object]:
    if not _wants_compiled():
        return []
    if "editable_wheel" in sys.argv or "develop" in sys.argv:
        raise SystemExit(
            "DAMSELFLY_COMPILE=1 needs a regular install (pip install .), not an editable one:"
            " the compiled modules would run instead of the edited sources"
        )
    from mypyc.build import mypycify

    # The build environment holds only the build requirements: the other libraries are
    # unknown to mypy there (their values are plain Python objects to the compiled code),
    # and only the compiled modules are checked.
    flags = [
        "--ignore-missing-imports",
        "--follow-imports=silent",
        "--no-warn-unused-configs",
        "--no-warn-unused-ignores",
    ]
    return list(mypycify([*flags, *COMPILED], opt_level="3"))


setup(ext_modules=_extensions())
