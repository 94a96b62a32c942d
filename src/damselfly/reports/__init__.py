"""Reports: figures, HTML and Markdown summaries, capacity-plan curves and comparisons.

Reports read results (``damselfly.results``) and draw; they never run a simulation. The
studies that produce many results (sweeps, capacity plans, comparisons) run in
``damselfly.scenarios`` and hand their results here.
"""

from __future__ import annotations

from damselfly.reports.report import ReportError, ReportFiles, load_results, write_report
from damselfly.reports.summary import Headline, describe_scenario, headline, warnings

__all__ = [
    "Headline",
    "ReportError",
    "ReportFiles",
    "describe_scenario",
    "headline",
    "load_results",
    "warnings",
    "write_report",
]
