"""Identity: API keys, IdP bearer tokens, dev tokens and scoped tokens, and every refusal."""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
import json
import os
import stat
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, select
from sqlalchemy.exc import OperationalError

from gateway.db import create_database_engine
from gateway.errors import (
    AccessDenied,
    AuthenticationFailed,
    ConfigurationError,
    NotFound,
    ValidationFailed,
)
from gateway.identity import (
    MAX_SCOPED_TTL,
    ApiKeyStore,
    Authenticator,
    Principal,
    issue_dev_token,
)
from gateway.policy import PolicySet, load_policy_set
from gateway.secrets import SecretStore
from gateway.settings import Settings

IDP = "https://idp.bank.test/realms/bank"
PARTNER = "https://login.partner.test"
AUDIENCE = "data-governance-gateway"
PG_URL = "postgresql+psycopg://root@127.0.0.1:5432/test?connect_timeout=3"
DROP = object()  # a claim value meaning "leave this claim out"

ORG = """\
organisation: Test Bank
clearances: [public, internal, confidential, restricted]
purposes:
  fraud-detection: {statement: "Detect and prevent payment fraud on accounts."}
  marketing: {statement: "Offers to customers who consented to marketing."}
  research: {statement: "Aggregate research under the research charter."}
  research.clinical: {statement: "Clinical research under ethics protocol X."}
roles:
  fraud-analyst: {purposes: [fraud-detection], actions: [read_features, dp_query], clearance: confidential}
  fraud-pipeline: {purposes: [fraud-detection], actions: [read_features], clearance: confidential}
  researcher: {purposes: [research], actions: [dp_query, synthesize], clearance: internal}
  auditor: {purposes: ["*"], actions: [audit_read], clearance: internal}
  data-steward: {purposes: ["*"], actions: [admin, ingest, read_features], clearance: restricted}
principals:
  svc-fraud-train: {roles: [fraud-pipeline, researcher], description: "Kubeflow training pipeline"}
  alice: {roles: [data-steward]}
  carol: {roles: [researcher]}
identity_providers:
  - issuer: https://idp.bank.test/realms/bank
    audience: data-governance-gateway
    jwks: "@RSA_JWKS@"
    algorithms: [RS256, PS256]
    roles_claim: groups
    role_map:
      fraud-team: [fraud-analyst]
      data-office: [data-steward]
      research-team: [researcher]
  - issuer: https://login.partner.test
    audience: gateway
    jwks: "@EC_JWKS@"
    algorithms: [ES256]
    subject_claim: email
    roles_claim: realm_access.roles
    role_map:
      analysts: [fraud-analyst]
"""

DATASET = """\
dataset: people
source: {format: csv, path: people}
entity: person_id
purposes: [fraud-detection, research]
columns:
  person_id: {type: string, classification: internal, protect: {tokenize: {key: k1}}}
  country: {type: string, classification: internal, protect: keep}
  score: {type: double, classification: internal, protect: keep}
features:
  profile: {columns: [country], approved_for: [fraud-detection]}
  scores: {columns: [score], approved_for: [fraud-detection]}
"""

# Every reason `authenticate` may give; a message outside this set would be a leak.
REASONS = {
    "missing credentials", "malformed authorization header", "unsupported authorization scheme",
    "malformed token", "malformed api key", "invalid api key", "revoked key", "expired key",
    "unknown issuer", "unsupported algorithm", "unknown key", "key does not match algorithm",
    "invalid signature", "expired token", "token not yet valid", "invalid audience",
    "invalid issuer", "unusable key", "invalid token", "no roles", "malformed roles claim",
    "missing subject", "invalid subject", "unknown principal", "dev tokens are disabled in production",
    "identity provider keys unavailable", "missing claim exp", "missing claim aud",
    "missing claim iss", "missing claim iat", "missing claim sub", "missing claim jti",
}


# -- keys, policies and settings -------------------------------------------------------


def now() -> int:
    return int(time.time())


def jwk(public: Any, kid: str, **extra: Any) -> dict[str, Any]:
    """The public JWK of a cryptography key, with a kid."""
    algorithm = jwt.algorithms.RSAAlgorithm if isinstance(public, rsa.RSAPublicKey) else jwt.algorithms.ECAlgorithm
    return {**algorithm.to_jwk(public, as_dict=True), "kid": kid, "use": "sig", **extra}


def write_jwks(path: Path, *keys: dict[str, Any]) -> Path:
    """Write a JWKS file atomically."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"keys": list(keys)}), encoding="utf-8")
    tmp.replace(path)
    return path


def write_policies(folder: Path, rsa_jwks: str, ec_jwks: str, org: str = ORG) -> PolicySet:
    """An organisation file (with the JWKS locations) and one dataset file, loaded."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "org.yaml").write_text(org.replace("@RSA_JWKS@", rsa_jwks).replace("@EC_JWKS@", ec_jwks))
    (folder / "people.yaml").write_text(DATASET)
    return load_policy_set([folder])


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def forge(header: dict[str, Any], claims: dict[str, Any], sign: Callable[[bytes], bytes] | None = None) -> str:
    """A token built by hand: any header, any claims, any (or no) signature."""
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"
    signature = sign(signing_input.encode()) if sign else b""
    return f"{signing_input}.{b64(signature)}"


def hs256(secret: bytes) -> Callable[[bytes], bytes]:
    return lambda message: hmac.new(secret, message, hashlib.sha256).digest()


