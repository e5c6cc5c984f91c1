"""A run whose publishing fails says so at once: it does not first wait for the driver
models, the longest work of a run at national scale, which are fitted beside it."""

from __future__ import annotations

import shutil
import threading

import pytest

import pipeline.run as run
from survey.errors import CultureError
from survey.settings import Settings


def test_a_failed_publish_is_told_without_waiting_for_the_driver_fits(
        sample_store, tmp_path, instrument, monkeypatch):
    settings = Settings(db_path=tmp_path / "store.duckdb")
    shutil.copyfile(sample_store, settings.db_path)
    release, fitting, finished = threading.Event(), threading.Event(), threading.Event()

    def slow_drivers(inputs, cells=None):
        fitting.set()
        release.wait(120)        # a national wave's 255-model fits, standing still
        finished.set()
        return None

    def failing_publish(*args, **kwargs):
        assert fitting.wait(60)
        raise CultureError("the layer could not be written (a test's failure)")

    monkeypatch.setattr(run, "driver_rows", slow_drivers)
    monkeypatch.setattr(run, "publish", failing_publish)
    try:
        with pytest.raises(CultureError, match="a test's failure"):
            run.run_pipeline(settings, instrument)
        # The error came while the fits still stood: the run did not wait for them.
        assert not finished.is_set()
    finally:
        release.set()
    assert finished.wait(60)
    # Nothing was published: no layer, and no half-written one.
    assert not settings.published_path.exists()
    assert not list(tmp_path.glob("*.tmp"))
