"""The Singer SDK's standard tap tests, run against a seeded fake Aha! server."""

from __future__ import annotations

import atexit

from singer_sdk.testing import SuiteConfig, get_tap_test_class

from tap_aha.tap import TapAha
from tests.fake_aha import FakeAha

# The SDK builds its test class at import time, so the server it reads must exist by then.
_FAKE = FakeAha(rng_seed=7).start()
_FAKE.seed(60)
atexit.register(_FAKE.stop)

TestTapAha = get_tap_test_class(
    tap_class=TapAha,
    config={
        "api_key": _FAKE.api_key,
        "api_url": _FAKE.url,
        "requests_per_minute": 1_000_000,
        "requests_per_second": 100_000,
    },
    suite_config=SuiteConfig(ignore_no_records_for_streams=[]),
    include_tap_tests=True,
    include_stream_tests=True,
    include_stream_attribute_tests=True,
)
