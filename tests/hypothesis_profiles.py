"""Hypothesis profiles: ``default`` for people, ``ci`` (chosen when ``CI`` is set)
searches five times harder.

Property tests leave ``max_examples`` to the profile. ``ci`` pins the example
count, so a run's length does not depend on the machine, and keeps each test
well inside the suite's 120 s per-test timeout on our 2-core machines (the
slowest, generated MIME trees, takes about 17 s at 1,000 examples). Cheap
tests that search a large space ask for a multiple of the profile's count
with ``examples(factor)``. The seed is
chosen here, printed in the pytest header and can be given back with
``HYPOTHESIS_SEED=<n>`` (or ``--hypothesis-seed``) to replay a CI run exactly.
Whatever a run finds becomes an ``@example`` of its test.
"""

from __future__ import annotations

import os
import random

from hypothesis import HealthCheck, settings

DEFAULT_EXAMPLES = 200
CI_EXAMPLES = 1000

settings.register_profile(
    "default",
    max_examples=DEFAULT_EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "ci",
    max_examples=CI_EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    print_blob=True,
)


def examples(factor: int) -> int:
    """``factor`` times the active profile's example count (read when the test
    module is imported, after the profile is loaded)."""
    max_examples = settings.default.max_examples
    return factor * max_examples


def profile_name() -> str:
    return os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if os.environ.get("CI") else "default")


def choose_seed() -> int:
    """The seed of this run: ``HYPOTHESIS_SEED`` if set, else a new one."""
    given = os.environ.get("HYPOTHESIS_SEED", "")
    return int(given) if given.isdigit() else random.SystemRandom().randrange(2**32)
