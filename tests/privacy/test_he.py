"""Homomorphic encryption: keys, packing, encrypted aggregates, signed envelopes, decryption.

Tolerances (stated per test, checked against numpy on the same data):
- CKKS aggregates (sum, mean, variance, weighted sum) at the default parameters: relative
  error <= 1e-6 (the contract); masked sums also <= 1e-9, which the uncompensated TenSEAL
  rescale bias (1.34e-7) would fail.
- CKKS linear scores: |error| <= 1e-6 * max(1, |score|) (the error is absolute, ~1e-7 for
  16 features, so scores near 0 cannot meet a purely relative bound).
- BFV sums, counts and means: exact.
"""

from __future__ import annotations

import json
import stat
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from privacy.he import (
    ChunkIndex,
    EncryptedColumn,
    Envelope,
    FingerprintMismatch,
    HeEvaluator,
    HeKeyError,
    HeLimitExceeded,
    HeParams,
    HeRangeError,
    HeUnsupported,
    KeyPair,
    PublicContext,
    SecretContext,
    SignatureInvalid,
    TooFewRows,
    decrypt,
    encrypt_column,
    enforce_limit,
    estimate,
    generate_keys,
    generate_signing_key,
    load_public_context,
    load_secret_context,
    pack_column,
    unpack_column,
    verify_key_bytes,
)

ROWS = 100_000  # incomes 0..500,000, as in the accuracy brief
RTOL = 1e-6


@pytest.fixture(scope="module")
def ckks() -> KeyPair:
    return generate_keys(HeParams(), "ckks-test")


@pytest.fixture(scope="module")
def bfv() -> KeyPair:
    return generate_keys(HeParams(scheme="bfv"), "bfv-test")


@pytest.fixture(scope="module")
def public(ckks: KeyPair) -> PublicContext:
    return ckks.public_context()


@pytest.fixture(scope="module")
def secret(ckks: KeyPair) -> SecretContext:
    return ckks.secret_context()


@pytest.fixture(scope="module")
def signer() -> Ed25519PrivateKey:
    return generate_signing_key()


@pytest.fixture(scope="module")
def evaluator(public: PublicContext, signer: Ed25519PrivateKey) -> HeEvaluator:
    return HeEvaluator(public, signer)


@pytest.fixture(scope="module")
def incomes() -> npt.NDArray[np.float64]:
    return np.random.default_rng(20240601).uniform(0, 500_000, ROWS)


@pytest.fixture(scope="module")
def income_column(incomes: npt.NDArray[np.float64], public: PublicContext) -> EncryptedColumn:
    return encrypt_column("income", incomes, public, squares=True)


@pytest.fixture(scope="module")
def selection(incomes: npt.NDArray[np.float64]) -> npt.NDArray[np.bool_]:
    return np.random.default_rng(5).random(incomes.size) < 0.3  # a plaintext filter


def _open(envelope: Envelope, secret: SecretContext, signer: Ed25519PrivateKey, **kw: Any) -> Any:
    return decrypt(envelope, secret, verify_key_bytes(signer), 10, **kw)


# -- keys -----------------------------------------------------------------------------------


def test_when_keys_are_written_then_the_secret_is_0600_and_the_public_half_has_no_secret(
    ckks: KeyPair, tmp_path: Path
) -> None:
    import tenseal as ts

    files = ckks.write_keys(tmp_path / "keys")
    assert files.secret.name == "ckks-test.secret"
    assert stat.S_IMODE(files.secret.stat().st_mode) == 0o600
    public_ctx = ts.context_from(files.public.read_bytes())
    assert not public_ctx.is_private() and not public_ctx.has_secret_key()
    assert public_ctx.has_galois_keys() and not public_ctx.has_relin_keys()
    meta = json.loads(files.metadata.read_text())
    assert meta["fingerprint"] == ckks.fingerprint and meta["key_id"] == ckks.key_id
    assert meta["relinearisation_keys"] is False and meta["rotation_keys"] is True
    assert "secret" not in files.metadata.read_text().replace("ckks-test.secret", "")
    held = load_secret_context(files.secret)
    assert (
        held.fingerprint
        == ckks.fingerprint
        == load_public_context(files.public.read_bytes()).fingerprint
    )