def change(claims: dict[str, Any], **changes: Any) -> dict[str, Any]:
    out = {**claims, **changes}
    return {k: v for k, v in out.items() if v is not DROP}


@dataclass
class World:
    """Keys, JWKS files, policies and settings shared by the module's tests."""

    root: Path
    rsa_key: rsa.RSAPrivateKey
    ec_key: ec.EllipticCurvePrivateKey
    ec384: ec.EllipticCurvePrivateKey
    attacker: rsa.RSAPrivateKey
    rsa_jwks: Path
    ec_jwks: Path
    policies: PolicySet
    settings: Settings
    store: ApiKeyStore

    def idp_claims(self, **changes: Any) -> dict[str, Any]:
        base = {"iss": IDP, "aud": AUDIENCE, "sub": "u-123", "groups": ["fraud-team"],
                "iat": now(), "exp": now() + 300, "jti": "tok-1"}
        return change(base, **changes)

    def rsa_token(self, alg: str = "RS256", kid: str | None = "rsa-1", key: Any = None, **changes: Any) -> str:
        headers = {"kid": kid} if kid is not None else {}
        return jwt.encode(self.idp_claims(**changes), key or self.rsa_key, algorithm=alg, headers=headers)

    def ec_token(self, kid: str = "ec-1", **changes: Any) -> str:
        claims = change({"iss": PARTNER, "aud": "gateway", "email": "eve@partner.test", "sub": "p-9",
                         "realm_access": {"roles": ["analysts"]}, "exp": now() + 300}, **changes)
        return jwt.encode(claims, self.ec_key, algorithm="ES256", headers={"kid": kid})

    @property
    def rsa_public_pem(self) -> bytes:
        return self.rsa_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def secret(self, reference: str) -> bytes:
        return SecretStore(self.settings).key(reference).secret


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    root = tmp_path_factory.mktemp("identity")
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ec_key = ec.generate_private_key(ec.SECP256R1())
    ec384 = ec.generate_private_key(ec.SECP384R1())
    attacker = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    rsa_jwks = write_jwks(
        root / "idp-jwks.json",
        jwk(rsa_key.public_key(), "rsa-1"),
        jwk(ec_key.public_key(), "mixed-ec"),  # an EC key in the RSA provider's set
        jwk(rsa_key.public_key(), "enc-1", use="enc"),  # an encryption key: never used to verify
    )
    ec_jwks = write_jwks(root / "partner-jwks.json", jwk(ec_key.public_key(), "ec-1"), jwk(ec384.public_key(), "ec-384"))
    policies = write_policies(root / "policies", str(rsa_jwks), str(ec_jwks))
    test_settings = Settings(environment="test", home=root / "home", secrets_dir=root / "secrets")
    engine = create_database_engine(f"sqlite:///{root / 'gateway.db'}")
    yield World(root, rsa_key, ec_key, ec384, attacker, rsa_jwks, ec_jwks, policies, test_settings, ApiKeyStore(engine))
    engine.dispose()


@pytest.fixture
def auth(world: World) -> Authenticator:
    return Authenticator(world.policies, world.settings, world.store)


def prod_settings(root: Path) -> Settings:
    return Settings(environment="prod", home=root, secrets_dir=root / "secrets",
                    database_url=f"sqlite:///{root / 'gw.db'}", lake_root=root / "lake")


def refused(auth: Authenticator, header: str | None) -> str:
    """The reason `auth` refuses `header` with."""
    with pytest.raises(AuthenticationFailed) as caught:
        auth.authenticate(header)
    assert caught.value.http_status == 401
    return caught.value.message


# -- the Authorization header ----------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        # no header at all
        (None, "missing credentials"),
        # an empty header
        ("", "missing credentials"),
        # only blanks
        ("   ", "missing credentials"),
        # a scheme without a credential
        ("Bearer", "malformed authorization header"),
        # two credentials
        ("Bearer a b", "malformed authorization header"),
        # a header longer than 8 KiB
        ("Bearer " + "a" * 9000, "malformed authorization header"),
        # HTTP basic authentication is not offered
        ("Basic dXNlcjpwYXNz", "unsupported authorization scheme"),
        # something shaped like an API key, but not one
        ("Bearer gw_short", "malformed api key"),
        # the ApiKey scheme with something else
        ("ApiKey not-a-key", "malformed api key"),
        # three dots of nothing
        ("Bearer abc.def.ghi", "malformed token"),
        # not a JWT at all
        ("Bearer not-a-jwt", "malformed token"),
    ],
)
def test_when_header_is_malformed_then_refused_with_reason(auth: Authenticator, header: str | None, reason: str) -> None:
    assert refused(auth, header) == reason


@settings(max_examples=200, deadline=None)
@given(st.one_of(st.text(max_size=200), st.text(alphabet="abcXYZ019-_.=", max_size=300).map(lambda t: "Bearer " + t)))
def test_when_header_is_arbitrary_then_only_a_known_reason_is_given(world: World, header: str) -> None:
    auth = Authenticator(world.policies, world.settings, world.store)
    with pytest.raises(AuthenticationFailed) as caught:
        auth.authenticate(header)
    assert caught.value.message in REASONS  # fixed reasons only: the credential is never echoed
    assert caught.value.__cause__ is None


# -- identity-provider tokens: allowed -------------------------------------------------


@dataclass(frozen=True)
class Good:
    make: Callable[[World], str]
    subject: str
    roles: tuple[str, ...]
    clearance: str
    issuer: str = IDP


