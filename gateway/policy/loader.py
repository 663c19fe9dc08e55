"""Load a policy set: every file parsed, validated and cross-checked once, all errors collected."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import Any

from pydantic import BaseModel, ValidationError

from gateway.errors import NotFound, PolicyError, PolicyIssue
from gateway.policy.checks import Finding, check_dataset, check_organisation
from gateway.policy.dataset import DatasetPolicy
from gateway.policy.locate import did_you_mean, issues_from_validation
from gateway.policy.organisation import OrganisationPolicy
from gateway.policy.source import Located, Locator, dotted, read_yaml

__all__ = ["PolicySet", "load_policy_set", "policy_files"]

MAX_FILES = 1000


class PolicySet:
    """A validated, immutable set of policies: one organisation file and its datasets."""

    __slots__ = ("_datasets", "_files", "_organisation", "_version")

    def __init__(
        self,
        organisation: OrganisationPolicy,
        datasets: Mapping[str, DatasetPolicy],
        files: Sequence[str],
    ) -> None:
        self._organisation = organisation
        self._datasets = MappingProxyType(dict(sorted(datasets.items())))
        self._files = tuple(files)
        self._version = _digest(
            {
                "organisation": _canonical(organisation),
                "datasets": {name: _canonical(ds) for name, ds in self._datasets.items()},
            }
        )

    @property
    def organisation(self) -> OrganisationPolicy:
        """The organisation policy."""
        return self._organisation

    @property
    def datasets(self) -> Mapping[str, DatasetPolicy]:
        """Dataset policies by name (read-only)."""
        return self._datasets

    @property
    def files(self) -> tuple[str, ...]:
        """The files this set was loaded from."""
        return self._files

    @property
    def version(self) -> str:
        """SHA-256 of the set's canonical content: the policy version recorded everywhere."""
        return self._version

    @property
    def short_version(self) -> str:
        """The first 12 hex digits of the version, for display."""
        return self._version[:12]

    def dataset_version(self, name: str) -> str:
        """SHA-256 of the organisation file and one dataset's canonical content."""
        return _digest(
            {
                "organisation": _canonical(self._organisation),
                "dataset": _canonical(self.dataset(name)),
            }
        )

    def dataset(self, name: str) -> DatasetPolicy:
        """The dataset policy called `name`, or NotFound."""
        try:
            return self._datasets[name]
        except KeyError:
            raise NotFound(
                f"no dataset policy named '{name}'{did_you_mean(name, self._datasets)}"
            ) from None

    @property
    def lowest_clearance(self) -> str:
        """The least sensitive clearance level: columns so classified may default to keep."""
        return self._organisation.clearances[0]

    def __repr__(self) -> str:
        return f"PolicySet(version={self.short_version}, datasets={list(self._datasets)})"


def _canonical(model: BaseModel) -> Any:
    return model.model_dump(mode="json", exclude_none=True)


def _digest(content: Any) -> str:
    text = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def policy_files(paths: Iterable[Path | str]) -> tuple[list[Path], list[PolicyIssue]]:
    """Expand files and folders (their *.yaml and *.yml, recursively) into a sorted file list."""
    files: list[Path] = []
    issues: list[PolicyIssue] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found = sorted(
                p for p in path.rglob("*") if p.suffix in (".yaml", ".yml") and p.is_file()
            )
            if not found:
                issues.append(
                    PolicyIssue(str(path), 1, 1, "", "folder holds no .yaml or .yml policy files")
                )
            files.extend(found)
        elif path.is_file():
            files.append(path)
        else:
            issues.append(PolicyIssue(str(path), 1, 1, "", "no such file or folder"))
    unique = list(dict.fromkeys(files))
    if len(unique) > MAX_FILES:
        issues.append(
            PolicyIssue(str(unique[MAX_FILES]), 1, 1, "", f"more than {MAX_FILES} policy files")
        )
        unique = unique[:MAX_FILES]
    return unique, issues


