from __future__ import annotations

import base64
import re
import struct

import pandas as pd
import pytest

pytest.importorskip("matplotlib")

from gpuseg.errors import DataError  # noqa: E402
from gpuseg.report import migration as mig  # noqa: E402

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
W = ["2019-10-01..2019-10-31", "2019-11-01..2019-11-30", "2019-12-01..2019-12-31"]
NAMES = ["Loyal <b>&</b> big", "Bargain hunters", "Browsers"]

# (from, to) -> customers; -1 is new in the next window (from) / not in the next window (to)
PAIR_1 = {(0, 0): 40, (0, 1): 5, (0, -1): 5, (1, 1): 30, (1, 2): 7, (1, -1): 3, (2, 2): 20, (2, 0): 2,
          (-1, 0): 4, (-1, 2): 6}
PAIR_2 = {(0, 0): 38, (0, 2): 8, (1, 1): 31, (1, -1): 4, (2, 2): 25, (2, 1): 6, (2, -1): 2, (-1, 1): 9}


def frame(pairs: dict[tuple[str, str], dict[tuple[int, int], int]], names=NAMES) -> pd.DataFrame:
    rows = []
    for (a, b), flows in pairs.items():
        totals: dict[int, int] = {}
        for (f, _), n in flows.items():
            totals[f] = totals.get(f, 0) + n
        for (f, t), n in flows.items():
            rows.append({"window_from": a, "window_to": b, "from_segment": f,
                         "from_name": mig.NEW_NAME if f < 0 else names[f], "to_segment": t,
                         "to_name": mig.GONE_NAME if t < 0 else names[t], "customers": n,
                         "share_of_from": n / totals[f]})
    return pd.DataFrame(rows)


@pytest.fixture
def migration() -> pd.DataFrame:
    return frame({(W[0], W[1]): PAIR_1, (W[1], W[2]): PAIR_2})


def png_size(data: bytes) -> tuple[int, int]:
    assert isinstance(data, bytes) and data[:8] == PNG_MAGIC, "not PNG bytes"
    assert data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def summary(refit: bool = True) -> dict:
    return {
        "model": "model <v1>.json", "method": "kmeans", "created": "2019-09-30T12:00:00", "device": "cpu",
        "windows": [{"window": w, "start": w[:10], "end": w[-10:], "customers": 100 + i,
                     "segments": {n: 30 + i for n in NAMES}} for i, w in enumerate(W)],
        "refit_due": refit, "refit_reason": "3 features drifted <a lot> since training" if refit else "",
    }


def drift() -> pd.DataFrame:
    return pd.DataFrame({
        "feature": ["recency_days", "monetary", "views<x>", "recency_days", "monetary", "views<x>"],
        "window_from": [None, None, None, W[1], W[1], W[1]],
        "window_to": [W[1]] * 3 + [W[2]] * 3,
        "psi_vs_previous": [0.01, 0.02, 0.03, 0.05, 0.31, 0.12],
        "psi_vs_training": [0.02, 0.04, 0.03, 0.08, 0.42, 0.15],
        "status": ["stable", "stable", "stable", "stable", "refit", "watch"],
    })


# --------------------------------------------------------------------------- sankey_png


def test_sankey_is_png_and_written(migration, tmp_path):
    target = tmp_path / "sankey.png"
    data = mig.sankey_png(migration, W, NAMES, path=target)
    width, height = png_size(data)
    assert 600 <= width <= 2500 and 400 <= height <= 1200
    assert target.read_bytes() == data


def test_sankey_draws_the_flows(migration):
    """Bands change the picture: the same windows without any flow give another image."""
    empty = migration.iloc[:0]
    assert mig.sankey_png(migration, W, NAMES) != mig.sankey_png(empty, W, NAMES)


def test_sankey_pair_without_flows_and_empty_segment(migration):
    only_first = migration[migration["window_from"] == W[0]]
    png_size(mig.sankey_png(only_first, W, NAMES))
    # segment 2 has no customers at all; a fourth named segment never appears
    no_two = migration[(migration["from_segment"] != 2) & (migration["to_segment"] != 2)]
    png_size(mig.sankey_png(no_two, W, NAMES + ["Ghosts"]))
    zeros = migration.assign(customers=0)
    png_size(mig.sankey_png(zeros, W, NAMES))


def test_sankey_many_windows_and_segments():
    names = [f"segment name {i}" for i in range(20)]
    windows = [f"w{i}" for i in range(12)]
    flows = {(i, (i + d) % 20): 10 + i for i in range(20) for d in (0, 1)}
    m = frame({(a, b): flows for a, b in zip(windows[:-1], windows[1:])}, names)
    width, height = png_size(mig.sankey_png(m, windows, names))
    assert width <= 2500 and height <= 1100