GOOD = {
    # one group, mapped to one role
    "one-group": Good(lambda w: w.rsa_token(), "u-123", ("fraud-analyst",), "confidential"),
    # several groups: every mapped role, and the highest clearance among them
    "several-groups": Good(lambda w: w.rsa_token(groups=["research-team", "data-office"]), "u-123", ("data-steward", "researcher"), "restricted"),
    # the roles claim as a space-separated string
    "space-separated": Good(lambda w: w.rsa_token(groups="fraud-team research-team"), "u-123", ("fraud-analyst", "researcher"), "confidential"),
    # groups the role_map does not know are ignored
    "unknown-group-ignored": Good(lambda w: w.rsa_token(groups=["kitchen", "fraud-team"]), "u-123", ("fraud-analyst",), "confidential"),
    # expired 10 s ago: inside the 30 s leeway
    "within-leeway": Good(lambda w: w.rsa_token(exp=now() - 10), "u-123", ("fraud-analyst",), "confidential"),
    # an audience list that includes ours
    "audience-list": Good(lambda w: w.rsa_token(aud=["account", AUDIENCE]), "u-123", ("fraud-analyst",), "confidential"),
    # RSA-PSS, also configured for the provider
    "ps256": Good(lambda w: w.rsa_token(alg="PS256"), "u-123", ("fraud-analyst",), "confidential"),
    # the EC provider: subject from `email`, roles from the nested `realm_access.roles`
    "ec-provider": Good(lambda w: w.ec_token(), "eve@partner.test", ("fraud-analyst",), "confidential", PARTNER),
}


@pytest.mark.parametrize("case", GOOD.values(), ids=GOOD.keys())
def test_when_idp_token_is_valid_then_principal_has_mapped_roles(world: World, auth: Authenticator, case: Good) -> None:
    token = case.make(world)
    principal = auth.authenticate(f"Bearer {token}")
    claims = jwt.decode(token, options={"verify_signature": False})
    assert principal.subject == case.subject
    assert principal.roles == case.roles
    assert principal.clearance == case.clearance
    assert principal.auth_method == "jwt"
    assert principal.issuer == case.issuer
    assert principal.bound_purpose is None and principal.bound_features is None
    assert principal.expires_at == datetime.fromtimestamp(claims["exp"], UTC)
    expected_id = claims.get("jti") or "sha256:" + hashlib.sha256(token.encode()).hexdigest()[:32]
    assert principal.credential_id == expected_id


# -- identity-provider tokens: attacks -------------------------------------------------


ATTACKS: dict[str, tuple[Callable[[World], str], str]] = {
    # expired two minutes ago, well past the leeway
    "expired": (lambda w: w.rsa_token(exp=now() - 120), "expired token"),
    # not valid for another two minutes
    "not-yet-valid-nbf": (lambda w: w.rsa_token(nbf=now() + 120), "token not yet valid"),
    # issued in the future
    "issued-in-future": (lambda w: w.rsa_token(iat=now() + 120), "token not yet valid"),
    # an issuer no provider is configured for
    "wrong-issuer": (lambda w: w.rsa_token(iss="https://evil.test"), "unknown issuer"),
    # no issuer at all
    "no-issuer": (lambda w: w.rsa_token(iss=DROP), "unknown issuer"),
    # the right issuer, for another service
    "wrong-audience": (lambda w: w.rsa_token(aud="another-service"), "invalid audience"),
    # no audience
    "no-audience": (lambda w: w.rsa_token(aud=DROP), "missing claim aud"),
    # a token that never expires
    "no-expiry": (lambda w: w.rsa_token(exp=DROP), "missing claim exp"),
    # unsigned (alg none)
    "alg-none": (lambda w: forge({"alg": "none", "typ": "JWT", "kid": "rsa-1"}, w.idp_claims()), "unsupported algorithm"),
    # alg none spelt differently
    "alg-None": (lambda w: forge({"alg": "None", "kid": "rsa-1"}, w.idp_claims()), "unsupported algorithm"),
    # HS256 keyed with the provider's public RSA key as HMAC secret (HS/RS confusion)
    "hs-rs-confusion": (lambda w: forge({"alg": "HS256", "kid": "rsa-1"}, w.idp_claims(), hs256(w.rsa_public_pem)), "unsupported algorithm"),
    # an RSA algorithm the provider does not list
    "rs512-not-configured": (lambda w: w.rsa_token(alg="RS512"), "unsupported algorithm"),
    # an EC token sent to the RSA-only provider
    "es256-to-rsa-provider": (lambda w: jwt.encode(w.idp_claims(), w.ec_key, algorithm="ES256", headers={"kid": "mixed-ec"}), "unsupported algorithm"),
    # signed by someone else's key under our kid
    "bad-signature": (lambda w: w.rsa_token(key=w.attacker), "invalid signature"),
    # claims changed after signing
    "tampered": (lambda w: tamper(w.rsa_token(), groups=["data-office"]), "invalid signature"),
    # signature stripped
    "no-signature": (lambda w: w.rsa_token().rsplit(".", 1)[0] + ".", "invalid signature"),
    # a kid the JWKS does not hold
    "unknown-kid": (lambda w: w.rsa_token(kid="rotated-away"), "unknown key"),
    # no kid
    "no-kid": (lambda w: w.rsa_token(kid=None), "unknown key"),
    # a kid of a key marked for encryption
    "encryption-key": (lambda w: w.rsa_token(kid="enc-1"), "unknown key"),
    # RS256 naming the EC key of the same JWKS (key type must match the algorithm)
    "rsa-alg-ec-key": (lambda w: forge({"alg": "RS256", "kid": "mixed-ec"}, w.idp_claims(), lambda m: b"x" * 256), "key does not match algorithm"),
    # ES256 naming a P-384 key (curve must match the algorithm)
    "wrong-curve": (lambda w: forge({"alg": "ES256", "kid": "ec-384"}, change(w.idp_claims(), iss=PARTNER, aud="gateway"), lambda m: b"x" * 96), "key does not match algorithm"),
    # no roles claim
    "no-roles-claim": (lambda w: w.rsa_token(groups=DROP), "no roles"),
    # only groups the role_map does not know
    "unmapped-groups": (lambda w: w.rsa_token(groups=["kitchen-staff"]), "no roles"),
    # a roles claim of the wrong type
    "roles-claim-number": (lambda w: w.rsa_token(groups=42), "malformed roles claim"),
    # no subject
    "no-subject": (lambda w: w.rsa_token(sub=DROP), "missing subject"),
    # a subject with a line break (log injection)
    "subject-with-newline": (lambda w: w.rsa_token(sub="u-1\nadmin logged in"), "invalid subject"),
    # a subject that is not a string
    "subject-number": (lambda w: w.rsa_token(sub=7), "invalid subject"),
    # the EC provider's subject claim is `email`, absent here
    "no-email-subject": (lambda w: w.ec_token(email=DROP), "missing subject"),
    # a payload that is not a JSON object
    "payload-not-object": (lambda w: forge({"alg": "RS256", "kid": "rsa-1"}, ["not", "an", "object"]), "malformed token"),  # type: ignore[arg-type]
}


