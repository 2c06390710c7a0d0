"""Where the project's parts are, for tests at any depth and for the helper scripts: defined once.

Tests import these through ``conftest`` (``from conftest import ROOT, TEST_DATA``); the scripts in
this folder, run by path, import this module as ``paths`` (their own folder is ``sys.path[0]``).
"""

from __future__ import annotations

from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]  # tests/
ROOT = TESTS.parent  # the project root
SRC = ROOT / "src"
CONF = ROOT / "conf"
TEST_DATA = TESTS / "data"  # pinned outputs the tests compare with
HELPERS = TESTS / "helpers"  # this folder: helper modules and the scripts tests run by path
