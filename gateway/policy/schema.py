"""JSON Schema of the policy files, for editors (`gateway policy schema`)."""

from __future__ import annotations

from typing import Any

from gateway.policy.dataset import DatasetPolicy
from gateway.policy.organisation import OrganisationPolicy

__all__ = ["policy_json_schema"]


def policy_json_schema(kind: str = "any") -> dict[str, Any]:
    """The JSON Schema of organisation files, dataset files, or either ('any')."""
    from masking.catalog import REGISTRY

    org = OrganisationPolicy.model_json_schema()
    ds = DatasetPolicy.model_json_schema()
    defs: dict[str, Any] = {}
    for schema in (org, ds):
        defs.update(schema.pop("$defs", {}))
    words = ["keep", "drop", "dp_only", "encrypt"]
    strategies: dict[str, Any] = {
        "encrypt": {
            "anyOf": [
                {"enum": ["ckks", "bfv"]},
                {
                    "type": "object",
                    "properties": {"scheme": {"enum": ["ckks", "bfv"]}},
                    "additionalProperties": False,
                },
            ]
        },
    }
    for strategy in REGISTRY:
        params = strategy.Params.model_json_schema()
        defs.update(params.pop("$defs", {}))
        params["description"] = strategy.description
        strategies[strategy.name] = {"anyOf": [params, {"type": "null"}]}
        if not any(f.is_required() for f in strategy.Params.model_fields.values()):
            words.append(strategy.name)
    defs["ProtectionSpec"] = {
        "description": "A protection: a word, or a one-key mapping {strategy: parameters}.",
        "anyOf": [
            {"enum": words},
            {
                "type": "object",
                "minProperties": 1,
                "maxProperties": 1,
                "properties": strategies,
                "additionalProperties": False,
            },
        ],
    }
    defs["OrganisationPolicy"] = org
    defs["DatasetPolicy"] = ds
    chosen: dict[str, Any]
    if kind == "organisation":
        chosen = {"$ref": "#/$defs/OrganisationPolicy"}
    elif kind == "dataset":
        chosen = {"$ref": "#/$defs/DatasetPolicy"}
    else:
        chosen = {
            "anyOf": [{"$ref": "#/$defs/OrganisationPolicy"}, {"$ref": "#/$defs/DatasetPolicy"}]
        }
    linked: dict[str, Any] = _link_protections(
        {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "title": "Data-governance gateway policy file",
            **chosen,
            "$defs": defs,
        }
    )
    return linked


def _link_protections(node: Any) -> Any:
    """Replace the models' protection placeholders with a reference to ProtectionSpec."""
    if isinstance(node, dict):
        if node.get("x-protection") is True:
            return {"$ref": "#/$defs/ProtectionSpec"}
        return {key: _link_protections(value) for key, value in node.items()}
    if isinstance(node, list):
        return [_link_protections(item) for item in node]
    return node
