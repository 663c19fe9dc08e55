"""Benchmark: authorisation decision latency (precompiled index + LRU) vs raw Casbin enforce().

    python bench/authz.py [--roles 100] [--datasets 50] [--purposes 10] [--requests 3000] [--seed 7]

Generates a policy programmatically (roles x datasets x purposes, half of the purposes
sub-purposes of the others, deny rules on roles and principals, two feature views per
dataset), then measures `Authorizer.check` per call:

- cold: the first call per key with the decision cache empty (index lookups + checks);
- cached: the same keys again (LRU hits);

for allowed and denied requests (distinct keys, interleaved in random order), and the
raw Casbin `enforce()` of the generated model and lines on the same policy, for requests
Casbin itself allows or denies (its part of the decision: grants and deny rules). The GC
is paused while timing. Prints p50/p99 and the deny/allow p99 ratio of each.
"""

from __future__ import annotations

import argparse
import functools
import gc
import platform
import random
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import casbin

from gateway.authz import Authorizer, DatasetRef, FeatureViewRef, Resource, role_subject
from gateway.authz.casbin_model import principal_subject
from gateway.identity.principal import Principal, resolve_roles
from gateway.policy.dataset import DatasetPolicy
from gateway.policy.loader import PolicySet
from gateway.policy.organisation import Action, OrganisationPolicy

CLEARANCES = ["public", "internal", "confidential", "restricted"]
ROLE_ACTIONS = [Action.READ_FEATURES, Action.DP_QUERY, Action.HE_COMPUTE, Action.SYNTHESIZE]
PROTECTS: list[Any] = [
    "keep",
    "keep",
    "nullify",
    "drop",
    "dp_only",
    {"encrypt": "ckks"},
    {"truncate": {"keep": 3}},
]
Request = tuple[Principal, Action, str, Resource]


