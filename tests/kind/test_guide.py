"""The researcher's guide (tests/smoke/test_guide.py) against the kind deployment.

Left out: the examples of the scratch and data pages, which need the scratch bucket (kind has no object
store; the local tier runs them against SeaweedFS, `make health` against each cluster's bucket).
"""

import pytest

from tests.smoke.test_guide import ctx, fresh_kernel  # noqa: F401 (fixtures)
from tests.smoke.test_guide import test_a_full_home_still_starts  # noqa: F401
from tests.smoke.test_guide import test_dask_examples  # noqa: F401
from tests.smoke.test_guide import test_home_usage_reports_the_home_disk  # noqa: F401
from tests.smoke.test_guide import test_limit_errors_are_the_ones_the_guide_shows  # noqa: F401
from tests.smoke.test_guide import test_page_examples  # noqa: F401
from tests.smoke.test_guide import test_ssh_key_survives_a_restart  # noqa: F401
from tests.smoke.test_guide import test_user_packages_survive_a_restart  # noqa: F401
from tests.smoke.test_guide import test_workers_lack_user_packages_until_installed_on_them  # noqa: F401

pytestmark = [pytest.mark.smoke, pytest.mark.kind]
