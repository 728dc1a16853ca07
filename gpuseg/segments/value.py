"""Predictive customer lifetime value: BG/NBD for repeat purchases, Gamma-Gamma for spend.

From each customer's purchases (order lines, or ``purchase`` events) on distinct days:

- ``x``: repeat purchase days (distinct purchase days - 1);
- ``t_x``: days from the first to the last purchase day;
- ``T``: days from the first purchase day to the end of the data;
- ``m``: mean spend per repeat purchase day (the first day left out, as ``lifetimes`` does);
- ``total``: spend over all purchase days, the first included (only to tell who never spent).

**BG/NBD** (Fader, Hardie & Lee 2005, "Counting your customers the easy way"): while alive a
customer buys at a Poisson rate (Gamma(r, alpha) across customers) and after every purchase
drops out with probability p (Beta(a, b)). Its log-likelihood (section 7 of the paper) and
the conditional expectations are written once over ``xp`` (NumPy or CuPy); the four
parameters are fitted by maximum likelihood on their logs with L-BFGS on the host (then
Nelder-Mead if L-BFGS stalls), every
evaluation of the likelihood (and of its finite-difference gradient) running where the
data are. **Gamma-Gamma** (Fader, Hardie & Lee 2005, "RFM and CLV") fits the spend per
transaction of the repeat customers (``x > 0``) the same way.

Per customer: ``p_alive`` (probability the customer is still active), ``expected_purchases``
over ``horizon_days``, and ``predicted_clv``: expected purchases in each 30-day step times
the Gamma-Gamma expected spend per purchase, discounted at ``discount_rate`` a year, times
``margin``. Customers without a purchase (event logs: browsers) get none of them (NaN): the
model describes purchasers. Two conventions: ``p_alive`` is 1 for one-time buyers (``x = 0``;
BG/NBD lets a customer drop out only after a repeat purchase, so it cannot tell whether they
are still active), and :func:`segment_value_means` averages it over repeat buyers only; the
expected spend of a customer whose purchases add up to no positive value (``total <= 0``) is
0, not Gamma-Gamma's population mean (Gamma-Gamma is defined for positive spend).
Parameters are in days (``alpha`` and hence the rates); the published CDNOW values, in
weeks, compare after ``alpha / 7`` (``bench/clv.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ..backend import array_namespace, special_module, to_host, to_namespace

__all__ = ["BGNBD", "GammaGamma", "purchase_history", "customer_value", "predict_value", "repeat_buyers",
           "segment_value_means", "MIN_PURCHASERS", "MIN_REPEATERS"]

_DAY = 86_400
#: Fewer customers with a purchase than this: no BG/NBD fit (the parameters would be noise).
MIN_PURCHASERS = 20
#: Fewer repeat customers than this: no Gamma-Gamma fit; spend per purchase is the customer's own mean.
MIN_REPEATERS = 10
#: Where the fits search their parameters. Outside it, the data do not pin a parameter down:
#: a and b of BG/NBD drifted to 1e34 on 300 customers (the log-gamma differences then lose
#: every digit, and the likelihood "rose" above 0) and to 1e-17 on 20 (the expected purchases
#: 0/0). Within it every formula here stays finite.
BOUNDS = (1e-6, 1e6)
#: Gamma-Gamma's scale v is in units of spend (a currency of small units: 1e5 and more).
SPEND_SCALE_BOUNDS = (1e-6, 1e15)


def purchase_rows(frame: Any, kind: str) -> Any:
    """``customer_id, ts, value`` of every purchase in a cleaned frame, on its device:
    purchase events' prices (events) or order lines' amounts (orders), as spent (before the
    price fence capped them, where it did)."""
    col = "spent" if "spent" in frame.columns else ("price" if kind == "events" else "amount")
    rows = frame.loc[frame["etype"] == 3] if kind == "events" else frame
    return rows[["customer_id", "ts", col]].rename(columns={col: "value"})


def purchase_history(frame: Any, kind: str, reference_time: int) -> pd.DataFrame:
    """``x, t_x, T, m, total`` per customer with at least one purchase (host pandas, indexed
    by ``customer_id``; ``m`` NaN without repeat purchases) from a cleaned frame
    (:mod:`gpuseg.prep.clean`)."""
    rows = purchase_rows(frame, kind)
    rows = rows.assign(day=rows["ts"] // _DAY)
    with np.errstate(over="ignore"):  # sums past float64 are inf, and customer_value says so
        days = rows.groupby(["customer_id", "day"], sort=False)["value"].sum().reset_index()
        days = days.sort_values(["customer_id", "day"])
        per = days.groupby("customer_id", sort=True).agg(n=("day", "size"), first=("day", "min"),
                                                         last=("day", "max"), total=("value", "sum"))
    first_value = days.drop_duplicates("customer_id").set_index("customer_id")["value"]
    per = to_host(per) if not isinstance(per, pd.DataFrame) else per
    first_value = first_value.to_pandas() if hasattr(first_value, "to_pandas") else first_value
    x = per["n"].astype("float64") - 1.0
    out = pd.DataFrame({
        "x": x,
        "t_x": (per["last"] - per["first"]).astype("float64"),
        "T": (reference_time // _DAY - per["first"]).astype("float64"),
        "m": ((per["total"] - first_value.reindex(per.index)) / x).where(x > 0),
        "total": per["total"].astype("float64"),
    })
    return out


def _special(xp: Any, name: str) -> Any:
    return getattr(special_module(xp), name)


def bgnbd_log_likelihood(params: Any, x: Any, t_x: Any, T: Any) -> Any:
    """Per-customer BG/NBD log-likelihood (Fader, Hardie & Lee 2005, eq. in section 7)."""
    xp = array_namespace(x)
    gammaln = _special(xp, "gammaln")
    r, alpha, a, b = (float(p) for p in params)
    a1 = gammaln(r + x) - gammaln(r) + r * np.log(alpha)
    a2 = gammaln(a + b) + gammaln(b + x) - gammaln(b) - gammaln(a + b + x)
    a3 = -(r + x) * xp.log(alpha + T)
    a4 = np.log(a) - xp.log(b + xp.maximum(x, 1.0) - 1.0) - (r + x) * xp.log(t_x + alpha)
    top = xp.maximum(a3, a4)
    return a1 + a2 + top + xp.log(xp.exp(a3 - top) + xp.exp(a4 - top) * (x > 0))


def gamma_gamma_log_likelihood(params: Any, x: Any, m: Any) -> Any:
    """Per-customer Gamma-Gamma log-likelihood of the mean spend ``m`` of ``x`` purchases."""
    xp = array_namespace(x)
    gammaln = _special(xp, "gammaln")
    p, q, v = (float(z) for z in params)
    return (gammaln(p * x + q) - gammaln(p * x) - gammaln(q) + q * np.log(v) + (p * x - 1.0) * xp.log(m)
            + (p * x) * xp.log(x) - (p * x + q) * xp.log(x * m + v))


def _fit(nll: Any, start: np.ndarray, bounds: list[tuple[float, float]]) -> tuple[np.ndarray, float, bool]:
    """Minimise a mean negative log-likelihood over log-parameters within ``bounds``:
    (params, value, converged)."""
    from scipy.optimize import minimize

    log_bounds = [(np.log(lo), np.log(hi)) for lo, hi in bounds]

    def objective(theta: np.ndarray) -> float:
        with np.errstate(all="ignore"):  # trial parameters may overflow: the search steps back
            value = nll(np.exp(theta))
        return value if np.isfinite(value) else 1e300

    res = minimize(objective, start, method="L-BFGS-B", bounds=log_bounds,
                   options={"ftol": 1e-13, "gtol": 1e-9, "maxiter": 2000})
    if res.success:
        return np.exp(res.x), float(res.fun), True
    # finite-difference gradients can stall L-BFGS: finish without them
    res2 = minimize(objective, res.x, method="Nelder-Mead", bounds=log_bounds,
                    options={"xatol": 1e-8, "fatol": 1e-13, "maxiter": 4000})
    best = res2 if res2.fun <= res.fun else res
    return np.exp(best.x), float(best.fun), bool(res2.success)


@dataclass
class BGNBD:
    """The BG/NBD model; :meth:`fit` sets ``params_ = (r, alpha, a, b)`` (alpha in days)."""

    params_: tuple[float, float, float, float] | None = None
    log_likelihood_: float | None = None
    converged_: bool = False

    def fit(self, x: Any, t_x: Any, T: Any) -> "BGNBD":
        n = x.shape[0]

        def nll(params: np.ndarray) -> float:
            return -float(bgnbd_log_likelihood(params, x, t_x, T).sum()) / n

        params, value, ok = _fit(nll, np.zeros(4), [BOUNDS] * 4)
        self.params_ = tuple(float(p) for p in params)
        self.log_likelihood_, self.converged_ = -value * n, ok
        return self

    def p_alive(self, x: Any, t_x: Any, T: Any) -> Any:
        """Probability that each customer is still active at the end of the data."""
        xp = array_namespace(x)
        r, alpha, a, b = self.params_
        odds = (x > 0) * (a / (b + xp.maximum(x, 1.0) - 1.0)) * ((alpha + T) / (alpha + t_x)) ** (r + x)
        return 1.0 / (1.0 + odds)

    def expected_purchases(self, t: float, x: Any, t_x: Any, T: Any) -> Any:
        """Expected purchases in the next ``t`` days of each customer (``lifetimes``'
        ``conditional_expected_number_of_purchases_up_to_time``)."""
        xp = array_namespace(x)
        r, alpha, a, b = self.params_
        ca, cb, cc = r + x, b + x, a + b + x - 1.0
        z = t / (alpha + T + t)
        ln_hyp = _log_hyp2f1(ca, cb, cc, z)
        first = (a + b + x - 1.0) / (a - 1.0)
        second = 1.0 - xp.exp(ln_hyp + (r + x) * xp.log((alpha + T) / (alpha + t + T)))
        odds = (x > 0) * (a / (b + xp.maximum(x, 1.0) - 1.0)) * ((alpha + T) / (alpha + t_x)) ** (r + x)
        return first * second / (1.0 + odds)


def _log_hyp2f1(a: Any, b: Any, c: Any, z: Any) -> Any:
    """log 2F1(a, b; c; z) elementwise (on the host when the array module has no hyp2f1),
    with Euler's transformation where the direct series overflows."""
    xp = array_namespace(a)
    sp = special_module(xp)
    if not hasattr(sp, "hyp2f1"):  # on the host, where scipy.special has it
        host = [to_host(v) for v in (a, b, c, z)]
        return to_namespace(_log_hyp2f1(*(np.asarray(v, dtype=np.float64) for v in host)), xp)
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        direct = xp.log(sp.hyp2f1(a, b, c, z))
        alt = xp.log(sp.hyp2f1(c - a, c - b, c, z)) + (c - a - b) * xp.log(1.0 - z)
    return xp.where(xp.isfinite(direct), direct, alt)


