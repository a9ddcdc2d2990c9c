"""Identity through the real HTTP and websocket endpoints: an OpenID Connect provider's
tokens checked against its JWKS (a local provider with rotating keys), API keys, and
rate limits."""

import asyncio
import base64
import hashlib
import hmac
import json
import os
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from ipaddress import ip_network
from typing import Any

import aiohttp
import jwt
import pytest
from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

from tests.api import SECRET, Api, TransportWsClient, sample, token
from tests.conftest import StartServer
from tests.support import FakeClock, run_cli
from tests.waits import until
from usercredits.models import ApiKey
from usercredits.server.ratelimit import TokenBuckets, caller_address
from usercredits.server.revocation import CHECK_SECONDS
from usercredits.services.identity.access import Role

ISSUER_PATH = "/realm"
AUDIENCE = "credits-api"
WALLET = "query { wallet { userId } }"
GRANT = (
    'mutation($user: ID!) { grantTokens(input: {userId: $user, offerGroup: "pro", '
    'tokens: 5, idempotencyKey: "g"}) { tokens } }'
)
ADMIN = token("root", Role.ADMIN)


@dataclass
class SigningKey:
    kid: str
    algorithm: str
    private: Any
    public_jwk: dict[str, Any]


def make_key(kid: str, algorithm: str) -> SigningKey:
    private: Any
    if algorithm == "RS256":
        private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        public = RSAAlgorithm.to_jwk(private.public_key(), as_dict=True)
    elif algorithm == "ES256":
        private = ec.generate_private_key(ec.SECP256R1())
        public = ECAlgorithm.to_jwk(private.public_key(), as_dict=True)
    else:
        private = ed25519.Ed25519PrivateKey.generate()
        public = OKPAlgorithm.to_jwk(private.public_key(), as_dict=True)
    return SigningKey(kid, algorithm, private, {**public, "kid": kid, "use": "sig"})


@dataclass
class Provider:
    """An identity provider: discovery, a JWKS whose keys change, and fetch counts."""

    issuer: str = ""
    keys: list[SigningKey] = field(default_factory=list)
    jwks_fetches: int = 0
    down: bool = False

    def app(self) -> web.Application:
        async def discovery(request: web.Request) -> web.Response:
            return web.json_response({"issuer": self.issuer, "jwks_uri": f"{self.issuer}/jwks"})

        async def jwks(request: web.Request) -> web.Response:
            self.jwks_fetches += 1
            if self.down:
                return web.Response(status=503)
            return web.json_response({"keys": [k.public_jwk for k in self.keys]})

        app = web.Application()
        app.router.add_get(f"{ISSUER_PATH}/.well-known/openid-configuration", discovery)
        app.router.add_get(f"{ISSUER_PATH}/jwks", jwks)
        return app

    def token(
        self,
        key: SigningKey,
        sub: str = "alice",
        *,
        ttl: int = 600,
        at: datetime | None = None,
        extra: dict[str, Any] | None = None,
        **claims: Any,
    ) -> str:
        """A token issued `at` (the wall clock's now unless given)."""
        now = int(time.time() if at is None else at.timestamp())
        body = {"iss": self.issuer, "aud": AUDIENCE, "sub": sub, "iat": now, "exp": now + ttl}
        return jwt.encode(
            {**body, **(extra or {}), **claims},
            key.private,
            algorithm=key.algorithm,
            headers={"kid": key.kid},
        )


@pytest.fixture
async def provider() -> AsyncIterator[Provider]:
    found = Provider(keys=[make_key("k1", "RS256"), make_key("k2", "ES256")])
    runner = web.AppRunner(found.app())
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    found.issuer = f"http://{host}:{port}{ISSUER_PATH}"
    yield found
    await runner.cleanup()


def oidc(provider: Provider, **extra: Any) -> dict[str, Any]:
    return {"oidc_issuer": provider.issuer, "oidc_audience": AUDIENCE, **extra}


def unsigned(claims: dict[str, Any], header: dict[str, Any]) -> str:
    def part(value: dict[str, Any]) -> bytes:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=")

    return (part(header) + b"." + part(claims) + b".").decode()


