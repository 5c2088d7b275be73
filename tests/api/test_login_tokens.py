"""The platform's login tokens (JWTs) over HTTP: secrets and JWKS keys, claims, expiry, approval,
sites, rotation of the JWKS, and the per-process cache. Tokens are minted here; the JWKS is
served on loopback (tests/api/login_support.py)."""

from __future__ import annotations

import base64
import hmac
import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from fastapi.testclient import TestClient

from api.auth import Principal, PrincipalCache
from api.main import create_app
from api.settings import LoginTokenSettings, Settings
from tests.api.conftest import OTHER_SITE, SITE, bearer, put_cache
from tests.api.login_support import SECRET, claims, ec_key, jwks_server, mint, rsa_key

CHATS = f"/api/xcx/chat/history?site_id={SITE}"  # a staff route
LATEST = "/api/ai/cache/app3_clue/7"  # the fast path (api/fast_read.py) when it is a plain success
BUDGET = "/api/admin/ai/budget"  # an admin route


@contextmanager
def app_with(api_settings: Settings, **login: Any) -> Iterator[TestClient]:
    settings = api_settings.model_copy(update={"login": LoginTokenSettings(**login)})
    with TestClient(create_app(settings)) as client:
        yield client


@pytest.fixture
def hs(api_settings: Settings) -> Iterator[TestClient]:
    with app_with(api_settings, jwt_secret=SECRET) as client:
        yield client


def status(client: TestClient, token: str, path: str = CHATS) -> int:
    return client.get(path, headers=bearer(token)).status_code


def detail(client: TestClient, token: str, path: str = CHATS) -> str:
    return client.get(path, headers=bearer(token)).json()["detail"]


def test_hs256_login_token_reaches_routes_and_the_fast_path(hs: TestClient, db_url: str) -> None:
    put_cache(db_url, site=SITE, app="app3_clue", target="7", result={"clues": ["周末常来"]})
    token = mint()
    assert status(hs, token) == 200
    response = hs.get(LATEST, headers=bearer(token))
    assert response.status_code == 200 and response.json()["result"] == {"clues": ["周末常来"]}
    # Role: a staff user is no admin; an admin user is.
    assert status(hs, token, BUDGET) == 403
    assert status(hs, mint(role="admin"), BUDGET) == 200


@pytest.mark.parametrize("make_key", [rsa_key, ec_key], ids=["RS256", "ES256"])
def test_jwks_signed_login_tokens(api_settings: Settings, make_key) -> None:
    key = make_key("k1")
    with jwks_server(key) as jwks, app_with(api_settings, jwks_url=jwks.url) as client:
        assert status(client, mint(key)) == 200
        assert status(client, mint(key, role="admin"), BUDGET) == 200
        # Another key with the same kid (a forgery) fails its signature.
        assert detail(client, mint(make_key("k1"))) == "invalid token (signature or claims)"
        # An HS256 token is not checked against the JWKS (no secret is configured).
        assert status(client, mint()) == 401


def test_bad_signatures_algorithms_and_shapes_are_401(hs: TestClient, api_settings: Settings) -> None:
    assert detail(hs, mint(secret="another-secret-of-at-least-32-bytes!!")) == "invalid token (signature or claims)"
    unsigned = jwt.encode({"sub": "1", "site_id": SITE, "role": "staff", "status": "approved"}, None, algorithm="none")
    assert "not accepted" in detail(hs, unsigned)
    assert detail(hs, "a.b.c") == "malformed token"
    # Algorithm confusion: an HS256 token whose "secret" is the JWKS's public key is refused.
    key = rsa_key("k1")
    pem = key.private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    signing_input = f"{b64({'alg': 'HS256', 'kid': 'k1'})}.{b64(claims())}"
    forged = f"{signing_input}.{base64url(hmac.digest(pem, signing_input.encode(), 'sha256'))}"
    with jwks_server(key) as jwks, app_with(api_settings, jwks_url=jwks.url) as client:
        assert status(client, mint(key)) == 200
        assert detail(client, forged) == "tokens signed with 'HS256' are not accepted here"
    assert hs.get(CHATS, headers=bearer(mint(secret="x" * 40))).headers["www-authenticate"] == "Bearer"


def base64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64(value: dict) -> str:
    return base64url(json.dumps(value).encode())


