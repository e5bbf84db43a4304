"""The smoke suite (tests/smoke), collected here so that it runs against the local stack that
tests/local/conftest.py starts. Nothing is redefined: a smoke test changes in tests/smoke only.
(The guide's examples, tests/smoke/test_guide.py, are collected the same way by tests/local/test_guide.py.)"""

import pytest

from tests.smoke.test_hub import *  # noqa: F401,F403
from tests.smoke.test_spawn import *  # noqa: F401,F403
from tests.smoke.test_storage import *  # noqa: F401,F403
from tests.smoke.test_gateway import *  # noqa: F401,F403
from tests.smoke.test_attacks import *  # noqa: F401,F403

pytestmark = [pytest.mark.smoke, pytest.mark.local]
