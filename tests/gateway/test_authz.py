"""Authorisation: decision tables, Casbin agreement, NotFound semantics, threads and reloads."""

from __future__ import annotations

import functools
import shutil
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.authz import (
    CASBIN_MODEL,
    DATA_ACTIONS,
    NOT_FOUND_RULE,
    Authorizer,
    ColumnsRef,
    DatasetRef,
    Decision,
    FeatureViewRef,
    Resource,
    compile_policy,
    parse_resource,
    principal_subject,
    role_subject,
)
from gateway.authz.casbin_model import ALLOW_OVERRIDE, CasbinPolicy
from gateway.errors import AccessDenied, NotFound, PolicyError
from gateway.identity import Principal
from gateway.policy import PolicySet, load_policy_set
from gateway.policy.dataset import DatasetPolicy
from gateway.policy.organisation import Action, DenyRule, OrganisationPolicy, Role, purpose_covers
from gateway.policy.protection import ProtectionKind

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "policies"
A = Action


@functools.cache
def examples() -> PolicySet:
    return load_policy_set([EXAMPLES])


@functools.cache
def example_authz() -> Authorizer:
    return Authorizer(examples())


def who(
    *roles: str,
    clearance: str | None = None,
    subject: str = "tester",
    purpose: str | None = None,
    features: tuple[str, ...] | None = None,
    org: OrganisationPolicy | None = None,
) -> Principal:
    """A principal holding `roles`; clearance defaults to their highest (as the Authenticator does)."""
    org = org or examples().organisation
    if clearance is None:
        known = [org.roles[r].clearance for r in roles if r in org.roles] or [org.clearances[0]]
        clearance = max(known, key=org.clearances.index)
    return Principal(
        subject=subject, roles=roles, clearance=clearance, auth_method="api_key",
        credential_id="k1", expires_at=None, bound_purpose=purpose, bound_features=features,
    )


def fv(text: str) -> Resource:
    return parse_resource(text)


def line(role: str, dataset: str, purpose: str, action: str) -> str:
    return f"roles.{role}: p, role:{role}, {dataset}, {purpose}, {action}, allow"


DENY_MARKETING = "deny[0]: p, role:marketing-pipeline, *, research, *, deny"
MARKETING_REASON = "Marketing systems never take part in research."