def test_sankey_missing_column(migration):
    with pytest.raises(DataError, match="customers"):
        mig.sankey_png(migration.drop(columns="customers"), W, NAMES)
    with pytest.raises(DataError, match="2 windows"):
        mig.sankey_png(migration, W[:1], NAMES)
    with pytest.raises(DataError, match="non-negative"):
        mig.sankey_png(migration.assign(customers=-1), W, NAMES)


# --------------------------------------------------------------------------- migration_html


@pytest.fixture
def page(migration) -> str:
    return mig.migration_html(summary(), migration, drift(), mig.sankey_png(migration, W, NAMES))


def test_html_escapes_names(page):
    assert "Loyal &lt;b&gt;&amp;&lt;/b&gt; big" in page
    assert "<b>" not in page
    assert "model &lt;v1&gt;.json" in page and "views&lt;x&gt;" in page


def test_html_has_transition_counts(page):
    matrices = re.findall(r'<table class="small matrix">.*?</table>', page, re.S)
    assert len(matrices) == 2
    first, second = matrices
    # the diagonal is highlighted and holds the stayers
    assert re.findall(r'<td class="diag">([\d,]+)<', first) == ["40", "30", "20"]
    assert re.findall(r'<td class="diag">([\d,]+)<', second) == ["38", "31", "25"]
    assert "<th>new in next window</th>" in first and "<th>not in next window</th>" in first
    assert "<th>new in next window</th>" in second  # 9 new customers in the third window
    assert '<td>7<span class="sh">17.5%</span>' in first  # 7 of 40 bargain hunters became browsers
    assert '<td>4<span class="sh">40.0%</span>' in first  # 4 of 10 new customers joined segment 0


def test_html_inlines_image_only(page, migration):
    png = mig.sankey_png(migration, W, NAMES)
    assert f'src="data:image/png;base64,{base64.b64encode(png).decode("ascii")}"' in page
    assert "Content-Security-Policy" in page and "default-src 'none'" in page
    without_data = re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]+", "", page)
    for pattern in (r"https?:", r"//", r"ftp:", r"@import", r"url\(", r"<link", r"<script"):
        assert not re.search(pattern, without_data, re.I), pattern
    refs = re.findall(r"""\b(?:src|href|action)\s*=\s*["']?([^"'\s>]*)""", page, re.I)
    assert refs and all(r.startswith(("data:", "#")) for r in refs), refs


def test_html_refit_verdict_and_drift(page, migration):
    assert "Refit due" in page and "3 features drifted &lt;a lot&gt; since training" in page
    drift_part = page[page.index('id="drift"'):]
    assert "monetary" in drift_part and "status-refit" in drift_part and "status-watch" in drift_part
    assert "recency_days" not in drift_part  # stable everywhere
    assert "All 3 features stable." in drift_part
    calm = mig.migration_html(summary(refit=False), migration, drift(), None)
    assert "No refit needed" in calm and "Refit due" not in calm
    assert "data:image/png" not in calm and "No diagram" in calm


def test_html_pair_without_rows_and_bad_input(migration):
    text = mig.migration_html(summary(), migration[migration["window_from"] == W[0]], None, None)
    assert "No customers recorded for this pair." in text and "No drift measurements." in text
    with pytest.raises(DataError, match="to_segment"):
        mig.migration_html(summary(), migration.drop(columns="to_segment"), drift(), None)
    with pytest.raises(DataError, match="status"):
        mig.migration_html(summary(), migration, drift().drop(columns="status"), None)


def test_absence_is_not_called_lapsed_next_to_a_lapsed_segment(monkeypatch):
    """migration.html showed "Lapsed -> lapsed 200": segment -1 (not active in the later
    window) was called "lapsed" beside the segment named Lapsed, and "new" beside New
    customers. The page, the diagram and migration.csv (gpuseg.dynamic) now say
    "not in next window" and "new in next window"."""
    pytest.importorskip("matplotlib")
    names = ["Lapsed", "New customers"]
    flows = frame({(W[0], W[1]): {(0, 0): 300, (0, -1): 200, (1, 0): 50, (-1, 1): 150}}, names)
    assert set(flows.loc[flows["to_segment"] < 0, "to_name"]) == {"not in next window"}
    assert set(flows.loc[flows["from_segment"] < 0, "from_name"]) == {"new in next window"}
    page = mig.migration_html(summary(), flows, None, None)
    (matrix,) = re.findall(r'<table class="small matrix">.*?</table>', page, re.S)
    headers = re.findall(r"<th>([^<]*)</th>", matrix)
    assert "not in next window" in headers and "new in next window" in headers
    assert "lapsed" not in headers and "new" not in headers
    figures = []
    monkeypatch.setattr(mig, "_png", lambda fig, path=None: figures.append(fig) or b"")
    mig.sankey_png(flows, W[:2], names)
    ax = figures[0].axes[0]
    labels = [re.sub(r"\s+[\d,]+$", "", t.get_text()) for t in ax.texts]  # "<label> 200": the count off
    assert "not in this window" in labels and "new in next window" in labels
    assert not {"lapsed", "new"} & set(labels) and "lapsed" not in ax.get_title()