def test_when_key_files_exist_then_write_keys_refuses_to_overwrite(
    ckks: KeyPair, tmp_path: Path
) -> None:
    ckks.write_keys(tmp_path)
    with pytest.raises(FileExistsError):
        ckks.write_keys(tmp_path)


def test_when_the_secret_file_is_group_readable_then_loading_refuses(
    ckks: KeyPair, tmp_path: Path
) -> None:
    files = ckks.write_keys(tmp_path)
    files.secret.chmod(0o640)
    with pytest.raises(HeKeyError, match="0640"):
        load_secret_context(files.secret)


def test_when_load_public_context_gets_a_secret_context_then_it_refuses(ckks: KeyPair) -> None:
    with pytest.raises(HeKeyError, match="secret key"):
        load_public_context(ckks.secret_bytes)


def test_when_only_slotwise_operations_are_configured_then_no_rotation_keys_are_shipped(
    ckks: KeyPair, signer: Ed25519PrivateKey
) -> None:
    lean = generate_keys(HeParams(), "scores-only", operations=["linear_scores", "count"])
    ctx = lean.public_context()
    assert not ctx.rotations and not ctx.context.has_relin_keys()
    assert len(lean.public_bytes) < len(ckks.public_bytes) / 20  # ~0.47 MB vs ~17 MB
    column = encrypt_column("x", np.arange(50.0), ctx)
    with pytest.raises(HeUnsupported, match="rotation keys"):
        HeEvaluator(ctx, signer).sum(column)


def test_when_the_serving_path_tries_to_decrypt_then_it_fails(
    evaluator: HeEvaluator,
    public: PublicContext,
    income_column: EncryptedColumn,
    signer: Ed25519PrivateKey,
) -> None:
    import tenseal as ts

    envelope = evaluator.sum(income_column)
    vector = ts.ckks_vector_from(public.context, envelope.ciphertext_bytes()[0])
    with pytest.raises(ValueError, match="secret_key"):
        vector.decrypt()  # TenSEAL itself: the public context holds no secret key
    with pytest.raises(HeKeyError):
        decrypt(envelope, public, verify_key_bytes(signer), 10)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        HeEvaluator(envelope, signer)  # type: ignore[arg-type]


def test_when_params_exceed_128_bit_security_then_they_are_rejected() -> None:
    with pytest.raises(ValueError, match="128-bit"):
        HeParams(coeff_mod_bit_sizes=(60, 40, 40, 40, 60))  # 240 > 218 bits at N=8192
    assert (
        HeParams(poly_modulus_degree=16384, coeff_mod_bit_sizes=(60, 40, 40, 40, 60)).slots == 8192
    )


# -- packing --------------------------------------------------------------------------------


def test_when_a_column_is_packed_then_the_index_locates_every_row(
    public: PublicContext, secret: SecretContext
) -> None:
    values = np.random.default_rng(3).uniform(-1000, 1000, 2_500)
    chunks = pack_column(values, public, chunk_slots=1_000)
    index = ChunkIndex(rows=2_500, chunk_slots=1_000, entities=tuple(f"e{i}" for i in range(2_500)))
    assert len(chunks) == index.chunks == 3
    assert (
        index.locate(0) == (0, 0)
        and index.locate(1_999) == (1, 999)
        and index.locate(2_499) == (2, 499)
    )
    assert index.locate_entity("e1234") == (1, 234) and list(index.rows_in(2)) == list(
        range(2_000, 2_500)
    )
    with pytest.raises(IndexError):
        index.locate(2_500)
    back = unpack_column(chunks, secret, index)
    np.testing.assert_allclose(back, values, rtol=0, atol=1e-6)  # fresh CKKS noise ~1e-8