# (principal, action, purpose, resource, allowed, rule, reason) on examples/policies
EXAMPLE_TABLE: list[tuple[Principal, Action, str, Resource, bool, str, str]] = [
    # fraud analyst reads a feature view approved for its purpose: granted by its role line
    (who("fraud-analyst"), A.READ_FEATURES, "fraud-detection", fv("customers/customer_profile"), True,
     line("fraud-analyst", "*", "fraud-detection", "read_features"),
     "role 'fraud-analyst' may read_features feature view 'customers/customer_profile' for purpose 'fraud-detection'"),
    # the whole transactions table for fraud: every raw column is at most confidential
    (who("fraud-analyst"), A.READ_FEATURES, "fraud-detection", DatasetRef("transactions"), True,
     line("fraud-analyst", "*", "fraud-detection", "read_features"),
     "role 'fraud-analyst' may read_features dataset 'transactions' for purpose 'fraud-detection'"),
    # researcher runs DP queries for its own purpose
    (who("researcher"), A.DP_QUERY, "research", DatasetRef("customers"), True,
     line("researcher", "*", "research", "dp_query"),
     "role 'researcher' may dp_query dataset 'customers' for purpose 'research'"),
    # hierarchy, downwards: a grant for research covers research.clinical
    (who("researcher"), A.DP_QUERY, "research.clinical", DatasetRef("transactions"), True,
     line("researcher", "*", "research", "dp_query"),
     "role 'researcher' may dp_query dataset 'transactions' for purpose 'research.clinical'"),
    # researcher may synthesize for research
    (who("researcher"), A.SYNTHESIZE, "research", DatasetRef("customers"), True,
     line("researcher", "*", "research", "synthesize"),
     "role 'researcher' may synthesize dataset 'customers' for purpose 'research'"),
    # unknown purpose: denied before any grant is looked at
    (who("fraud-analyst"), A.READ_FEATURES, "fraud", fv("customers/customer_profile"), False,
     "purpose.unknown", "unknown purpose 'fraud'"),
    # unknown purpose, even for the wildcard steward and organisation-wide
    (who("data-steward"), A.ADMIN, "everything", None, False,
     "purpose.unknown", "unknown purpose 'everything'"),
    # the dataset does not serve the purpose (the steward may pursue any purpose)
    (who("data-steward"), A.READ_FEATURES, "marketing", DatasetRef("transactions"), False,
     "datasets.transactions.purposes", "dataset 'transactions' does not serve purpose 'marketing'"),
    # role lacks the action
    (who("fraud-pipeline"), A.DP_QUERY, "fraud-detection", DatasetRef("customers"), False,
     "grant.none", "no role held (fraud-pipeline) may dp_query dataset 'customers' for purpose 'fraud-detection'"),
    # role lacks the purpose
    (who("fraud-analyst"), A.READ_FEATURES, "marketing", fv("customers/customer_profile"), False,
     "grant.none",
     "no role held (fraud-analyst) may read_features feature view 'customers/customer_profile' for purpose 'marketing'"),
    # researcher may not read rows at all
    (who("researcher"), A.READ_FEATURES, "research", DatasetRef("customers"), False,
     "grant.none", "no role held (researcher) may read_features dataset 'customers' for purpose 'research'"),
    # clearance too low for a column kept raw (amount, confidential) in the view
    (who("fraud-analyst", clearance="internal"), A.READ_FEATURES, "fraud-detection",
     fv("transactions/transaction_facts"), False, "datasets.transactions.columns.amount.classification",
     "clearance 'internal' does not cover confidential column 'amount', received unprotected for purpose 'fraud-detection'"),
    # the same clearance reads a view whose raw columns are all internal
    (who("fraud-analyst", clearance="internal"), A.READ_FEATURES, "fraud-detection",
     fv("customers/customer_profile"), True, line("fraud-analyst", "*", "fraud-detection", "read_features"),
     "role 'fraud-analyst' may read_features feature view 'customers/customer_profile' for purpose 'fraud-detection'"),
    # a column protected (masked) for the purpose needs no clearance: city is nullified for fraud
    (who("fraud-analyst", clearance="internal"), A.READ_FEATURES, "fraud-detection",
     ColumnsRef("customers", ("city", "country")), True, line("fraud-analyst", "*", "fraud-detection", "read_features"),
     "role 'fraud-analyst' may read_features columns city, country of dataset 'customers' for purpose 'fraud-detection'"),
    # ... but city is kept raw for marketing, so marketing needs confidential
    (who("marketing-pipeline", clearance="internal"), A.READ_FEATURES, "marketing",
     ColumnsRef("customers", ("city",)), False, "datasets.customers.columns.city.classification",
     "clearance 'internal' does not cover confidential column 'city', received unprotected for purpose 'marketing'"),
    # reidentify restores raw values: the restricted card number needs restricted clearance
    (who("data-steward", clearance="confidential"), A.REIDENTIFY, "fraud-detection",
     ColumnsRef("transactions", ("card_number",)), False, "datasets.transactions.columns.card_number.classification",
     "clearance 'confidential' does not cover restricted column 'card_number', received unprotected for purpose 'fraud-detection'"),
    # the steward at restricted may reidentify it
    (who("data-steward"), A.REIDENTIFY, "fraud-detection", ColumnsRef("transactions", ("card_number",)), True,
     line("data-steward", "*", "*", "reidentify"),
     "role 'data-steward' may reidentify columns card_number of dataset 'transactions' for purpose 'fraud-detection'"),
    # encrypted columns leave as ciphertexts: no clearance check for he_compute
    (who("credit-modeller", clearance="internal"), A.HE_COMPUTE, "credit-risk",
     ColumnsRef("customers", ("income", "credit_score")), True, line("credit-modeller", "*", "credit-risk", "he_compute"),
     "role 'credit-modeller' may he_compute columns income, credit_score of dataset 'customers' for purpose 'credit-risk'"),
    # a dropped column is never received
    (who("fraud-analyst"), A.READ_FEATURES, "fraud-detection", ColumnsRef("customers", ("full_name",)), False,
     "datasets.customers.columns.full_name.protect", "column 'full_name' is dropped for purpose 'fraud-detection'"),
    # deny rule overrides the researcher's grant for a principal holding both roles
    (who("marketing-pipeline", "researcher"), A.DP_QUERY, "research", DatasetRef("customers"), False,
     DENY_MARKETING, MARKETING_REASON),
    # deny rule purposes nest too: research covers research.clinical
    (who("marketing-pipeline", "researcher"), A.SYNTHESIZE, "research.clinical", DatasetRef("transactions"), False,
     DENY_MARKETING, MARKETING_REASON),
    # the deny rule does not reach other purposes
    (who("marketing-pipeline"), A.READ_FEATURES, "marketing", fv("customers/customer_profile"), True,
     line("marketing-pipeline", "*", "marketing", "read_features"),
     "role 'marketing-pipeline' may read_features feature view 'customers/customer_profile' for purpose 'marketing'"),
    # purpose-bound token: the steward's token for fraud cannot be used for marketing
    (who("data-steward", purpose="fraud-detection"), A.READ_FEATURES, "marketing",
     fv("customers/customer_profile"), False, "token.purpose", "the credential is bound to purpose 'fraud-detection'"),
    # a token bound to research may be used for its sub-purpose
    (who("researcher", purpose="research"), A.DP_QUERY, "research.clinical", DatasetRef("customers"), True,
     line("researcher", "*", "research", "dp_query"),
     "role 'researcher' may dp_query dataset 'customers' for purpose 'research.clinical'"),
    # ... never the reverse
    (who("researcher", purpose="research.clinical"), A.DP_QUERY, "research", DatasetRef("customers"), False,
     "token.purpose", "the credential is bound to purpose 'research.clinical'"),
    # a token bound to feature views reads them ...
    (who("fraud-analyst", purpose="fraud-detection", features=("customer_profile",)), A.READ_FEATURES,
     "fraud-detection", fv("customers/customer_profile"), True, line("fraud-analyst", "*", "fraud-detection", "read_features"),
     "role 'fraud-analyst' may read_features feature view 'customers/customer_profile' for purpose 'fraud-detection'"),
    # ... and no other view
    (who("fraud-analyst", features=("customer_profile",)), A.READ_FEATURES, "fraud-detection",
     fv("customers/customer_risk"), False, "token.features", "the credential is bound to feature views customer_profile"),
    # ... and nothing but feature reads
    (who("fraud-analyst", features=("customer_profile",)), A.DP_QUERY, "fraud-detection",
     DatasetRef("customers"), False, "token.features", "the credential is bound to feature views customer_profile"),
    # wildcard steward: every action, every dataset, any declared purpose it serves
    (who("data-steward"), A.INGEST, "research", DatasetRef("transactions"), True,
     line("data-steward", "*", "*", "ingest"),
     "role 'data-steward' may ingest dataset 'transactions' for purpose 'research'"),
    (who("data-steward"), A.PUBLISH, "marketing", fv("customers/customer_profile"), True,
     line("data-steward", "*", "*", "publish"),
     "role 'data-steward' may publish feature view 'customers/customer_profile' for purpose 'marketing'"),
    # organisation-wide stewardship and audit need a role whose datasets are '*'
    (who("data-steward"), A.ADMIN, "fraud-detection", None, True, line("data-steward", "*", "*", "admin"),
     "role 'data-steward' may admin the organisation for purpose 'fraud-detection'"),
    (who("auditor"), A.AUDIT_READ, "research.clinical", None, True, line("auditor", "*", "*", "audit_read"),
     "role 'auditor' may audit_read the organisation for purpose 'research.clinical'"),
    # the auditor knows the datasets (it may read their audit trail) but may not read data
    (who("auditor"), A.READ_FEATURES, "fraud-detection", DatasetRef("customers"), False,
     "grant.none", "no role held (auditor) may read_features dataset 'customers' for purpose 'fraud-detection'"),
    # feature view not approved for the purpose (the steward knows the view through fraud-detection)
    (who("data-steward"), A.READ_FEATURES, "research", fv("customers/customer_profile"), False,
     "datasets.customers.features.customer_profile.approved_for",
     "feature view 'customers/customer_profile' is not approved for purpose 'research'"),
    # ... and for a principal that knows customer_risk through its fraud role only
    (who("fraud-analyst", "credit-modeller"), A.READ_FEATURES, "credit-risk", fv("customers/customer_risk"), False,
     "datasets.customers.features.customer_risk.approved_for",
     "feature view 'customers/customer_risk' is not approved for purpose 'credit-risk'"),
    # not knowable: marketing has no use of transactions for any purpose -> same as a missing dataset
    (who("marketing-pipeline"), A.READ_FEATURES, "marketing", DatasetRef("transactions"), False,
     NOT_FOUND_RULE, "no dataset named 'transactions'"),
    (who("marketing-pipeline"), A.READ_FEATURES, "marketing", DatasetRef("accounts"), False,
     NOT_FOUND_RULE, "no dataset named 'accounts'"),
    # not knowable, and checked before the purpose: unknown purposes do not reveal datasets
    (who("marketing-pipeline"), A.READ_FEATURES, "nonsense", fv("transactions/transaction_facts"), False,
     NOT_FOUND_RULE, "no dataset named 'transactions'"),
    # a view no held role may read for a purpose it is approved for -> same as a missing view
    (who("credit-modeller"), A.READ_FEATURES, "credit-risk", fv("customers/customer_risk"), False,
     NOT_FOUND_RULE, "no feature view 'customers/customer_risk'"),
    (who("credit-modeller"), A.READ_FEATURES, "credit-risk", fv("customers/customer_riks"), False,
     NOT_FOUND_RULE, "no feature view 'customers/customer_riks'"),
    # an unknown column of a knowable dataset
    (who("fraud-analyst"), A.READ_FEATURES, "fraud-detection", ColumnsRef("customers", ("shoe_size",)), False,
     NOT_FOUND_RULE, "no column 'shoe_size' in dataset 'customers'"),
    # a role unknown to the policy knows nothing
    (who("ghost", clearance="restricted"), A.DP_QUERY, "research", DatasetRef("customers"), False,
     NOT_FOUND_RULE, "no dataset named 'customers'"),
    # data actions need a dataset; views only suit read_features and publish
    (who("fraud-analyst"), A.READ_FEATURES, "fraud-detection", None, False,
     "request.resource", "read_features needs a dataset"),
    (who("fraud-analyst"), A.DP_QUERY, "fraud-detection", fv("customers/customer_profile"), False,
     "request.resource", "dp_query does not apply to a feature view"),
]


