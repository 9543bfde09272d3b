"""CONTRIBUTING.md and the pre-commit hook agree with what CI and the code do."""

from __future__ import annotations

import re

from tests.conftest import ROOT


def test_pre_commit_runs_the_ruff_ci_pins():
    pinned = re.search(r"^ruff==(\S+)", (ROOT / "requirements-dev.txt").read_text(), re.M).group(1)
    config = (ROOT / ".pre-commit-config.yaml").read_text()
    assert "astral-sh/ruff-pre-commit" in config and f"rev: v{pinned}\n" in config
    assert "- id: ruff\n" in config


def test_contributing_states_the_contracts_the_code_keeps():
    from model.cli import ERROR, EXTRA, HEADER

    text = " ".join((ROOT / "CONTRIBUTING.md").read_text().split())
    assert f"`{','.join(HEADER)}` followed by `{','.join([*EXTRA, ERROR])}`" in text
    for endpoint in ("/classify", "/explain", "/batch", "/report"):
        assert f"`{endpoint}`" in text
    demo = (ROOT / "demo.py").read_text()
    for name in ("classify", "explain", "batch", "report"):
        assert f'api_name="{name}"' in demo
