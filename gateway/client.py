"""A small Python client for the gateway's feature routes (Kubeflow components, the demo).

client = GatewayClient("https://gateway", credential=api_key, purpose="fraud-detection")
online = client.get_online_features(["customer_profile:country"], {"customer_id": [...]})
training = client.get_historical_features(entity_df, ["customer_risk:credit_score"])
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import httpx

if TYPE_CHECKING:
    import pandas as pd  # type: ignore[import-untyped]

__all__ = ["GatewayClient", "GatewayClientError"]

PARQUET = "application/vnd.apache.parquet"


class GatewayClientError(RuntimeError):
    """The gateway refused a request; `status` and the problem `detail` say why."""

    def __init__(self, status: int, detail: str, body: Mapping[str, Any] | None = None) -> None:
        super().__init__(f"{status}: {detail}")
        self.status = status
        self.detail = detail
        self.body = dict(body or {})


class GatewayClient:
    """Feature retrieval for one purpose with one credential (API key or bearer token)."""

    def __init__(
        self,
        base_url: str,
        credential: str,
        purpose: str,
        *,
        timeout: float = 60.0,
        client: httpx.Client | None = None,
    ) -> None:
        self.purpose = purpose
        self._headers = {"Authorization": f"Bearer {credential}", "X-Purpose": purpose}
        self._client = client or httpx.Client(base_url=base_url, timeout=timeout)
        self._owned = client is None

    def __enter__(self) -> GatewayClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the HTTP connection pool (if this client created it)."""
        if self._owned:
            self._client.close()

    @staticmethod
    def _check(response: httpx.Response) -> None:
        if response.status_code >= 400:
            try:
                body = response.json()
            except ValueError:
                body = {"detail": response.text[:500]}
            raise GatewayClientError(response.status_code, str(body.get("detail", "")), body)

    def get_online_features(
        self,
        features: Sequence[str] | str,
        entities: Mapping[str, Sequence[Any]] | Sequence[Mapping[str, Any]],
    ) -> pd.DataFrame:
        """Latest values: `features` as `view:feature` refs, or a feature service name (str).

        `entities` is {key: [values]} or a list of {key: value} rows; one row per entity out.
        """
        import pandas as pd

        columns = _columns(entities)
        body: dict[str, Any] = {"entities": columns}
        if isinstance(features, str):
            body["feature_service"] = features
        else:
            body["features"] = list(features)
        response = self._client.post("/v1/features/online", json=body, headers=self._headers)
        self._check(response)
        return pd.DataFrame(response.json()["results"])

    def get_historical_features(
        self, entity_df: pd.DataFrame, features: Sequence[str] | str
    ) -> pd.DataFrame:
        """Point-in-time-correct training data for `entity_df` (keys + `event_timestamp`)."""
        import pyarrow as pa  # type: ignore[import-untyped]
        import pyarrow.parquet as pq  # type: ignore[import-untyped]

        sink = io.BytesIO()
        pq.write_table(pa.Table.from_pandas(entity_df, preserve_index=False), sink)
        headers = {**self._headers, "Content-Type": PARQUET}
        if isinstance(features, str):
            headers["X-Feature-Service"] = features
        else:
            headers["X-Features"] = ",".join(features)
        response = self._client.post(
            "/v1/features/historical", content=sink.getvalue(), headers=headers
        )
        self._check(response)
        frame: pd.DataFrame = pq.read_table(pa.BufferReader(response.content)).to_pandas()
        return frame


def _columns(
    entities: Mapping[str, Sequence[Any]] | Sequence[Mapping[str, Any]],
) -> dict[str, list[Any]]:
    if isinstance(entities, Mapping):
        return {k: list(v) for k, v in entities.items()}
    out: dict[str, list[Any]] = {}
    for row in entities:
        for key, value in row.items():
            out.setdefault(key, []).append(value)
    return out