async def test_provider_tokens_pass_and_each_attack_is_refused(
    http: aiohttp.ClientSession, start_server: StartServer, provider: Provider
) -> None:
    base = await start_server(
        jwt_secret=None, oidc_roles_claim="realm_access.roles", **oidc(provider)
    )
    api = Api(http, f"{base}/graphql")
    eddsa = make_key("k3", "EdDSA")
    provider.keys.append(eddsa)
    for key in provider.keys:
        caller = await api.data(WALLET, as_=provider.token(key, sub=f"user-{key.kid}"))
        assert caller["wallet"]["userId"] == f"user-{key.kid}"
    keycloak_admin = provider.token(
        provider.keys[0], sub="kc-admin", realm_access={"roles": ["offline_access", "admin"]}
    )
    assert (await api.data(GRANT, {"user": "bob"}, as_=keycloak_admin))["grantTokens"][
        "tokens"
    ] == 5
    user_only = provider.token(provider.keys[0], realm_access={"roles": ["offline_access"]})
    assert await api.error_code(GRANT, {"user": "bob"}, as_=user_only) == "FORBIDDEN"

    rsa_key = provider.keys[0]
    now = int(time.time())
    claims = {
        "iss": provider.issuer,
        "aud": AUDIENCE,
        "sub": "mallory",
        "iat": now,
        "exp": now + 600,
    }
    public_pem = rsa_key.private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    confused = unsigned(claims, {"alg": "HS256", "kid": "k1", "typ": "JWT"})[:-1]
    confused += (
        "."
        + base64.urlsafe_b64encode(hmac.new(public_pem, confused.encode(), hashlib.sha256).digest())
        .rstrip(b"=")
        .decode()
    )
    stranger = make_key("k1", "RS256")  # the right kid, someone else's key
    attacks = {
        "alg none": unsigned(claims, {"alg": "none", "kid": "k1"}),
        "HS256 signed with the public key": confused,
        "HS256 with the shared secret, switched off": token("mallory", Role.ADMIN),
        "wrong issuer": provider.token(rsa_key, iss="https://evil.example/realm"),
        "wrong audience": provider.token(rsa_key, aud="another-api"),
        "expired": provider.token(rsa_key, ttl=-3600),
        "not yet valid": provider.token(rsa_key, nbf=now + 3600),
        "unknown kid": provider.token(make_key("k9", "RS256")),
        "another key under a known kid": provider.token(stranger),
        "no subject": provider.token(rsa_key, sub=""),
        "a kid of 300 characters": provider.token(make_key("k" * 300, "RS256")),
    }
    for name, attack in attacks.items():
        assert await api.error_code(WALLET, as_=attack) == "UNAUTHENTICATED", name
    # On a websocket: 4401 (a fresh token would do) for the expired token only, and a
    # reason cut to what a close frame holds when the refusal quotes the token.
    closes = {
        "alg none": 4403,
        "wrong audience": 4403,
        "another key under a known kid": 4403,
        "expired": 4401,
        "a kid of 300 characters": 4403,
    }
    reasons = {}
    for name, code in closes.items():
        ws = await http.ws_connect(f"{base}/graphql", protocols=["graphql-transport-ws"])
        await ws.send_json(
            {"type": "connection_init", "payload": {"authorization": f"Bearer {attacks[name]}"}}
        )
        closed = await ws.receive(timeout=5)
        assert (closed.type, closed.data) == (aiohttp.WSMsgType.CLOSE, code), name
        reasons[name] = closed.extra
        await ws.close()
    assert reasons["expired"] == "token expired: reconnect with a fresh token"
    long_kid = reasons["a kid of 300 characters"]
    assert long_kid == "the token's key '" + "k" * 103 + "...", long_kid
    assert len(long_kid.encode()) == 123
    async with http.get(f"{base}/metrics") as response:
        text = await response.text()
    refusals = sample(text, "usercredits_refusals_total", cause="unauthenticated")
    assert refusals == len(attacks) + len(closes)


