#!/usr/bin/env bash
# Python reference implementations the interop tests compare against: PyJWT (JWTs),
# argon2-cffi (password hashes), pyotp (TOTP). Each test prints `skipped:` without them.
set -euo pipefail
python3 -m pip install --quiet --user "pyjwt[crypto]>=2.8" "argon2-cffi>=23.1" "pyotp>=2.9" 2>/dev/null \
  || python3 -m pip install --quiet --user --break-system-packages "pyjwt[crypto]>=2.8" "argon2-cffi>=23.1" "pyotp>=2.9"
python3 -c 'import jwt, argon2, pyotp; print("pyjwt", jwt.__version__, "argon2-cffi, pyotp installed")'