@dataclass
class GammaGamma:
    """The Gamma-Gamma spend model; :meth:`fit` sets ``params_ = (p, q, v)``."""

    params_: tuple[float, float, float] | None = None
    log_likelihood_: float | None = None
    converged_: bool = False

    def fit(self, x: Any, m: Any) -> "GammaGamma":
        n = x.shape[0]

        def nll(params: np.ndarray) -> float:
            return -float(gamma_gamma_log_likelihood(params, x, m).sum()) / n

        params, value, ok = _fit(nll, np.zeros(3), [BOUNDS, BOUNDS, SPEND_SCALE_BOUNDS])
        self.params_ = tuple(float(p) for p in params)
        self.log_likelihood_, self.converged_ = -value * n, ok
        return self

    def expected_spend(self, x: Any, m: Any) -> Any:
        """Expected spend per purchase: the customer's mean shrunk towards the population
        mean ``v p / (q - 1)``, more for customers with fewer purchases (``m`` may be NaN
        where ``x`` is 0)."""
        xp = array_namespace(x)
        p, q, v = self.params_
        own = xp.where(x > 0, p * x / (p * x + q - 1.0), 0.0)
        return (1.0 - own) * (v * p / (q - 1.0)) + own * xp.where(x > 0, m, 0.0)


def discounted_purchases(model: BGNBD, horizon_days: float, discount_rate: float, x: Any, t_x: Any,
                         T: Any) -> tuple[Any, Any]:
    """(expected purchases over the horizon, the same in 30-day steps each discounted at
    ``discount_rate`` a year to its end)."""
    total, before, t = 0.0, 0.0, 0.0
    while t < horizon_days:
        t = min(t + 30.0, float(horizon_days))
        upto = model.expected_purchases(t, x, t_x, T)
        total = total + (upto - before) / (1.0 + discount_rate) ** (t / 365.0)
        before = upto
    return before, total


