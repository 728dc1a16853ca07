"""One small real run shared by the report tests, and copies of its data files."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

#: The data files of a run (what the plots and the page are built from).
BASE_FILES = ("segments.parquet", "features.parquet", "profiles.csv", "comparison.csv", "metrics.json")


@pytest.fixture(scope="session")
def small_run(tmp_path_factory) -> Path:
    """A 600-customer run (kmeans and ward, k 3-4) without insights or report."""
    from gpuseg.config import build_config
    from gpuseg.pipeline import run

    out = tmp_path_factory.mktemp("small-run")
    run(build_config(out=str(out), synthetic_customers=600, k="3-4", methods="kmeans,ward", device="cpu",
                     stability=0, report=False))
    return out


def _copy_run(src: Path, dst: Path, hostile_id: str | None = None) -> Path:
    """The run's data files copied into ``dst``; the first customer renamed to ``hostile_id``."""
    dst.mkdir(parents=True, exist_ok=True)
    for name in BASE_FILES:
        shutil.copy(src / name, dst / name)
    if hostile_id is not None:
        for name in ("segments.parquet", "features.parquet"):
            f = pd.read_parquet(dst / name)
            ids = f["customer_id"].astype(str).tolist()
            ids[0] = hostile_id
            f["customer_id"] = ids
            f.to_parquet(dst / name, index=False)
    return dst


@pytest.fixture(scope="session")
def copy_run():
    """``copy_run(src, dst, hostile_id=None)``: copy a run's data files (see :func:`_copy_run`)."""
    return _copy_run


@pytest.fixture(scope="session")
def base_files():
    return BASE_FILES
