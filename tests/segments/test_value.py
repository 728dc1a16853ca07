from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.special import beta as B
from scipy.special import gamma as G

from gpuseg.segments.value import (
    BOUNDS, BGNBD, GammaGamma, bgnbd_log_likelihood, customer_value, gamma_gamma_log_likelihood, purchase_history,
)

#: Fader, Hardie & Lee (2005), fitted to the CDNOW sample (weeks): what lifetimes reproduces.
CDNOW_BGNBD = (0.2426, 4.4135, 0.7929, 2.4259)


def _direct_bgnbd(r, alpha, a, b, x, t_x, T):
    """The likelihood as printed in the paper (section 7), one customer at a time."""
    common = G(r + x) * alpha**r / G(r)
    out = B(a, b + x) / B(a, b) * common / (alpha + T) ** (r + x)
    if x > 0:
        out += B(a + 1, b + x - 1) / B(a, b) * common / (alpha + t_x) ** (r + x)
    return np.log(out)


@pytest.mark.parametrize("x, t_x, T", [(0, 0.0, 38.9), (1, 1.7, 38.9), (2, 30.4, 38.9), (7, 20.0, 33.0)])
def test_bgnbd_likelihood_matches_the_papers_formula(x, t_x, T):
    got = bgnbd_log_likelihood(CDNOW_BGNBD, np.array([float(x)]), np.array([t_x]), np.array([T]))[0]
    assert got == pytest.approx(_direct_bgnbd(*CDNOW_BGNBD, x, t_x, T), rel=1e-10)


def test_gamma_gamma_likelihood_matches_its_density():
    # mean of x Gamma(p, nu) spends, nu ~ Gamma(q, v): density of z-bar, integrated over nu numerically
    from scipy import integrate, stats

    p, q, v, x, m = 6.25, 3.74, 15.45, 3.0, 30.0
    dens = integrate.quad(lambda nu: stats.gamma(p * x, scale=1 / (nu * x)).pdf(m) * stats.gamma(q, scale=1 / v).pdf(nu),
                          0, np.inf)[0]
    got = gamma_gamma_log_likelihood((p, q, v), np.array([x]), np.array([m]))[0]
    assert got == pytest.approx(np.log(dens), rel=1e-6)


def _simulate(n, r, alpha, a, b, T, seed=0):
    """Purchase histories drawn from the BG/NBD story itself."""
    rng = np.random.default_rng(seed)
    lam = rng.gamma(r, 1 / alpha, n)
    p = rng.beta(a, b, n)
    x, t_x = np.zeros(n), np.zeros(n)
    for i in range(n):
        t = 0.0
        while True:
            t += rng.exponential(1 / lam[i])
            if t > T:
                break
            x[i] += 1
            t_x[i] = t
            if rng.random() < p[i]:
                break
    return x, t_x, np.full(n, float(T))


def test_bgnbd_recovers_the_parameters_it_simulated():
    truth = (0.5, 10.0, 0.8, 3.0)
    x, t_x, T = _simulate(4000, *truth, T=200)
    got = BGNBD().fit(x, t_x, T)
    assert got.converged_
    for est, true in zip(got.params_, truth):
        assert est == pytest.approx(true, rel=0.3)
    # the fitted model expects about as many purchases in a second period as the simulation has
    assert got.expected_purchases(200.0, x, t_x, T).mean() > 0


def test_p_alive_and_expected_purchases_behave():
    model = BGNBD(params_=CDNOW_BGNBD)
    x, t_x = np.array([0.0, 2.0, 2.0, 2.0]), np.array([0.0, 30.0, 10.0, 30.0])
    T = np.array([38.0, 38.0, 38.0, 60.0])
    alive = model.p_alive(x, t_x, T)
    assert alive[0] == 1.0  # no repeat purchase: never observed to drop out
    assert alive[1] > alive[2] and alive[1] > alive[3]  # longer silence: less likely alive
    e10, e40 = model.expected_purchases(10.0, x, t_x, T), model.expected_purchases(40.0, x, t_x, T)
    assert np.all(e40 > e10) and np.all(e10 > 0)
    assert model.expected_purchases(1e-9, x, t_x, T) == pytest.approx(np.zeros(4), abs=1e-8)


