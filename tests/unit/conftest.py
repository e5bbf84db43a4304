"""Fixtures shared by the unit tests: the real clusters' facts, and throw-away copies of config/."""

import shutil

import pytest

from deployer import facts


@pytest.fixture(scope="session")
def all_facts():
    """{cluster name: facts} of every real cluster file."""
    return facts.load_all()


@pytest.fixture
def config_copy(tmp_path):
    """A copy of config/clusters/ and config/sizes.yaml that a test may alter; the real files stay as they are."""
    shutil.copytree(facts.CLUSTERS, tmp_path / "clusters")
    shutil.copy(facts.SIZES_FILE, tmp_path / "sizes.yaml")
    return tmp_path


@pytest.fixture(scope="session", autouse=True)
def scratch_credentials_module(tmp_path_factory):
    """The service's module as the chart mounts it: the repository's file once it exists (issue 10A writes
    it), until then a placeholder in a temporary directory (never in the repository) read the same way."""
    from deployer import values

    if values.SCRATCH_CREDENTIALS.is_file():
        yield values.SCRATCH_CREDENTIALS
        return
    placeholder = tmp_path_factory.mktemp("scratch-module") / "scratch_credentials.py"
    placeholder.write_text('"""placeholder of the unit tests: the real module is scratch_credentials.py"""\n')
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(values, "SCRATCH_CREDENTIALS", placeholder)
        yield placeholder
