"""tap-aha: a Singer tap for Aha! ideas, their votes and comments, customer organizations, workspaces."""

from __future__ import annotations

__version__ = "0.1.0"