def _row_id(row: tuple[Any, ...]) -> str:
    principal, action, purpose, resource, allowed = row[:5]
    return f"{'+'.join(principal.roles)}-{action}-{purpose}-{resource}-{'allow' if allowed else 'deny'}"


@pytest.mark.parametrize("row", EXAMPLE_TABLE, ids=_row_id)
def test_example_decision_table(row: tuple[Principal, Action, str, Resource, bool, str, str]) -> None:
    principal, action, purpose, resource, allowed, rule, reason = row
    decision = example_authz().check(principal, action, purpose, resource)
    assert decision == Decision(allowed, rule, reason, examples().version)


def write_policies(folder: Path, files: dict[str, str]) -> PolicySet:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (folder / name).write_text(text)
    return load_policy_set([folder])


EDGE_ORG = """\
organisation: Edge Bank
clearances: [public, internal, confidential, restricted]
purposes:
  research: {statement: "Aggregate research under the research charter."}
  research.clinical: {statement: "Clinical research under ethics protocol EB-1."}
  fraud-detection: {statement: "Detect and prevent payment fraud on accounts."}
roles:
  clinician: {purposes: [research.clinical], actions: [read_features, dp_query], clearance: internal}
  analyst: {purposes: [research], actions: [dp_query, read_features], clearance: confidential, datasets: [scores]}
  fraud: {purposes: [fraud-detection], actions: [read_features], clearance: confidential, datasets: [ledger]}
principals:
  mallory: {roles: [analyst]}
  trent: {roles: [analyst]}
deny:
  - {principal: mallory, action: dp_query, dataset: scores, reason: "Mallory is under investigation."}
"""
EDGE_SCORES = """\
dataset: scores
source: {format: csv, path: scores}
entity: id
purposes: [research]
columns:
  id: {type: string, classification: internal, protect: {hash: {salt: s}}}
  score:
    type: integer
    classification: confidential
    protect: nullify
    purposes:
      research.clinical: {protect: keep}
  band: {type: string, classification: internal, protect: keep}
features:
  clinical_scores: {columns: [score, band], approved_for: [research.clinical]}
  bands: {columns: [band], approved_for: [research]}
"""
EDGE_LEDGER = """\
dataset: ledger
source: {format: csv, path: ledger}
entity: id
purposes: [fraud-detection]
columns:
  id: {type: string, classification: internal, protect: {hash: {salt: s}}}
  amount: {type: double, classification: confidential, protect: keep}
"""


@pytest.fixture
def edge(tmp_path: Path) -> tuple[Authorizer, OrganisationPolicy]:
    policies = write_policies(
        tmp_path / "edge", {"org.yaml": EDGE_ORG, "scores.yaml": EDGE_SCORES, "ledger.yaml": EDGE_LEDGER}
    )
    return Authorizer(policies), policies.organisation


