"""Run the tap as `python -m tap_aha`."""

from __future__ import annotations

from tap_aha.tap import TapAha

TapAha.cli()