def tamper(token: str, **changes: Any) -> str:
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    return f"{header}.{b64(json.dumps(change(claims, **changes)).encode())}.{signature}"


@pytest.mark.parametrize(("make", "reason"), ATTACKS.values(), ids=ATTACKS.keys())
def test_when_idp_token_is_forged_or_invalid_then_refused(world: World, auth: Authenticator, make: Callable[[World], str], reason: str) -> None:
    token = make(world)
    message = refused(auth, f"Bearer {token}")
    assert message == reason
    assert token not in message


# -- API keys, on SQLite and PostgreSQL ------------------------------------------------


@dataclass
class Clock:
    at: datetime = field(default_factory=lambda: datetime.now(UTC))

    def __call__(self) -> datetime:
        return self.at


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    if request.param == "sqlite":
        engine = create_database_engine(f"sqlite:///{tmp_path / 'keys.db'}")
    else:
        engine = create_database_engine(PG_URL)
        try:
            with engine.connect():
                pass
        except OperationalError:
            engine.dispose()
            pytest.skip("PostgreSQL is not reachable on 127.0.0.1:5432")
    yield engine
    engine.dispose()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(engine: Engine, clock: Clock) -> Iterator[ApiKeyStore]:
    keys = ApiKeyStore(engine, table=f"api_keys_{uuid.uuid4().hex[:12]}", clock=clock)
    yield keys
    keys.table.drop(engine)


@pytest.fixture
def key_auth(world: World, store: ApiKeyStore) -> Authenticator:
    return Authenticator(world.policies, world.settings, store)


@pytest.mark.parametrize("scheme", ["Bearer", "ApiKey", "apikey"])  # both schemes, any case
def test_when_api_key_is_valid_then_principal_has_its_roles(world: World, store: ApiKeyStore, key_auth: Authenticator, clock: Clock, scheme: str) -> None:
    key_id, secret = store.create("svc-fraud-train", ["fraud-pipeline", "researcher"], timedelta(days=30), policies=world.policies)
    assert secret.startswith(f"gw_{key_id}_")
    principal = key_auth.authenticate(f"{scheme} {secret}")
    assert principal == Principal(
        subject="svc-fraud-train",
        roles=("fraud-pipeline", "researcher"),
        clearance="confidential",
        auth_method="api_key",
        credential_id=key_id,
        expires_at=clock.at + timedelta(days=30),
    )


def test_when_key_is_stored_then_only_a_hash_is_kept_and_listed_without_it(world: World, store: ApiKeyStore, engine: Engine) -> None:
    new = store.create("carol", ["researcher"], policies=world.policies)
    assert new.secret not in repr(new)
    with engine.connect() as conn:
        row = conn.execute(select(store.table)).mappings().one()
    random_part = new.secret.split("_")[2]
    assert len(random_part) == 64
    assert all(random_part not in str(value) for value in row.values())
    assert len(row["hash"]) == 64
    (info,) = store.list()
    assert not hasattr(info, "hash")
    assert (info.key_id, info.subject, info.roles, info.expires_at, info.revoked_at) == (new.key_id, "carol", ("researcher",), None, None)
    assert store.list(subject="alice") == []


def revoke(store: ApiKeyStore, key: str) -> str:
    store.revoke(key.split("_")[1])
    return key


def advance(clock: Clock, by: timedelta, key: str) -> str:
    clock.at += by
    return key