def test_gamma_gamma_shrinks_towards_the_population_mean():
    model = GammaGamma(params_=(6.25, 3.74, 15.45))
    population = 15.45 * 6.25 / 2.74
    few, many = model.expected_spend(np.array([1.0, 20.0]), np.array([100.0, 100.0]))
    assert population < few < many < 100.0
    assert model.expected_spend(np.array([0.0]), np.array([np.nan]))[0] == pytest.approx(population)


def test_purchase_history_from_orders_and_events():
    day = 86_400
    orders = pd.DataFrame({"customer_id": [1, 1, 1, 2, 3, 3], "ts": [0, 100, 10 * day, 5 * day, 2 * day, 2 * day + 5],
                           "amount": [10.0, 5.0, 30.0, 7.0, 4.0, 6.0]})
    h = purchase_history(orders, "orders", reference_time=20 * day)
    # customer 1: days 0 (15) and 10 (30); 2: one day; 3: one day (two lines)
    assert h.loc[1].tolist() == [1.0, 10.0, 20.0, 30.0, 45.0]  # total: the first day's 15 included
    assert h.loc[2, ["x", "t_x", "T"]].tolist() == [0.0, 0.0, 15.0] and np.isnan(h.loc[2, "m"])
    assert h.loc[3, "x"] == 0.0 and h.loc[3, "total"] == 10.0
    events = pd.DataFrame({"customer_id": [1, 1, 2], "ts": [0, 3 * day, day], "etype": [3, 0, 0],
                           "price": [9.0, 9.0, 9.0]})
    assert purchase_history(events, "events", 4 * day).index.tolist() == [1]  # views are not purchases


def test_lifetime_value_sees_what_was_spent_not_the_capped_amount(cpu):
    """The price fence caps order values for the features; the value model is fitted on the
    amounts as spent (the ``spent`` column cleaning keeps)."""
    from gpuseg.config import CleanConfig
    from gpuseg.io.readers import from_frame
    from gpuseg.prep.clean import clean

    rng = np.random.default_rng(0)
    n = 200
    orders = pd.DataFrame({"customer_id": np.arange(n) % 50, "timestamp": pd.Timestamp("2020-01-01")
                           + pd.to_timedelta(rng.integers(0, 300, n), unit="D"), "amount": rng.uniform(10, 20, n)})
    orders.loc[0, "amount"] = 10_000.0
    capped = clean(from_frame(orders, cpu, "orders"), CleanConfig(), cpu)
    assert capped.capped.get("amount") == 1 and capped.frame["amount"].max() < 100
    spent = purchase_history(capped.frame, "orders", capped.reference_time)
    raw = purchase_history(clean(from_frame(orders, cpu, "orders"), CleanConfig(price_outliers="off"), cpu).frame,
                           "orders", capped.reference_time)
    pd.testing.assert_frame_equal(spent, raw)
    dropped = clean(from_frame(orders, cpu, "orders"), CleanConfig(price_outliers="drop"), cpu)
    assert "spent" not in dropped.frame.columns  # a dropped order is not spent money the model may see


def test_customer_value_predicts_for_every_purchaser_and_skips_tiny_data():
    x, t_x, T = _simulate(300, 0.5, 10.0, 0.8, 3.0, T=200, seed=1)
    m = np.where(x > 0, np.random.default_rng(2).gamma(5.0, 6.0, len(x)), np.nan)
    history = pd.DataFrame({"x": x, "t_x": t_x, "T": T, "m": m}, index=pd.RangeIndex(300, name="customer_id"))
    frame, info = customer_value(history, horizon_days=365.0, discount_rate=0.1, margin=0.3)
    assert info["status"] == "ok" and info["gamma_gamma"]["status"] == "ok"
    assert frame.notna().all().all() and (frame["p_alive"].between(0, 1)).all()
    assert (frame["predicted_clv"] >= 0).all()
    longer, _ = customer_value(history, horizon_days=730.0, discount_rate=0.1, margin=0.3)
    assert (longer["expected_purchases"] >= frame["expected_purchases"]).all()
    small, info = customer_value(history.iloc[:5])
    assert info["status"] == "skipped" and small.isna().all().all() and "too few" in info["reason"]


