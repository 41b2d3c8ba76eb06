"""Hypothesis profiles: ``default`` for people, ``ci`` (chosen when ``CI`` is set)
searches ten times harder.

Property tests leave ``max_examples`` to the profile. ``ci`` pins the example
count, so a run's length does not depend on the machine, and keeps each test
well inside the suite's 120 s per-test timeout on our 2-core machines (the
slowest, the MIME line soup, takes about 15 s at 3,000 examples). The seed is
chosen here, printed in the pytest header and can be given back with
``HYPOTHESIS_SEED=<n>`` (or ``--hypothesis-seed``) to replay a CI run exactly.
Whatever a run finds becomes an ``@example`` of its test.
"""

from __future__ import annotations

import os
import random

from hypothesis import HealthCheck, settings

DEFAULT_EXAMPLES = 300
CI_EXAMPLES = 3000

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


def profile_name() -> str:
    return os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if os.environ.get("CI") else "default")


def choose_seed() -> int:
    """The seed of this run: ``HYPOTHESIS_SEED`` if set, else a new one."""
    given = os.environ.get("HYPOTHESIS_SEED", "")
    return int(given) if given.isdigit() else random.SystemRandom().randrange(2**32)
