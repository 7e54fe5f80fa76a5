import os

import numpy as np
import pytest
from hypothesis import settings

# Deterministic property tests: the same examples on every run, so main stays green unless the
# code changes (explore locally with `--hypothesis-seed=random` or HYPOTHESIS_PROFILE=explore).
settings.register_profile("pmnb", derandomize=True, print_blob=True)
settings.register_profile("explore", derandomize=False, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "pmnb"))


@pytest.fixture
def rng():
    return np.random.default_rng(20261125)