async def test_a_uri_claim_name_is_read_whole(
    http: aiohttp.ClientSession, start_server: StartServer, provider: Provider
) -> None:
    """Auth0-style namespaced claims: a URI's dots are part of its name."""
    base = await start_server(oidc_roles_claim="https://example.com/roles", **oidc(provider))
    api = Api(http, f"{base}/graphql")
    service = provider.token(
        provider.keys[0], sub="backend", extra={"https://example.com/roles": ["service"]}
    )
    assert (await api.data('query { wallet(userId: "bob") { userId } }', as_=service))["wallet"][
        "userId"
    ] == "bob"
    # With a secret set, HS256 tokens stay accepted beside the provider's.
    assert (await api.data(WALLET, as_=token("carol")))["wallet"]["userId"] == "carol"


async def test_roles_are_a_list_of_exact_names_at_the_nested_path(
    http: aiohttp.ClientSession, start_server: StartServer, provider: Provider
) -> None:
    base = await start_server(
        jwt_secret=None, oidc_roles_claim="realm_access.roles", **oidc(provider)
    )
    api = Api(http, f"{base}/graphql")
    key = provider.keys[0]
    admin = provider.token(key, sub="kc-admin", realm_access={"roles": ["admin"]})
    assert (await api.data(GRANT, {"user": "bob"}, as_=admin))["grantTokens"]["tokens"] == 5
    not_admins = {
        "another case": provider.token(key, realm_access={"roles": ["Admin", "ADMIN"]}),
        "a top-level claim named like the path": provider.token(
            key, extra={"realm_access.roles": ["admin"]}, realm_access={"roles": ["user"]}
        ),
    }
    for name, holder in not_admins.items():
        assert await api.error_code(GRANT, {"user": "bob"}, as_=holder) == "FORBIDDEN", name
        assert (await api.data(WALLET, as_=holder))["wallet"]["userId"] == "alice", name
    bare = await api.call(WALLET, as_=provider.token(key, realm_access={"roles": "admin"}))
    assert bare["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    assert bare["errors"][0]["message"] == (
        "the token's `realm_access.roles` must be a list of role names"
    )


async def test_provider_tokens_with_impossible_dates_are_told_why(
    http: aiohttp.ClientSession, start_server: StartServer, provider: Provider
) -> None:
    base = await start_server(jwt_secret=None, **oidc(provider))
    api = Api(http, f"{base}/graphql")
    now = int(time.time())
    for exp, message in (
        (str(now + 600), "the token's `exp` must be a number of seconds"),
        (10**30, "the token's `exp` must be at most 253402300799 (the end of the year 9999)"),
    ):
        body = await api.call(WALLET, as_=provider.token(provider.keys[0], exp=exp))
        assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED", body
        assert body["errors"][0]["message"] == message


async def test_a_key_fetch_failure_shows_callers_no_host(
    http: aiohttp.ClientSession,
    start_server: StartServer,
    provider: Provider,
    caplog: pytest.LogCaptureFixture,
) -> None:
    provider.down = True
    base = await start_server(jwt_secret=None, **oidc(provider))
    api = Api(http, f"{base}/graphql")
    body = await api.call(WALLET, as_=provider.token(provider.keys[0]))
    assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    assert body["errors"][0]["message"] == "the identity provider's keys could not be fetched"
    (logged,) = [r for r in caplog.records if "could not be fetched" in r.getMessage()]
    assert logged.levelname == "WARNING"
    assert logged.__dict__["jwks_url"] == f"{provider.issuer}/jwks"
    assert "503" in logged.__dict__["error"]