def test_when_values_are_missing_then_they_encrypt_as_zero_and_counts_use_the_validity_mask(
    public: PublicContext, secret: SecretContext, evaluator: HeEvaluator, signer: Ed25519PrivateKey
) -> None:
    values = np.arange(1, 301, dtype=np.float64)
    values[::7] = np.nan  # NaN marks a missing value
    valid = np.ones(300, dtype=bool)
    valid[:5] = False  # and so does the caller's mask
    column = encrypt_column("v", values, public, valid=valid)
    kept = valid & ~np.isnan(values)
    assert column.valid_rows == int(kept.sum())
    np.testing.assert_allclose(
        unpack_column(column.chunks, secret, column.index)[~kept], 0, atol=1e-6
    )
    mask = np.arange(300) < 150
    assert _open(evaluator.count(column, mask), secret, signer) == int((kept & mask).sum())
    mean = _open(evaluator.mean(column, mask), secret, signer)
    assert mean == pytest.approx(values[kept & mask].mean(), rel=RTOL)


# -- accuracy -------------------------------------------------------------------------------


def _weights(rows: int) -> npt.NDArray[np.float64]:
    return np.random.default_rng(9).uniform(0.5, 2.0, rows)


OPERATIONS: dict[str, tuple[Callable[..., Envelope], Callable[..., float]]] = {
    "sum": (lambda ev, c, m: ev.sum(c, m), lambda x: float(x.sum())),
    "mean": (lambda ev, c, m: ev.mean(c, m), lambda x: float(x.mean())),
    "variance": (lambda ev, c, m: ev.variance(c, m), lambda x: float(x.var())),
    "sample_variance": (lambda ev, c, m: ev.variance(c, m, ddof=1), lambda x: float(x.var(ddof=1))),
}


@pytest.mark.parametrize("masked", [False, True], ids=["all-rows", "filtered"])
@pytest.mark.parametrize("operation", sorted(OPERATIONS))
def test_when_an_aggregate_is_decrypted_then_it_matches_numpy_within_1e_6(
    operation: str,
    masked: bool,
    evaluator: HeEvaluator,
    income_column: EncryptedColumn,
    incomes: npt.NDArray[np.float64],
    selection: npt.NDArray[np.bool_],
    secret: SecretContext,
    signer: Ed25519PrivateKey,
) -> None:
    compute, expected = OPERATIONS[operation]
    mask = selection if masked else None
    envelope = compute(evaluator, income_column, mask)
    assert envelope.rows == (int(selection.sum()) if masked else ROWS)
    got = _open(envelope, secret, signer)
    assert got == pytest.approx(expected(incomes[selection] if masked else incomes), rel=RTOL)


@pytest.mark.parametrize("masked", [False, True], ids=["all-rows", "filtered"])
def test_when_a_weighted_sum_is_decrypted_then_it_matches_numpy_within_1e_6(
    masked: bool,
    evaluator: HeEvaluator,
    income_column: EncryptedColumn,
    incomes: npt.NDArray[np.float64],
    selection: npt.NDArray[np.bool_],
    secret: SecretContext,
    signer: Ed25519PrivateKey,
) -> None:
    weights = _weights(ROWS)
    envelope = evaluator.weighted_sum(income_column, weights, selection if masked else None)
    keep = selection if masked else np.ones(ROWS, dtype=bool)
    got = _open(envelope, secret, signer)
    assert got == pytest.approx(float((weights * incomes)[keep].sum()), rel=RTOL)


def test_when_a_mask_is_applied_then_the_rescale_bias_is_compensated(
    evaluator: HeEvaluator,
    income_column: EncryptedColumn,
    incomes: npt.NDArray[np.float64],
    selection: npt.NDArray[np.bool_],
    secret: SecretContext,
    signer: Ed25519PrivateKey,
) -> None:
    raw = _open(evaluator.sum(income_column, selection), secret, signer, significant_digits=None)
    # TenSEAL's rescale relabels Δ²/q as Δ: uncompensated, this would be off by 1.34e-7.
    assert raw == pytest.approx(float(incomes[selection].sum()), rel=1e-9)
    # chunks 0-1 wholly selected (not multiplied, top level) mixed with masked chunks 2-3
    prefix = np.arange(ROWS) < 15_000
    raw = _open(evaluator.sum(income_column, prefix), secret, signer, significant_digits=None)
    assert raw == pytest.approx(float(incomes[prefix].sum()), rel=1e-9)