def customer_value(history: pd.DataFrame, xp: Any = np, horizon_days: float = 365.0, discount_rate: float = 0.1,
                   margin: float = 1.0) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Fit BG/NBD and Gamma-Gamma on :func:`purchase_history` and predict per customer.

    Returns
    -------
    (frame, summary)
        ``p_alive, expected_purchases, predicted_clv`` indexed like ``history`` (host
        pandas), and the fit for ``metrics.json``: parameters, log-likelihoods, customers,
        settings, or ``status`` and ``reason`` when there were too few purchasers.
    """
    settings = {"horizon_days": float(horizon_days), "discount_rate": float(discount_rate), "margin": float(margin)}
    empty = pd.DataFrame(np.nan, index=history.index, columns=["p_alive", "expected_purchases", "predicted_clv"])
    repeaters = int((history["x"] > 0).sum())
    if len(history) < MIN_PURCHASERS or repeaters == 0:
        return empty, {"status": "skipped", **settings, "customers": len(history), "repeat_customers": repeaters,
                       "reason": f"{len(history)} customers with a purchase, {repeaters} with a repeat purchase: "
                                 f"too few for BG/NBD (needs {MIN_PURCHASERS}, and repeat purchases)"}
    spent = history.loc[history["x"] > 0, "m"]
    if not np.isfinite(spent.to_numpy(np.float64)).all() or not np.isfinite(spent.sum()):
        return empty, {"status": "skipped", **settings, "customers": len(history), "repeat_customers": repeaters,
                       "reason": "purchase values too large to add up in float64"}
    x, t_x, T = (xp.asarray(history[c].to_numpy(np.float64)) for c in ("x", "t_x", "T"))
    bg = BGNBD().fit(x, t_x, T)
    r, alpha, a, b = bg.params_
    summary = {"status": "ok", **settings, "customers": len(history), "repeat_customers": repeaters,
               "history_days": float(history["T"].max()),
               "bgnbd": {"r": r, "alpha_days": alpha, "a": a, "b": b, "log_likelihood": bg.log_likelihood_,
                         "converged": bg.converged_},
               "gamma_gamma": _fit_spend(history, xp)}
    at_bound = _bound_note(("r", "alpha", "a", "b"), bg.params_, [BOUNDS] * 4, "purchases")
    if at_bound:
        summary["bgnbd"]["note"] = at_bound
    summary.update(_one_time_note(len(history) - repeaters))
    values = predict_value(history, summary, xp)
    dropout = _no_dropout_note(values["p_alive"][history["x"].to_numpy() > 0], summary)
    if dropout:
        summary["no_dropout"] = dropout
    if not np.isfinite(values.to_numpy(np.float64)).all():  # e.g. 20 customers: r 1e4, a at its bound
        why = summary["bgnbd"].get("note", "")
        return empty, {**summary, "status": "skipped",
                       "reason": "BG/NBD's predictions are not finite at the fitted parameters" + (f" ({why})" if why
                                                                                                   else "")}
    return values, summary


def _bound_note(names: tuple[str, ...], params: Any, bounds: list[tuple[float, float]], what: str) -> str:
    """Which fitted parameters sit at an end of their search range (the data do not pin them
    down), for the fit's ``note``; empty when none does."""
    hits = [(name, value, lo, hi) for name, value, (lo, hi) in zip(names, params, bounds)
            if np.isclose(np.log(value), np.log([lo, hi]), atol=1e-6).any()]
    if not hits:
        return ""
    ranges = " and ".join(dict.fromkeys(f"{lo:g}..{hi:g}" for _, _, lo, hi in hits))
    return (f"{', '.join(f'{name} = {value:.3g}' for name, value, _, _ in hits)} at the end of the search range "
            f"{ranges}: the {what} do not pin {'it' if len(hits) == 1 else 'them'} down")


