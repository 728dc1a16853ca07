from __future__ import annotations

import json
import re
import shutil
import sys
from html.parser import HTMLParser

import numpy as np
import pandas as pd
import pytest

from gpuseg.report import html as report
from gpuseg.report.plots import PLOTS

HOSTILE_ID = "<script>alert(1)</script>"
HOSTILE_CATEGORY = 'tools & <hardware> "pro"'
VOID = {"meta", "img", "input", "br", "hr", "link", "col", "wbr", "source", "area", "base", "embed", "track"}


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, small_run, copy_run):
    """A small real run's data files; the first customer id is a script tag and one top
    category is a hostile name (no report, no insights)."""
    out = copy_run(small_run, tmp_path_factory.mktemp("run") / "out", HOSTILE_ID)
    prof = pd.read_csv(out / "profiles.csv")
    prof.loc[0, "top_category"] = HOSTILE_CATEGORY
    prof.to_csv(out / "profiles.csv", index=False)
    return out


def fake_insights(run_dir) -> dict:
    segs = sorted(int(s) for s in pd.read_parquet(run_dir / "segments.parquet")["segment"].unique())
    rng = np.random.default_rng(0)
    entries = []
    for s in segs:
        grid = rng.random((7, 24))
        entries.append({
            "segment": s,
            "name": f"Persona {s} <b>&</b>",
            "name_rule": f"monetary z > {s}",
            "size": 100 + s,
            "share": 0.25,
            "revenue_share": 0.4,
            "profile": {"monetary": {"mean": 10.0 * s, "median": 9.0, "z": 0.5 * s - 0.5},
                        "recency_days": {"mean": 12.0, "median": 11.0, "z": -0.3},
                        "views": {"mean": 40.0, "median": 38.0, "z": 0.1}},
            "top_categories": [{"name": HOSTILE_CATEGORY, "share": 0.3}, {"name": "electronics", "share": 0.2}],
            "top_brands": [{"name": "samsung", "share": 0.2}],
            "activity": (grid / grid.sum()).tolist(),
            "rules": [{"rule": f"purchases >= {s + 1} and recency_days < 12", "support": 100, "precision": 0.9}],
            "top_features": [{"feature": "monetary", "z": 2.1}, {"feature": "views", "z": -1.2}],
            "actions": [{"kind": "timing", "text": f"Send offers on Friday evenings ({s})"}],
            "recommendations": {
                "top_items": [{"item": "1004856", "purchases": 120, "buyers": 80}],
                "bought_together": [{"item": "1004856", "with": [{"item": "1005115", "score": 0.4, "co_buyers": 12}]}],
                "note": "items bought by at least 5 customers",
            },
            "rfm": {"Champions": 10, "At risk": 5},
        })
    return {
        "segments": entries,
        "explanation": {"fidelity": 0.93, "max_depth": 4, "fidelity_on": "all customers",
                        "feature_importance": [{"feature": "monetary", "importance": 0.4}]},
        "rfm": {"crosstab": {str(s): {"Champions": 10, "At risk": 5} for s in segs}},
        "som_umatrix": rng.random((5, 6)).tolist(),
    }


@pytest.fixture(scope="module")
def plots(run_dir):
    from gpuseg.report.plots import make_plots

    pytest.importorskip("matplotlib")
    return make_plots(run_dir, fake_insights(run_dir), include=[n for n in PLOTS if n != "umap"])


@pytest.fixture(scope="module")
def page(run_dir, plots, tmp_path_factory):
    path = report.build_report(run_dir, fake_insights(run_dir), plots=plots,
                               path=tmp_path_factory.mktemp("page") / "report.html")
    return path.read_text(encoding="utf-8")