async def test_rotated_keys_are_picked_up_and_a_provider_down_stops_nothing_seen(
    http: aiohttp.ClientSession, start_server: StartServer, provider: Provider
) -> None:
    base = await start_server(oidc_refetch_seconds=0.5, **oidc(provider))
    api = Api(http, f"{base}/graphql")
    await api.data(WALLET, as_=provider.token(provider.keys[0]))
    assert provider.jwks_fetches == 1
    rotated = make_key("k4", "ES256")
    provider.keys = [provider.keys[1], rotated]
    await asyncio.sleep(0.6)
    assert (await api.data(WALLET, as_=provider.token(rotated, sub="rot")))["wallet"][
        "userId"
    ] == "rot"
    assert provider.jwks_fetches == 2
    # A flood of made-up key ids costs the provider at most one fetch per interval.
    made_up = [provider.token(make_key(f"x{n}", "ES256")) for n in range(20)]
    codes = await asyncio.gather(*(api.error_code(WALLET, as_=t) for t in made_up))
    assert set(codes) == {"UNAUTHENTICATED"}
    assert provider.jwks_fetches <= 3
    provider.down = True
    await asyncio.sleep(0.6)
    assert await api.error_code(WALLET, as_=provider.token(make_key("x99", "RS256"))) == (
        "UNAUTHENTICATED"
    )
    assert (await api.data(WALLET, as_=provider.token(rotated, sub="still")))["wallet"][
        "userId"
    ] == "still"
    client = await TransportWsClient.connect(
        http, f"{base}/graphql", {"authorization": f"Bearer {provider.token(rotated)}"}
    )
    await client.close()


CREATE_KEY = (
    "mutation($name: String!, $role: Role!) { createApiKey(name: $name, role: $role) "
    "{ secret apiKey { id name role prefix lastUsedAt revokedAt } } }"
)
LIST_KEYS = "query { apiKeys { id prefix lastUsedAt revokedAt } }"
REVOKE_KEY = "mutation($id: ID!) { revokeApiKey(id: $id) { id revokedAt } }"


async def test_api_keys_are_made_once_used_and_revoked_on_every_instance(
    http: aiohttp.ClientSession, start_server: StartServer
) -> None:
    one = Api(http, f"{await start_server()}/graphql")
    two = Api(http, f"{await start_server()}/graphql")
    created = (await one.data(CREATE_KEY, {"name": "billing", "role": "SERVICE"}, as_=ADMIN))[
        "createApiKey"
    ]
    secret, key = created["secret"], created["apiKey"]
    assert secret.startswith("ucsk_") and secret.startswith(key["prefix"])
    assert (key["role"], key["lastUsedAt"], key["revokedAt"]) == ("SERVICE", None, None)
    stored = await ApiKey.get_pymongo_collection().find_one({})
    assert stored is not None and secret not in json.dumps(stored, default=str)
    for api in (one, two):
        other = await api.data('query { wallet(userId: "bob") { userId } }', as_=secret)
        assert other["wallet"]["userId"] == "bob"
    assert await one.error_code(GRANT, {"user": "bob"}, as_=secret) == "FORBIDDEN"
    listed = (await one.data(LIST_KEYS, as_=ADMIN))["apiKeys"]
    assert [(k["id"], k["revokedAt"]) for k in listed] == [(key["id"], None)]
    assert listed[0]["lastUsedAt"] is not None
    assert await one.error_code(CREATE_KEY, {"name": "x", "role": "ADMIN"}, as_=secret) == (
        "FORBIDDEN"
    )
    assert await one.error_code(CREATE_KEY, {"name": "x", "role": "USER"}, as_=ADMIN) == (
        "BAD_USER_INPUT"
    )

    revoked = (await one.data(REVOKE_KEY, {"id": key["id"]}, as_=ADMIN))["revokeApiKey"]
    assert revoked["revokedAt"] is not None
    answers: list[dict[str, Any]] = []

    async def refused() -> bool:
        answers.append(await two.call(WALLET, as_=secret))
        return bool(answers[-1].get("errors"))

    await until(refused, seconds=1, every=0.05, what="the other instance refuses the key")
    body = answers[-1]
    assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    assert "revoked" in body["errors"][0]["message"]
    assert await one.error_code(WALLET, as_="ucsk_made-up") == "UNAUTHENTICATED"
    again = (await one.data(REVOKE_KEY, {"id": key["id"]}, as_=ADMIN))["revokeApiKey"]
    assert again["revokedAt"] == revoked["revokedAt"]


