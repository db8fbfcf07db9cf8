#!/usr/bin/env python3
"""PyJWT side of the RSA interop test (tests/jwt_rsa.rs).

`issue NOW`: makes two 2048-bit RSA keys, prints JSON with the public JWKS (kid `rs-1` alg RS256,
kid `ps-1` alg PS256), an RS256 and a PS256 token signed by PyJWT, an `at+jwt` token, and the
RS256 key as PKCS#1 DER hex (for the other direction).
`verify JWKS_JSON`: reads tokens (one per line) on stdin and prints the `sub` PyJWT verifies
for each, using the JWKS given.
"""
import json
import sys

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa


def issue(now):
    out = {"keys": []}
    keys = {}
    for kid, alg in [("rs-1", "RS256"), ("ps-1", "PS256")]:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        keys[kid] = key
        jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
        jwk.update({"kid": kid, "alg": alg, "use": "sig"})
        out["keys"].append(jwk)
    claims = {"sub": "pyjwt-user", "iss": "https://py.example", "iat": now, "exp": now + 600}
    print(json.dumps({
        "jwks": out,
        "rs256": jwt.encode(claims, keys["rs-1"], algorithm="RS256", headers={"kid": "rs-1"}),
        "ps256": jwt.encode(claims, keys["ps-1"], algorithm="PS256", headers={"kid": "ps-1"}),
        "at_jwt": jwt.encode(claims, keys["rs-1"], algorithm="RS256",
                             headers={"kid": "rs-1", "typ": "at+jwt"}),
        "rs_der_hex": keys["rs-1"].private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        ).hex(),
    }))


def verify(jwks_json):
    jwks = jwt.PyJWKSet.from_json(jwks_json)
    for line in sys.stdin:
        token = line.strip()
        kid = jwt.get_unverified_header(token)["kid"]
        key = jwks[kid]
        claims = jwt.decode(token, key.key, algorithms=[key.algorithm_name],
                            issuer="https://py.example")
        print(claims["sub"])


if __name__ == "__main__":
    if sys.argv[1] == "issue":
        issue(int(sys.argv[2]))
    else:
        verify(sys.argv[2])