def test_edge_decision_table(edge: tuple[Authorizer, OrganisationPolicy]) -> None:
    authz, org = edge

    def p(*roles: str, subject: str = "tester") -> Principal:
        return who(*roles, subject=subject, org=org)

    table: list[tuple[Principal, Action, str, Resource, bool, str, str]] = [
        # a grant for the sub-purpose covers the sub-purpose ...
        (p("clinician"), A.DP_QUERY, "research.clinical", DatasetRef("scores"), True,
         line("clinician", "*", "research.clinical", "dp_query"),
         "role 'clinician' may dp_query dataset 'scores' for purpose 'research.clinical'"),
        # ... not its parent (hierarchy never goes upwards)
        (p("clinician"), A.DP_QUERY, "research", DatasetRef("scores"), False, "grant.none",
         "no role held (clinician) may dp_query dataset 'scores' for purpose 'research'"),
        # loader-valid policy where a sub-purpose override keeps a confidential column raw:
        # the internal-cleared clinician is refused at request time
        (p("clinician"), A.READ_FEATURES, "research.clinical", fv("scores/clinical_scores"), False,
         "datasets.scores.columns.score.classification",
         "clearance 'internal' does not cover confidential column 'score', received unprotected for purpose 'research.clinical'"),
        # a view approved for research serves research.clinical
        (p("clinician"), A.READ_FEATURES, "research.clinical", fv("scores/bands"), True,
         line("clinician", "*", "research.clinical", "read_features"),
         "role 'clinician' may read_features feature view 'scores/bands' for purpose 'research.clinical'"),
        # a view approved only for research.clinical does not serve research
        (p("analyst"), A.READ_FEATURES, "research", fv("scores/clinical_scores"), False,
         "datasets.scores.features.clinical_scores.approved_for",
         "feature view 'scores/clinical_scores' is not approved for purpose 'research'"),
        # role.datasets lists scores only: ledger is not knowable to the analyst
        (p("analyst"), A.DP_QUERY, "research", DatasetRef("ledger"), False, NOT_FOUND_RULE,
         "no dataset named 'ledger'"),
        (p("fraud"), A.READ_FEATURES, "fraud-detection", DatasetRef("ledger"), True,
         line("fraud", "ledger", "fraud-detection", "read_features"),
         "role 'fraud' may read_features dataset 'ledger' for purpose 'fraud-detection'"),
        # a principal deny rule (action and dataset scoped) beats its role's grant ...
        (p("analyst", subject="mallory"), A.DP_QUERY, "research", DatasetRef("scores"), False,
         "deny[0]: p, principal:mallory, scores, *, dp_query, deny", "Mallory is under investigation."),
        (p("analyst", subject="mallory"), A.DP_QUERY, "research.clinical", DatasetRef("scores"), False,
         "deny[0]: p, principal:mallory, scores, *, dp_query, deny", "Mallory is under investigation."),
        # ... only for the action it names ...
        (p("analyst", subject="mallory"), A.READ_FEATURES, "research", fv("scores/bands"), True,
         line("analyst", "scores", "research", "read_features"),
         "role 'analyst' may read_features feature view 'scores/bands' for purpose 'research'"),
        # ... and only for that subject (same roles, same clearance: the cache must not mix them)
        (p("analyst", subject="trent"), A.DP_QUERY, "research", DatasetRef("scores"), True,
         line("analyst", "scores", "research", "dp_query"),
         "role 'analyst' may dp_query dataset 'scores' for purpose 'research'"),
    ]
    for principal, action, purpose, resource, allowed, rule, reason in table:
        for _ in range(2):  # cold, then cached
            decision = authz.check(principal, action, purpose, resource)
            assert (decision.allowed, decision.rule, decision.reason) == (allowed, rule, reason), (
                principal.subject, principal.roles, action, purpose, resource)


# -- NotFound vs AccessDenied -------------------------------------------------------------


def test_require_raises_not_found_for_hidden_exactly_as_for_missing(tmp_path: Path) -> None:
    folder = tmp_path / "no-transactions"
    shutil.copytree(EXAMPLES, folder)
    (folder / "transactions.yaml").unlink()
    without = Authorizer(load_policy_set([folder]))
    marketing = who("marketing-pipeline")
    for resource in (DatasetRef("transactions"), fv("transactions/transaction_facts"),
                     ColumnsRef("transactions", ("amount",))):
        for action in (A.READ_FEATURES, A.PUBLISH, A.DP_QUERY):
            if isinstance(resource, FeatureViewRef) and action is A.DP_QUERY:
                continue
            hidden = example_authz().check(marketing, action, "marketing", resource)
            missing = without.check(marketing, action, "marketing", resource)
            assert (hidden.allowed, hidden.rule, hidden.reason) == (missing.allowed, missing.rule, missing.reason)
            assert hidden.hides_resource
            with pytest.raises(NotFound) as hidden_error:
                example_authz().require(marketing, action, "marketing", resource)
            with pytest.raises(NotFound) as missing_error:
                without.require(marketing, action, "marketing", resource)
            assert str(hidden_error.value) == str(missing_error.value) == "no dataset named 'transactions'"


def test_require_returns_allowed_and_raises_access_denied_with_the_reason() -> None:
    authz = example_authz()
    decision = authz.require(who("researcher"), A.DP_QUERY, "research", DatasetRef("customers"))
    assert decision.allowed
    with pytest.raises(AccessDenied, match=r"^no role held \(researcher\) may read_features"):
        authz.require(who("researcher"), A.READ_FEATURES, "research", DatasetRef("customers"))
    with pytest.raises(AccessDenied, match=r"^Marketing systems never take part in research\.$"):
        authz.require(who("marketing-pipeline", "researcher"), A.DP_QUERY, "research", DatasetRef("customers"))