def load_policy_set(paths: Iterable[Path | str]) -> PolicySet:
    """Load and validate policy files and folders; PolicyError lists every problem found."""
    files, issues = policy_files(paths)
    organisations: list[tuple[OrganisationPolicy, Locator]] = []
    datasets: list[tuple[DatasetPolicy, Locator]] = []
    organisation_files = 0
    for path in files:
        parsed = read_yaml(path)
        if isinstance(parsed, list):
            issues.extend(parsed)
            continue
        model = _classify(parsed, issues)
        if model is None:
            continue
        organisation_files += model is OrganisationPolicy
        validated = _validate(model, parsed, issues)
        if isinstance(validated, OrganisationPolicy):
            organisations.append((validated, parsed.locator))
        elif isinstance(validated, DatasetPolicy):
            datasets.append((validated, parsed.locator))
    organisation = _one_organisation(organisations, files, issues, organisation_files)
    if organisation is not None:
        org, org_locator = organisation
        issues.extend(_locate(check_organisation(org), org_locator))
        names: dict[str, Locator] = {}
        for ds, locator in datasets:
            if ds.dataset in names:
                issues.append(
                    locator.issue(
                        ("dataset",),
                        f"dataset '{ds.dataset}' is also defined in {names[ds.dataset].file}",
                    )
                )
                continue
            names[ds.dataset] = locator
            issues.extend(_locate(check_dataset(ds, org), locator))
    if issues or organisation is None:
        raise PolicyError(issues)
    return PolicySet(
        organisation[0], {ds.dataset: ds for ds, _ in datasets}, [str(f) for f in files]
    )


def _classify(parsed: Located, issues: list[PolicyIssue]) -> type[BaseModel] | None:
    data = parsed.data
    if not isinstance(data, dict):
        issues.append(
            parsed.locator.issue((), "a policy file is a mapping of keys at its top level")
        )
        return None
    if "dataset" in data and "organisation" in data:
        issues.append(
            parsed.locator.issue(
                ("organisation",),
                "a file is either an organisation file or a dataset file, not both",
                at_key=True,
            )
        )
        return None
    if "dataset" in data:
        return DatasetPolicy
    if "organisation" in data:
        return OrganisationPolicy
    issues.append(
        parsed.locator.issue(
            (),
            "cannot tell what this file is: an organisation file starts with "
            "'organisation:', a dataset file with 'dataset:'",
        )
    )
    return None


def _validate(
    model: type[BaseModel], parsed: Located, issues: list[PolicyIssue]
) -> BaseModel | None:
    try:
        return model.model_validate(parsed.data)
    except ValidationError as exc:
        issues.extend(issues_from_validation(exc, model, parsed.locator))
        return None


def _one_organisation(
    found: list[tuple[OrganisationPolicy, Locator]],
    files: list[Path],
    issues: list[PolicyIssue],
    organisation_files: int,
) -> tuple[OrganisationPolicy, Locator] | None:
    for _, locator in found[1:]:
        issues.append(
            locator.issue(
                ("organisation",),
                f"a second organisation file (the first is {found[0][1].file})",
                at_key=True,
            )
        )
    if not files and not issues:
        issues.append(PolicyIssue("<none>", 1, 1, "", "no policy files given"))
    elif files and organisation_files == 0:
        issues.append(
            PolicyIssue(
                str(files[0]),
                1,
                1,
                "",
                "no organisation file among the policy "
                "files (one file must start with 'organisation:')",
            )
        )
    return found[0] if found else None


def _locate(findings: Iterable[Finding], locator: Locator) -> list[PolicyIssue]:
    out = []
    for finding in findings:
        if finding.offset is not None:
            line, column = locator.within(finding.path, *finding.offset)
            out.append(
                PolicyIssue(locator.file, line, column, dotted(finding.path), finding.message)
            )
        else:
            out.append(locator.issue(finding.path, finding.message, at_key=finding.at_key))
    return out