class _Structure(HTMLParser):
    """Checks that every non-void tag is closed in order."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.tags: dict[str, int] = {}
        self.classes: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags[tag] = self.tags.get(tag, 0) + 1
        self.classes += (dict(attrs).get("class") or "").split()
        if tag not in VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag, attrs):
        self.tags[tag] = self.tags.get(tag, 0) + 1

    def handle_endtag(self, tag):
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.stack[-1] if self.stack else 'nothing'}")
        else:
            self.stack.pop()


def structure(text: str) -> _Structure:
    p = _Structure()
    p.feed(text)
    p.close()
    return p


def lookup_data(text: str) -> dict:
    m = re.search(r'<script type="application/json" id="lookup-data">(.*?)</script>', text, re.S)
    assert m, "no lookup data"
    return json.loads(m.group(1))


def test_build_report_writes_into_the_folder(run_dir, plots, tmp_path):
    folder = tmp_path / "copy"
    shutil.copytree(run_dir, folder)
    path = report.build_report(folder, plots=plots)
    assert path == folder / "report.html" and path.stat().st_size > 10_000
    assert not [p for p in folder.iterdir() if p.name.startswith(".report-")]


def test_page_is_balanced_html(page):
    s = structure(page)
    assert s.errors == [] and s.stack == []
    assert page.startswith("<!DOCTYPE html>")
    for tag in ("html", "head", "body", "main", "section", "table", "article", "figure", "form", "input"):
        assert s.tags.get(tag), tag


def test_one_card_per_segment_with_the_insights(run_dir, page):
    segs = sorted(pd.read_parquet(run_dir / "segments.parquet")["segment"].unique())
    s = structure(page)
    assert s.classes.count("card") == len(segs)
    for seg in segs:
        assert f'id="segment-{seg}"' in page
        assert f"Persona {seg} &lt;b&gt;&amp;&lt;/b&gt;" in page
        assert f"purchases &gt;= {seg + 1} and recency_days &lt; 12" in page
        assert f"Send offers on Friday evenings ({seg})" in page
    for text in ("monetary z &gt; 0", "93.0%", "1004856", "1005115", "Champions", "samsung",
                 "items bought by at least 5 customers", "Categories it is more active in than others", "of revenue"):
        assert text in page, text


def test_cards_show_the_segments_lifetime_value(run_dir, page):
    prof = pd.read_csv(run_dir / "profiles.csv")
    assert page.count("Lifetime value</span>") == len(prof)
    assert "of all predicted value" in page and "probability still active" in page


def test_summary_and_comparison(run_dir, page):
    metrics = json.loads((run_dir / "metrics.json").read_text())
    comp = pd.read_csv(run_dir / "comparison.csv")
    assert "built-in synthetic data" in page
    for stage in metrics["timings"]:
        assert f"<td>{stage}</td>" in page or stage == "total"
    for method in comp["method"]:
        assert f"<td>{method}</td>" in page
    assert '<tr class="chosen"><td>' + metrics["chosen"]["method"] + "</td>" in page
    assert "Method rule:" in page and "<strong>Confidence:</strong>" in page


def test_features_section_lists_every_feature_and_why(run_dir, page):
    metrics = json.loads((run_dir / "metrics.json").read_text())
    rows = metrics["representation"]["features"]
    assert '<section id="features">' in page and metrics["representation"]["summary"] in page
    for r in rows:
        assert f"<td>{r['feature']}</td>" in page
    assert "redundant with" in page and "relevance" in page


def test_every_built_plot_is_inline(plots, page):
    built = [n for n, v in plots.items() if isinstance(v, bytes)]
    assert len(built) == len(PLOTS) - 1
    assert page.count('src="data:image/png;base64,') == len(built)
    for n in built:
        assert f'id="plot-{n}"' in page


def test_no_external_urls(page):
    without_data = re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]+", "", page)
    for pattern in (r"https?:", r"//", r"ftp:", r"@import", r"url\("):
        assert not re.search(pattern, without_data, re.I), pattern
    refs = re.findall(r"""\b(?:src|href|action)\s*=\s*["']?([^"'\s>]*)""", page, re.I)
    assert refs and all(r.startswith(("data:", "#")) for r in refs), [r for r in refs if not r.startswith("data:")]
    assert "default-src 'none'" in page


def test_hostile_text_is_escaped(page):
    assert HOSTILE_ID not in page and "alert(1)" in page  # present, but only as escaped data
    assert page.count("<script") == 2  # the lookup data and the page's own script
    assert HOSTILE_CATEGORY not in page
    assert "tools &amp; &lt;hardware&gt; &quot;pro&quot;" in page


def test_hostile_category_from_profiles_is_escaped(run_dir, plots):
    text = report.report_html(run_dir, {}, plots=plots)
    assert HOSTILE_CATEGORY not in text and "tools &amp; &lt;hardware&gt; &quot;pro&quot;" in text


def test_lookup_data_matches_the_parquet_files(run_dir, page):
    data = lookup_data(page)
    seg = pd.read_parquet(run_dir / "segments.parquet")
    feats = pd.read_parquet(run_dir / "features.parquet")
    assert data["ids"] == seg["customer_id"].tolist() and data["ids"][0] == HOSTILE_ID
    assert data["segment"] == seg["segment"].tolist()
    np.testing.assert_allclose(data["confidence"], seg["confidence"], atol=5e-5)
    assert data["low"] == seg["low_confidence"].astype(int).tolist()
    assert data["features"] == [c for c in feats.columns if c != "customer_id"]
    j = data["features"].index("monetary")
    np.testing.assert_allclose(data["values"][j], feats["monetary"], rtol=1e-3, atol=1e-9)
    assert data["total"] == len(seg) and set(data["segment_means"]) == {str(s) for s in seg["segment"].unique()}
    assert data["names"]["0"].startswith("Persona 0")


def test_lookup_of_large_runs_is_a_sample(run_dir, plots):
    text = report.report_html(run_dir, {}, plots=plots, lookup_limit=100)
    data = lookup_data(text)
    assert len(data["ids"]) == 100 == len(data["segment"]) == len(data["values"][0]) and data["total"] == 600
    assert "sample of 100 of the 600 customers" in text
    seg = pd.read_parquet(run_dir / "segments.parquet").set_index("customer_id")["segment"]
    assert [int(seg[i]) for i in data["ids"]] == data["segment"]


def test_insights_json_in_the_folder_is_read(run_dir, plots, tmp_path):
    folder = tmp_path / "copy"
    shutil.copytree(run_dir, folder)
    (folder / "insights.json").write_text(json.dumps(fake_insights(run_dir)))
    text = report.report_html(folder, plots=plots)
    assert "Persona 0 &lt;b&gt;" in text and "fidelity" in text


def test_without_insights_the_cards_use_the_profiles(run_dir, plots):
    text = report.report_html(run_dir, plots=plots)
    assert structure(text).classes.count("card") == pd.read_csv(run_dir / "profiles.csv").shape[0]
    assert "segment 0" in text and "Persona" not in text


def test_the_pipeline_shapes_of_recommendations_and_importances(run_dir, plots):
    ins = {"segments": [{"segment": 0, "recommendations": {
        "purchases": 12, "buyers": 7, "items": 9, "note": None,
        "top_items": [{"item": 41675977, "purchases": 5, "buyers": 5}, {"item": 8338781, "purchases": 4, "buyers": 3}],
        "bought_together": [{"item": 41675977, "related": [{"item": 99, "score": 0.8, "co_buyers": 2}]},
                            {"item": 8338781, "related": []}]}}],
        "explanation": {"fidelity": 0.975, "feature_importance": {"imp_small": 0.3, "imp_large": 0.5}}}
    text = report.report_html(run_dir, ins, plots=plots)
    assert "41675977</strong> &rarr; 99" in text and "8338781</strong>" not in text
    assert "12 purchases, 7 buyers, 9 distinct items" in text
    assert text.index("<td>imp_large</td>") < text.index("<td>imp_small</td>")  # largest importance first


@pytest.mark.parametrize("insights", [
    pytest.param({}, id="empty"),
    pytest.param({"segments": [{"segment": 0}], "explanation": {}, "rfm": None}, id="bare-segment"),
    pytest.param({"segments": [{"segment": "1", "name": "x", "rules": [{"rule": "a"}], "actions": ["plain text"],
                                "recommendations": None, "activity": None, "profile": {"views": {"z": None}}},
                               "not a segment"],
                  "explanation": {"feature_importance": [{"feature": "views"}]}}, id="odd-shapes"),
])
def test_missing_insight_keys_are_tolerated(run_dir, plots, insights):
    s = structure(report.report_html(run_dir, insights, plots=plots))
    assert s.errors == [] and s.stack == []


def test_report_without_matplotlib_says_why(run_dir, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    path = report.build_report(run_dir, {}, path=tmp_path / "r.html")
    text = path.read_text()
    assert "data:image/png" not in text and "matplotlib is needed" in text and "Left out (10)" in text


def test_bad_lookup_limit(run_dir, plots):
    with pytest.raises(ValueError, match="lookup_limit"):
        report.report_html(run_dir, plots=plots, lookup_limit=-1)


def test_cards_show_their_low_confidence_customers(run_dir, plots):
    ins = fake_insights(run_dir)
    ins["segments"][0]["low_confidence"] = {"count": 37, "share": 0.0617, "threshold": 0.5}
    ins["segments"][1]["low_confidence"] = {"count": 0, "share": 0.0, "threshold": 0.5}
    text = report.report_html(run_dir, ins, plots=plots)
    cards = dict(re.findall(r'<article class="card" id="segment-(-?\d+)">(.*?)</article>', text, re.S))
    assert "<strong>37</strong> low-confidence customers (6.2% of the segment), confidence below 0.5" in cards["0"]
    assert "<strong>0</strong> low-confidence customers (0.0% of the segment)" in cards["1"]
    assert all("low-confidence" not in card for seg, card in cards.items() if seg not in ("0", "1"))


@pytest.mark.parametrize("after_report", [True, False], ids=["after-the-report", "before-the-report"])
def test_time_per_stage_lists_every_stage(run_dir, plots, tmp_path, after_report):
    folder = tmp_path / "copy"
    shutil.copytree(run_dir, folder)
    metrics = json.loads((folder / "metrics.json").read_text())
    timings = {k: v for k, v in metrics["timings"].items() if k not in ("total", "report")}
    timings |= {"embed": 1.5, "sensitivity": 0.25, "total": 99.5}
    if after_report:  # the pipeline adds the report's time after the total, then updates the total
        timings |= {"report": 2.25, "total": 101.75}
    metrics["timings"] = timings
    (folder / "metrics.json").write_text(json.dumps(metrics))
    text = report.report_html(folder, {}, plots=plots)
    table = re.search(r'<table class="timings">(.*?)</table>', text, re.S).group(1)
    rows = re.findall(r"<tr><td>(.*?)</td><td>(.*?)</td>", table)
    assert [stage for stage, _ in rows[:-1]] == [k for k in timings if k != "total"]
    assert ("report", "2.25") in rows if after_report else "report" not in dict(rows)
    total = "<strong>total</strong>" if after_report else "<strong>total (before the report)</strong>"
    assert rows[-1] == (total, f"<strong>{report._num(timings['total'], 2)}</strong>")


def test_plots_given_as_reasons_are_listed_as_left_out(run_dir, plots):
    reason = "left out by default (umap-learn takes 30-50 s on a CPU); add it with gpuseg report OUT_DIR --umap"
    text = report.report_html(run_dir, {}, plots={**plots, "umap": reason})
    skipped = re.search(r'<details class="skipped"><summary>Left out \((\d+)\)</summary><ul>(.*?)</ul>', text, re.S)
    assert skipped and skipped.group(1) == "1"
    assert f"<li><strong>{PLOTS['umap']}</strong>: {reason}</li>" in skipped.group(2)
    assert 'id="plot-umap"' not in text and text.count('src="data:image/png;base64,') == len(PLOTS) - 1


def test_recommendations_show_product_names_with_their_ids(run_dir):
    ins = {"segments": [{"segment": 0, "recommendations": {
        "purchases": 3, "top_items": [{"item": "85123A", "purchases": 3, "buyers": 3, "label": "WHITE <HEART>"},
                                      {"item": 7, "purchases": 1}], "bought_together": []}}]}
    text = report.report_html(run_dir, ins, plots={})
    card = re.search(r'<article class="card" id="segment-0">(.*?)</article>', text, re.S).group(1)
    assert "WHITE &lt;HEART&gt; <span class=\"muted\">(85123A)</span>" in card and "<td>7</td>" in card


@pytest.mark.parametrize("fmt", ["%.4g", "%.4f"])
def test_number_array_formats_each_value_and_writes_null_for_non_finite(fmt):
    rng = np.random.default_rng(0)
    values = np.concatenate([rng.normal(size=300) * 10.0 ** rng.integers(-8, 9, 300),
                             [np.nan, np.inf, -np.inf, 0.0, -0.0, 1e300, 5e-324]])
    text = report._number_array(values, fmt)
    assert [p is None for p in json.loads(text)] == (~np.isfinite(values)).tolist()
    # the reference: NumPy's element-wise % of the same format
    expected = ["null" if not np.isfinite(v) else str(np.char.mod(fmt, v)) for v in values]
    assert text == "[" + ",".join(expected) + "]"


def test_the_notes_say_what_stability_does_not_prove(page):
    assert "<strong>Stability:</strong>" in page and "not that the customers form distinct groups" in page
    assert "A starting point, not a finding" in page


def test_value_line_states_its_horizon_its_base_and_a_stretched_horizon():
    """The card's lifetime value says over how many days, over which customers (those with a
    purchase), and warns when the horizon is more than twice the fitted history."""
    prof = {"mean_predicted_clv": 120.0, "mean_p_alive": 0.8, "mean_expected_purchases": 2.0,
            "predicted_clv_share": 0.25, "value_customers": 40}
    got = report._value_line(prof, {"horizon_days": 365.0, "history_days": 60.0}, 100)
    assert got["horizon"] == "365 days" and got["base"] == "40 of its 100 customers, those with a purchase"
    assert got["stretch"].startswith("the 365-day horizon is 6.1 times the 60 days of purchases")
    fits = report._value_line(prof, {"horizon_days": 365.0, "history_days": 540.0}, 40)
    assert fits["stretch"] is None and fits["base"] is None  # every customer bought: no base to state
    warned = report._value_line(prof, {"horizon_days": 365.0, "no_dropout": "every repeat buyer's p_alive is ..."}, 100)
    assert warned["no_dropout"].startswith("every repeat buyer's p_alive") and got["no_dropout"] is None
    old = report._value_line(prof)  # a run from before: no fit or size known
    assert old["horizon"] is None and old["stretch"] is None and old["clv"] == "120.0"
    assert report._value_line({"mean_predicted_clv": float("nan")}) is None


def test_value_line_shows_p_alive_over_repeat_buyers_only():
    """BG/NBD gives every one-time buyer p_alive 1, and CDNOW's "Lapsed one-timers" card read
    "probability still active 0.944", above Champions. The card's mean covers the segment's
    repeat buyers (with their count), and says BG/NBD cannot tell whether one-time buyers are
    still active; a profiles.csv from before (1s averaged in, no repeat_customers) shows none."""
    jinja2 = pytest.importorskip("jinja2")  # noqa: F841
    from gpuseg.report import templating

    base = {"mean_predicted_clv": 20.0, "mean_expected_purchases": 0.1, "predicted_clv_share": 0.1}
    mixed = report._value_line({**base, "mean_p_alive": 0.335, "value_customers": 6791, "repeat_customers": 572},
                               {}, 6791)
    assert mixed["p_alive"] == "0.335" and mixed["p_alive_base"] == "its 572 repeat buyers"
    assert mixed["one_time"].startswith("BG/NBD cannot tell whether one-time buyers are still active")
    assert mixed["one_time"].endswith("its 6,219 one-time buyers are left out of the probability still active")
    once = report._value_line({**base, "mean_p_alive": float("nan"), "value_customers": 500, "repeat_customers": 0},
                              {}, 500)
    assert once["p_alive"] is None and once["p_alive_base"] is None
    assert once["one_time"].startswith("BG/NBD cannot tell whether one-time buyers are still active")
    assert once["one_time"].endswith("every buyer in this segment bought once: judge them by recency")
    repeat = report._value_line({**base, "mean_p_alive": 0.758, "value_customers": 80, "repeat_customers": 80}, {}, 80)
    assert repeat["p_alive"] == "0.758" and repeat["one_time"] is None
    old = report._value_line({**base, "mean_p_alive": 0.944, "value_customers": 6791}, {}, 6791)
    assert old["p_alive"] is None and old["one_time"].endswith("counts them in, so it is not shown")
    macros = templating.environment().get_template("parts/segments.html.j2").module
    card = " ".join(str(macros.value_line(mixed)).split())
    assert "probability still active 0.335 <span class=\"muted\">(over its 572 repeat buyers)</span>" in card
    assert "Note: BG/NBD cannot tell whether one-time buyers are still active" in card
    card = " ".join(str(macros.value_line(once)).split())
    assert "probability still active" not in card.split("Note:")[0] and "bought once" in card


def test_the_chosen_methods_unmeasured_stability_is_said():
    from gpuseg.report.html import _unmeasured

    assert _unmeasured({"mean": None, "resamples": 10, "failed_refits": 10}) == "10 of 10 refits failed"
    assert _unmeasured({"mean": 0.9, "resamples": 10, "failed_refits": 0}) is None
    assert _unmeasured(None) is None


def test_the_segments_say_their_spend_counts_capped_prices(run_dir, plots, tmp_path):
    """Revenue shares and mean spend come from the features, which see prices capped at the
    outlier fence, while lifetime value counts what was spent: the section says so."""
    import json
    import shutil

    out = tmp_path / "out"
    shutil.copytree(run_dir, out)
    m = json.loads((out / "metrics.json").read_text())
    m["data"]["values_capped"] = {"price": 917}
    (out / "metrics.json").write_text(json.dumps(m))
    text = report.report_html(out, fake_insights(out), plots=plots)
    assert "count the 917 prices above the outlier fence (and their order amounts) at the fence" in text
    m["data"]["values_capped"] = {"price": 0}
    (out / "metrics.json").write_text(json.dumps(m))
    assert "above the outlier fence (and their" not in report.report_html(out, fake_insights(out), plots=plots)


@pytest.mark.parametrize("over, label", [("events", "Categories it is more active in than others"),
                                         ("orders", "Categories it buys more than others")])
def test_cards_list_only_clear_lifts_and_say_what_the_shares_are_of(run_dir, plots, over, label):
    """REES46 cards said "Categories it buys more than others" for segments without a
    purchase (the shares are of views, carts and purchases alike), listed lifts of
    1.003-1.05 as "1.0x the base" and left events without a category out unsaid."""
    insights = fake_insights(run_dir)
    insights["category_lift"] = {"over": over, "min_lift": 1.2, "min_share": 0.02}
    for seg in insights["segments"]:
        seg["top_categories"] = [{"name": "noisecat", "share": 0.135, "base_share": 0.13, "lift": 1.034},
                                 {"name": "liftedcat", "share": 0.2, "base_share": 0.125, "lift": 1.6}]
        seg["top_brands"] = [{"name": "noisebrand", "share": 0.1, "base_share": 0.095, "lift": 1.052}]
        seg["unknown_category_share"] = 0.25
    text = report.report_html(run_dir, insights, plots=plots)
    assert label in text and "liftedcat" in text and "1.60&times;" in text
    assert "noisecat" not in text and "1.0&times;" not in text and "noisebrand" not in text
    assert "none: no brand with a lift of 1.20&times; or more over all customers" in text  # not silence
    what = "events" if over == "events" else "orders"
    assert f"25.0% of its {what} have no category and are left out" in text
    assert "(only 1.20&times; or more)" in text
    if over == "events":
        assert "buys more than others" not in text
    # insights written before the threshold was recorded: the same 1.2, "is more active in"
    del insights["category_lift"]
    older = report.report_html(run_dir, insights, plots=plots)
    assert "Categories it is more active in than others" in older and "noisecat" not in older