@pytest.mark.parametrize(
    ("spoil", "reason"),
    [
        # the right key id with another secret
        (lambda key, store, clock: "_".join([*key.split("_")[:2], "0" * 64]), "invalid api key"),
        # a key id the store never issued, with the right secret
        (lambda key, store, clock: "gw_0123456789abcdef_" + key.split("_")[2], "invalid api key"),
        # the secret cut short
        (lambda key, store, clock: key[:-1], "malformed api key"),
        # the key was revoked
        (lambda key, store, clock: revoke(store, key), "revoked key"),
        # the key's 1 h lifetime has passed
        (lambda key, store, clock: advance(clock, timedelta(hours=1, seconds=1), key), "expired key"),
    ],
)
def test_when_api_key_is_wrong_revoked_or_expired_then_refused(world: World, store: ApiKeyStore, key_auth: Authenticator, clock: Clock, spoil: Any, reason: str) -> None:
    _, secret = store.create("carol", ["researcher"], timedelta(hours=1), policies=world.policies)
    presented = spoil(secret, store, clock)
    assert refused(key_auth, f"Bearer {presented}") == reason


@pytest.mark.parametrize(
    ("subject", "roles", "expires_in", "message"),
    [
        # a subject the policy does not declare
        ("mallory", ["researcher"], None, "'mallory' is not a principal of the organisation policy"),
        # a near miss gets a hint
        ("carl", ["researcher"], None, "'carl' is not a principal of the organisation policy (did you mean 'carol'?)"),
        # a role the policy does not define
        ("carol", ["reseacher"], None, "unknown role 'reseacher' (did you mean 'researcher'?)"),
        # a role the principal does not hold
        ("carol", ["data-steward"], None, "principal 'carol' does not hold role 'data-steward'"),
        # no roles
        ("carol", [], None, "an API key needs at least one role"),
        # an expiry in the past
        ("carol", ["researcher"], timedelta(seconds=-1), "expires_in must be positive"),
    ],
)
def test_when_key_request_is_invalid_then_creation_is_refused(world: World, store: ApiKeyStore, subject: str, roles: list[str], expires_in: timedelta | None, message: str) -> None:
    with pytest.raises(ValidationFailed) as caught:
        store.create(subject, roles, expires_in, policies=world.policies)
    assert caught.value.message == message
    assert store.list() == []


def test_when_key_is_revoked_twice_then_first_revocation_time_is_kept(world: World, store: ApiKeyStore, clock: Clock) -> None:
    key_id, _ = store.create("carol", ["researcher"], policies=world.policies)
    first = store.revoke(key_id).revoked_at
    clock.at += timedelta(minutes=5)
    assert store.revoke(key_id).revoked_at == first == clock.at - timedelta(minutes=5)
    with pytest.raises(NotFound):
        store.revoke("0000000000000000")


@pytest.mark.parametrize(
    ("old", "new", "reason"),
    [
        # the principal no longer holds the key's role
        ("  carol: {roles: [researcher]}\n", "  carol: {roles: [data-steward]}\n", "no roles"),
        # the principal was removed from the policy
        ("  carol: {roles: [researcher]}\n", "", "unknown principal"),
    ],
)
def test_when_policy_reload_removes_a_keys_role_then_key_stops_working(world: World, store: ApiKeyStore, key_auth: Authenticator, tmp_path: Path, old: str, new: str, reason: str) -> None:
    _, secret = store.create("carol", ["researcher"], policies=world.policies)
    assert key_auth.authenticate(f"Bearer {secret}").roles == ("researcher",)
    assert old in ORG
    changed = write_policies(tmp_path / "p", str(world.rsa_jwks), str(world.ec_jwks), ORG.replace(old, new))
    key_auth.reload(changed)
    assert refused(key_auth, f"Bearer {secret}") == reason


def test_when_policy_drops_one_of_two_roles_then_key_keeps_the_other(world: World, store: ApiKeyStore, key_auth: Authenticator, tmp_path: Path) -> None:
    _, secret = store.create("svc-fraud-train", ["fraud-pipeline", "researcher"], policies=world.policies)
    org = ORG.replace("{roles: [fraud-pipeline, researcher], ", "{roles: [researcher], ")
    fresh = key_auth.with_policies(write_policies(tmp_path / "p", str(world.rsa_jwks), str(world.ec_jwks), org))
    principal = fresh.authenticate(f"Bearer {secret}")
    assert (principal.roles, principal.clearance) == (("researcher",), "internal")
    assert key_auth.authenticate(f"Bearer {secret}").roles == ("fraud-pipeline", "researcher")  # the original is unchanged


# -- dev tokens ------------------------------------------------------------------------


def test_when_dev_token_is_issued_in_test_then_it_authenticates_with_its_binding(world: World, auth: Authenticator) -> None:
    token = issue_dev_token(world.settings, "dev-user", ["researcher", "no-such-role"], timedelta(minutes=5), purpose="research", features=["scores"])
    principal = auth.authenticate(f"Bearer {token}")
    assert (principal.subject, principal.roles, principal.clearance) == ("dev-user", ("researcher",), "internal")
    assert (principal.auth_method, principal.issuer) == ("dev_token", "gateway-dev")
    assert (principal.bound_purpose, principal.bound_features) == ("research", ("scores",))
    assert principal.credential_id == jwt.decode(token, options={"verify_signature": False})["jti"]
    key_file = world.settings.secrets / "dev-token-signing-key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600