def _one_time_note(one_time: int) -> dict[str, Any]:
    """The ``lifetime_value`` entries on one-time buyers: how many, and why their p_alive of 1
    says nothing."""
    out: dict[str, Any] = {"one_time_customers": int(one_time)}
    if one_time:
        out["p_alive_note"] = (f"p_alive is 1 for the {one_time:,} one-time buyers: BG/NBD lets a customer drop out "
                               "only after a repeat purchase, so it cannot tell whether a one-time buyer is still "
                               "active (judge them by recency); segment means of p_alive cover repeat buyers only")
    return out


#: Every repeat buyer's p_alive at least this: the fit sees no dropout to speak of.
NO_DROPOUT_P_ALIVE = 0.99


def _no_dropout_note(p_alive: pd.Series, summary: dict[str, Any]) -> str:
    """The warning when BG/NBD gives every repeat buyer a p_alive of
    :data:`NO_DROPOUT_P_ALIVE` or more (a short history, or customers who never stop): its
    p_alive then cannot tell a lapsed customer from an active one. Empty otherwise."""
    if len(p_alive) == 0 or not float(p_alive.min()) >= NO_DROPOUT_P_ALIVE:
        return ""
    floor = np.floor(float(p_alive.min()) * 1000.0) / 1000.0  # rounded, 0.9995 would read 1.000
    return (f"every repeat buyer's p_alive is at least {floor:.3f}: over {summary['history_days']:,.0f} "
            f"days of purchases BG/NBD sees almost no dropout (a = {summary['bgnbd']['a']:.3g}), so p_alive cannot "
            "tell lapsed customers from active ones here; judge them by recency")


