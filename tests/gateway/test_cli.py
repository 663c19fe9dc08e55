"""The `gateway` command: exit codes, located errors without tracebacks, and fast startup."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.cli import main

HEAVY = ("pyspark", "torch", "sdv", "tenseal", "feast", "opendp", "pandas", "pyarrow")


def run(
    argv: list[str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> tuple[int, str, str]:
    """Run the console entry point in-process; returns (exit code, stdout, stderr)."""
    monkeypatch.setattr(sys, "argv", ["gateway", *argv])
    monkeypatch.setenv("COLUMNS", "200")
    code = 0
    try:
        main()
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def test_when_policies_are_good_then_check_prints_the_version(
    example_policies: Path, capsys, monkeypatch
) -> None:
    code, out, _ = run(["policy", "check", str(example_policies)], capsys, monkeypatch)
    assert code == 0
    assert out.startswith("ok policy version ")
    assert "dataset customers: 17 columns" in out


def test_when_asked_for_json_then_check_prints_a_machine_readable_summary(
    example_policies: Path, capsys, monkeypatch
) -> None:
    code, out, _ = run(["policy", "check", "--json", str(example_policies)], capsys, monkeypatch)
    summary = json.loads(out)
    assert code == 0
    assert len(summary["version"]) == 64
    assert summary["datasets"]["transactions"]["feature_views"] == ["transaction_facts"]


def test_when_a_policy_is_bad_then_check_exits_2_with_located_errors_and_no_traceback(
    example_policies: Path, tmp_path: Path, capsys, monkeypatch
) -> None:
    for name in ("org.yaml", "transactions.yaml"):
        (tmp_path / name).write_text((example_policies / name).read_text())
    bad = (
        (example_policies / "customers.yaml")
        .read_text()
        .replace("{tokenize: {key: customer-key}}", "{tokenise: {key: customer-key}}")
    )
    (tmp_path / "customers.yaml").write_text(bad)
    code, _, err = run(["policy", "check", str(tmp_path)], capsys, monkeypatch)
    assert code == 2
    assert "Traceback" not in err
    line = next(i for i, text in enumerate(bad.splitlines(), 1) if "tokenise" in text)
    assert (
        f"{tmp_path / 'customers.yaml'}:{line}:14: columns.customer_id.protect: unknown protection 'tokenise' (did you mean 'tokenize'?)"
        in err
    )
    assert err.rstrip().endswith("1 policy error")


def test_when_explaining_a_purpose_then_each_column_and_row_filter_is_shown(
    example_policies: Path, capsys, monkeypatch
) -> None:
    code, out, _ = run(
        ["policy", "explain", "customers", "--purpose", "marketing", "-p", str(example_policies)],
        capsys,
        monkeypatch,
    )
    assert code == 0
    assert "encrypt_deterministic(key=contact-key)" in out
    assert "row filter: keep rows where consent_marketing = true" in out
    assert "DP zone only" in out  # income is dp_only for marketing


def test_when_explaining_an_unknown_dataset_then_a_clear_error_names_it(
    example_policies: Path, capsys, monkeypatch
) -> None:
    code, _, err = run(
        ["policy", "explain", "customer", "--purpose", "marketing", "-p", str(example_policies)],
        capsys,
        monkeypatch,
    )
    assert code == 1
    assert err.strip() == "error: no dataset policy named 'customer' (did you mean 'customers'?)"


def test_when_explaining_a_purpose_the_dataset_does_not_serve_then_it_says_so(
    example_policies: Path, capsys, monkeypatch
) -> None:
    code, _, err = run(
        [
            "policy",
            "explain",
            "transactions",
            "--purpose",
            "marketing",
            "-p",
            str(example_policies),
        ],
        capsys,
        monkeypatch,
    )
    assert code == 1
    assert "dataset 'transactions' is not available for purpose 'marketing'" in err


def test_when_asked_for_the_schema_then_it_describes_protections_for_editors(
    capsys, monkeypatch
) -> None:
    code, out, _ = run(["policy", "schema", "--kind", "dataset"], capsys, monkeypatch)
    schema = json.loads(out)
    assert code == 0
    assert schema["$ref"] == "#/$defs/DatasetPolicy"
    spec = schema["$defs"]["ProtectionSpec"]
    assert "nullify" in spec["anyOf"][0]["enum"]
    assert "tokenize" in spec["anyOf"][1]["properties"]
    assert schema["$defs"]["ColumnSpec"]["properties"]["protect"] == {
        "$ref": "#/$defs/ProtectionSpec"
    }


def test_when_the_schema_kind_is_unknown_then_exit_code_is_2(capsys, monkeypatch) -> None:
    code, _, err = run(["policy", "schema", "--kind", "nonsense"], capsys, monkeypatch)
    assert code == 2
    assert "--kind must be" in err


@pytest.mark.parametrize("argv", [["--help"], ["policy", "check", "examples/policies"]])
def test_when_help_or_policy_check_runs_then_no_heavy_library_is_imported(argv: list[str]) -> None:
    repo = Path(__file__).resolve().parents[2]
    script = (
        "import sys\n"
        f"sys.argv = ['gateway', *{argv!r}]\n"
        "from gateway.cli import app\n"
        "try:\n    app()\nexcept SystemExit:\n    pass\n"
        f"heavy = sorted({{m.split('.')[0] for m in sys.modules}} & set({HEAVY!r}))\n"
        "print('HEAVY', heavy)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=repo,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "HEAVY []" in result.stdout
