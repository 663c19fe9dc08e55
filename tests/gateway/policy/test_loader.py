"""The policy loader: good sets load; every bad one fails with each issue located exactly."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from gateway.errors import PolicyError
from gateway.policy import ProtectionKind, explain, load_policy_set

ORG = """\
organisation: Test Bank
clearances: [public, internal, confidential, restricted]
purposes:
  fraud-detection: {statement: "Detect and prevent payment fraud."}
  marketing: {statement: "Offers to customers who consented."}
  research: {statement: "Aggregate research under the charter."}
  research.clinical: {statement: "Clinical research under protocol X."}
roles:
  analyst: {purposes: [fraud-detection], actions: [read_features, dp_query], clearance: confidential}
  researcher: {purposes: [research], actions: [dp_query, read_features], clearance: internal}
  steward: {purposes: ["*"], actions: [admin, ingest], clearance: restricted}
principals:
  svc-a: {roles: [analyst]}
"""

DATASET = """\
dataset: people
source: {format: csv, path: people}
entity: person_id
purposes: [fraud-detection, research]
columns:
  person_id: {type: string, classification: internal, protect: {tokenize: {key: k1}}}
  name: {type: string, classification: restricted, protect: drop}
  email: {type: string, classification: confidential, protect: {email: {keep: domain}}}
  birth_date: {type: date, classification: confidential, protect: {generalize_date: {unit: year}}}
  country: {type: string, classification: internal, protect: keep}
  consent: {type: boolean, classification: internal, protect: keep}
  income: {type: double, classification: confidential, protect: dp_only, dp: {bounds: [0, 1000]}}
row_filters:
  research: "consent = true"
cell_rules:
  - when: "country = 'DE'"
    columns: [email]
    protect: nullify
features:
  profile:
    columns: [country, birth_date]
    approved_for: [fraud-detection]