def test_when_dev_token_names_only_unknown_roles_then_no_roles(world: World, auth: Authenticator) -> None:
    token = issue_dev_token(world.settings, "dev-user", ["no-such-role"], timedelta(minutes=5))
    assert refused(auth, f"Bearer {token}") == "no roles"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        # a role the policy does not define, when the policy is given
        ({"roles": ["reseacher"]}, "unknown role 'reseacher' (did you mean 'researcher'?)"),
        # a purpose the policy does not declare
        ({"purpose": "marketting"}, "unknown purpose 'marketting' (did you mean 'marketing'?)"),
        # no time to live
        ({"ttl": timedelta(0)}, "ttl must be positive"),
        # a subject with a space
        ({"subject": "bad subject"}, "a dev token subject is letters, digits and _.@- (up to 200)"),
    ],
)
def test_when_dev_token_request_is_invalid_then_refused(world: World, kwargs: dict[str, Any], message: str) -> None:
    args: dict[str, Any] = {"subject": "dev-user", "roles": ["researcher"], "ttl": timedelta(minutes=5), **kwargs}
    with pytest.raises(ValidationFailed) as caught:
        issue_dev_token(world.settings, policies=world.policies, **args)
    assert caught.value.message == message


def test_when_production_then_dev_tokens_are_neither_issued_nor_accepted(world: World, tmp_path: Path) -> None:
    prod = prod_settings(tmp_path)
    with pytest.raises(ConfigurationError, match="dev tokens are disabled in production"):
        issue_dev_token(prod, "dev-user", ["researcher"], timedelta(minutes=5))
    token = issue_dev_token(world.settings, "dev-user", ["researcher"], timedelta(minutes=5))
    prod_auth = Authenticator(world.policies, prod, world.store)
    assert refused(prod_auth, f"Bearer {token}") == "dev tokens are disabled in production"
    assert not (prod.secrets / "dev-token-signing-key").exists()


# -- scoped tokens ---------------------------------------------------------------------


def test_when_api_key_is_exchanged_then_scoped_token_is_bound_and_narrowed(world: World, auth: Authenticator) -> None:
    key_id, secret = world.store.create("svc-fraud-train", ["fraud-pipeline", "researcher"], policies=world.policies)
    service = auth.authenticate(f"Bearer {secret}")
    token = auth.issue_scoped_token(service, "fraud-detection", ["profile"], timedelta(minutes=10))
    scoped = auth.authenticate(f"Bearer {token}")
    assert (scoped.subject, scoped.roles, scoped.clearance) == ("svc-fraud-train", ("fraud-pipeline",), "confidential")
    assert (scoped.auth_method, scoped.issuer, scoped.exchanged_from) == ("scoped_token", None, f"api_key:{key_id}")
    assert (scoped.bound_purpose, scoped.bound_features) == ("fraud-detection", ("profile",))
    assert scoped.expires_at is not None
    assert scoped.expires_at <= datetime.now(UTC) + timedelta(minutes=10)
    research = auth.authenticate(f"Bearer {auth.issue_scoped_token(service, 'research', None, timedelta(minutes=10))}")
    assert (research.roles, research.clearance, research.bound_features) == (("researcher",), "internal", None)


def test_when_source_key_is_revoked_then_scoped_token_stops_working(world: World, auth: Authenticator) -> None:
    key_id, secret = world.store.create("carol", ["researcher"], policies=world.policies)
    token = auth.issue_scoped_token(auth.authenticate(f"Bearer {secret}"), "research", None, timedelta(minutes=10))
    assert auth.authenticate(f"Bearer {token}").bound_purpose == "research"
    world.store.revoke(key_id)
    assert refused(auth, f"Bearer {token}") == "revoked key"


def test_when_idp_principal_is_exchanged_then_scoped_token_never_outlives_it(world: World, auth: Authenticator) -> None:
    idp = auth.authenticate(f"Bearer {world.rsa_token(groups=['fraud-team', 'research-team'], exp=now() + 60)}")
    scoped = auth.authenticate(f"Bearer {auth.issue_scoped_token(idp, 'research.clinical', None, timedelta(hours=1))}")
    assert scoped.expires_at == idp.expires_at
    assert (scoped.subject, scoped.issuer, scoped.roles) == ("u-123", IDP, ("researcher",))
    assert scoped.exchanged_from == "jwt:tok-1"


@pytest.mark.parametrize(
    ("purpose", "features", "ttl", "error", "message"),
    [
        # a purpose the policy does not declare
        ("fraud", None, timedelta(minutes=5), ValidationFailed, "unknown purpose 'fraud'"),
        # a purpose none of carol's roles may pursue
        ("fraud-detection", None, timedelta(minutes=5), AccessDenied, "no role of 'carol' may pursue purpose 'fraud-detection'"),
        # longer than the maximum lifetime
        ("research", None, MAX_SCOPED_TTL + timedelta(seconds=1), ValidationFailed, "ttl must be positive and at most 12:00:00"),
        # no lifetime
        ("research", None, timedelta(0), ValidationFailed, "ttl must be positive and at most 12:00:00"),
        # a feature view no dataset declares
        ("research", ["profil"], timedelta(minutes=5), ValidationFailed, "unknown feature view 'profil' (did you mean 'profile'?)"),
        # an empty feature list (None means unrestricted)
        ("research", [], timedelta(minutes=5), ValidationFailed, "features, when given, name at least one feature view"),
    ],
)
def test_when_exchange_request_is_invalid_then_refused(world: World, auth: Authenticator, purpose: str, features: list[str] | None, ttl: timedelta, error: type[Exception], message: str) -> None:
    _, secret = world.store.create("carol", ["researcher"], policies=world.policies)
    carol = auth.authenticate(f"Bearer {secret}")
    with pytest.raises(error) as caught:
        auth.issue_scoped_token(carol, purpose, features, ttl)
    assert str(caught.value).startswith(message)