def test_intent_named_checks_map_to_actions_and_resources() -> None:
    authz, bob, steward = example_authz(), who("fraud-analyst"), who("data-steward")
    assert authz.can_read_features(bob, "fraud-detection", "customers", "customer_profile").allowed
    assert authz.can_read_columns(bob, "fraud-detection", "customers", ["country"]).allowed
    assert authz.can_query_dp(bob, "fraud-detection", "transactions").allowed
    assert authz.can_query_dp(bob, "fraud-detection", "transactions", ["amount"]).allowed
    assert not authz.can_compute_he(bob, "fraud-detection", "customers").allowed
    assert authz.can_compute_he(who("credit-modeller"), "credit-risk", "customers", ["income"]).allowed
    assert authz.can_synthesize(who("researcher"), "research", "customers").allowed
    assert authz.can_ingest(steward, "fraud-detection", "customers").allowed
    assert not authz.can_ingest(bob, "fraud-detection", "customers").allowed
    assert authz.can_publish(steward, "fraud-detection", "customers", "customer_risk").allowed
    assert authz.can_reidentify(steward, "fraud-detection", "customers", ["customer_id"]).allowed
    assert authz.can_read_audit(who("auditor"), "research").allowed
    assert authz.can_read_audit(who("auditor"), "research", "customers").allowed
    assert authz.check(bob, A.DP_QUERY, "fraud-detection", ColumnsRef("transactions", ("amount", "amount"))) == (
        authz.check(bob, A.DP_QUERY, "fraud-detection", ColumnsRef("transactions", ("amount",)))
    )


def test_parse_resource() -> None:
    assert parse_resource("customers") == DatasetRef("customers")
    assert parse_resource("customers/customer_profile") == FeatureViewRef("customers", "customer_profile")
    for bad in ("", "/x", "a/", "a/b/c"):
        with pytest.raises(ValueError, match="a resource is"):
            parse_resource(bad)
    with pytest.raises(ValueError, match="at least one column"):
        ColumnsRef("customers", ())


# -- visible datasets ----------------------------------------------------------------------


def test_visible_datasets_lists_usable_datasets_views_and_column_protections() -> None:
    authz = example_authz()
    bob = authz.visible_datasets(who("fraud-analyst"), "fraud-detection")
    assert [(d.dataset, d.actions, d.views) for d in bob] == [
        ("customers", (A.READ_FEATURES, A.DP_QUERY), ("customer_profile", "customer_risk")),
        ("transactions", (A.READ_FEATURES, A.DP_QUERY), ("transaction_facts",)),
    ]
    columns = {c.name: c for c in bob[0].columns}
    assert "full_name" not in columns and "national_id" not in columns  # dropped for every purpose
    assert (columns["country"].protection, columns["country"].kind) == ("keep", ProtectionKind.KEEP)
    assert columns["income"].kind is ProtectionKind.MASK and columns["income"].protection.startswith("bucket(")
    research = authz.visible_datasets(who("researcher"), "research")
    assert [(d.dataset, d.actions, d.views) for d in research] == [
        ("customers", (A.DP_QUERY, A.SYNTHESIZE), ()),
        ("transactions", (A.DP_QUERY, A.SYNTHESIZE), ()),
    ]
    income = next(c for c in research[0].columns if c.name == "income")
    assert (income.kind, income.protection) == (ProtectionKind.DP_ONLY, "dp_only")
    marketing = authz.visible_datasets(who("marketing-pipeline"), "marketing")
    assert [(d.dataset, d.actions, d.views) for d in marketing] == [
        ("customers", (A.READ_FEATURES,), ("customer_profile",))
    ]
    assert authz.visible_datasets(who("marketing-pipeline"), "research") == []  # denied by rule
    assert authz.visible_datasets(who("data-steward"), "no-such-purpose") == []
    bound = authz.visible_datasets(who("fraud-analyst", features=("customer_risk",)), "fraud-detection")
    assert [(d.dataset, d.actions, d.views) for d in bound] == [("customers", (), ("customer_risk",))]


# -- the generated Casbin model -------------------------------------------------------------


def test_casbin_lines_are_generated_from_the_organisation_file() -> None:
    policy = compile_policy(examples())
    text = policy.policy_text().splitlines()
    assert text[0] == "p, role:fraud-analyst, *, fraud-detection, read_features, allow"
    assert text[-1] == "p, role:marketing-pipeline, *, research, *, deny"
    assert len(text) == sum(len(r.datasets) * len(r.purposes) * len(r.actions)
                            for r in examples().organisation.roles.values()) + 1
    assert "purposeCovers(p.purpose, r.purpose)" in CASBIN_MODEL
    assert "some(where (p.eft == allow)) && !some(where (p.eft == deny))" in CASBIN_MODEL


def test_pycasbin_explains_no_allow_under_allow_and_deny_which_is_why_an_explainer_exists() -> None:
    policy = compile_policy(examples())
    engine, explainer = policy.new_enforcer(), policy.new_enforcer(ALLOW_OVERRIDE)
    request = (frozenset({role_subject("researcher")}), "customers", "research", "dp_query")
    assert engine.enforce_ex(*request) == (True, [])  # pycasbin: the scan never stops on an allow
    ok, explain = explainer.enforce_ex(*request)
    assert ok and policy.line(explain).rule == line("researcher", "*", "research", "dp_query")
    denied = (frozenset({role_subject("researcher"), role_subject("marketing-pipeline")}), "customers",
              "research", "dp_query")
    ok, explain = engine.enforce_ex(*denied)
    assert not ok and policy.line(explain).rule == DENY_MARKETING


# -- property tests: the index agrees with Casbin + direct checks -----------------------------