async def test_a_revoked_keys_websockets_close_on_every_instance(
    http: aiohttp.ClientSession, start_server: StartServer
) -> None:
    one_url, two_url = await start_server(), await start_server()
    one = Api(http, f"{one_url}/graphql")
    created = (await one.data(CREATE_KEY, {"name": "worker", "role": "SERVICE"}, as_=ADMIN))[
        "createApiKey"
    ]
    secret, key_id = created["secret"], created["apiKey"]["id"]
    payload = {"authorization": f"Bearer {secret}"}
    sockets = [
        await TransportWsClient.connect(http, url.replace("http", "ws") + "/graphql", payload)
        for url in (one_url, one_url, two_url)
    ]
    for n, client in enumerate(sockets):
        await client.subscribe(str(n), 'subscription { balanceChanged(userId: "bob") { tokens } }')
    user = await TransportWsClient.connect(
        http,
        one_url.replace("http", "ws") + "/graphql",
        {"authorization": f"Bearer {token('bob')}"},
    )
    await one.data(REVOKE_KEY, {"id": key_id}, as_=ADMIN)
    for client in sockets:
        message = await client.ws.receive(timeout=CHECK_SECONDS * 3)
        assert message.type == aiohttp.WSMsgType.CLOSE, message
        assert (message.data, message.extra) == (4403, "the API key was revoked")
    await user.silence(0.5)  # a token's socket stays open
    await user.close()


async def test_the_first_admin_key_comes_from_the_command_line(
    http: aiohttp.ClientSession, start_server: StartServer, database_uri: str, database_name: str
) -> None:
    env = {
        **os.environ,
        "USERCREDITS_MONGODB_URI": database_uri,
        "USERCREDITS_DATABASE": database_name,
        "USERCREDITS_JWT_SECRET": SECRET,
    }
    code, out, err = await run_cli(
        "apikey", "create", "--name", "first", "--role", "admin", env=env
    )
    assert code == 0, err
    secret = out.strip()
    assert "shown this once" in err
    api = Api(http, f"{await start_server()}/graphql")
    listed = (await api.data(LIST_KEYS, as_=secret))["apiKeys"]
    assert len(listed) == 1 and secret.startswith(listed[0]["prefix"])


def test_a_bucket_refills_at_its_rate() -> None:
    now = [0.0]
    buckets = TokenBuckets(rate=2, burst=3, clock=lambda: now[0])
    assert [buckets.take("a") for _ in range(3)] == [0, 0, 0]
    assert buckets.take("a") == pytest.approx(0.5)
    assert buckets.take("b") == 0, "another caller has its own bucket"
    now[0] = 0.5
    assert buckets.take("a") == 0
    assert buckets.take("a") == pytest.approx(0.5)
    now[0] = 100
    assert [buckets.take("a") for _ in range(4)][-1] > 0, "a full bucket holds only the burst"
    assert TokenBuckets(rate=0, burst=1).take("a") == 0, "rate 0: no limit"


async def test_a_flood_is_limited_while_others_are_served(
    http: aiohttp.ClientSession, start_server: StartServer
) -> None:
    base = await start_server(rate_limit_per_second=1, rate_limit_burst=5)
    api = Api(http, f"{base}/graphql")
    flooder = token("flooder")

    async def ask(as_: str | None) -> tuple[int, dict[str, Any]]:
        headers = {"Authorization": f"Bearer {as_}"} if as_ else {}
        async with http.post(api.url, json={"query": WALLET}, headers=headers) as response:
            return response.status, await response.json()

    answers = [await ask(flooder) for _ in range(12)]
    assert [status for status, _ in answers[:5]] == [200] * 5
    limited = [body for status, body in answers if status == 429]
    assert len(limited) >= 6
    error = limited[0]["errors"][0]
    assert error["extensions"]["code"] == "RATE_LIMITED"
    assert error["extensions"]["retryAfterSeconds"] >= 1
    assert (await api.data(WALLET, as_=token("patient")))["wallet"]["userId"] == "patient"
    status, _ = await ask(None)  # anonymous callers count by address
    assert status == 200
    attempts = []
    for _ in range(8):
        try:
            ws = await http.ws_connect(f"{base}/graphql", protocols=["graphql-transport-ws"])
        except aiohttp.WSServerHandshakeError as exc:
            attempts.append(exc.status)
        else:
            attempts.append(101)
            await ws.close()
    assert 429 in attempts, "websocket connection attempts count too"
    async with http.get(f"{base}/metrics") as response:
        text = await response.text()
    assert sample(text, "usercredits_refusals_total", cause="rate_limited") >= 7