def predict_value(history: pd.DataFrame, fit: dict[str, Any], xp: Any = np) -> pd.DataFrame:
    """``p_alive, expected_purchases, predicted_clv`` of :func:`purchase_history` customers
    from a fit :func:`customer_value` made (its summary; a saved model keeps it, so
    ``gpuseg assign`` predicts for new customers with the training parameters). A customer
    whose purchases add up to no positive value (``total <= 0``, where ``history`` has it)
    has an expected spend of 0: Gamma-Gamma models positive spend, and its population mean
    would credit them with spend they never showed."""
    x, t_x, T = (xp.asarray(history[c].to_numpy(np.float64)) for c in ("x", "t_x", "T"))
    m = xp.asarray(history["m"].fillna(0.0).clip(lower=0.0).to_numpy(np.float64))
    p = fit["bgnbd"]
    bg = BGNBD(params_=(p["r"], p["alpha_days"], p["a"], p["b"]))
    gg = fit["gamma_gamma"]
    if gg["status"] == "ok" and gg["q"] > 1.0:
        spend = GammaGamma(params_=(gg["p"], gg["q"], gg["v"])).expected_spend(x, xp.where(x > 0, m, 0.0))
    else:  # no finite population mean, or too few repeat customers: own mean, else the repeat customers'
        spend = xp.where(x > 0, m, gg["mean_spend"]) if gg["status"] == "ok" else xp.full(x.shape, gg["mean_spend"])
    if "total" in history.columns:
        spend = xp.where(xp.asarray(history["total"].to_numpy(np.float64)) > 0, spend, 0.0)
    expected, discounted = discounted_purchases(bg, fit["horizon_days"], fit["discount_rate"], x, t_x, T)
    return pd.DataFrame({
        "p_alive": to_host(bg.p_alive(x, t_x, T)),
        "expected_purchases": to_host(expected),
        "predicted_clv": to_host(fit["margin"] * spend * discounted),
    }, index=history.index)


