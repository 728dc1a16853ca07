"""Lifetime value: gpuseg's BG/NBD + Gamma-Gamma against `lifetimes` and on CDNOW's holdout.

1. **Parameters.** On the CDNOW sample that ships in the `lifetimes` wheel (2,357 customers,
   in weeks), gpuseg's fits beside the published ones (Fader, Hardie & Lee 2005: BG/NBD r =
   0.243, alpha = 4.414, a = 0.793, b = 2.426; Gamma-Gamma p = 6.25, q = 3.74, v = 15.45) and,
   when `lifetimes` imports, beside its own fit on the same data.
2. **Holdout.** On the whole CDNOW log: `gpuseg run` on the orders up to 1997-09-30 with
   ``[value] horizon_days`` = the holdout's 273 days and no discounting; how well each
   customer's ``predicted_clv`` ranks the spend of 1997-10-01..1998-06-30 (Spearman), and the
   predicted against the actual holdout spend per decile of ``predicted_clv``. Beside it, the
   ranking by ``spend_rate_annualised`` (the old ``clv`` feature: spend per day x 365, an extrapolation) and by spend so far.

    python bench/clv.py

The data are fetched into bench/data/ by ``bench/cdnow.py``'s helper (not committed).
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

PUBLISHED_BGNBD = {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}
PUBLISHED_GG = {"p": 6.25, "q": 3.74, "v": 15.45}
HOLDOUT_DAYS = 273


def _sample_tables() -> tuple[pd.DataFrame, pd.DataFrame]:
    from cdnow import DATA, cdnow_csv

    cdnow_csv()  # fetches the wheel once
    wheel = next(w for w in DATA.glob("*.whl") if w.name.lower().startswith("lifetimes-0.11.3-"))
    with zipfile.ZipFile(wheel) as z:
        summary = pd.read_csv(z.open("lifetimes/datasets/cdnow_customers_summary.csv"))
        spend = pd.read_csv(z.open("lifetimes/datasets/cdnow_customers_summary_with_transactions.csv"))
    return summary, spend


def parameters() -> dict:
    from gpuseg.segments.value import BGNBD, GammaGamma

    summary, spend = _sample_tables()
    x, t_x, T = (summary[c].to_numpy(float) for c in ("frequency", "recency", "T"))
    bg = BGNBD().fit(x, t_x, T)
    rep = spend[spend["x"] > 0]
    gg = GammaGamma().fit(rep["x"].to_numpy(float), rep["zbar"].to_numpy(float))
    ours = {"bgnbd": dict(zip(("r", "alpha", "a", "b"), bg.params_)), "gamma_gamma": dict(zip(("p", "q", "v"), gg.params_))}
    out = {"gpuseg": ours, "published": {"bgnbd": PUBLISHED_BGNBD, "gamma_gamma": PUBLISHED_GG}}
    try:
        from lifetimes import BetaGeoFitter, GammaGammaFitter

        lbg = BetaGeoFitter().fit(summary["frequency"], summary["recency"], summary["T"])
        lgg = GammaGammaFitter().fit(rep["x"], rep["zbar"])
        out["lifetimes"] = {"bgnbd": {k: float(lbg.params_[k]) for k in ("r", "alpha", "a", "b")},
                            "gamma_gamma": {k: float(lgg.params_[k]) for k in ("p", "q", "v")}}
    except Exception as exc:  # noqa: BLE001 - lifetimes is optional here (old NumPy/autograd pins)
        out["lifetimes"] = f"not run: {type(exc).__name__}: {exc}"
    return out


def holdout() -> dict:
    from scipy.stats import spearmanr

    from cdnow import calibration_split, cdnow_csv
    from gpuseg.config import build_config
    from gpuseg.pipeline import run

    with tempfile.TemporaryDirectory() as tmp:
        cal, hold, cal_csv = calibration_split(cdnow_csv(), Path(tmp))
        result = run(build_config({"value": {"horizon_days": HOLDOUT_DAYS, "discount_rate": 0.0}}, input=str(cal_csv),
                                  out=str(Path(tmp) / "o"), report=False, format="orders", stability=0))
        feats = pd.read_parquet(Path(tmp) / "o" / "features.parquet")
    seg = result.segments.assign(customer_id=lambda d: d["customer_id"].astype(str)).set_index("customer_id")
    feats = feats.assign(customer_id=feats["customer_id"].astype(str)).set_index("customer_id").reindex(seg.index)
    actual = hold.groupby("customer_id")["amount"].sum().reindex(seg.index, fill_value=0.0)
    rankers = {"gpuseg predicted_clv (BG/NBD + Gamma-Gamma)": seg["predicted_clv"],
               "spend_rate_annualised feature (the old clv: spend per day x 365)": feats["spend_rate_annualised"], "spend so far": feats["monetary"]}
    lt = _lifetimes_clv(cal, seg.index)
    if lt is not None:
        rankers["lifetimes BetaGeoFitter + GammaGammaFitter (same horizon, undiscounted)"] = lt
    spearman = {name: float(spearmanr(v, actual).statistic) for name, v in rankers.items()}
    deciles = pd.qcut(seg["predicted_clv"].rank(method="first"), 10, labels=False) + 1
    table = pd.DataFrame({"predicted": seg["predicted_clv"], "actual": actual}).groupby(deciles.values).mean()
    return {"customers": len(seg), "holdout_days": HOLDOUT_DAYS, "spearman": spearman,
            "total_predicted": float(seg["predicted_clv"].sum()), "total_actual": float(actual.sum()),
            "deciles": [{"decile": int(d), "predicted": float(r.predicted), "actual": float(r.actual)}
                        for d, r in table.iterrows()],
            "fit": result.metrics["lifetime_value"]}


def _lifetimes_clv(cal: pd.DataFrame, customers: pd.Index) -> pd.Series | None:
    """lifetimes' own BG/NBD + Gamma-Gamma on the calibration orders (its summary function,
    daily): expected purchases over the holdout times expected spend per purchase; None
    when lifetimes does not import."""
    try:
        from lifetimes import BetaGeoFitter, GammaGammaFitter
        from lifetimes.utils import summary_data_from_transaction_data
    except Exception:  # noqa: BLE001 - optional (old NumPy/autograd pins)
        return None
    from cdnow import CALIBRATION_END

    summary = summary_data_from_transaction_data(cal, "customer_id", "ts", monetary_value_col="amount",
                                                 observation_period_end=CALIBRATION_END, freq="D")
    bg = BetaGeoFitter().fit(summary["frequency"], summary["recency"], summary["T"])
    rep = summary[(summary["frequency"] > 0) & (summary["monetary_value"] > 0)]  # lifetimes refuses zero spend
    gg = GammaGammaFitter().fit(rep["frequency"], rep["monetary_value"])
    purchases = bg.conditional_expected_number_of_purchases_up_to_time(HOLDOUT_DAYS, summary["frequency"],
                                                                      summary["recency"], summary["T"])
    spend = gg.conditional_expected_average_profit(summary["frequency"], summary["monetary_value"])
    return (purchases * spend).reindex(customers)


def main() -> int:
    t0 = time.perf_counter()
    params = parameters()
    print("| model | parameter | published | gpuseg | lifetimes |\n|---|---|---:|---:|---:|")
    for model in ("bgnbd", "gamma_gamma"):
        for k, pub in params["published"][model].items():
            lt = params["lifetimes"][model][k] if isinstance(params["lifetimes"], dict) else float("nan")
            print(f"| {model} | {k} | {pub} | {params['gpuseg'][model][k]:.4f} | {lt:.4f} |")
    if not isinstance(params["lifetimes"], dict):
        print(f"\nlifetimes: {params['lifetimes']}")
    hold = holdout()
    print(f"\nCDNOW holdout ({hold['customers']:,} customers, {hold['holdout_days']} days): Spearman with the holdout "
          "spend per customer\n\n| ranking | Spearman |\n|---|---:|")
    for name, rho in hold["spearman"].items():
        print(f"| {name} | {rho:.3f} |")
    print(f"\nTotal predicted {hold['total_predicted']:,.0f} against {hold['total_actual']:,.0f} spent.\n\n"
          "| decile of predicted_clv | mean predicted | mean actual |\n|---:|---:|---:|")
    for d in hold["deciles"]:
        print(f"| {d['decile']} | {d['predicted']:.2f} | {d['actual']:.2f} |")
    total = time.perf_counter() - t0
    print(f"\nTotal {total:.0f} s; load {os.getloadavg()[0]:.2f}")
    (HERE / "results" / "clv-cpu.json").write_text(json.dumps({"parameters": params, "holdout": hold,
                                                                "total_s": round(total, 1)}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