@pytest.mark.parametrize(
    ("purpose", "features", "outcome"),
    [
        # the same purpose and a subset of the features: allowed
        ("research", ["scores"], ("research", ("scores",))),
        # a sub-purpose: allowed, features inherited
        ("research.clinical", None, ("research.clinical", ("profile", "scores"))),
        # a wider purpose than the binding: refused
        ("fraud-detection", None, "the credential is bound to purpose 'research'"),
        # more features than the binding: refused
        ("research", ["profile", "scores", "other"], "unknown feature view 'other'"),
    ],
)
def test_when_scoped_token_is_exchanged_again_then_it_can_only_narrow(world: World, auth: Authenticator, purpose: str, features: list[str] | None, outcome: Any) -> None:
    _, secret = world.store.create("alice", ["data-steward"], policies=world.policies)
    alice = auth.authenticate(f"Bearer {secret}")
    bound = auth.authenticate(f"Bearer {auth.issue_scoped_token(alice, 'research', ['profile', 'scores'], timedelta(minutes=5))}")
    if isinstance(outcome, str):
        with pytest.raises((AccessDenied, ValidationFailed), match=outcome):
            auth.issue_scoped_token(bound, purpose, features, timedelta(minutes=5))
        return
    again = auth.authenticate(f"Bearer {auth.issue_scoped_token(bound, purpose, features, timedelta(minutes=5))}")
    assert (again.bound_purpose, again.bound_features) == outcome
    assert again.exchanged_from == bound.exchanged_from  # the chain points at the original key


def test_when_bound_features_would_widen_then_refused(world: World, auth: Authenticator) -> None:
    _, secret = world.store.create("alice", ["data-steward"], policies=world.policies)
    alice = auth.authenticate(f"Bearer {secret}")
    bound = auth.authenticate(f"Bearer {auth.issue_scoped_token(alice, 'fraud-detection', ['profile'], timedelta(minutes=5))}")
    with pytest.raises(AccessDenied, match="bound to fewer features"):
        auth.issue_scoped_token(bound, "fraud-detection", ["profile", "scores"], timedelta(minutes=5))


def scoped_claims(**changes: Any) -> dict[str, Any]:
    base = {"iss": "gateway", "aud": "gateway-scoped", "sub": "carol", "roles": ["researcher"],
            "purpose": "research", "src": "jwt:x", "iat": now(), "nbf": now(), "exp": now() + 300, "jti": "s-1"}
    return change(base, **changes)


CONFUSION: dict[str, tuple[Callable[[World], str], str]] = {
    # a scoped-token body signed with the gateway key but claiming the IdP as issuer
    "hs-token-as-idp": (lambda w: jwt.encode(scoped_claims(iss=IDP, aud=AUDIENCE, groups=["data-office"]), w.secret("token-signing-key"), algorithm="HS256", headers={"kid": "rsa-1"}), "unsupported algorithm"),
    # an IdP-signed RS256 token claiming to be a scoped token
    "idp-token-as-scoped": (lambda w: jwt.encode(scoped_claims(), w.rsa_key, algorithm="RS256", headers={"kid": "rsa-1"}), "unsupported algorithm"),
    # HS256 keyed with the IdP's public PEM, claiming to be a scoped token
    "public-pem-as-scoped-key": (lambda w: forge({"alg": "HS256"}, scoped_claims(), hs256(w.rsa_public_pem)), "invalid signature"),
    # a scoped token signed with the dev key
    "dev-key-for-scoped": (lambda w: jwt.encode(scoped_claims(), w.secret("dev-token-signing-key"), algorithm="HS256"), "invalid signature"),
    # a dev token signed with the scoped key
    "scoped-key-for-dev": (lambda w: jwt.encode(scoped_claims(iss="gateway-dev", aud="gateway-dev"), w.secret("token-signing-key"), algorithm="HS256"), "invalid signature"),
    # a scoped token addressed to the dev audience
    "scoped-with-dev-audience": (lambda w: jwt.encode(scoped_claims(aud="gateway-dev"), w.secret("token-signing-key"), algorithm="HS256"), "invalid audience"),
    # an unsigned scoped token
    "scoped-alg-none": (lambda w: forge({"alg": "none"}, scoped_claims()), "unsupported algorithm"),
    # a scoped token whose purpose was changed after signing
    "scoped-tampered": (lambda w: tamper(jwt.encode(scoped_claims(), w.secret("token-signing-key"), algorithm="HS256"), purpose="marketing"), "invalid signature"),
    # a scoped token past its expiry
    "scoped-expired": (lambda w: jwt.encode(scoped_claims(exp=now() - 120), w.secret("token-signing-key"), algorithm="HS256"), "expired token"),
    # a scoped token without a token id
    "scoped-no-jti": (lambda w: jwt.encode(scoped_claims(jti=DROP), w.secret("token-signing-key"), algorithm="HS256"), "missing claim jti"),
}


@pytest.mark.parametrize(("make", "reason"), CONFUSION.values(), ids=CONFUSION.keys())
def test_when_token_crosses_verifiers_then_refused(world: World, auth: Authenticator, make: Callable[[World], str], reason: str) -> None:
    assert refused(auth, f"Bearer {make(world)}") == reason