def _fit_spend(history: pd.DataFrame, xp: Any) -> dict[str, Any]:
    """Gamma-Gamma on the repeat customers with positive spend, when there are enough; the
    entry always carries their mean spend per purchase (``mean_spend``), the fallback."""
    rep = history[(history["x"] > 0) & (history["m"] > 0)]
    if not len(rep):
        return {"status": "skipped", "repeat_customers": 0, "mean_spend": 0.0,
                "reason": "no repeat purchase has a positive value: the expected spend is 0"}
    mean_spend = float(rep["m"].mean())
    if len(rep) < MIN_REPEATERS:
        return {"status": "skipped", "repeat_customers": len(rep), "mean_spend": mean_spend,
                "reason": f"{len(rep)} repeat customers with spend (needs {MIN_REPEATERS}); their mean spend per "
                          "purchase is used"}
    gg = GammaGamma().fit(xp.asarray(rep["x"].to_numpy(np.float64)), xp.asarray(rep["m"].to_numpy(np.float64)))
    p, q, v = gg.params_
    info = {"status": "ok", "p": p, "q": q, "v": v, "log_likelihood": gg.log_likelihood_, "converged": gg.converged_,
            "repeat_customers": len(rep), "mean_spend": mean_spend}
    notes = [_bound_note(("p", "q", "v"), gg.params_, [BOUNDS, BOUNDS, SPEND_SCALE_BOUNDS], "spends"),
             "q <= 1: the population mean spend is infinite; each customer's own mean spend is used" if q <= 1.0
             else ""]
    if any(notes):
        info["note"] = "; ".join(n for n in notes if n)
    return info


def repeat_buyers(history: pd.DataFrame, customer_ids: Any) -> np.ndarray:
    """Whether each of ``customer_ids`` bought on more than one day (``x > 0`` in
    :func:`purchase_history`; False without a purchase): the customers whose p_alive says
    something."""
    return (history["x"] > 0).reindex(pd.Index(to_host(customer_ids)), fill_value=False).to_numpy(bool)


def segment_value_means(segments: pd.DataFrame) -> pd.DataFrame | None:
    """Per segment (the index) of host ``segments`` (``segment, p_alive, expected_purchases,
    predicted_clv, repeat_buyer``): ``mean_p_alive`` over its repeat buyers only (NaN when it
    has none: one-time buyers' p_alive of 1 says nothing), ``mean_expected_purchases`` and
    ``mean_predicted_clv`` over its customers with a purchase (``value_customers``),
    ``predicted_clv_share`` (of the total) and ``repeat_customers``; None without values."""
    if segments["predicted_clv"].isna().all():
        return None
    bought = segments["predicted_clv"].notna()
    repeat = bought & segments["repeat_buyer"].fillna(False).astype(bool)
    by = segments.groupby("segment")
    means = by[["expected_purchases", "predicted_clv"]].mean().add_prefix("mean_")
    means.insert(0, "mean_p_alive", segments["p_alive"].where(repeat).groupby(segments["segment"]).mean())
    total = segments["predicted_clv"].sum()
    means["predicted_clv_share"] = by["predicted_clv"].sum() / total if total > 0 else np.nan
    means["value_customers"] = by["predicted_clv"].count()
    means["repeat_customers"] = repeat.groupby(segments["segment"]).sum().astype("int64")
    return means
