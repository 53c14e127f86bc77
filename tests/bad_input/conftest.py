"""The bad-input tables' scratch folder lives in pytest's temporary folder."""

from __future__ import annotations

import pytest

from tests.bad_input import rows


@pytest.fixture(scope="session", autouse=True)
def _scratch_root(tmp_path_factory):
    rows.SCRATCH_ROOT[:] = [tmp_path_factory.mktemp("bad-input")]
    rows.scratch.cache_clear()
    yield
    rows.SCRATCH_ROOT.clear()
    rows.scratch.cache_clear()
