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