def generate(roles: int, datasets: int, purposes: int, seed: int) -> PolicySet:
    """A synthetic policy set: purposes (half of them nested), datasets and roles."""
    rng = random.Random(seed)
    top = [f"purpose-{i}" for i in range((purposes + 1) // 2)]
    names = top + [f"{top[i % len(top)]}.sub-{i}" for i in range(purposes - len(top))]
    dataset_names = [f"ds_{i:03d}" for i in range(datasets)]
    role_specs: dict[str, Any] = {}
    for i in range(roles):
        role_specs[f"role-{i:03d}"] = {
            "purposes": rng.sample(names, rng.randint(1, 3)),
            "actions": [a.value for a in rng.sample(ROLE_ACTIONS, rng.randint(2, 4))],
            "clearance": rng.choice(CLEARANCES[1:]),
            "datasets": ["*"]
            if rng.random() < 0.4
            else rng.sample(dataset_names, rng.randint(3, 10)),
        }
    role_names = list(role_specs)
    principals = {
        f"user-{i:03d}": {"roles": rng.sample(role_names, rng.randint(1, 2))}
        for i in range(2 * roles)
    }
    deny: list[dict[str, Any]] = []
    for i in range(max(1, roles // 5)):
        rule: dict[str, Any] = (
            {"role": rng.choice(role_names)}
            if i % 4
            else {"principal": rng.choice(list(principals))}
        )
        rule |= {"purpose": rng.choice([*names, "*"]), "reason": f"generated deny rule {i}"}
        if rng.random() < 0.5:
            rule["action"] = rng.choice(ROLE_ACTIONS).value
        if rng.random() < 0.5:
            rule["dataset"] = rng.choice(dataset_names)
        deny.append(rule)
    org = OrganisationPolicy.model_validate(
        {
            "organisation": "Benchmark",
            "clearances": CLEARANCES,
            "purposes": {p: {"statement": f"Benchmark purpose {p}, generated."} for p in names},
            "roles": role_specs,
            "principals": principals,
            "deny": deny,
        }
    )
    policies = {}
    for name in dataset_names:
        served = rng.sample(top, rng.randint(2, min(4, len(top))))
        columns: dict[str, Any] = {
            "id": {
                "type": "string",
                "classification": "internal",
                "protect": {"hash": {"salt": "s"}},
            }
        }
        for c in range(12):
            columns[f"col_{c:02d}"] = {
                "type": "string",
                "classification": rng.choice(CLEARANCES),
                "protect": rng.choice(PROTECTS),
                "purposes": {rng.choice(served): {"protect": rng.choice(PROTECTS)}},
            }
        features = {
            f"view_{v}": {
                "columns": rng.sample([f"col_{c:02d}" for c in range(12)], 4),
                "approved_for": rng.sample(served, rng.randint(1, len(served))),
            }
            for v in range(2)
        }
        policies[name] = DatasetPolicy.model_validate(
            {
                "dataset": name,
                "source": {"format": "csv", "path": name},
                "entity": "id",
                "purposes": served,
                "columns": columns,
                "features": features,
            }
        )
    return PolicySet(org, policies, [])


def requests(policies: PolicySet, count: int, seed: int) -> list[Request]:
    """Random requests, biased towards the principal's own purposes and actions."""
    rng = random.Random(seed)
    org = policies.organisation
    datasets = list(policies.datasets)
    out = []
    for _ in range(count):
        subject = rng.choice(list(org.principals))
        roles, clearance = resolve_roles(org, org.principals[subject].roles)
        principal = Principal(
            subject=subject,
            roles=roles,
            clearance=clearance,
            auth_method="api_key",
            credential_id="bench",
            expires_at=None,
        )
        held = [p for r in roles for p in org.roles[r].purposes]
        purpose = rng.choice(held) if rng.random() < 0.8 else rng.choice(list(org.purposes))
        if rng.random() < 0.3 and purpose.count(".") == 0:
            subs = [p for p in org.purposes if p.startswith(purpose + ".")]
            purpose = rng.choice(subs) if subs else purpose
        actions = [a for r in roles for a in org.roles[r].actions]
        action = rng.choice(actions) if rng.random() < 0.8 else rng.choice(ROLE_ACTIONS)
        dataset = rng.choice(datasets)
        resource: Resource = DatasetRef(dataset)
        if action is Action.READ_FEATURES and rng.random() < 0.7:
            resource = FeatureViewRef(
                dataset, rng.choice(list(policies.datasets[dataset].features))
            )
        out.append((principal, action, purpose, resource))
    return out


def _key(request: Request) -> tuple[Any, ...]:
    principal, action, purpose, resource = request
    return (principal.roles, principal.subject, action, purpose, resource)


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def timed(calls: Sequence[Callable[[], object]]) -> list[float]:
    """Per-call latency in microseconds, GC paused."""
    out = []
    clock = time.perf_counter_ns
    gc.collect()
    gc.disable()
    try:
        for call in calls:
            t0 = clock()
            call()
            out.append((clock() - t0) / 1000)
    finally:
        gc.enable()
    return out


def row(label: str, allow: Sequence[float], deny: Sequence[float]) -> str:
    a99, d99 = percentile(allow, 0.99), percentile(deny, 0.99)
    return (
        f"{label:<34} {statistics.median(allow):>9.2f} {a99:>9.2f} "
        f"{statistics.median(deny):>9.2f} {d99:>9.2f} {d99 / a99:>7.2f}"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--roles", type=int, default=100)
    parser.add_argument("--datasets", type=int, default=50)
    parser.add_argument("--purposes", type=int, default=10)
    parser.add_argument("--requests", type=int, default=3000, help="distinct keys per side")
    parser.add_argument("--casbin-requests", type=int, default=300, help="enforce() calls per side")
    parser.add_argument("--repeats", type=int, default=5, help="cached passes over the keys")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)

    t0 = time.perf_counter()
    policies = generate(args.roles, args.datasets, args.purposes, args.seed)
    t1 = time.perf_counter()
    authz = Authorizer(policies, cache_size=1 << 20)
    t2 = time.perf_counter()
    stats = authz.stats()
    lines = authz.casbin.lines
    print(
        f"python {platform.python_version()}, casbin {getattr(casbin, '__version__', '1.43')}, "
        f"{platform.machine()}, {sys.platform}"
    )
    print(
        f"policy: {args.roles} roles x {args.datasets} datasets x {args.purposes} purposes, "
        f"{len(policies.organisation.deny)} deny rules, {len(lines)} Casbin lines "
        f"({sum(x.eft == 'deny' for x in lines)} deny); generated in {t1 - t0:.2f} s"
    )
    print(
        f"index: {stats['grant_entries']} grant + {stats['deny_entries']} deny entries, "
        f"built (Casbin probes included) in {t2 - t1:.2f} s"
    )

    allowed: dict[Any, Request] = {}
    denied: dict[Any, Request] = {}
    rules: dict[Any, str] = {}
    for request in requests(policies, 60 * args.requests, args.seed):
        principal, action, purpose, resource = request
        key = _key(request)
        if key in allowed or key in denied:
            continue
        decision = authz.check(*request)
        side = allowed if decision.allowed else denied
        if len(side) < args.requests:
            side[key] = request
            rules[key] = decision.rule
        if len(allowed) >= args.requests and len(denied) >= args.requests:
            break
    kinds: dict[str, int] = {}
    for key in denied:
        kind = rules[key].split(":")[0] if rules[key].startswith("deny[") else rules[key]
        kind = (
            "deny rule"
            if kind.startswith("deny[")
            else kind.split(".")[-1]
            if "." in kind
            else kind
        )
        kinds[kind] = kinds.get(kind, 0) + 1
    print(
        f"requests: {len(allowed)} allowed, {len(denied)} denied keys; denials by check: "
        + ", ".join(f"{k} {v}" for k, v in sorted(kinds.items(), key=lambda kv: -kv[1]))
    )

    rng = random.Random(args.seed)
    mixed = [(True, r) for r in allowed.values()] + [(False, r) for r in denied.values()]
    rng.shuffle(mixed)
    calls = [functools.partial(authz.check, *r) for _, r in mixed]

    authz.clear_cache()
    cold = timed(calls)
    cached_runs = [timed(calls) for _ in range(args.repeats)]

    def split(values: list[float]) -> tuple[list[float], list[float]]:
        pairs = list(zip(mixed, values, strict=True))
        return [v for (ok, _), v in pairs if ok], [v for (ok, _), v in pairs if not ok]

    cold_allow, cold_deny = split(cold)
    cached_allow = [v for run in cached_runs for v in split(run)[0]]
    cached_deny = [v for run in cached_runs for v in split(run)[1]]
    forbidden = [
        i
        for i, (ok, r) in enumerate(mixed)
        if not ok and not rules[_key(r)].startswith("resource.")
    ]
    cold_403 = [cold[i] for i in forbidden]
    cached_403 = [run[i] for run in cached_runs for i in forbidden]

    enforcer = authz.casbin.new_enforcer()
    casbin_allow: list[tuple[frozenset[str], str, str, str]] = []
    casbin_deny: list[tuple[frozenset[str], str, str, str]] = []
    for _, (principal, action, purpose, resource) in mixed:
        subjects = frozenset(
            {role_subject(r) for r in principal.roles} | {principal_subject(principal.subject)}
        )
        obj = "*" if resource is None else resource.dataset
        target = (
            casbin_allow if enforcer.enforce(subjects, obj, purpose, action.value) else casbin_deny
        )
        if len(target) < args.casbin_requests:
            target.append((subjects, obj, purpose, action.value))
        if len(casbin_allow) >= args.casbin_requests and len(casbin_deny) >= args.casbin_requests:
            break
    casbin_mixed = [(True, r) for r in casbin_allow] + [(False, r) for r in casbin_deny]
    rng.shuffle(casbin_mixed)
    raw = timed([functools.partial(enforcer.enforce, *r) for _, r in casbin_mixed])
    raw_allow = [v for (ok, _), v in zip(casbin_mixed, raw, strict=True) if ok]
    raw_deny = [v for (ok, _), v in zip(casbin_mixed, raw, strict=True) if not ok]
    explicit = [
        v
        for (ok, r), v in zip(casbin_mixed, raw, strict=True)
        if not ok and enforcer.enforce_ex(*r)[1]
    ]

    print()
    print(
        f"{'latency (µs)':<34} {'allow p50':>9} {'allow p99':>9} {'deny p50':>9} "
        f"{'deny p99':>9} {'d/a p99':>7}"
    )
    print(
        row(f"Authorizer.check cold (n={len(cold_allow)}+{len(cold_deny)})", cold_allow, cold_deny)
    )
    print(row(f"  403 denials only (n={len(cold_403)})", cold_allow, cold_403))
    print(row(f"Authorizer.check cached (x{args.repeats})", cached_allow, cached_deny))
    print(row("  403 denials only", cached_allow, cached_403))
    print(row(f"casbin enforce() (n={len(raw_allow)}+{len(raw_deny)})", raw_allow, raw_deny))
    if explicit:
        p50, p99 = statistics.median(explicit), percentile(explicit, 0.99)
        print(
            f"  casbin denied by a deny line: n={len(explicit)}, p50 {p50:.0f} µs, "
            f"p99 {p99:.0f} µs (deny lines come last: still a near-full scan)"
        )
    print()

    def ratio(deny: list[float], allow: list[float]) -> float:
        return percentile(deny, 0.99) / percentile(allow, 0.99)

    print(
        f"deny/allow p99 ratio: cold {ratio(cold_deny, cold_allow):.2f} "
        f"(403 only {ratio(cold_403, cold_allow):.2f}), "
        f"cached {ratio(cached_deny, cached_allow):.2f} "
        f"(403 only {ratio(cached_403, cached_allow):.2f}); target <= 1.5"
    )
    base = statistics.median(raw_allow)
    print(
        f"speed-up vs casbin enforce() p50 (allowed requests): "
        f"cold x{base / statistics.median(cold_allow):.0f}, "
        f"cached x{base / statistics.median(cached_allow):.0f}"
    )


if __name__ == "__main__":
    main()