async def test_a_token_seen_before_is_refused_once_it_expires(
    http: aiohttp.ClientSession, start_server: StartServer, clock: FakeClock
) -> None:
    """Checked tokens are kept so that a client's every request does not verify its
    signature again; their expiry still holds, by the server's clock."""
    api = Api(http, f"{await start_server(clock=clock)}/graphql")
    brief = token("brief", at=clock.now(), ttl=timedelta(seconds=2))
    for _ in range(3):
        assert (await api.data(WALLET, as_=brief))["wallet"]["userId"] == "brief"
    clock.advance(seconds=1)
    assert (await api.data(WALLET, as_=brief))["wallet"]["userId"] == "brief"
    clock.advance(seconds=1)
    body = await api.call(WALLET, as_=brief)
    assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    assert body["errors"][0]["message"] == "the token was refused: Signature has expired"


async def test_token_dates_are_read_by_the_servers_clock(
    http: aiohttp.ClientSession, start_server: StartServer, provider: Provider, clock: FakeClock
) -> None:
    """HS256 and provider tokens alike, with PyJWT's messages and the provider's leeway of
    30 s; a token of the wall clock's time is not yet valid on a clock a year behind it."""
    api = Api(http, f"{await start_server(clock=clock, **oidc(provider))}/graphql")
    now, key = clock.now(), provider.keys[0]
    ahead = int(now.timestamp()) + 60
    answers = {
        "HS256": token("alice", at=now),
        "HS256 of the wall clock": token("alice"),
        "HS256 not before a minute on": jwt.encode(
            {"sub": "alice", "exp": ahead + 60, "nbf": ahead}, SECRET, algorithm="HS256"
        ),
        "HS256 expired a second ago": token("alice", at=now, ttl=timedelta(seconds=-1)),
        "provider": provider.token(key, at=now),
        "provider, issued 20 s on": provider.token(key, at=now + timedelta(seconds=20)),
        "provider, issued a minute on": provider.token(key, at=now + timedelta(minutes=1)),
        "provider, not before a minute on": provider.token(key, at=now, nbf=ahead),
        "provider, expired a minute ago": provider.token(key, at=now, ttl=-60),
    }
    expected = {
        "HS256": None,
        "HS256 of the wall clock": "the token was refused: The token is not yet valid (iat)",
        "HS256 not before a minute on": "the token was refused: The token is not yet valid (nbf)",
        "HS256 expired a second ago": "the token was refused: Signature has expired",
        "provider": None,
        "provider, issued 20 s on": None,
        "provider, issued a minute on": "the token was refused: The token is not yet valid (iat)",
        "provider, not before a minute on": (
            "the token was refused: The token is not yet valid (nbf)"
        ),
        "provider, expired a minute ago": "the token was refused: Signature has expired",
    }
    for name, credential in answers.items():
        body = await api.call(WALLET, as_=credential)
        refusal = body["errors"][0]["message"] if body.get("errors") else None
        assert refusal == expected[name], name


async def test_a_websockets_token_lapses_by_the_servers_clock(
    http: aiohttp.ClientSession, start_server: StartServer, clock: FakeClock
) -> None:
    """Moving the clock past a socket's token refuses its next operation (the socket's
    timer closes it by real time: a moved clock does not bring that forward)."""
    base = await start_server(clock=clock)
    brief = token("alice", at=clock.now(), ttl=timedelta(minutes=1))
    client = await TransportWsClient.connect(
        http, f"{base}/graphql", {"authorization": f"Bearer {brief}"}
    )
    await client.subscribe("1", WALLET)
    assert (await client.receive())["payload"] == {"data": {"wallet": {"userId": "alice"}}}
    await client.receive()  # complete
    expiry = clock.advance(minutes=1)
    await client.subscribe("2", WALLET)
    [error] = (await client.receive())["payload"]["errors"]
    assert error["extensions"]["code"] == "UNAUTHENTICATED"
    assert error["message"] == f"the token expired at {expiry.isoformat()}"
    await client.close()


