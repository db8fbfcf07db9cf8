#!/usr/bin/env python3
"""A JWKS endpoint for tests/remote_jwks.rs: serves the file DIR/jwks.json at /jwks.json on
127.0.0.1 (port 0: the system picks one), with `Cache-Control: max-age=300`. Prints the port,
then one line `GET` per request served, so the test can count fetches. Standard library only.

    python3 jwks_server.py DIR
"""
import http.server
import os
import sys

ROOT = sys.argv[1]


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path != "/jwks.json":
            self.send_error(404)
            return
        with open(os.path.join(ROOT, "jwks.json"), "rb") as f:
            body = f.read()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Cache-Control", "public, max-age=300")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        print("GET", flush=True)

    def log_message(self, *args):
        pass


server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
print(server.server_address[1], flush=True)
server.serve_forever()