class Reference:
    """The unoptimised decision: Casbin's enforce_ex on every line, then direct Python checks."""

    def __init__(self, policies: PolicySet) -> None:
        self.policies = policies
        self.casbin: CasbinPolicy = compile_policy(policies)
        self.engine = self.casbin.new_enforcer()
        self.explainer = self.casbin.new_enforcer(ALLOW_OVERRIDE)

    def _usable(self, principal: Principal, ds: DatasetPolicy, actions: Sequence[Action], view: str | None) -> bool:
        org = self.policies.organisation
        for name in principal.roles:
            role = org.roles.get(name)
            if role is None or not any(d in ("*", ds.dataset) for d in role.datasets):
                continue
            for purpose in org.purposes:
                if not ds.allows(purpose) or not any(purpose_covers(g, purpose) for g in role.purposes):
                    continue
                if view is not None and not any(purpose_covers(a, purpose) for a in ds.features[view].approved_for):
                    continue
                if any(a in role.actions for a in actions):
                    return True
        return False

    def decide(self, principal: Principal, action: Action, purpose: str, resource: Resource) -> tuple[bool, str]:
        org = self.policies.organisation
        if resource is None and action in DATA_ACTIONS:
            return False, "request.resource"
        if isinstance(resource, FeatureViewRef) and action not in (A.READ_FEATURES, A.PUBLISH):
            return False, "request.resource"
        ds = None
        if resource is not None:
            ds = self.policies.datasets.get(resource.dataset)
            if ds is None or not self._usable(principal, ds, list(Action), None):
                return False, NOT_FOUND_RULE
            if isinstance(resource, FeatureViewRef) and (
                resource.view not in ds.features
                or not self._usable(principal, ds, [A.READ_FEATURES, A.PUBLISH], resource.view)
            ):
                return False, NOT_FOUND_RULE
            if isinstance(resource, ColumnsRef) and any(c not in ds.columns for c in resource.columns):
                return False, NOT_FOUND_RULE
        if purpose not in org.purposes:
            return False, "purpose.unknown"
        if principal.bound_purpose is not None and not purpose_covers(principal.bound_purpose, purpose):
            return False, "token.purpose"
        subjects = frozenset({role_subject(r) for r in principal.roles} | {principal_subject(principal.subject)})
        request = (subjects, "*" if resource is None else resource.dataset, purpose, action.value)
        ok, explain = self.engine.enforce_ex(*request)
        if not ok:
            return False, self.casbin.line(explain).rule if explain else "grant.none"
        ok, explain = self.explainer.enforce_ex(*request)
        assert ok and explain
        granted = self.casbin.line(explain).rule
        if ds is not None:
            assert resource is not None
            if not ds.allows(purpose):
                return False, f"datasets.{ds.dataset}.purposes"
            if isinstance(resource, FeatureViewRef) and not any(
                purpose_covers(a, purpose) for a in ds.features[resource.view].approved_for
            ):
                return False, f"datasets.{ds.dataset}.features.{resource.view}.approved_for"
        if principal.bound_features is not None and not (
            isinstance(resource, FeatureViewRef) and action is A.READ_FEATURES
            and (resource.view in principal.bound_features or str(resource) in principal.bound_features)
        ):
            return False, "token.features"
        if ds is None or resource is None:
            return True, granted
        lowest = self.policies.lowest_clearance
        protections = {c: ds.protection(c, purpose, lowest) for c in ds.columns}
        if isinstance(resource, ColumnsRef):
            for c in resource.columns:
                protection = protections[c]
                if protection is not None and protection.kind is ProtectionKind.DROP:
                    return False, f"datasets.{ds.dataset}.columns.{c}.protect"
        names: list[str] = []
        if action is A.READ_FEATURES:
            if isinstance(resource, ColumnsRef):
                listed = resource.columns
            elif isinstance(resource, FeatureViewRef):
                listed = tuple(c for c in ds.columns if c in ds.features[resource.view].columns)
            else:
                listed = tuple(ds.columns)
            names = [c for c in listed if (p := protections[c]) is not None and p.exposes_raw]
        elif action is A.REIDENTIFY:
            names = list(resource.columns) if isinstance(resource, ColumnsRef) else list(ds.columns)
        for c in names:
            needed = ds.columns[c].classification
            if (principal.clearance not in org.clearances or needed not in org.clearances
                    or not org.covers(principal.clearance, needed)):
                return False, f"datasets.{ds.dataset}.columns.{c}.classification"
        return True, granted


PURPOSES = ["a", "a.x", "a.y", "b", "b.z", "c"]
CLEARANCES = ["public", "internal", "confidential", "restricted"]
DATASETS = ["d1", "d2"]
COLUMNS = ["c1", "c2", "c3"]
PROTECTS: list[Any] = ["keep", "keep", "drop", "nullify", "dp_only", {"encrypt": "ckks"}]
ACTION_NAMES = [a.value for a in Action]


@st.composite
def policy_sets(draw: st.DrawFn) -> PolicySet:
    roles: dict[str, Any] = {}
    for i in range(draw(st.integers(1, 4))):
        roles[f"r{i}"] = {
            "purposes": draw(st.lists(st.sampled_from([*PURPOSES, "*"]), min_size=1, max_size=3, unique=True)),
            "actions": draw(st.lists(st.sampled_from(ACTION_NAMES), min_size=1, max_size=5, unique=True)),
            "clearance": draw(st.sampled_from(CLEARANCES)),
            "datasets": draw(st.one_of(
                st.just(["*"]),
                st.lists(st.sampled_from([*DATASETS, "ghost"]), min_size=1, max_size=2, unique=True),
            )),
        }
    names = list(roles)
    principals = {f"u{i}": {"roles": draw(st.lists(st.sampled_from(names), min_size=1, max_size=2, unique=True))}
                  for i in range(2)}
    deny = []
    for _ in range(draw(st.integers(0, 3))):
        rule: dict[str, Any] = (
            {"role": draw(st.sampled_from(names))} if draw(st.booleans())
            else {"principal": draw(st.sampled_from(list(principals)))}
        )
        rule |= {
            "purpose": draw(st.sampled_from([*PURPOSES, "*"])),
            "dataset": draw(st.sampled_from([*DATASETS, "*"])),
            "reason": "generated deny rule",
        }
        action = draw(st.none() | st.sampled_from(ACTION_NAMES))
        if action is not None:
            rule["action"] = action
        deny.append(rule)
    org = OrganisationPolicy.model_validate({
        "organisation": "Generated",
        "clearances": CLEARANCES,
        "purposes": {p: {"statement": f"Generated purpose {p} for tests."} for p in PURPOSES},
        "roles": roles,
        "principals": principals,
        "deny": deny,
    })
    datasets = {}
    for name in DATASETS:
        served = draw(st.lists(st.sampled_from(PURPOSES), min_size=1, max_size=3, unique=True))
        columns: dict[str, Any] = {"id": {"type": "string", "classification": "public", "protect": "keep"}}
        for column in COLUMNS:
            overrides = draw(st.dictionaries(st.sampled_from(PURPOSES), st.sampled_from(PROTECTS), max_size=2))
            columns[column] = {
                "type": "string",
                "classification": draw(st.sampled_from(CLEARANCES)),
                "protect": draw(st.sampled_from(PROTECTS)),
                "purposes": {p: {"protect": v} for p, v in overrides.items()},
            }
        features = {
            view: {
                "columns": draw(st.lists(st.sampled_from(COLUMNS), min_size=1, max_size=3, unique=True)),
                "approved_for": draw(st.lists(st.sampled_from(PURPOSES), min_size=1, max_size=2, unique=True)),
            }
            for view in draw(st.lists(st.sampled_from(["v1", "v2"]), max_size=2, unique=True))
        }
        datasets[name] = DatasetPolicy.model_validate({
            "dataset": name, "source": {"format": "csv", "path": name}, "entity": "id",
            "purposes": served, "columns": columns, "features": features,
        })
    return PolicySet(org, datasets, [])


