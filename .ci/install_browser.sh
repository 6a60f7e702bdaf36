#!/usr/bin/env bash
# Installs what the browser test (tests/space/test_space_server.py, marker "browser") needs:
# Debian's chromium (never a browser downloaded by Playwright) and the Playwright Python driver.
# Usage: bash .ci/install_browser.sh      (needs root for apt-get; safe to run twice)
set -euo pipefail

if [ ! -x /usr/bin/chromium ]; then
    SUDO=""
    if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update
    $SUDO apt-get install -y --no-install-recommends chromium fonts-dejavu-core
fi

# The Python package only: no `playwright install`, the test launches /usr/bin/chromium.
python3 -m pip install "playwright>=1.50"

/usr/bin/chromium --version
python3 -c "import playwright; from playwright.sync_api import sync_playwright; print('playwright ok')"
