from __future__ import annotations

import sys
from pathlib import Path

# The swarm harness lives beside the tests that use it.
sys.path.insert(0, str(Path(__file__).parent))
