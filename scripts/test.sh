#!/usr/bin/env bash
# Install everything the test suite needs, then run it: ruff, the import layers (import-linter),
# then pytest (which fails on no tests).
set -euo pipefail
cd "$(dirname "$0")/.."
python -m pip install -q -r requirements.txt -r requirements-test.txt
python -m pip install -q --no-deps --no-build-isolation -e .
if ! command -v chromium >/dev/null 2>&1; then
  # The browser test drives Debian's Chromium through Playwright (no browser download).
  apt-get update -q && apt-get install -y -q chromium
fi
ruff check .
lint-imports
python -m pytest -q "$@"