def test_when_a_filter_selects_few_rows_then_decrypt_and_the_gateway_refuse(
    evaluator: HeEvaluator,
    income_column: EncryptedColumn,
    public: PublicContext,
    secret: SecretContext,
    signer: Ed25519PrivateKey,
) -> None:
    mask = np.zeros(ROWS, dtype=bool)
    mask[:5] = True
    envelope = evaluator.sum(income_column, mask)
    with pytest.raises(TooFewRows) as refused:
        decrypt(envelope, secret, verify_key_bytes(signer), min_rows=10)
    assert (refused.value.rows, refused.value.min_rows) == (5, 10)
    with pytest.raises(TooFewRows):
        HeEvaluator(public, signer, min_rows=10).mean(income_column, mask)
    with pytest.raises(TooFewRows):
        evaluator.sum(income_column, np.zeros(ROWS, dtype=bool))
    weights = np.zeros(ROWS)
    weights[0] = 1.0  # weights that isolate one row count as one row
    with pytest.raises(TooFewRows):
        decrypt(
            evaluator.weighted_sum(income_column, weights), secret, verify_key_bytes(signer), 10
        )


# -- linear scores --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def features(public: PublicContext) -> tuple[npt.NDArray[np.float64], list[EncryptedColumn]]:
    rng = np.random.default_rng(11)
    matrix = rng.normal(0, 1, (16, 10_000)) * rng.uniform(1, 1_000, (16, 1))
    ids = tuple(f"customer-{i:05d}" for i in range(10_000))
    columns = [encrypt_column(f"f{j}", matrix[j], public, entities=ids) for j in range(16)]
    return matrix, columns


def test_when_scores_are_requested_then_the_selected_entities_get_w_x_plus_b(
    features: tuple[npt.NDArray[np.float64], list[EncryptedColumn]],
    evaluator: HeEvaluator,
    secret: SecretContext,
    signer: Ed25519PrivateKey,
) -> None:
    matrix, columns = features
    weights = np.random.default_rng(2).normal(0, 0.01, 16)
    bias = 0.75
    # whole chunks (rows 0..4095, and 8192..9999 of the partial last chunk) take the scalar
    # path; the entities scattered in chunk 1 take the masked one
    named = columns[0].index.rows_of(["customer-05000", "customer-04096"])
    rows = [*range(4_096), *range(8_192, 10_000), *named]
    envelope = evaluator.linear_scores(columns, weights.tolist(), bias, rows)
    assert envelope.chunks == (0, 1, 2) and envelope.positions[-3:] == ((2, 1807), (1, 904), (1, 0))
    assert envelope.rows == len(rows) and envelope.columns == tuple(f"f{j}" for j in range(16))
    expected = weights @ matrix[:, rows] + bias
    received = Envelope.model_validate_json(envelope.model_dump_json())
    got = _open(received, secret, signer)
    assert np.all(np.abs(got - expected) <= RTOL * np.maximum(1.0, np.abs(expected)))


def test_when_scores_are_requested_then_unrequested_slots_hold_only_noise(
    features: tuple[npt.NDArray[np.float64], list[EncryptedColumn]],
    evaluator: HeEvaluator,
    secret: SecretContext,
) -> None:
    import tenseal as ts

    matrix, columns = features
    weights = np.full(16, 0.01)
    envelope = evaluator.linear_scores(columns, weights.tolist(), 0.0, [10, 20, 30])
    raw = np.asarray(ts.ckks_vector_from(secret.context, envelope.ciphertext_bytes()[0]).decrypt())
    others = np.setdiff1d(np.arange(4_096), [10, 20, 30])
    true_scores = weights @ matrix[:, others]
    assert np.abs(raw[others]).max() > 2.0**18  # flooded with ±2**20 uniform noise
    assert abs(np.corrcoef(raw[others], true_scores)[0, 1]) < 0.1
    np.testing.assert_allclose(raw[[10, 20, 30]], weights @ matrix[:, [10, 20, 30]], atol=1e-6)


