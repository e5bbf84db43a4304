"""The live checks (tests/live), collected here so that they also run against the kind deployment; the
HTTPS ones skip (kind serves plain HTTP)."""

import pytest

from tests.live.test_live import *  # noqa: F401,F403

pytestmark = [pytest.mark.live, pytest.mark.kind]
