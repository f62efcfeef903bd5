"""tap-aha: a Singer tap for Aha! ideas, their proxy votes and their comments."""

from __future__ import annotations

__version__ = "0.1.0"