def test_when_score_inputs_are_unusable_then_linear_scores_refuse(
    features: tuple[npt.NDArray[np.float64], list[EncryptedColumn]], evaluator: HeEvaluator
) -> None:
    _, columns = features
    with pytest.raises(HeUnsupported, match="zero"):
        evaluator.linear_scores(columns[:2], [0.0, 0.0], 1.0, [1])
    with pytest.raises(ValueError, match="one weight per column"):
        evaluator.linear_scores(columns[:2], [1.0], 0.0, [1])
    with pytest.raises(IndexError):
        evaluator.linear_scores(columns[:2], [1.0, 1.0], 0.0, [10_000])
    with pytest.raises(HeRangeError):
        evaluator.linear_scores(columns[:2], [1e15, 1.0], 0.0, [1])  # would exceed 2**58


# -- envelopes ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "change",
    [
        {"rows": 99_999},
        {"columns": ("salary",)},
        {"operation": "mean"},
        {"context_fingerprint": "0" * 16},
        {"ciphertexts": ("AAAA",)},
        {"entity_rows": (7,), "chunk_slots": 4096},
        {"signature": "AAAA"},
    ],
    ids=["rows", "columns", "operation", "fingerprint", "ciphertext", "entities", "signature"],
)
def test_when_an_envelope_is_tampered_with_then_decrypt_refuses(
    change: dict[str, Any],
    evaluator: HeEvaluator,
    income_column: EncryptedColumn,
    secret: SecretContext,
    signer: Ed25519PrivateKey,
) -> None:
    envelope = evaluator.sum(income_column)
    forged = envelope.model_copy(update=change)
    with pytest.raises(SignatureInvalid):
        decrypt(forged, secret, verify_key_bytes(signer), 10)


def test_when_an_envelope_travels_as_json_then_it_still_verifies_and_another_key_does_not(
    evaluator: HeEvaluator,
    income_column: EncryptedColumn,
    incomes: npt.NDArray[np.float64],
    secret: SecretContext,
    signer: Ed25519PrivateKey,
) -> None:
    text = evaluator.sum(income_column).model_dump_json()
    received = Envelope.model_validate_json(text)
    assert _open(received, secret, signer) == pytest.approx(float(incomes.sum()), rel=RTOL)
    with pytest.raises(SignatureInvalid):
        decrypt(received, secret, verify_key_bytes(generate_signing_key()), 10)


def test_when_an_envelope_is_signed_then_the_signature_covers_every_other_field(
    evaluator: HeEvaluator, income_column: EncryptedColumn
) -> None:
    from privacy.he.envelope import SIGNED_FIELDS

    envelope = evaluator.sum(income_column)
    prefix, _, body = envelope.signed_bytes().partition(b"\n")
    assert prefix == b"privacy.he.envelope/v1"
    assert set(json.loads(body)) == SIGNED_FIELDS == set(Envelope.model_fields) - {"signature"}
    later = envelope.model_copy(update={"created_at": envelope.created_at.replace(microsecond=1)})
    assert later.signed_bytes() != envelope.signed_bytes()


def test_when_the_envelope_is_from_another_key_pair_then_decrypt_refuses(
    evaluator: HeEvaluator,
    income_column: EncryptedColumn,
    signer: Ed25519PrivateKey,
) -> None:
    other = generate_keys(HeParams(), "other", operations=["count"])
    with pytest.raises(FingerprintMismatch):
        decrypt(evaluator.sum(income_column), other.secret_context(), verify_key_bytes(signer), 10)
    foreign = encrypt_column("x", np.arange(20.0), other.public_context())
    with pytest.raises(FingerprintMismatch):
        evaluator.sum(foreign)


# -- limits ---------------------------------------------------------------------------------


