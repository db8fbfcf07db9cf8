#!/usr/bin/env bash
# Python reference implementations the interop tests run against; each test prints `skipped:`
# without them.
set -euo pipefail
pip_install() { python3 -m pip install --quiet --user "$@" 2>/dev/null || python3 -m pip install --quiet --user --break-system-packages "$@"; }
pip_install "pyjwt[crypto]>=2.8"
pip_install "cryptography>=42"
pip_install "pyotp>=2.9"
pip_install "argon2-cffi>=23.1"