async def test_operations_over_a_websocket_take_from_the_same_bucket(
    http: aiohttp.ClientSession, start_server: StartServer
) -> None:
    base = await start_server(rate_limit_per_second=1, rate_limit_burst=3)
    payload = {"authorization": f"Bearer {token('churner')}"}
    client = await TransportWsClient.connect(http, f"{base}/graphql", payload)
    subscription = "subscription { balanceChanged { tokens } }"
    for n in range(6):
        await client.subscribe(str(n), subscription)
    refused = []
    while True:
        try:
            message = await client.receive(wait=1)
        except TimeoutError:
            break
        if message["type"] == "next" and message["payload"].get("errors"):
            refused.append(message)
    assert [m["id"] for m in refused] == ["3", "4", "5"], "the burst of 3 is spent"
    error = refused[0]["payload"]["errors"][0]
    assert error["extensions"]["code"] == "RATE_LIMITED"
    assert error["extensions"]["retryAfterSeconds"] >= 1
    others = {"authorization": f"Bearer {token('patient')}"}
    patient = await TransportWsClient.connect(http, f"{base}/graphql", others)
    await patient.subscribe("p", subscription)
    await patient.silence(0.5)  # subscribed: no error
    await client.close()
    await patient.close()


def test_the_caller_behind_trusted_proxies_is_the_nearest_untrusted_hop() -> None:
    proxies = [ip_network("10.0.0.0/8"), ip_network("127.0.0.1/32")]
    assert caller_address("127.0.0.1", "203.0.113.5", proxies) == "203.0.113.5"
    # A caller's own X-Forwarded-For entries sit left of what the proxies appended.
    assert caller_address("127.0.0.1", "6.6.6.6, 203.0.113.5, 10.1.2.3", proxies) == ("203.0.113.5")
    assert caller_address("198.51.100.7", "203.0.113.5", proxies) == "198.51.100.7"
    assert caller_address("127.0.0.1", "203.0.113.5", []) == "127.0.0.1"
    assert caller_address("127.0.0.1", None, proxies) == "127.0.0.1"
    assert caller_address("::ffff:10.0.0.9", "203.0.113.5", proxies) == "203.0.113.5"


async def test_behind_a_trusted_proxy_each_caller_has_its_own_bucket(
    http: aiohttp.ClientSession, start_server: StartServer
) -> None:
    offers = {"query": "{ offers { id } }"}

    async def statuses(base: str, forwarded_for: str, count: int) -> list[int]:
        answers = []
        for _ in range(count):
            headers = {"X-Forwarded-For": forwarded_for}
            async with http.post(f"{base}/graphql", json=offers, headers=headers) as response:
                answers.append(response.status)
        return answers

    behind = await start_server(
        rate_limit_per_second=0.5, rate_limit_burst=2, trusted_proxies=["127.0.0.1/32"]
    )
    assert await statuses(behind, "203.0.113.5", 3) == [200, 200, 429]
    assert await statuses(behind, "203.0.113.6", 2) == [200, 200]
    # A caller's own header line does not hide it when the proxy adds a line of its own.
    async with http.post(
        f"{behind}/graphql",
        json=offers,
        headers=[("X-Forwarded-For", "198.51.100.1"), ("X-Forwarded-For", "203.0.113.5")],
    ) as response:
        assert response.status == 429
    exposed = await start_server(rate_limit_per_second=0.5, rate_limit_burst=2)
    # Without a trusted proxy the header is the caller's word, and changes nothing.
    assert await statuses(exposed, "203.0.113.5", 2) == [200, 200]
    assert await statuses(exposed, "203.0.113.6", 1) == [429]
