"""Property tests: whatever bytes a policy file holds, the loader raises only PolicyError."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.errors import PolicyError
from gateway.policy import load_policy_set

EXAMPLES = Path(__file__).resolve().parents[3] / "examples" / "policies"
ORG_TEXT = (EXAMPLES / "org.yaml").read_text(encoding="utf-8")
CUSTOMERS_TEXT = (EXAMPLES / "customers.yaml").read_text(encoding="utf-8")

YAML_NOISE = st.sampled_from(
    [":", "- ", "{", "}", "[", "]", "&a ", "*a", "!!python/object ", "? ", "|", ">", "'", '"',
     "\t", "\n", "  ", "null", "~", "1e999", "-.inf", ".nan", "0x1F", "<<: ", "%YAML 1.1\n", "---\n",
     "\x00", "\ufeff", "é", "😀", "key: value\n", "dataset: x\n", "organisation: y\n"]
)


def load_texts(org: str, dataset: str) -> None:
    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / "org.yaml").write_text(org, encoding="utf-8", errors="surrogatepass")
        (Path(folder) / "ds.yaml").write_text(dataset, encoding="utf-8", errors="surrogatepass")
        try:
            load_policy_set([folder])
        except PolicyError as exc:
            assert exc.issues, "a PolicyError always carries at least one issue"
            for issue in exc.issues:
                assert issue.line >= 1 and issue.column >= 1


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=400))
def test_when_a_dataset_file_is_random_text_then_only_policy_errors_are_raised(text: str) -> None:
    load_texts(ORG_TEXT, text)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, len(CUSTOMERS_TEXT)), st.integers(0, 40), st.lists(YAML_NOISE, max_size=4))
def test_when_a_good_file_is_mutated_then_only_policy_errors_are_raised(
    position: int, cut: int, noise: list[str]
) -> None:
    mutated = CUSTOMERS_TEXT[:position] + "".join(noise) + CUSTOMERS_TEXT[position + cut :]
    load_texts(ORG_TEXT, mutated)


@settings(max_examples=60, deadline=None)
@given(st.integers(0, len(ORG_TEXT)), st.lists(YAML_NOISE, min_size=1, max_size=3))
def test_when_the_organisation_file_is_mutated_then_only_policy_errors_are_raised(
    position: int, noise: list[str]
) -> None:
    load_texts(ORG_TEXT[:position] + "".join(noise) + ORG_TEXT[position:], CUSTOMERS_TEXT)


def test_when_a_billion_laughs_document_is_loaded_then_it_is_refused_quickly(tmp_path: Path) -> None:
    lines = ['dataset: x', 'a0: &a0 ["lol"]']
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 10)]
    (tmp_path / "org.yaml").write_text(ORG_TEXT, encoding="utf-8")
    (tmp_path / "bomb.yaml").write_text("\n".join(lines) + "\n", encoding="utf-8")
    try:
        load_policy_set([tmp_path])
    except PolicyError as exc:
        assert any("anchors and aliases" in issue.message for issue in exc.issues)
    else:  # pragma: no cover - the bomb must never load
        raise AssertionError("a billion-laughs file loaded")


def test_when_a_file_is_too_large_then_it_is_refused(tmp_path: Path) -> None:
    (tmp_path / "org.yaml").write_text(ORG_TEXT, encoding="utf-8")
    (tmp_path / "big.yaml").write_text("dataset: x\n" + "# padding\n" * 120_000, encoding="utf-8")
    try:
        load_policy_set([tmp_path])
    except PolicyError as exc:
        assert any("policy files are limited to" in issue.message for issue in exc.issues)
    else:  # pragma: no cover
        raise AssertionError("an oversized file loaded")
