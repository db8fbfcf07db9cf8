#!/usr/bin/env python3
"""Writes migration.json: a Google Authenticator export (`otpauth-migration://offline?data=`),
a batch of 3 accounts, with the secrets and parameters it holds, for tests/migration.rs.

The payload is Google Authenticator's MigrationPayload protobuf, encoded here by hand (field
numbers from its export format: OtpParameters secret=1 name=2 issuer=3 algorithm=4 digits=5
type=6 counter=7; MigrationPayload otp_parameters=1 version=2 batch_size=3 batch_index=4
batch_id=5), so the helper needs nothing beyond the standard library.

    python3 make-migration.py > migration.json
"""
import base64
import json
import urllib.parse


def varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def field(number, wire, value):
    key = varint(number << 3 | wire)
    if wire == 0:
        return key + varint(value)
    return key + varint(len(value)) + value


ACCOUNTS = [
    # secret (bytes), name, issuer, algorithm (1 SHA1, 2 SHA256, 3 SHA512), digits (1 six, 2 eight),
    # type (1 HOTP, 2 TOTP), counter
    (bytes(range(1, 21)), "alice@example.com", "Example", 1, 1, 2, 0),
    (bytes(range(100, 132)), "Contoso:bob@contoso.com", "Microsoft", 2, 2, 2, 0),
    (b"\xff" * 16 + b"\x00" * 4, "carol", "", 1, 1, 1, 42),
]
ALGORITHMS = {1: "SHA1", 2: "SHA256", 3: "SHA512"}

payload = b""
for secret, name, issuer, alg, digits, kind, counter in ACCOUNTS:
    otp = field(1, 2, secret) + field(2, 2, name.encode()) + field(3, 2, issuer.encode())
    otp += field(4, 0, alg) + field(5, 0, digits) + field(6, 0, kind) + field(7, 0, counter)
    payload += field(1, 2, otp)
payload += field(2, 0, 1) + field(3, 0, 1) + field(4, 0, 0) + field(5, 0, 1234567)

uri = "otpauth-migration://offline?data=" + urllib.parse.quote(base64.b64encode(payload), safe="")
print(json.dumps({
    "uri": uri,
    "batch": {"size": 1, "index": 0, "id": 1234567},
    "accounts": [
        {
            "secret_base32": base64.b32encode(s).decode().rstrip("="),
            "name": n,
            "issuer": i,
            "algorithm": ALGORITHMS[a],
            "digits": 6 if d == 1 else 8,
            "type": "hotp" if k == 1 else "totp",
            "counter": c,
        }
        for s, n, i, a, d, k, c in ACCOUNTS
    ],
}, indent=2))