def test_when_production_then_scoped_tokens_need_a_provisioned_key(world: World, tmp_path: Path) -> None:
    prod = prod_settings(tmp_path)
    prod_auth = Authenticator(world.policies, prod, world.store)
    _, secret = world.store.create("carol", ["researcher"], policies=world.policies)
    carol = prod_auth.authenticate(f"Bearer {secret}")
    with pytest.raises(ConfigurationError, match="production never generates keys"):
        prod_auth.issue_scoped_token(carol, "research", None, timedelta(minutes=5))
    prod.secrets.mkdir(parents=True)
    (prod.secrets / "token-signing-key").write_text(os.urandom(32).hex())
    token = prod_auth.issue_scoped_token(carol, "research", None, timedelta(minutes=5))
    assert prod_auth.authenticate(f"Bearer {token}").bound_purpose == "research"


# -- policy reloads and JWKS sources ---------------------------------------------------


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        # an identity provider posing as the gateway's scoped-token issuer
        (("issuer: https://login.partner.test", "issuer: gateway"), "issuer 'gateway' is reserved"),
        # an identity provider posing as the dev-token issuer
        (("issuer: https://login.partner.test", "issuer: gateway-dev"), "issuer 'gateway-dev' is reserved"),
        # the same issuer twice
        (("issuer: https://login.partner.test", f"issuer: {IDP}"), "is configured twice"),
        # keys over plain http
        (('jwks: "@EC_JWKS@"', "jwks: http://keys.partner.test/jwks"), "must be an https URL or a file path"),
    ],
)
def test_when_reloaded_policy_is_unsafe_then_old_policy_stays(world: World, auth: Authenticator, tmp_path: Path, edit: tuple[str, str], message: str) -> None:
    assert edit[0] in ORG
    bad = write_policies(tmp_path / "p", str(world.rsa_jwks), str(world.ec_jwks), ORG.replace(*edit))
    before = auth.policies
    with pytest.raises(ConfigurationError, match=message):
        auth.reload(bad)
    assert auth.policies is before
    assert auth.authenticate(f"Bearer {world.rsa_token()}").roles == ("fraud-analyst",)


def test_when_jwks_file_is_replaced_then_new_keys_apply(world: World, tmp_path: Path) -> None:
    path = write_jwks(tmp_path / "jwks.json", jwk(world.rsa_key.public_key(), "rsa-1"))
    auth = Authenticator(write_policies(tmp_path / "p", str(path), str(world.ec_jwks)), world.settings, world.store)
    old = world.rsa_token()
    assert auth.authenticate(f"Bearer {old}").subject == "u-123"
    write_jwks(path, jwk(world.attacker.public_key(), "rsa-2"))
    os.utime(path, ns=(time.time_ns() + 10**9, time.time_ns() + 10**9))
    assert refused(auth, f"Bearer {old}") == "unknown key"
    assert auth.authenticate(f"Bearer {world.rsa_token(kid='rsa-2', key=world.attacker)}").subject == "u-123"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        # the file is missing
        (None, "not found"),
        # not JSON
        ("{not json", "is not readable JSON"),
        # JSON without a key list
        ('{"kid": "x"}', "has no 'keys' list"),
        # only keys that cannot verify anything
        ('{"keys": [{"kty": "oct", "k": "c2VjcmV0", "kid": "hs"}]}', "holds no usable signature key"),
        # a private key published by mistake
        ("PRIVATE", "holds private key material"),
    ],
)
def test_when_jwks_file_is_bad_then_production_refuses_to_start_and_test_refuses_tokens(world: World, tmp_path: Path, content: str | None, message: str) -> None:
    path = tmp_path / "jwks.json"
    if content == "PRIVATE":
        private = jwt.algorithms.RSAAlgorithm.to_jwk(world.rsa_key, as_dict=True)
        content = json.dumps({"keys": [{**private, "kid": "rsa-1"}]})
    if content is not None:
        path.write_text(content)
    policies = write_policies(tmp_path / "p", str(path), str(world.ec_jwks))
    with pytest.raises(ConfigurationError, match=message):
        Authenticator(policies, prod_settings(tmp_path / "prod"), world.store)
    lenient = Authenticator(policies, world.settings, world.store)
    assert refused(lenient, f"Bearer {world.rsa_token()}") == "identity provider keys unavailable"


def test_when_jwks_is_a_url_then_it_is_fetched_once_and_cached(world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fetched: list[tuple[str, float]] = []
    body = json.dumps({"keys": [jwk(world.rsa_key.public_key(), "rsa-1")]}).encode()

    class Opener:  # stands in for the network under PyJWKClient's own fetch, cache and cooldown
        def open(self, request: urllib.request.Request, timeout: float) -> io.BytesIO:
            fetched.append((request.full_url, timeout))
            return io.BytesIO(body)

    monkeypatch.setattr(urllib.request, "build_opener", lambda *handlers: Opener())
    url = "https://idp.bank.test/realms/bank/protocol/openid-connect/certs"
    auth = Authenticator(write_policies(tmp_path / "p", url, str(world.ec_jwks)), world.settings, world.store)
    assert auth.authenticate(f"Bearer {world.rsa_token()}").roles == ("fraud-analyst",)
    assert auth.authenticate(f"Bearer {world.rsa_token(groups=['data-office'])}").roles == ("data-steward",)
    assert refused(auth, f"Bearer {world.rsa_token(kid='unknown')}") == "unknown key"  # no refetch within the cooldown
    assert refused(auth, f"Bearer {world.rsa_token(key=world.attacker)}") == "invalid signature"
    assert fetched == [(url, 5.0)]