"""


def write_set(folder: Path, org: str = ORG, dataset: str = DATASET) -> Path:
    """Write an organisation file and one dataset file into `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "org.yaml").write_text(org, encoding="utf-8")
    (folder / "people.yaml").write_text(dataset, encoding="utf-8")
    return folder


def position(text: str, needle: str, occurrence: int = 1) -> tuple[int, int]:
    """1-based (line, column) of the n-th occurrence of `needle` in `text`."""
    index = -1
    for _ in range(occurrence):
        index = text.index(needle, index + 1)
    line = text.count("\n", 0, index) + 1
    column = index - (text.rfind("\n", 0, index) + 1) + 1
    return line, column


def issues_of(folder: Path) -> list[str]:
    with pytest.raises(PolicyError) as caught:
        load_policy_set([folder])
    return [str(issue) for issue in caught.value.issues]


def test_when_the_example_policies_load_then_versions_and_datasets_are_there(
    example_policies: Path,
) -> None:
    policies = load_policy_set([example_policies])
    assert sorted(policies.datasets) == ["customers", "transactions"]
    assert len(policies.version) == 64
    assert policies.version == load_policy_set([example_policies]).version


def test_when_a_small_valid_set_loads_then_protections_resolve_per_purpose(tmp_path: Path) -> None:
    policies = load_policy_set([write_set(tmp_path)])
    people = policies.dataset("people")
    assert people.protection("name", "research", "public").kind is ProtectionKind.DROP
    assert people.protection("email", "research.clinical", "public").strategy == "email"
    assert people.row_filter_texts("research.clinical") == ["consent = true"]
    treatment = explain(policies, "people", "fraud-detection")
    destinations = {c.column: c.destination for c in treatment.columns}
    assert destinations["income"] == "DP zone only"
    assert destinations["name"] == "nowhere"


def test_when_content_changes_then_the_version_changes_but_formatting_does_not_matter(
    tmp_path: Path,
) -> None:
    base = load_policy_set([write_set(tmp_path / "a")]).version
    reformatted = DATASET.replace(
        "source: {format: csv, path: people}", "source:\n  format: csv\n  path: people"
    )
    same = load_policy_set(
        [write_set(tmp_path / "b", dataset="# a comment\n" + reformatted)]
    ).version
    changed = load_policy_set(
        [write_set(tmp_path / "c", dataset=DATASET.replace("[0, 1000]", "[0, 2000]"))]
    ).version
    assert base == same
    assert base != changed


@dataclass(frozen=True)
class Bad:
    """A bad-policy case: a text replacement in one file and the exact issue it must produce."""

    file: str  # "org" or "people"
    old: str
    new: str
    needle: str  # where the issue must point, searched in the mutated text
    path: str
    message: str
    occurrence: int = 1
    also: tuple[tuple[str, str], ...] = ()  # further replacements in the same file

    def expected(self, folder: Path, text: str) -> str:
        line, column = position(text, self.needle, self.occurrence)
        where = f"{folder / (self.file + '.yaml')}:{line}:{column}"
        return f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"


BAD = [
    # an unknown key next to a known one gets a did-you-mean
    Bad(
        "people",
        "entity: person_id",
        "entity: person_id\npurpose: [research]",
        "purpose:",
        "purpose",
        "unknown key 'purpose' (did you mean 'purposes'?)",
    ),
    # a misspelt key inside a column
    Bad(
        "people",
        "country: {type: string, classification: internal, protect: keep}",
        "country: {type: string, clasification: internal, classification: internal, protect: keep}",
        "clasification",
        "columns.country.clasification",
        "unknown key 'clasification' (did you mean 'classification'?)",
    ),
    # an unknown data type lists the valid ones
    Bad(
        "people",
        "consent: {type: boolean",
        "consent: {type: bool",
        "bool,",
        "columns.consent.type",
        "Input should be 'string', 'integer', 'long', 'double', 'boolean', 'date' or 'timestamp'",
    ),
    # a classification that is not a clearance level
    Bad(
        "people",
        "country: {type: string, classification: internal",
        "country: {type: string, classification: secret",
        "secret",
        "columns.country.classification",
        "unknown classification 'secret'; levels are public, internal, confidential, restricted",
    ),
    # a misspelt strategy
    Bad(
        "people",
        "{tokenize: {key: k1}}",
        "{tokenise: {key: k1}}",
        "{tokenise",
        "columns.person_id.protect",
        "unknown protection 'tokenise' (did you mean 'tokenize'?)",
    ),
    # an unknown strategy parameter
    Bad(
        "people",
        "{tokenize: {key: k1}}",
        "{tokenize: {key: k1, colour: red}}",
        "{tokenize",
        "columns.person_id.protect",
        "'tokenize': colour: unknown parameter",
    ),
    # a strategy that does not suit the column type
    Bad(
        "people",
        "country: {type: string, classification: internal, protect: keep}",
        "country: {type: string, classification: internal, protect: {generalize_date: {unit: year}}}",
        "{generalize_date: {unit: year}}}",
        "columns.country.protect",
        occurrence=2,
        message="strategy 'generalize_date' does not apply to string columns (accepts date, timestamp)",
    ),
    # an explicit null protection is not read as 'keep'
    Bad(
        "people",
        "consent: {type: boolean, classification: internal, protect: keep}",
        "consent: {type: boolean, classification: internal, protect: null}",
        "null}",
        "columns.consent.protect",
        "a protection is required; write 'nullify' to set cells to null, or 'keep' to leave them as they are",
    ),
    # a row filter naming an unknown column points inside the string
    Bad(
        "people",
        'research: "consent = true"',
        'research: "consnt = true"',
        "consnt",
        "row_filters.research",
        "unknown column 'consnt' (did you mean 'consent'?)",
    ),
    # a row filter for a purpose the dataset does not serve
    Bad(
        "people",
        'research: "consent = true"',
        'marketing: "consent = true"',
        "marketing:",
        "row_filters.marketing",
        "purpose 'marketing' is not a purpose of this dataset",
    ),
    # a cell rule naming an unknown column
    Bad(
        "people",
        "columns: [email]\n",
        "columns: [emial]\n",
        "emial",
        "cell_rules[0].columns[0]",
        "unknown column 'emial' (did you mean 'email'?)",
    ),
    # a cell rule cannot 'keep' (it would unmask)
    Bad(
        "people",
        "    protect: nullify\n",
        "    protect: keep\n",
        "keep\nfeatures",
        "cell_rules[0].protect",
        "a cell rule masks cells; 'keep' is a column-level protection (use e.g. 'nullify' or a generalisation)",
    ),
    # two rules with the same condition and column but different protections
    Bad(
        "people",
        "features:\n",
        "  - when: \"country = 'DE'\"\n    columns: [email]\n    protect: {partial: {show_last: 2}}\nfeatures:\n",
        "{partial",
        "cell_rules[1].protect",
        "contradicts cell rule 1 (same condition, column 'email': 'nullify' versus 'partial(mask_char=*, show_first=0, show_last=2)')",
    ),
    # a cell rule on a dropped column does nothing
    Bad(
        "people",
        "columns: [email]\n",
        "columns: [name]\n",
        "name]",
        "cell_rules[0].columns[0]",
        "has no effect on column 'name': every purpose it applies to already protects the column at least as strictly",
    ),
    # a role pursuing an unknown purpose
    Bad(
        "org",
        "analyst: {purposes: [fraud-detection]",
        "analyst: {purposes: [fraud]",
        "fraud]",
        "roles.analyst.purposes[0]",
        "unknown purpose 'fraud' (did you mean 'fraud-detection'?)",
    ),
    # a principal holding an unknown role
    Bad(
        "org",
        "svc-a: {roles: [analyst]}",
        "svc-a: {roles: [analist]}",
        "analist",
        "principals.svc-a.roles[0]",
        "unknown role 'analist' (did you mean 'analyst'?)",
    ),
    # a role with an unknown clearance
    Bad(
        "org",
        "clearance: internal}",
        "clearance: internl}",
        "internl",
        "roles.researcher.clearance",
        "unknown clearance 'internl' (did you mean 'internal'?)",
    ),
    # a dataset serving an undeclared purpose
    Bad(
        "people",
        "purposes: [fraud-detection, research]",
        "purposes: [fraud-detection, research, sales]",
        "sales",
        "purposes[2]",
        "unknown purpose 'sales'",
    ),
    # a feature approved for a purpose that no role may read features for
    Bad(
        "people",
        "purposes: [fraud-detection, research]",
        "purposes: [fraud-detection, research, marketing]",
        "marketing]\n",
        "features.profile.approved_for[1]",
        occurrence=2,
        also=(("approved_for: [fraud-detection]", "approved_for: [fraud-detection, marketing]"),),
        message="approved for 'marketing', but no role may read features for that purpose",
    ),
    # a feature over a dropped column
    Bad(
        "people",
        "columns: [country, birth_date]",
        "columns: [country, name]",
        "fraud-detection]\n",
        "features.profile.approved_for[0]",
        "column 'name' is drop for 'fraud-detection', so it cannot be a feature",
        occurrence=1,
    ),
    # a confidential column kept raw for a purpose whose role has only internal clearance
    Bad(
        "people",
        "email: {type: string, classification: confidential, protect: {email: {keep: domain}}}",
        "email: {type: string, classification: confidential, protect: keep}",
        "email:",
        "columns.email",
        "kept unprotected for 'research', but role 'researcher' (clearance internal) may read features for "
        "that purpose without clearance for confidential data",
    ),
    # fail closed: a sensitive column with no protection decided
    Bad(
        "people",
        "birth_date: {type: date, classification: confidential, protect: {generalize_date: {unit: year}}}",
        "birth_date: {type: date, classification: confidential}",
        "birth_date:",
        "columns.birth_date",
        "column classified 'confidential' has no protection for purpose 'fraud-detection'; add 'protect:' "
        "or a 'purposes: {fraud-detection: ...}' override",
    ),
    # a duplicate key is a YAML error, located at the second key
    Bad(
        "people",
        "entity: person_id\n",
        "entity: person_id\nentity: name\n",
        "entity: name",
        "",
        'invalid YAML: while constructing a mapping found duplicate key "entity" with value "name" '
        '(original value: "person_id")',
    ),
    # anchors and aliases are refused (no billion laughs)
    Bad(
        "people",
        "source: {format: csv, path: people}",
        "source: &src {format: csv, path: people}\nx_alias: *src",
        "&src",
        "source",
        "anchors and aliases are not allowed in policy files",
    ),
    # a numeric dp_only column needs clamping bounds
    Bad(
        "people",
        "protect: dp_only, dp: {bounds: [0, 1000]}}",
        "protect: dp_only}",
        "income:",
        "columns.income",
        "a numeric dp_only column needs 'dp: {bounds: [lower, upper]}'",
    ),
    # bounds must be ordered
    Bad(
        "people",
        "[0, 1000]",
        "[1000, 0]",
        "[1000, 0]",
        "columns.income.dp.bounds",
        "bounds are two finite numbers [lower, upper] with lower < upper",
    ),
    # a budget cannot be both zCDP and epsilon
    Bad(
        "people",
        "features:\n",
        "budgets:\n  research: {epsilon: 1.0, rho: 0.5}\nfeatures:\n",
        "{epsilon: 1.0",
        "budgets.research",
        "a budget is either zCDP (rho) or epsilon[/delta], not both",
    ),
    # a budget must be positive
    Bad(
        "people",
        "features:\n",
        "budgets:\n  research: {epsilon: -1}\nfeatures:\n",
        "-1",
        "budgets.research.epsilon",
        "Input should be greater than 0",
    ),
    # HE parameters below 128-bit security
    Bad(
        "people",
        "features:\n",
        "he: {coeff_mod_bit_sizes: [60, 60, 60, 60]}\nfeatures:\n",
        "{coeff_mod",
        "he",
        "coefficient modulus of 240 bits is above the 218 bits that give 128-bit security at poly_modulus_degree 8192",
    ),
    # the entity key must be a column
    Bad(
        "people",
        "entity: person_id",
        "entity: persn_id",
        "persn_id",
        "entity",
        "unknown column 'persn_id' (did you mean 'person_id'?)",
    ),
    # an invalid regular expression
    Bad(
        "people",
        "country: {type: string, classification: internal, protect: keep}",
        "country: {type: string, pattern: '[A-Z', classification: internal, protect: keep}",
        "'[A-Z'",
        "columns.country.pattern",
        "pattern is not a valid regular expression: unterminated character set at position 0",
    ),
    # an allowed value of the wrong type
    Bad(
        "people",
        "consent: {type: boolean, classification: internal, protect: keep}",
        "consent: {type: boolean, allowed: [true, 'yes'], classification: internal, protect: keep}",
        "'yes'",
        "columns.consent.allowed[1]",
        "allowed value 'yes' is not a boolean",
    ),
    # a dataset name that is not an identifier
    Bad(
        "people",
        "dataset: people",
        "dataset: People",
        "People",
        "dataset",
        "'People' is not a valid name (lowercase letters, digits and '_', starting with a letter)",
    ),
    # a per-purpose override for a purpose the dataset does not serve
    Bad(
        "people",
        "name: {type: string, classification: restricted, protect: drop}",
        "name: {type: string, classification: restricted, protect: drop, purposes: {marketing: {protect: keep}}}",
        "marketing:",
        "columns.name.purposes.marketing",
        "purpose 'marketing' is not a purpose of this dataset",
    ),
    # a deny rule must name one subject
    Bad(
        "org",
        "principals:\n",
        "deny:\n  - {role: analyst, principal: svc-a, reason: nope}\nprincipals:\n",
        "{role: analyst",
        "deny[0]",
        "a deny rule names exactly one of 'role' or 'principal'",
    ),
    # identity providers must sign with asymmetric keys (no HS/RS confusion)
    Bad(
        "org",
        "principals:\n",
        "identity_providers:\n  - {issuer: i, audience: a, jwks: j, algorithms: [HS256]}\nprincipals:\n",
        "[HS256]",
        "identity_providers[0].algorithms",
        "algorithm 'HS256' is not accepted from an identity provider (allowed: ES256, ES384, PS256, RS256, RS384, RS512)",
    ),
    # a sub-purpose whose parent is not declared
    Bad(
        "org",
        "  research.clinical:",
        "  trials.clinical:",
        "trials.clinical",
        "purposes.trials.clinical",
        "sub-purpose of 'trials', which is not declared",
    ),
]


@pytest.mark.parametrize(
    "case", BAD, ids=[f"{i:02d}-{c.path or c.message[:20]}" for i, c in enumerate(BAD)]
)
def test_when_a_policy_is_bad_then_the_exact_location_and_message_are_reported(
    case: Bad, tmp_path: Path
) -> None:
    texts = {"org": ORG, "people": DATASET}
    assert case.old in texts[case.file], "the case must change the fixture"
    texts[case.file] = texts[case.file].replace(case.old, case.new, 1)
    for old, new in case.also:
        assert old in texts[case.file]
        texts[case.file] = texts[case.file].replace(old, new, 1)
    folder = write_set(tmp_path, texts["org"], texts["people"])
    expected = case.expected(folder, texts[case.file])
    assert expected in issues_of(folder)


def test_when_many_things_are_wrong_then_every_error_is_reported_at_once(tmp_path: Path) -> None:
    dataset = DATASET.replace("entity: person_id", "entity: persn_id").replace(
        "consent = true", "consnt = true"
    )
    org = ORG.replace("svc-a: {roles: [analyst]}", "svc-a: {roles: [analist]}")
    folder = write_set(tmp_path, org, dataset)
    with pytest.raises(PolicyError) as caught:
        load_policy_set([folder])
    located = [(i.file, i.line, i.column) for i in caught.value.issues]
    assert len(located) >= 3
    assert located == sorted(located)


def test_when_two_organisation_files_are_given_then_the_second_is_refused(tmp_path: Path) -> None:
    folder = write_set(tmp_path)
    (folder / "second.yaml").write_text(ORG, encoding="utf-8")
    assert (
        f"{folder / 'second.yaml'}:1:1: organisation: a second organisation file (the first is {folder / 'org.yaml'})"
        in issues_of(folder)
    )


def test_when_no_organisation_file_is_given_then_that_is_the_error(tmp_path: Path) -> None:
    (tmp_path / "people.yaml").write_text(DATASET, encoding="utf-8")
    assert issues_of(tmp_path) == [
        f"{tmp_path / 'people.yaml'}:1:1: no organisation file among the policy files "
        "(one file must start with 'organisation:')"
    ]


def test_when_a_file_is_neither_kind_then_it_says_how_to_tell(tmp_path: Path) -> None:
    folder = write_set(tmp_path)
    (folder / "other.yaml").write_text("name: x\n", encoding="utf-8")
    assert (
        f"{folder / 'other.yaml'}:1:1: cannot tell what this file is: an organisation file starts with "
        "'organisation:', a dataset file with 'dataset:'" in issues_of(folder)
    )


def test_when_a_path_does_not_exist_then_it_is_named(tmp_path: Path) -> None:
    with pytest.raises(PolicyError) as caught:
        load_policy_set([tmp_path / "missing.yaml"])
    assert str(caught.value.issues[0]) == f"{tmp_path / 'missing.yaml'}:1:1: no such file or folder"


def test_when_yaml_tags_are_used_then_they_are_refused(tmp_path: Path) -> None:
    folder = write_set(
        tmp_path, dataset=DATASET.replace("path: people", "path: !!python/name:os.system people")
    )
    assert any(
        "YAML tags are not allowed" in issue or "invalid YAML" in issue
        for issue in issues_of(folder)
    )
