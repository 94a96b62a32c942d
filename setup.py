"""Build hook: an optional compiled build of the hot code, with mypyc.

``pip install .`` gives the plain Python package. ``DAMSELFLY_COMPILE=1 pip install .``
also compiles, from the same sources, the scheduling core and the simulator's per-piece
path (its event engine and the Python side of its flow network) into C extensions with
mypyc, which ships with mypy. Results are identical; the speed-ups are measured in
docs/benchmarks.md ("The compiled build"). It needs a C compiler and Python's headers.

Only a regular install is compiled; an editable or in-place build is refused, since the
extensions would sit beside the sources and run instead of them.
``damselfly.compiled()`` tells which kind of build is running.
"""

from __future__ import annotations

import os
import shutil
import sysconfig
import tomllib
from pathlib import Path

from setuptools import setup
from setuptools.command.build_ext import build_ext


def compiled_sources(root: Path) -> list[Path]:
    """The files compiled: those mypy checks (``[tool.mypy] files`` in pyproject.toml),
    a folder standing for its ``*.py`` files."""
    with open(root / "pyproject.toml", "rb") as config:
        entries = tomllib.load(config)["tool"]["mypy"]["files"]
    sources: list[Path] = []
    for entry in entries:
        path = root / entry
        sources.extend(sorted(path.glob("*.py")) if path.is_dir() else [path])
    return sources


def _wants_compiled() -> bool:
    value = os.environ.get("DAMSELFLY_COMPILE", "").strip().lower()
    if value in ("", "0", "no", "false"):
        return False
    if value in ("1", "yes", "true"):
        return True
    raise SystemExit(f"DAMSELFLY_COMPILE must be 1 (yes, true) or 0 (no, false), not {value!r}")


def _check_toolchain() -> None:
    """Fail in one line, before the build's minute of work, when C cannot be compiled here."""
    compiler = (sysconfig.get_config_var("CC") or "cc").split()[0]
    if shutil.which(compiler) is None:
        raise SystemExit(
            f"DAMSELFLY_COMPILE=1 needs a C compiler ({compiler} not found): install gcc,"
            " or unset DAMSELFLY_COMPILE for the Python build"
        )
    headers = Path(sysconfig.get_paths()["include"]) / "Python.h"
    if not headers.exists():
        raise SystemExit(
            f"DAMSELFLY_COMPILE=1 needs Python's headers ({headers} not found): install"
            " python3-dev, or unset DAMSELFLY_COMPILE for the Python build"
        )


class _BuildCompiled(build_ext):
    """build_ext that refuses to put the compiled modules beside the sources."""

    def run(self) -> None:
        if self.inplace or getattr(self, "editable_mode", False):
            raise SystemExit(
                "DAMSELFLY_COMPILE=1 needs a regular install (pip install .), not an editable"
                " or in-place build: the compiled modules would run instead of the sources"
            )
        super().run()


def _extensions() -> list[object]:
    if not _wants_compiled():
        return []
    _check_toolchain()
    from mypyc.build import mypycify

    # The other libraries are unknown to mypy here (their values are plain Python objects
    # to the compiled code), and only the compiled modules are checked. The build
    # environment holds only the build requirements, but mypy would still find libraries
    # installed where pip runs (a re-install), and the compiled code would then check
    # their declared types at run time: --no-site-packages makes every build the same.
    flags = [
        "--no-site-packages",
        "--ignore-missing-imports",
        "--follow-imports=silent",
        "--no-warn-unused-configs",
        "--no-warn-unused-ignores",
    ]
    # Relative paths: pip runs this file from the project's folder.
    sources = [str(path) for path in compiled_sources(Path())]
    return list(mypycify([*flags, *sources], opt_level="3"))


# pip runs this file as __main__; tests/test_compiled.py imports compiled_sources from it.
if __name__ == "__main__":
    setup(ext_modules=_extensions(), cmdclass={"build_ext": _BuildCompiled})
