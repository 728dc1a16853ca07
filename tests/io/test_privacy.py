"""--anonymize: pseudonymous ids in every output, the same pseudonym from assign and migrate,
the key only in the model."""

from __future__ import annotations

import hashlib
import hmac
import json

import numpy as np
import pandas as pd
import pytest

from gpuseg.cli import main
from gpuseg.io.privacy import key_of_model, new_key, pseudonymise, pseudonyms
from gpuseg.model import load_model


def test_pseudonyms_are_keyed_hashes_of_the_id_text():
    key = bytes(range(32))
    got = pseudonyms(pd.Series([12346, 12346.0, "12346", "abc"]), key)
    want = hmac.new(key, b"12346", hashlib.sha256).hexdigest()[:32]
    assert list(got[:3]) == [want] * 3  # an integer id read as float is the same customer
    assert got[3] != want and len(got[3]) == 32
    assert list(pseudonyms(["abc"], new_key())) != [got[3]]  # another key, another pseudonym


def test_pseudonymise_copies_and_leaves_other_columns():
    frame = pd.DataFrame({"customer_id": ["a", "b"], "segment": [0, 1]})
    out = pseudonymise(frame, b"k" * 32)
    assert frame["customer_id"].tolist() == ["a", "b"] and out["segment"].tolist() == [0, 1]
    assert out["customer_id"].str.fullmatch("[0-9a-f]{32}").all()
    assert pseudonymise(frame, None)["customer_id"].tolist() == ["a", "b"]


def _orders(path):
    rng = np.random.default_rng(0)
    rows = []
    for c in range(80):
        n = 1 + (c % 4) * 3
        for _ in range(n):
            rows.append((f"secret-{c:03d}", f"2021-{1 + int(rng.integers(0, 12)):02d}-{1 + int(rng.integers(0, 28)):02d}",
                         float(rng.uniform(5, 60) * (1 + c % 4))))
    rows.append(("secret-bad", "2021-05-05", "not a price"))  # excluded while cleaning
    pd.DataFrame(rows, columns=["customer_id", "timestamp", "amount"]).to_csv(path, index=False)


def _texts(folder):
    for p in folder.rglob("*"):
        if p.is_file() and "model" not in p.relative_to(folder).parts and p.suffix != ".png":
            if p.suffix == ".parquet":
                yield p, pd.read_parquet(p).to_csv()
            else:
                yield p, p.read_text(errors="replace")


def test_anonymize_run_assign_and_migrate(tmp_path, capsys):
    _orders(tmp_path / "orders.csv")
    out = tmp_path / "out"
    rc = main(["run", "--input", str(tmp_path / "orders.csv"), "--out", str(out), "--anonymize", "--methods", "kmeans",
               "--k", "3", "--stability", "0", "-q"])
    assert rc == 0
    for path, text in _texts(out):  # no raw id in any file but the model's
        assert "secret-" not in text, path
    seg = pd.read_parquet(out / "segments.parquet")
    key = key_of_model(load_model(out / "model"))
    assert key is not None and key.hex() not in "".join(t for _, t in _texts(out))
    want = {hmac.new(key, f"secret-{c:03d}".encode(), hashlib.sha256).hexdigest()[:32] for c in range(80)}
    assert set(seg["customer_id"]) == want
    excluded = pd.read_csv(out / "excluded.csv")
    assert excluded["customer_id"].tolist() == [hmac.new(key, b"secret-bad", hashlib.sha256).hexdigest()[:32]]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["privacy"]["pseudonymised"] and "pseudonymised" in (out / "report.html").read_text()

    assigned = tmp_path / "assigned.csv"
    assert main(["assign", "--model", str(out / "model"), "--input", str(tmp_path / "orders.csv"),
                 "--out", str(assigned), "-q"]) == 0
    a = pd.read_csv(assigned)
    assert set(a["customer_id"]) == want
    merged = a.merge(seg, on="customer_id", suffixes=("", "_run"))
    assert len(merged) == 80 and (merged["segment"] == merged["segment_run"]).all()
    assert "secret-" not in (tmp_path / "assigned.excluded.csv").read_text()

    mig = tmp_path / "mig"
    assert main(["migrate", "--model", str(out / "model"), "--input", str(tmp_path / "orders.csv"),
                 "--windows", "2021-01-01..2021-06-30,2021-07-01..2021-12-31", "--out", str(mig), "-q"]) == 0
    movers = pd.read_parquet(mig / "movers.parquet")
    assert len(movers) and set(movers["customer_id"]) <= want

    again = tmp_path / "again"
    assert main(["run", "--input", str(tmp_path / "orders.csv"), "--out", str(again), "--anonymize",
                 "--methods", "kmeans", "--k", "3", "--stability", "0", "--no-report", "-q"]) == 0
    assert not set(pd.read_parquet(again / "segments.parquet")["customer_id"]) & want  # a new key per run


def test_without_anonymize_ids_are_kept(tmp_path):
    _orders(tmp_path / "orders.csv")
    out = tmp_path / "out"
    assert main(["run", "--input", str(tmp_path / "orders.csv"), "--out", str(out), "--methods", "kmeans", "--k", "3",
                 "--stability", "0", "--no-report", "-q"]) == 0
    assert pd.read_parquet(out / "segments.parquet")["customer_id"].str.startswith("secret-").all()
    assert json.loads((out / "metrics.json").read_text())["privacy"] == {"pseudonymised": False}
    assert key_of_model(load_model(out / "model")) is None


@pytest.mark.parametrize("entry", [{"key": "zz"}, {"key": "00"}, {}])
def test_a_bad_key_in_a_model_is_a_clear_error(entry):
    from gpuseg.errors import DataError

    class M:
        data = {"privacy": entry}

    if not entry:
        assert key_of_model(M()) is None
        return
    with pytest.raises(DataError, match="privacy"):
        key_of_model(M())
