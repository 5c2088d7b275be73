"""The platform's login tokens in tests: keys, tokens minted here, and a JWKS served on loopback."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from tests.api.conftest import SITE

SECRET = "test-login-secret-of-at-least-32-bytes!"


@dataclass
class SigningKey:
    """A private key with its key id and algorithm; ``jwk`` is its public half as the JWKS lists it."""

    kid: str
    alg: str
    private: Any

    @property
    def jwk(self) -> dict[str, Any]:
        algorithm = jwt.get_algorithm_by_name(self.alg)
        public = json.loads(algorithm.to_jwk(self.private.public_key()))
        return {**public, "kid": self.kid, "alg": self.alg, "use": "sig"}


def rsa_key(kid: str) -> SigningKey:
    return SigningKey(kid, "RS256", rsa.generate_private_key(public_exponent=65537, key_size=2048))


def ec_key(kid: str) -> SigningKey:
    return SigningKey(kid, "ES256", ec.generate_private_key(ec.SECP256R1()))


def claims(**overrides: Any) -> dict[str, Any]:
    """An approved staff user of SITE whose token expires in an hour; ``None`` drops a claim."""
    now = int(time.time())
    base: dict[str, Any] = {
        "sub": "10024",
        "site_id": SITE,
        "role": "staff",
        "nickname": "小王",
        "status": "approved",
        "iat": now,
        "exp": now + 3600,
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def mint(key: SigningKey | None = None, secret: str = SECRET, **overrides: Any) -> str:
    """A JWT of ``claims(**overrides)``: HS256 with ``secret``, or signed by ``key`` (its kid in the header)."""
    if key is None:
        return jwt.encode(claims(**overrides), secret, algorithm="HS256")
    return jwt.encode(claims(**overrides), key.private, algorithm=key.alg, headers={"kid": key.kid})


@dataclass
class JWKSServer:
    """A JWKS on loopback: the keys it lists can change (rotation); it counts its fetches."""

    keys: list[SigningKey] = field(default_factory=list)
    status: int = 200
    fetches: int = 0
    url: str = ""

    def body(self) -> bytes:
        return json.dumps({"keys": [k.jwk for k in self.keys]}).encode()


@contextmanager
def jwks_server(*keys: SigningKey) -> Iterator[JWKSServer]:
    served = JWKSServer(list(keys))
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            with lock:
                served.fetches += 1
                status, body = served.status, served.body()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    served.url = f"http://127.0.0.1:{server.server_address[1]}/.well-known/jwks.json"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield served
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