def test_log_hyp2f1_falls_back_to_the_host_when_the_array_module_lacks_it(monkeypatch):
    # cupyx.scipy.special may lack hyp2f1: the values then go through scipy on the host
    import scipy.special

    from gpuseg.segments import value

    a, b, c = (np.array([v, v + 1.0]) for v in (0.3, 4.0, 2.5))
    z = np.array([0.4, 0.7])
    expected = value._log_hyp2f1(a, b, c, z)
    calls = []

    def without_hyp2f1(xp):
        calls.append(xp)
        return scipy.special if len(calls) > 1 else object()

    monkeypatch.setattr(value, "special_module", without_hyp2f1)
    got = value._log_hyp2f1(a, b, c, z)
    assert len(calls) == 2
    np.testing.assert_allclose(got, expected, rtol=1e-12)
    np.testing.assert_allclose(got, np.log(scipy.special.hyp2f1(a, b, c, z)), rtol=1e-12)


def test_expected_purchases_stay_finite_and_right_at_the_ends_of_the_search():
    """At a = b = 1e-6 the dropout prior is half at 0, half at 1: a customer without a repeat
    purchase then either stays (NBD) or buys at most once more; one with repeats stays."""
    import warnings

    x, t_x = np.array([0.0, 1.0, 2.0, 6.0]), np.array([0.0, 5.0, 30.0, 150.0])
    T, t, r, alpha = np.full(4, 200.0), 90.0, 0.7, 12.0
    lo, hi = BOUNDS
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no RuntimeWarning either
        for a, b in [(lo, lo), (lo, 2.5), (hi, hi), (0.8, hi), (lo, hi), (hi, lo)]:
            model = BGNBD(params_=(r, alpha, a, b))
            got = model.expected_purchases(t, x, t_x, T)
            assert np.isfinite(got).all() and np.isfinite(model.p_alive(x, t_x, T)).all(), (a, b)
    model = BGNBD(params_=(r, alpha, lo, lo))
    got = model.expected_purchases(t, x, t_x, T)
    stays, once = r * t / (alpha + 200.0), 1.0 - ((alpha + 200.0) / (alpha + 200.0 + t)) ** r
    assert got[0] == pytest.approx(0.5 * stays + 0.5 * once, rel=1e-4)
    alive = model.p_alive(x, t_x, T)
    np.testing.assert_allclose(got[1:], (alive * (r + x) * t / (alpha + T))[1:], rtol=1e-4)


def test_a_fit_on_few_customers_predicts_nothing_rather_than_inf():
    """20 customers drove a and b to 1e-17 (expected purchases inf and NaN for buyers, status
    "ok"). Within the search range the fit stops at the range's end, and its predictions are
    still not finite there: no lifetime value, and the reason says why."""
    import json

    rng = np.random.default_rng(0)
    n = 3000
    cust = rng.integers(0, 400, n)
    ts = pd.Timestamp("2020-01-01") + pd.to_timedelta(rng.integers(0, 300 * 86400, n), unit="s")
    orders = pd.DataFrame({"customer_id": cust, "ts": ts.astype("datetime64[s]").astype("int64"),
                           "amount": rng.lognormal(3, 1, n)})
    orders = orders[orders["customer_id"] < 20]
    history = purchase_history(orders, "orders", int(orders["ts"].max()) + 86400)
    frame, info = customer_value(history)
    assert all(BOUNDS[0] <= info["bgnbd"][k] <= BOUNDS[1] for k in ("r", "alpha_days", "a", "b"))
    assert info["status"] == "skipped" and frame.isna().all().all()
    assert info["reason"].startswith("BG/NBD's predictions are not finite") and "a = 1e-06 at the end" in info["reason"]
    json.dumps(info, allow_nan=False)


