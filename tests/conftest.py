"""Shared fixtures: quiet TensorFlow, fixed seeds, tiny data and models.

Nothing here touches the network: models use weights=None and small inputs,
data is generated on the fly. Helper functions live in tests/support/.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
# Under pytest-xdist each worker is a process with TensorFlow's default of one
# intra-op thread per core: with a worker per core (or one more), each
# worker's threads would fight the others' for the cores. One intra-op thread
# per worker instead; the processes tests start (fresh-process checks, the
# README snippets, notebook kernels) inherit it. Inter-op threads stay at the
# default: collective ops of multi-device strategies need more than one.
if int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")) > 1:
    os.environ.setdefault("TF_NUM_INTRAOP_THREADS", "1")

import gc  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402

import keras  # noqa: E402
import pytest  # noqa: E402

from tests.support.helpers import build_tiny_model, write_image_folder  # noqa: E402

SEED = 1234


@pytest.fixture(scope="module", autouse=True)
def _seed_module():
    """Every module's fixtures start from the same random state.

    Module fixtures are built before the first test's `_seed`; without this
    they would see whatever state the tests run before them on the same
    worker left, which changes with `-n` and with the order of files.
    """
    keras.utils.set_random_seed(SEED)
    yield
    _freeze_what_lives_on()


def _freeze_what_lives_on() -> None:
    """After each module: collect its garbage, then stop rescanning the rest.

    Graphs a test traced outlive it (83 graphs were still alive after three
    tests of test_defaults with no referrer `gc.get_referrers` could see but
    their own operations), so a worker's heap grows to 2-2.5 million objects,
    and each full garbage collection walked all of them again: 68-94 of them
    per worker at 1.2-1.7 s each, 280 of a run's 2,300 CPU seconds
    (`gc.callbacks`, fresh clone of 1f12611, 3 workers; 131 s with this, at
    2a4fa45). Whatever is still alive once a module's fixtures are gone is
    frozen: later collections scan only what the next module makes.
    """
    gc.collect()
    gc.freeze()


@pytest.fixture(autouse=True)
def _seed():
    """Every test starts from the same random state."""
    keras.utils.set_random_seed(SEED)
    yield


@pytest.fixture
def image_folder(tmp_path: Path) -> Path:
    """Three classes of eight 40x40 PNG images each."""
    return write_image_folder(tmp_path / "images", {"cats": 8, "dogs": 8, "owls": 8})


@pytest.fixture
def tiny_model() -> keras.Model:
    """A compiled 3-class classifier on a tiny 3-block base (block1-block3)."""
    return build_tiny_model()


@pytest.fixture
def tfds_tempdir(tmp_path_factory, monkeypatch) -> Path:
    """Python's temporary folder, for this test, is a folder of pytest's.

    TFDS makes an empty ``/tmp/tmp*tfds`` folder each time it builds a
    dataset's info (``DatasetInfo.initialize_from_bucket``) and leaves it;
    tests that load TFDS datasets take this fixture so it lands here, where
    pytest removes it with its old runs.
    """
    folder = tmp_path_factory.mktemp("tempdir")
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


def pytest_xdist_auto_num_workers(config):
    """``-n auto``: one worker more than the cores this process may use.

    A worker often waits instead of computing: on a process its test started
    (the fresh-process export checks, README chains, notebook kernels) or on
    files. On the 2-core machine (fresh clone, machine alone) 2 workers kept
    the cores 177% busy, 3 workers 194%, and the run took 8% less time.
    ``PYTEST_XDIST_AUTO_NUM_WORKERS``, when set, still decides.
    """
    if os.environ.get("PYTEST_XDIST_AUTO_NUM_WORKERS"):
        return None
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0)) + 1
    return (os.cpu_count() or 1) + 1


def pytest_collection_modifyitems(config, items):
    """Files with ``long`` tests run first, then files with ``slow`` ones.

    Under pytest-xdist (``--dist worksteal``) the longest tests (minutes
    each: README snippet chains, notebooks, the demo) then start early, and
    the many short ones fill both workers in at the end, instead of one
    worker finishing a long test alone. Only the order of files changes: a
    file's tests stay together, so its module fixtures are built once per
    worker that runs it.
    """
    long = {item.path for item in items if item.get_closest_marker("long")}
    slow = {item.path for item in items if item.get_closest_marker("slow")}
    # sort is stable: files keep their order within each group, tests theirs.
    items.sort(key=lambda item: (item.path not in long, item.path not in slow))