def test_when_a_packing_is_estimated_then_it_predicts_bytes_and_enforces_the_limit(
    income_column: EncryptedColumn,
    public: PublicContext,
) -> None:
    params = HeParams()
    guess = estimate(ROWS, 2, params)  # income and its squares
    assert (
        guess.ciphertexts == 2 * 25 == len(income_column.chunks) + len(income_column.squares or ())
    )
    assert income_column.nbytes <= guess.bytes <= income_column.nbytes * 1.01
    assert 75 < guess.bytes_per_value < 90  # ~81 bytes per value at N=8192
    assert enforce_limit(guess, guess.bytes) is guess
    with pytest.raises(HeLimitExceeded) as refused:
        enforce_limit(guess, 1_000_000)
    assert refused.value.estimated_bytes == guess.bytes
    with pytest.raises(HeLimitExceeded):
        encrypt_column("big", np.zeros(ROWS), public, squares=True, max_bytes=10_000_000)


def test_when_values_exceed_the_ckks_capacity_then_packing_refuses(public: PublicContext) -> None:
    with pytest.raises(HeRangeError, match="capacity"):
        pack_column(np.full(10, 2.0**56), public)  # 10 x 2**56 >= 2**58
    with pytest.raises(HeRangeError, match="infinite"):
        pack_column(np.array([1.0, np.inf]), public)


# -- BFV ------------------------------------------------------------------------------------


def test_when_bfv_sums_and_counts_integers_then_the_results_are_exact(
    bfv: KeyPair, signer: Ed25519PrivateKey
) -> None:
    public_ctx, secret_ctx = bfv.public_context(), bfv.secret_context()
    rng = np.random.default_rng(4)
    values = rng.integers(0, 500_000, 20_000)
    mask = rng.random(20_000) < 0.5
    column = encrypt_column("amount", values, public_ctx)
    evaluator = HeEvaluator(public_ctx, signer)
    key = verify_key_bytes(signer)
    total = decrypt(evaluator.sum(column), secret_ctx, key, 10)
    assert isinstance(total, int) and total == int(values.sum())
    assert decrypt(evaluator.sum(column, mask), secret_ctx, key, 10) == int(values[mask].sum())
    assert decrypt(evaluator.count(column, mask), secret_ctx, key, 10) == int(mask.sum())
    assert decrypt(evaluator.mean(column, mask), secret_ctx, key, 10) == float(
        values[mask].sum()
    ) / int(mask.sum())
    small = encrypt_column("items", values % 1_000, public_ctx, squares=True)
    variance = decrypt(evaluator.variance(small, mask), secret_ctx, key, 10)
    assert variance == pytest.approx(float((values % 1_000)[mask].var()), rel=1e-12)
    scores = np.asarray(
        decrypt(
            evaluator.linear_scores([column, small], [2, -3], 7, [0, 5, 4_100]), secret_ctx, key, 10
        )
    )
    expected = 2 * values[[0, 5, 4_100]] - 3 * (values % 1_000)[[0, 5, 4_100]] + 7
    assert scores.tolist() == expected.tolist()


def test_when_bfv_values_are_not_exact_integers_or_could_wrap_then_packing_refuses(
    bfv: KeyPair,
) -> None:
    public_ctx = bfv.public_context()
    assert public_ctx.info.plain_modulus.bit_length() == 50
    with pytest.raises(HeRangeError, match="integers"):
        pack_column(np.array([1.5, 2.0]), public_ctx)
    with pytest.raises(HeRangeError, match="wrap"):
        pack_column(np.full(1_000, 2**45), public_ctx)  # 1000 x 2**45 >= t/2
    with pytest.raises(HeRangeError, match="wrap"):
        encrypt_column(
            "x", np.full(20_000, 500_000), public_ctx, squares=True
        )  # squares overflow t


# -- packaging ------------------------------------------------------------------------------


def test_when_privacy_he_is_imported_then_tenseal_and_the_gateway_are_not() -> None:
    code = (
        "import sys, privacy.he; "
        "bad = [m for m in ('tenseal', 'gateway', 'pyspark', 'fastapi') if m in sys.modules]; "
        "print(*bad); sys.exit(1 if bad else 0)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