@st.composite
def requests_for(draw: st.DrawFn, policies: PolicySet) -> tuple[Principal, Action, str, Resource]:
    """Requests biased towards ones that get past the first checks (held roles, purposes, actions)."""
    org = policies.organisation
    subject = draw(st.sampled_from([*org.principals] * 2 + ["zed"]))
    roles = (
        list(org.principals[subject].roles) if subject in org.principals and draw(st.booleans())
        else draw(st.lists(st.sampled_from([*org.roles] * 3 + ["ghost"]), min_size=1, max_size=3, unique=True))
    )
    held = [org.roles[r] for r in roles if r in org.roles]
    likely = [p for p in org.purposes if any(purpose_covers(g, p) for role in held for g in role.purposes)]
    purpose = draw(st.sampled_from(likely * 4 + [*org.purposes, "zz", "a.x.q", "research.other"]))
    principal = Principal(
        subject=subject,
        roles=tuple(roles),
        clearance=draw(st.sampled_from([*org.clearances, *org.clearances, "bogus"])),
        auth_method="api_key", credential_id="k", expires_at=None,
        bound_purpose=draw(st.sampled_from([None] * 6 + [*org.purposes])),
        bound_features=draw(st.sampled_from(
            [None] * 6 + [("v1",), ("d1/v1",), ("customer_profile",), ("v9", "v2")])),
    )
    actions = [a for role in held for a in role.actions] * 3 + list(Action)
    name = draw(st.sampled_from([*policies.datasets] * 4 + ["nope"]))
    ds = policies.datasets.get(name)
    kind = draw(st.sampled_from(["dataset"] * 3 + ["view"] * 2 + ["columns"] * 2 + ["organisation"]))
    resource: Resource
    if kind == "organisation":
        resource = None
        action = draw(st.sampled_from([A.AUDIT_READ, A.ADMIN, A.AUDIT_READ, A.ADMIN, A.READ_FEATURES]))
    elif kind == "view":
        views = list(ds.features) if ds is not None else []
        resource = FeatureViewRef(name, draw(st.sampled_from(views * 4 + ["v0"])))
        action = draw(st.sampled_from([A.READ_FEATURES] * 4 + [A.PUBLISH, A.DP_QUERY]))
    elif kind == "columns":
        known = list(ds.columns) if ds is not None else ["c1"]
        columns = draw(st.lists(st.sampled_from(known * 4 + ["cx"]), min_size=1, max_size=3))
        resource, action = ColumnsRef(name, tuple(columns)), draw(st.sampled_from(actions))
    else:
        resource, action = DatasetRef(name), draw(st.sampled_from(actions))
    return principal, action, purpose, resource


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_index_agrees_with_casbin_and_direct_checks_on_random_policies(data: st.DataObject) -> None:
    policies = data.draw(policy_sets())
    authz, reference = Authorizer(policies, cache_size=8), Reference(policies)
    for principal, action, purpose, resource in data.draw(st.lists(requests_for(policies), min_size=20, max_size=40)):
        decision = authz.check(principal, action, purpose, resource)
        assert (decision.allowed, decision.rule) == reference.decide(principal, action, purpose, resource)
        assert decision.policy_version == policies.version


@functools.cache
def example_reference() -> Reference:
    return Reference(examples())


@settings(max_examples=300, deadline=None)
@given(request=requests_for(examples()))
def test_index_agrees_with_casbin_and_direct_checks_on_the_examples(
    request: tuple[Principal, Action, str, Resource],
) -> None:
    decision = example_authz().check(*request)
    assert (decision.allowed, decision.rule) == example_reference().decide(*request)


@settings(max_examples=200, deadline=None)
@given(
    request=requests_for(examples()),
    purpose=st.text(alphabet="abcdefghijklmnopqrstuvwxyz.-*", min_size=0, max_size=20),
)
def test_unknown_purpose_always_denies(request: tuple[Principal, Action, str, Resource], purpose: str) -> None:
    principal, action, _, resource = request
    if purpose in examples().organisation.purposes:
        purpose += ".unknown"
    for caller in (principal, who("data-steward", "auditor")):  # random, and the widest caller
        decision = example_authz().check(caller, action, purpose, resource)
        assert not decision.allowed
        assert decision.rule in ("purpose.unknown", NOT_FOUND_RULE, "request.resource")


# -- concurrency and reload -----------------------------------------------------------------