def test_expiry_is_honoured(hs: TestClient) -> None:
    now = int(time.time())
    assert detail(hs, mint(exp=now - 120)) == "token expired"
    assert status(hs, mint(exp=now - 5)) == 200  # within the default 30 s leeway for clock skew
    assert detail(hs, mint(exp=None)) == "token has no exp claim"


def test_issuer_and_audience_are_checked_when_set(api_settings: Settings) -> None:
    with app_with(
        api_settings, jwt_secret=SECRET, jwt_issuer="https://auth.zqyy.example", jwt_audience="zqyy-admin, zqyy-xcx"
    ) as client:
        assert status(client, mint(iss="https://auth.zqyy.example", aud="zqyy-xcx")) == 200
        assert detail(client, mint(iss="https://evil.example", aud="zqyy-xcx")) == "token issuer not accepted"
        assert detail(client, mint(iss="https://auth.zqyy.example", aud="other-app")) == "token audience not accepted"
        assert status(client, mint(aud="zqyy-xcx")) == 401  # no issuer at all
        assert status(client, mint(iss="https://auth.zqyy.example")) == 401  # no audience at all
    with app_with(api_settings, jwt_secret=SECRET) as client:  # not set: not checked
        assert status(client, mint(iss="anyone", aud="anything")) == 200


def test_unapproved_user_is_403_as_require_approved(hs: TestClient, db_url: str) -> None:
    put_cache(db_url, site=SITE, app="app3_clue", target="7", result={})
    for token in (mint(status="pending"), mint(status="rejected"), mint(status=None)):
        for path in (CHATS, LATEST, BUDGET):
            response = hs.get(path, headers=bearer(token))
            assert response.status_code == 403 and "not approved" in response.json()["detail"], path
    assert "has no access" in detail(hs, mint(role="coach"))  # a role the API does not know


def test_sites_single_list_and_another_site(hs: TestClient, db_url: str) -> None:
    put_cache(db_url, site=SITE, app="app3_clue", target="7", result={"who": "site 1"})
    put_cache(db_url, site=OTHER_SITE, app="app3_clue", target="7", result={"who": "site 2"})
    other = mint(site_id=OTHER_SITE)
    assert status(hs, other) == 403 and "no access to site" in detail(hs, other)
    assert hs.get(LATEST, headers=bearer(other)).json()["result"] == {"who": "site 2"}  # its own site
    both = mint(site_id=None, site_ids=[SITE, OTHER_SITE])
    assert hs.get(LATEST, headers=bearer(both)).status_code == 422  # must say which
    assert hs.get(f"{LATEST}?site_id={OTHER_SITE}", headers=bearer(both)).json()["result"] == {"who": "site 2"}
    assert hs.get(f"{LATEST}?site_id=3", headers=bearer(both)).status_code == 403
    assert status(hs, mint(site_ids=[str(SITE)], site_id=None)) == 200  # ids as strings too
    assert "names no site" in detail(hs, mint(site_id=None))
    assert status(hs, mint(site_id="first")) == 401


def test_claim_names_are_settings(api_settings: Settings) -> None:
    names = {
        "claim_user_id": "uid",
        "claim_site_id": "shop",
        "claim_site_ids": "shops",
        "claim_role": "user_role",
        "claim_nickname": "nick",
        "claim_status": "state",
        "approved_status": "ACTIVE",
        "staff_roles": "staff,coach",
    }
    with app_with(api_settings, jwt_secret=SECRET, **names) as client:
        renamed = {"sub": None, "site_id": None, "role": None, "status": None, "nickname": None}
        token = mint(**renamed, uid=7, shop=SITE, user_role="coach", nick="小李", state="ACTIVE")
        assert status(client, token) == 200
        assert status(client, mint(**renamed, uid=7, shops=[SITE], user_role="coach", state="ACTIVE")) == 200
        assert status(client, mint(**renamed, uid=7, shop=SITE, user_role="coach", state="approved")) == 403
        assert status(client, mint()) == 401  # the default names are not read: no user id
    with app_with(api_settings, jwt_secret=SECRET, claim_status="") as client:  # no status check
        assert status(client, mint(status=None)) == 200


