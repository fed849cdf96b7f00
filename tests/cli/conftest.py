"""CLI tests run in a fresh temporary folder, so a default output (weightinit-doctor.html) never lands in the repo."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _in_tmp_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
