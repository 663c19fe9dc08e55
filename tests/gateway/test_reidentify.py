"""Re-identification: stewards only, audited, and only for reversible protections."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.errors import AccessDenied, ValidationFailed
from gateway.reidentify import local_principal, reidentify
from gateway.secrets import SecretStore
from gateway.services import Services, build_services
from gateway.settings import Settings
from masking.strategies.crypto import encrypt_deterministic, fpe_encrypt


@pytest.fixture
def services(tmp_path: Path, example_policies: Path) -> Iterator[Services]:
    built = build_services(Settings(home=tmp_path, policy_paths=(example_policies,)))
    yield built
    built.close()


def test_when_a_steward_reidentifies_an_aes_siv_email_then_the_value_returns_and_it_is_audited(services: Services) -> None:
    key = SecretStore(services.settings).key("contact-key")
    token = encrypt_deterministic("ada@example.com", key, column="email")
    restored = reidentify(services, local_principal(services, "alice"), "customers", "marketing", "email", [token])
    assert [r.value for r in restored] == ["ada@example.com"]
    uses = [e.event for e in services.audit.query(subject="alice", action="reidentify")]
    assert {e.kind for e in uses} == {"decision", "key_use"}
    assert all("ada@example.com" not in e.to_json() for e in uses)
    assert any(e.released.get("key_id", "").startswith("contact-key@") for e in uses)


def test_when_a_steward_reidentifies_an_fpe_card_then_the_digits_return(services: Services) -> None:
    key = SecretStore(services.settings).key("card-key")
    protected = fpe_encrypt("4242420000000018", key, alphabet="digits")
    restored = reidentify(services, local_principal(services, "alice"), "transactions", "fraud-detection",
                          "card_number", [protected])
    assert restored[0].value == "4242420000000018"


def test_when_a_non_steward_asks_then_access_is_denied_and_the_denial_is_audited(services: Services) -> None:
    with pytest.raises(AccessDenied):
        reidentify(services, local_principal(services, "bob"), "customers", "marketing", "email", ["x:y"])
    denials = [e.event for e in services.audit.query(subject="bob", action="reidentify")]
    assert denials and denials[0].decision == "deny"


def test_when_a_column_is_one_way_protected_then_it_cannot_be_reversed(services: Services) -> None:
    with pytest.raises(ValidationFailed, match="not reversibly protected"):
        reidentify(services, local_principal(services, "alice"), "customers", "fraud-detection", "customer_id", ["tok"])