def _histories(seed=1, n=300):
    x, t_x, T = _simulate(n, 0.5, 10.0, 0.8, 3.0, T=200, seed=seed)
    m = np.where(x > 0, np.random.default_rng(2).gamma(5.0, 6.0, len(x)), np.nan)
    return pd.DataFrame({"x": x, "t_x": t_x, "T": T, "m": m}, index=pd.RangeIndex(n, name="customer_id"))


def test_purchases_without_value_predict_zero_and_a_json_safe_fit():
    import json

    history = _histories()
    history["m"] = history["m"] * 0.0  # every purchase free: no mean spend to fall back on
    frame, info = customer_value(history)
    assert info["status"] == "ok" and info["gamma_gamma"]["status"] == "skipped"
    assert "positive value" in info["gamma_gamma"]["reason"]
    assert (frame["predicted_clv"] == 0.0).all() and np.isfinite(frame.to_numpy()).all()
    json.dumps(info, allow_nan=False)  # the saved model's manifest refuses NaN


def test_spend_past_float64_skips_the_lifetime_value_with_a_reason():
    import json

    history = _histories()
    history.loc[history["x"] > 0, "m"] = np.inf
    frame, info = customer_value(history)
    assert info["status"] == "skipped" and "too large" in info["reason"] and frame.isna().all().all()
    json.dumps(info, allow_nan=False)


def test_a_run_on_orders_that_are_all_free_saves_its_model(tmp_path):
    """Every amount 0 stopped the run with a traceback while the model was saved (NaN in model.json)."""
    from gpuseg.config import build_config
    from gpuseg.io.scenarios import generate_scenario
    from gpuseg.pipeline import run

    log, _, _ = generate_scenario("orders", 300, seed=3)
    log.assign(amount=0.0).to_parquet(tmp_path / "free.parquet")
    result = run(build_config(None, input=str(tmp_path / "free.parquet"), out=str(tmp_path / "out"), methods="kmeans",
                              k="3", stability=0, report=False, device="cpu"))
    assert result.metrics["model"]["saved"] is True
    assert result.metrics["lifetime_value"]["bgnbd"]["log_likelihood"] < 0  # a and b ran off to 1e34 here once
    seg = pd.read_parquet(tmp_path / "out" / "segments.parquet")
    assert (seg["predicted_clv"] == 0.0).all() and np.isfinite(seg["expected_purchases"]).all()


def test_a_fit_that_sees_no_dropout_says_so():
    """Every repeat buyer's p_alive at 0.99 or more: the fit cannot tell lapsed from active
    customers, and its summary says so (the console and the report show it); one lower
    p_alive, and it says nothing."""
    from gpuseg.segments.value import _no_dropout_note

    summary = {"history_days": 60.0, "bgnbd": {"a": 0.0017}}
    said = _no_dropout_note(pd.Series([0.9994, 0.9999, 1.0]), summary)
    assert said.startswith("every repeat buyer's p_alive is at least 0.999: over 60 days")
    assert "a = 0.0017" in said and "judge them by recency" in said
    assert _no_dropout_note(pd.Series([0.4, 0.9999]), summary) == ""
    assert _no_dropout_note(pd.Series([], dtype=float), summary) == ""


def test_the_no_dropout_note_never_puts_p_alive_above_one():
    """A minimum p_alive of 0.9995 read "1.000 or more": a probability above 1."""
    from gpuseg.segments.value import _no_dropout_note

    said = _no_dropout_note(pd.Series([0.9995, 0.99999]), {"history_days": 545.0, "bgnbd": {"a": 0.001}})
    assert said.startswith("every repeat buyer's p_alive is at least 0.999: over 545 days") and "1.000" not in said


