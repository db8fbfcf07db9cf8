#!/usr/bin/env python3
"""Writes argon2-cffi-phc.txt: PHC strings made by argon2-cffi (the libargon2 reference code),
of passwords as given, without Unicode normalisation, as most systems hash them.

    pip install argon2-cffi && python3 make-argon2-cffi.py > argon2-cffi-phc.txt
"""
import importlib.metadata

from argon2 import PasswordHasher

PASSWORDS = [
    "correct horse battery staple",  # ASCII: the same under NFKC
    "e\u0301te\u0301 a\u0300 Paris",  # combining accents: NFKC composes them
    "\ufb01ance\u0301e 2024",  # the fi ligature: NFKC expands it
    "\uff30\uff41\uff53\uff53\uff57\uff4f\uff52\uff44 \u2460\u2461",  # full-width, circled digits
]

ph = PasswordHasher(time_cost=2, memory_cost=1024, parallelism=1)
print(f"# argon2-cffi {importlib.metadata.version('argon2-cffi')}, time_cost=2 memory_cost=1024 parallelism=1")
print("# Format: password as JSON string <TAB> PHC string (password bytes hashed as given).")
import json
for p in PASSWORDS:
    print(f"{json.dumps(p)}\t{ph.hash(p)}")
