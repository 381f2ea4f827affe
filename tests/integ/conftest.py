"""Shared fixtures: a private slapd per test module, an otasdird per test.

Tests in one module share the directory, so each uses its own usernames.
"""

import shutil
import sys
import tempfile
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from otasenv import Daemon  # noqa: E402
from slapdenv import running_slapd  # noqa: E402


@pytest.fixture(scope="module")
def slapd():
    with running_slapd(hash="SSHA") as s:
        yield s


@pytest.fixture
def tmpdir_short():
    """A short temporary directory (Unix socket paths are limited)."""
    path = tempfile.mkdtemp(prefix="otd", dir="/tmp")
    yield Path(path)
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def daemon(slapd, tmpdir_short):
    d = Daemon(slapd, tmpdir_short)
    d.start()
    yield d
    d.stop()


@pytest.fixture
def client(daemon):
    with daemon.client() as c:
        yield c