def test_jwks_rotation_fetches_a_new_key_once(api_settings: Settings) -> None:
    old, new = rsa_key("2026-11"), ec_key("2026-12")
    # Cooldown 0: a key id not in the cached set is fetched for at once (the rotation case).
    with jwks_server(old) as jwks, app_with(api_settings, jwks_url=jwks.url, jwks_cooldown_s=0) as client:
        assert status(client, mint(old)) == 200 and jwks.fetches == 1
        assert status(client, mint(old, sub="2")) == 200 and jwks.fetches == 1  # the set is cached
        jwks.keys.append(new)  # the auth service rotates
        assert status(client, mint(new)) == 200 and jwks.fetches == 2  # one fetch for the new kid
        assert status(client, mint(new, sub="3")) == 200 and status(client, mint(old, sub="4")) == 200
        assert jwks.fetches == 2


def test_unknown_key_ids_do_not_hammer_the_jwks(api_settings: Settings) -> None:
    known, stranger = rsa_key("k1"), rsa_key("not-published")
    with jwks_server(known) as jwks, app_with(api_settings, jwks_url=jwks.url) as client:  # cooldown 10 s
        assert status(client, mint(known)) == 200 and jwks.fetches == 1
        for n in range(20):
            token = mint(stranger, sub=str(n)) if n % 2 else mint(rsa_key(f"random-{n}"))
            response = client.get(CHATS, headers=bearer(token))
            assert response.status_code == 401 and "unknown signing key" in response.json()["detail"]
        assert status(client, jwt.encode({"sub": "1"}, known.private, algorithm="RS256")) == 401  # no kid
        assert jwks.fetches == 1


def test_jwks_outage_is_503_and_not_retried_for_every_request(api_settings: Settings) -> None:
    key = rsa_key("k1")
    with jwks_server(key) as jwks, app_with(api_settings, jwks_url=jwks.url) as client:
        jwks.status = 500
        for _ in range(5):
            response = client.get(CHATS, headers=bearer(mint(key)))
            assert response.status_code == 503 and "try again later" in response.json()["detail"]
        assert jwks.fetches == 1
        # After the pause the keys are fetched again (the cache's clock, stepped by hand).
        jwks.status = 200
        login = client.app.state.login_tokens
        login.clock = lambda: time.monotonic() + 60
        assert status(client, mint(key)) == 200 and jwks.fetches == 2


def test_a_verified_login_token_is_cached_briefly_and_never_past_its_expiry(api_settings: Settings, db_url) -> None:
    put_cache(db_url, site=SITE, app="app3_clue", target="7", result={})
    settings = api_settings.model_copy(update={"auth_cache_ttl_s": 10.0})
    with app_with(settings, jwt_secret=SECRET) as client:
        login = client.app.state.login_tokens
        verified = []
        original = login.verify

        async def counting(token: str):
            verified.append(token)
            return await original(token)

        login.verify = counting
        now = [1000.0]
        client.app.state.principals.clock = lambda: now[0]
        token = mint()
        for path in (LATEST, CHATS, LATEST, CHATS):
            assert status(client, token, path) == 200
        assert len(verified) == 1  # the fast path and the routes share the cache
        now[0] += 10.5
        assert status(client, token, LATEST) == 200 and len(verified) == 2


def test_the_cache_keeps_an_entry_no_longer_than_asked() -> None:
    now = [0.0]
    cache = PrincipalCache(ttl_s=10, clock=lambda: now[0])
    principal = Principal(token_id=None, subject="1", role="staff", site_ids=(SITE,))
    cache.put("soon", principal, valid_for_s=2)  # a JWT expiring in 2 s
    cache.put("later", principal)
    cache.put("gone", principal, valid_for_s=-1)  # already expired: not kept
    now[0] = 2.5
    assert cache.get("soon") is None and cache.get("later") is principal and cache.get("gone") is None


def test_opaque_tokens_still_work_next_to_login_tokens(hs: TestClient, make_token) -> None:
    assert status(hs, make_token("staff")) == 200
    assert status(hs, "zqyy_unknown") == 401


def test_with_no_login_settings_a_jwt_is_refused(client: TestClient) -> None:
    response = client.get(CHATS, headers=bearer(mint()))
    assert response.status_code == 401 and response.json()["detail"] == "invalid, expired or revoked token"
