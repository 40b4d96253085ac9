#!/usr/bin/env bash
# Make sure Debian's Chromium is installed for the browser test (tests/dagster/test_dagster_ui.py).
# Playwright drives it through executable_path=/usr/bin/chromium: no browser is downloaded.
set -uo pipefail
[ -x /usr/bin/chromium ] && exit 0
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "Installing chromium (Debian package) for the browser test ..."
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) >/dev/null \
    || echo "warning: apt-get could not install chromium" >&2
fi
[ -x /usr/bin/chromium ] || echo "warning: /usr/bin/chromium is missing; the browser test will fail" >&2
exit 0
