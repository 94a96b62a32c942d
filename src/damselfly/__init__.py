"""Damselfly: peer-to-peer distribution of container images, AI models and large files.

One scheduling core (`damselfly.scheduling`) decides who downloads what from whom. It runs
unchanged in two drivers: a simpy network simulator (`damselfly.sim`) and a real aiohttp
runtime (`damselfly.runtime`). See the README for the architecture.
"""

__version__ = "0.1.0"


def compiled() -> bool:
    """Whether the scheduling core runs compiled to C by mypyc (an install made with
    ``DAMSELFLY_COMPILE=1``: see ``setup.py``) rather than as Python."""
    from importlib.machinery import EXTENSION_SUFFIXES

    from damselfly.scheduling import scheduler

    return scheduler.__file__ is not None and scheduler.__file__.endswith(tuple(EXTENSION_SUFFIXES))
