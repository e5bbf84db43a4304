"""The researcher's guide against the local stack: its examples (tests/smoke/test_guide.py), and what only
the local store can show quickly, the scratch bucket's expiry."""

import pytest

from tests.smoke.test_guide import *  # noqa: F401,F403

pytestmark = [pytest.mark.smoke, pytest.mark.local]