def test_gamma_gamma_at_the_end_of_its_search_range_says_so():
    """Every repeat buyer spending the same drives p and q to 1e6: the entry names them in its
    ``note``, as BG/NBD's does (the docs promise it for every parameter)."""
    history = _histories()
    history["m"] = np.where(history["x"] > 0, 25.0, np.nan)
    _, info = customer_value(history)
    gg = info["gamma_gamma"]
    assert gg["status"] == "ok" and gg["p"] == pytest.approx(BOUNDS[1]) and gg["q"] == pytest.approx(BOUNDS[1])
    assert gg["note"] == ("p = 1e+06, q = 1e+06 at the end of the search range 1e-06..1e+06: the spends do not pin "
                          "them down")
    assert "note" not in customer_value(_histories())[1]["gamma_gamma"]  # a fit inside the range says nothing


def test_a_customer_who_never_spent_is_not_given_the_population_mean_spend():
    """A customer whose only purchase was $0 got Gamma-Gamma's population mean spend per purchase
    (167.8 in the tester's run): they showed no positive spend, so their expected spend is 0."""
    day = 86_400
    rng = np.random.default_rng(4)
    rows = [(c, int(d) * day, float(rng.uniform(10, 60))) for c in range(40) for d in
            rng.choice(300, 1 + c % 4, replace=False)]
    orders = pd.DataFrame(rows + [(100, 50 * day, 0.0), (101, 60 * day, 0.0), (101, 61 * day, 0.0),
                                  (102, 70 * day, 30.0)], columns=["customer_id", "ts", "amount"])
    history = purchase_history(orders, "orders", 301 * day)
    frame, info = customer_value(history)
    assert info["status"] == "ok" and info["gamma_gamma"]["status"] == "ok"
    assert frame.loc[100, "predicted_clv"] == 0.0 and frame.loc[101, "predicted_clv"] == 0.0  # never spent
    assert frame.loc[100, "expected_purchases"] > 0  # they may buy again; their purchases are worth nothing so far
    assert frame.loc[102, "predicted_clv"] > 0  # a one-time buyer who spent: the population mean, as lifetimes
    with_total = frame.loc[[c for c in history.index if c < 100]]
    without = customer_value(history.drop(columns="total"))[0].loc[with_total.index]  # the column is optional
    pd.testing.assert_frame_equal(with_total, without)


def test_one_time_buyers_p_alive_is_no_evidence():
    """BG/NBD gives every one-time buyer p_alive 1: the column keeps it, metrics.json says so
    (count and note), and the segment means of p_alive cover repeat buyers only (NaN for a
    segment of one-time buyers), the other means every customer with a purchase."""
    from gpuseg.segments.value import repeat_buyers, segment_value_means

    history = _histories()
    frame, info = customer_value(history)
    one_time = int((history["x"] == 0).sum())
    assert (frame.loc[history["x"] == 0, "p_alive"] == 1.0).all()
    assert info["one_time_customers"] == one_time and info["repeat_customers"] + one_time == len(history)
    assert info["p_alive_note"].startswith(f"p_alive is 1 for the {one_time:,} one-time buyers")
    ids = np.array([*history.index, 9999])  # 9999: no purchase
    seg = frame.reindex(ids).reset_index(drop=True)
    seg["segment"] = np.where(history["x"].reindex(ids, fill_value=0).to_numpy() > 0, ids % 2, 2)
    seg["repeat_buyer"] = repeat_buyers(history, ids)
    assert seg["repeat_buyer"].tolist() == [*(history["x"] > 0), False]
    means = segment_value_means(seg)
    assert list(means.columns) == ["mean_p_alive", "mean_expected_purchases", "mean_predicted_clv",
                                   "predicted_clv_share", "value_customers", "repeat_customers"]
    assert np.isnan(means.loc[2, "mean_p_alive"]) and means.loc[2, "repeat_customers"] == 0  # one-time buyers only
    assert means.loc[2, "value_customers"] == one_time and means.loc[2, "mean_predicted_clv"] > 0
    repeat = seg[seg["repeat_buyer"]]
    np.testing.assert_allclose(means.loc[[0, 1], "mean_p_alive"], repeat.groupby("segment")["p_alive"].mean())
    assert means["repeat_customers"].sum() == info["repeat_customers"]
    assert means["predicted_clv_share"].sum() == pytest.approx(1.0)
    no_value = seg.assign(predicted_clv=np.nan)
    assert segment_value_means(no_value) is None
