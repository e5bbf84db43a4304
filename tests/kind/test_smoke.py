"""The smoke suite (tests/smoke), collected here so that it runs against the kind deployment that
tests/kind/conftest.py makes. Nothing is redefined: a smoke test changes in tests/smoke only.

Left out: the two scratch tests that write to the bucket (fsspec write/read, another user's prefix
refused). The kind cluster has no object store and no cloud identity; the local tier tests them against
SeaweedFS, and `make health` against each cluster's real bucket. PANGEO_SCRATCH itself is checked here.
"""

import pytest

from tests.smoke.test_gateway import *  # noqa: F401,F403
from tests.smoke.test_hub import *  # noqa: F401,F403
from tests.smoke.test_spawn import *  # noqa: F401,F403
from tests.smoke.test_storage import test_home_survives_a_server_restart  # noqa: F401
from tests.smoke.test_storage import test_pangeo_scratch_is_the_users_prefix  # noqa: F401

pytestmark = [pytest.mark.smoke, pytest.mark.kind]
