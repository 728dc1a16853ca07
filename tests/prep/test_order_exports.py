"""Shop order exports: order statuses, currencies, returns, e-mail ids and the spend capping
changed (gpuseg.prep.clean)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from gpuseg.backend import to_host
from gpuseg.config import CleanConfig
from gpuseg.errors import DataError
from gpuseg.io.readers import from_frame
from gpuseg.prep.clean import DROP_REASONS, NOT_COMPLETED, PAID, clean, describe_cleaning


def _orders(**columns) -> pd.DataFrame:
    n = len(next(iter(columns.values())))
    base = {"customer_id": [f"c{i % 4}" for i in range(n)],
            "timestamp": [f"2024-03-{1 + i % 28:02d} 10:00:00" for i in range(n)],
            "amount": [10.0 + i for i in range(n)]}
    base.update(columns)
    return pd.DataFrame(base)


def test_orders_not_paid_or_undone_are_dropped_and_unknown_statuses_named(cpu):
    status = ["paid", "Refunded", "pending", "partially_refunded", "CANCELLED", "on-hold", None, "weird", "weird"]
    df = _orders(**{"Financial Status": status}, customer_id=["a", "b", "c", "a", "b", "c", "a", "a", "d"])
    c = clean(from_frame(df, cpu), CleanConfig(price_outliers="off"), cpu)
    assert c.dropped["not_completed"] == 4  # Refunded, pending, CANCELLED, on-hold
    assert c.rows_out == 5  # paid, partially refunded, no status, and the unknown one (twice)
    assert c.unknown_statuses == {"weird": 2}
    assert c.drop_examples["not_completed"] == "Refunded"
    # customer b had only undone orders, c only undone or unpaid ones
    assert dict(zip(c.excluded["customer_id"], c.excluded["reason"])) == {"b": "not_completed",
                                                                           "c": "not_completed"}
    line = describe_cleaning(c.summary())
    assert "not_completed 4 rows" in line and "statuses gpuseg does not know: 'weird' 2 rows" in line
    assert c.state()["status_read"] is True


def test_a_model_saved_before_statuses_were_read_keeps_every_order(cpu):
    df = _orders(status=["paid", "refunded", "pending", "paid"])
    fitted = {"outlier_fence": None, "price_outliers": "off", "fill": {}, "sessions_kept": True}
    c = clean(from_frame(df, cpu), CleanConfig(price_outliers="off"), cpu, fitted=fitted)
    assert c.dropped["not_completed"] == 0 and c.rows_out == 4
    assert "status_read" not in c.state()


def test_the_status_sets_do_not_overlap():
    assert not NOT_COMPLETED & PAID
    assert "returned" in DROP_REASONS and "not_completed" in DROP_REASONS


def test_several_currencies_are_refused_unless_one_is_chosen(cpu):
    df = _orders(currency=["EUR", "EUR", "usd", "EUR", "JPY", " USD"])
    with pytest.raises(DataError, match=r"3 currencies \(EUR 3 rows, USD 2 rows, JPY 1 rows\).*--currency EUR"):
        clean(from_frame(df, cpu), CleanConfig(price_outliers="off"), cpu)
    c = clean(from_frame(df, cpu), CleanConfig(price_outliers="off", currency="usd"), cpu)
    assert c.rows_out == 2 and c.dropped["other_currency"] == 4 and c.currency == "USD"
    assert to_host(c.frame)["amount"].tolist() == [12.0, 15.0]
    assert c.state()["currency"] == "USD"
    # new data placed with that model keep its currency
    again = clean(from_frame(df, cpu), CleanConfig(price_outliers="off"), cpu, fitted=c.state())
    assert again.rows_out == 2 and again.currency == "USD"
    with pytest.raises(DataError, match="currency GBP: the currency column has no row in it"):
        clean(from_frame(df, cpu), CleanConfig(price_outliers="off", currency="GBP"), cpu)


def test_one_currency_is_recorded_and_nothing_dropped(cpu):
    c = clean(from_frame(_orders(currency=["eur"] * 5), cpu), CleanConfig(price_outliers="off"), cpu)
    assert c.currency == "EUR" and c.rows_out == 5 and c.summary()["currency"] == "EUR"


def test_returns_are_counted_as_returns_not_as_bad_values(cpu):
    lines = _orders(quantity=[2, -2, 0, 1], unit_price=[5.0, 5.0, 5.0, 3.0]).drop(columns="amount")
    c = clean(from_frame(lines, cpu), CleanConfig(price_outliers="off"), cpu)
    assert c.dropped["returned"] == 1 and c.dropped["bad_quantity"] == 1
    assert "returns and cancellations are left out, not subtracted from spend" in describe_cleaning(c.summary())
    totals = _orders(amount=[20.0, -20.0, 5.0])  # a refund on a log of order totals
    c = clean(from_frame(totals, cpu), CleanConfig(price_outliers="off"), cpu)
    assert c.dropped["returned"] == 1 and c.dropped["bad_price"] == 0


def test_e_mail_ids_in_other_case_are_one_customer(cpu):
    df = _orders(customer_id=["Ann@Shop.com", "ann@shop.com", "BOB@x.org", "AB", "ab"])
    c = clean(from_frame(df, cpu), CleanConfig(price_outliers="off"), cpu)
    ids = sorted(set(to_host(c.frame)["customer_id"].astype(str)))
    assert ids == ["AB", "ab", "ann@shop.com", "bob@x.org"]  # ids without "@" keep their case
    assert c.emails_merged == 1 and c.customers_in == 4
    assert "1 id written in other case merged" in describe_cleaning(c.summary())
    legacy = clean(from_frame(df, cpu), CleanConfig(price_outliers="off"), cpu,
                   fitted={"outlier_fence": None, "price_outliers": "off", "fill": {}, "sessions_kept": True})
    assert legacy.customers_in == 5


def test_capping_says_how_much_spend_it_took_from_the_features(cpu):
    rng = np.random.default_rng(0)
    amount = np.round(rng.lognormal(4.0, 0.3, 200), 2)
    amount[:3] = 55_000.0  # three wholesale orders
    df = pd.DataFrame({"customer_id": np.arange(200) % 50, "amount": amount,
                       "timestamp": pd.date_range("2024-01-01", periods=200, freq="h").astype(str)})
    c = clean(from_frame(df, cpu), CleanConfig(), cpu)
    before, after = c.capped_spend
    assert before == pytest.approx(165_000.0) and after < 3_000
    assert to_host(c.frame)["spent"].sum() == pytest.approx(amount.sum())
    line = describe_cleaning(c.summary())
    assert "the spend of those purchases 165,000 ->" in line and 'price_outliers = "off"' in line


def test_a_blank_currency_is_the_file_s_own_in_training_and_with_its_model(cpu):
    df = _orders(currency=["EUR", None, "EUR", " ", "EUR"])
    c = clean(from_frame(df, cpu), CleanConfig(price_outliers="off"), cpu)
    assert c.rows_out == 5 and c.currency == "EUR"
    again = clean(from_frame(df, cpu), CleanConfig(price_outliers="off"), cpu, fitted=c.state())
    assert again.rows_out == 5 and again.dropped["other_currency"] == 0


def test_a_model_without_a_currency_refuses_several_without_naming_an_option_it_lacks(cpu):
    fitted = clean(from_frame(_orders(status=["paid"] * 4), cpu), CleanConfig(price_outliers="off"), cpu).state()
    with pytest.raises(DataError, match="keep the rows of one currency, or convert"):
        clean(from_frame(_orders(currency=["EUR", "USD", "EUR"]), cpu), CleanConfig(price_outliers="off"), cpu,
              fitted=fitted)


def test_woocommerce_statuses_with_their_prefix_are_known(cpu):
    df = _orders(status=["wc-completed", "wc-refunded", "wc-cancelled", "wc-processing"])
    c = clean(from_frame(df, cpu), CleanConfig(price_outliers="off"), cpu)
    assert c.dropped["not_completed"] == 2 and c.unknown_statuses == {}


def test_a_model_saved_before_returns_were_named_counts_them_as_it_did(cpu):
    fitted = {"outlier_fence": None, "price_outliers": "off", "fill": {}, "sessions_kept": True}
    lines = _orders(quantity=[2, -2, 0, 1], unit_price=[5.0, 5.0, 5.0, 3.0]).drop(columns="amount")
    c = clean(from_frame(lines, cpu), CleanConfig(price_outliers="off"), cpu, fitted=fitted)
    assert c.dropped["returned"] == 0 and c.dropped["bad_quantity"] == 2
    totals = _orders(amount=[20.0, -20.0, 5.0])
    c = clean(from_frame(totals, cpu), CleanConfig(price_outliers="off"), cpu, fitted=fitted)
    assert c.dropped["returned"] == 0 and c.dropped["bad_price"] == 1
