"""Puts tests/ on the path (for `implementations`)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