def test_sixteen_threads_get_every_decision_right() -> None:
    authz = Authorizer(examples(), cache_size=16)  # tiny cache: misses and evictions race too
    expected = [Decision(allowed, rule, reason, examples().version)
                for _, _, _, _, allowed, rule, reason in EXAMPLE_TABLE]
    start, errors, counts = threading.Barrier(16), [], [0] * 16

    def worker(n: int) -> None:
        try:
            start.wait()
            for i in range(2000):
                k = (i * 7 + n) % len(EXAMPLE_TABLE)
                principal, action, purpose, resource = EXAMPLE_TABLE[k][:4]
                got = authz.check(principal, action, purpose, resource)
                if got != expected[k]:
                    errors.append(f"thread {n}: row {k}: {got}")
                counts[n] += 1
        except Exception as exc:  # noqa: BLE001 - every failure of a worker is reported
            errors.append(f"thread {n}: {exc!r}")

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert counts == [2000] * 16


def variant(policies: PolicySet) -> PolicySet:
    """The examples with fraud analysts losing feature reads and researchers denied synthesis."""
    org = policies.organisation
    roles = dict(org.roles)
    roles["fraud-analyst"] = roles["fraud-analyst"].model_copy(update={"actions": (Action.DP_QUERY,)})
    deny = (*org.deny, DenyRule(role="researcher", action=Action.SYNTHESIZE, reason="Synthesis is paused."))
    return PolicySet(org.model_copy(update={"roles": roles, "deny": deny}), policies.datasets, policies.files)


def bad(policies: PolicySet) -> PolicySet:
    org = policies.organisation
    roles = {**org.roles, "spy": Role(purposes=("research",), actions=(Action.DP_QUERY,), clearance="top-secret")}
    return PolicySet(org.model_copy(update={"roles": roles}), policies.datasets, policies.files)


RELOAD_REQUESTS = [
    (who("fraud-analyst"), A.READ_FEATURES, "fraud-detection", fv("customers/customer_profile")),
    (who("researcher"), A.SYNTHESIZE, "research", DatasetRef("customers")),
    (who("researcher"), A.DP_QUERY, "research", DatasetRef("customers")),
    (who("fraud-analyst"), A.DP_QUERY, "fraud-detection", DatasetRef("transactions")),
    (who("marketing-pipeline"), A.READ_FEATURES, "marketing", DatasetRef("transactions")),
]


def test_reload_swaps_atomically_under_concurrent_readers() -> None:
    old, new = examples(), variant(examples())
    expected = {
        p.version: [Authorizer(p).check(*request) for request in RELOAD_REQUESTS] for p in (old, new)
    }
    assert expected[old.version][0].allowed and not expected[new.version][0].allowed
    assert expected[old.version][1].allowed and expected[new.version][1].rule.startswith("deny[1]: ")
    authz = Authorizer(old, cache_size=4)
    done, errors = threading.Event(), []
    seen = {old.version: 0, new.version: 0}

    def reader(n: int) -> None:
        i = n
        while not done.is_set():
            i += 1
            k = i % len(RELOAD_REQUESTS)
            got = authz.check(*RELOAD_REQUESTS[k])
            if got.policy_version not in expected or got != expected[got.policy_version][k]:
                errors.append(f"reader {n}: request {k}: {got}")
                return
            seen[got.policy_version] += 1

    readers = [threading.Thread(target=reader, args=(n,)) for n in range(8)]
    for t in readers:
        t.start()
    try:
        for i in range(30):
            authz.reload(new if i % 2 == 0 else old)
            if i % 5 == 0:
                before = authz.version
                with pytest.raises(PolicyError, match="unknown clearance 'top-secret'"):
                    authz.reload(bad(old))
                assert authz.version == before
    finally:
        done.set()
        for t in readers:
            t.join()
    assert errors == []
    assert seen[old.version] > 0 and seen[new.version] > 0


def test_reload_never_serves_decisions_cached_under_the_old_policy() -> None:
    old, new = examples(), variant(examples())
    authz = Authorizer(old)
    request = RELOAD_REQUESTS[0]
    assert authz.check(*request).allowed and authz.check(*request).allowed
    assert authz.cache_info().hits == 1
    authz.reload(new)
    after = authz.check(*request)
    # the variant's fraud analyst may no longer read any view: it is now hidden
    assert (after.allowed, after.rule, after.policy_version) == (False, NOT_FOUND_RULE, new.version)
    assert authz.cache_info().hits == 0 and authz.version == new.version and authz.policies is new


def test_a_bad_reload_raises_and_leaves_the_old_policy_in_force() -> None:
    authz = Authorizer(examples())
    request = RELOAD_REQUESTS[0]
    before = authz.check(*request)
    with pytest.raises(PolicyError, match="unknown clearance 'top-secret'"):
        authz.reload(bad(examples()))
    # a column whose protection is undecided for a purpose is refused (fail closed)
    customers = examples().datasets["customers"]
    secret = customers.columns["email"].model_copy(update={"protect": None, "purposes": {}})
    undecided = customers.model_copy(update={"columns": {**customers.columns, "secret": secret}})
    broken = PolicySet(examples().organisation, {**examples().datasets, "customers": undecided}, [])
    with pytest.raises(PolicyError, match="no protection decided for purpose"):
        authz.reload(broken)
    with pytest.raises(TypeError, match="expected a PolicySet"):
        authz.reload("examples/policies")  # type: ignore[arg-type]
    assert authz.version == examples().version
    assert authz.check(*request) == before


def test_stats_cache_controls_and_plain_string_actions() -> None:
    authz = Authorizer(examples(), cache_size=128)
    stats = authz.stats()
    assert stats["lines"] == len(compile_policy(examples()).lines) and stats["deny_lines"] == 1
    assert stats["grant_entries"] > 0 and stats["deny_entries"] > 0 and stats["cached_decisions"] == 0
    decision = authz.check(who("researcher"), "dp_query", "research", DatasetRef("customers"))  # type: ignore[arg-type]
    assert decision == authz.check(who("researcher"), A.DP_QUERY, "research", DatasetRef("customers"))
    assert authz.cache_info().hits == 1
    with pytest.raises(ValueError, match="'fly'"):
        authz.check(who("researcher"), "fly", "research", DatasetRef("customers"))  # type: ignore[arg-type]
    authz.clear_cache()
    assert authz.stats()["cached_decisions"] == 0
