from __future__ import annotations

import gzip

import numpy as np
import pandas as pd
import pytest

from gpuseg.errors import DataError, SchemaError
from gpuseg.io.readers import detect_timestamp_format, from_frame, load, read_truth, resolve_paths
from gpuseg.io.schemas import detect_format

REES = (
    "event_time,event_type,product_id,category_id,category_code,brand,price,user_id,user_session\n"
    "2019-10-01 00:00:00 UTC,view,44600062,2103807459595387724,,shiseido,35.79,541312140,72d76fde\n"
    "2019-10-01 00:00:01 UTC,cart,1307067,2053013558920217191,computers.notebook,lenovo,251.74,550050854,7c90fc70\n"
    "2019-10-01 00:00:04 UTC,purchase,1307067,2053013558920217191,computers.notebook,lenovo,251.74,550050854,7c90fc70\n"
)


def write(path, text, gz=False):
    if gz:
        with gzip.open(path, "wt") as fh:
            fh.write(text)
    else:
        path.write_text(text)
    return path


@pytest.mark.parametrize("suffix", ["csv", "csv.gz"], ids=["csv", "gzip-csv"])
def test_reads_rees46_csv(tmp_path, backend, suffix):
    p = write(tmp_path / f"e.{suffix}", REES, gz=suffix.endswith("gz"))
    d = load(str(p), backend)
    assert d.schema.name == "events"
    assert d.rows_read == 3
    assert d.timestamp_format == "%Y-%m-%d %H:%M:%S UTC"
    f = d.frame
    assert str(f["event_time"].dtype) == "datetime64[s]"
    assert int(f["event_time"].astype("int64").iloc[2]) == 1569888004
    assert str(f["event_type"].dtype) == "category"
    assert float(f["price"].sum()) == pytest.approx(539.27)


def test_parquet_folder_glob_and_parts_agree(tmp_path, cpu, small_events):
    events, _ = small_events
    part = tmp_path / "parts"
    part.mkdir()
    half = len(events) // 2
    events.iloc[:half].to_parquet(part / "part-0.parquet")
    events.iloc[half:].to_parquet(part / "part-1.parquet")
    (part / "_SUCCESS").write_text("")
    by_folder = load(str(part), cpu)
    by_glob = load(str(part / "*.parquet"), cpu)
    assert by_folder.rows_read == by_glob.rows_read == len(events)
    assert len(by_folder.files) == 2
    pd.testing.assert_frame_equal(by_folder.frame, by_glob.frame)


def test_orders_autodetect_with_case_insensitive_names(tmp_path, cpu):
    p = write(
        tmp_path / "orders.csv",
        "CustomerID,Timestamp,Amount,Order_ID\n17850,2010-12-01 08:26:00,15.3,536365\n17850,2010-12-02 08:26:00,20,536366\n",
    )
    d = load(str(p), cpu)
    assert d.schema.name == "orders"
    assert d.column_map == {"CustomerID": "customer_id", "Timestamp": "timestamp", "Amount": "amount",
                            "Order_ID": "order_id"}


def test_rename_maps_uci_online_retail(tmp_path, cpu):
    p = write(
        tmp_path / "uci.csv",
        "InvoiceNo,StockCode,Quantity,InvoiceDate,UnitPrice,CustomerID,Country\n"
        "536365,85123A,6,12/1/2010 8:26,2.55,17850,United Kingdom\n"
        "536366,71053,2,12/13/2010 9:01,3.39,,United Kingdom\n",
    )
    d = load(str(p), cpu, rename={"InvoiceDate": "timestamp", "InvoiceNo": "order_id", "StockCode": "product_id"})
    assert d.schema.name == "orders"
    assert d.timestamp_format == "%m/%d/%Y %H:%M"
    assert d.frame["timestamp"].iloc[1] == pd.Timestamp("2010-12-13 09:01")
    assert {"quantity", "unit_price"} <= set(d.frame.columns) and "amount" not in d.frame.columns
    assert load(str(p), cpu).column_map == d.column_map  # the same without --rename: found by their names


def test_cdnow_integer_dates(tmp_path, cpu):
    p = write(tmp_path / "cdnow.csv", "customer_id,date,n,amount\n1,19970101,1,11.77\n2,19970112,1,12.0\n")
    d = load(str(p), cpu, rename={"date": "timestamp", "n": "quantity"})
    assert d.timestamp_format == "numeric"
    assert list(d.frame["timestamp"]) == [pd.Timestamp("1997-01-01"), pd.Timestamp("1997-01-12")]


def test_latin1_file_is_read(tmp_path, cpu):
    p = tmp_path / "latin.csv"
    p.write_bytes("customer_id,timestamp,amount,category\n1,2011-01-01,3.5,caf\xe9\n".encode("latin-1"))
    d = load(str(p), cpu)
    assert list(d.frame["category"].astype(str)) == ["caf\xe9"]


def test_malformed_rows_are_counted_not_fatal(tmp_path, cpu):
    p = write(tmp_path / "m.csv", REES + "2019-10-01 00:00:05 UTC,view,1\n")
    d = load(str(p), cpu)
    assert d.rows_malformed == 1 and d.rows_read == 4 and len(d.frame) == 3


def test_a_quote_left_open_counts_every_line_it_swallowed(tmp_path, cpu):
    """An unclosed quote runs its field to the end of the file: one malformed row to Arrow,
    but every line in it is a row lost, and counted."""
    rest = "".join(f"2019-10-01 00:01:{i:02d} UTC,view,1,2,,b,3.0,541312140,s9\n" for i in range(20))
    p = write(tmp_path / "q.csv", REES + '2019-10-01 00:00:05 UTC,view,1,2,,"acme,3.0,541312140,s9\n' + rest)
    d = load(str(p), cpu)
    assert len(d.frame) == 3 and d.rows_malformed == 21


def test_a_byte_order_mark_on_a_file_read_as_latin1(tmp_path, cpu):
    """A UTF-8 byte-order mark on a file with a Latin-1 byte: the mark is not part of the
    first column's name."""
    p = tmp_path / "bom.csv"
    p.write_bytes(b"\xef\xbb\xbf" + REES.replace("shiseido", "nestl\xe9").encode("latin-1"))
    d = load(str(p), cpu)
    assert len(d.frame) == 3 and d.frame["brand"].astype(str).iloc[0] == "nestl\xe9"


def test_ragged_rows_of_both_kinds_are_counted_beside_a_type_break(tmp_path, cpu):
    # a short row, a long row, and a price that breaks Arrow's inferred float type: the file
    # is read again with the row handler, and again as text, and the count stays right
    rows = REES + "2019-10-01 00:00:05 UTC,view,1\n" + "2019-10-01 00:00:06 UTC,view,1,2,,b,3.0,541312140,s9,extra\n"
    rows += "2019-10-01 00:00:07 UTC,view,1,2,,b,abc,541312140,s9\n"
    d = load(str(write(tmp_path / "m2.csv", rows)), cpu)
    assert d.rows_malformed == 2 and len(d.frame) == 4
    assert int(d.frame["price"].isna().sum()) == 1


def test_a_ragged_row_that_is_not_utf8_past_the_sampled_head_is_read_as_latin1(tmp_path, cpu, monkeypatch, capfd):
    # the UTF-8 check samples the head of a file; Arrow cannot hand the row handler a row it
    # cannot decode: the file is read as Latin-1, the row counted, and nothing printed
    from gpuseg.io import readers

    monkeypatch.setattr(readers, "_looks_utf8", lambda *a, **k: True)
    rows = REES + "2019-10-01 00:00:05 UTC,caf\xe9,1\n" + "2019-10-01 00:00:06 UTC,view,1,2,,caf\xe9,3.0,541312140,s9\n"
    p = tmp_path / "late.csv"
    p.write_bytes(rows.encode("latin-1"))
    d = load(str(p), cpu)
    assert d.rows_malformed == 1 and len(d.frame) == 4 and d.frame["brand"].astype(str).iloc[-1] == "caf\xe9"
    assert "Exception ignored" not in capfd.readouterr().err


def test_the_quiet_row_handler_is_thread_safe_and_lets_other_errors_through(tmp_path, cpu, monkeypatch):
    # several threads read ragged non-UTF-8 files at once: each is read as Latin-1, and the
    # process's hook is back afterwards and still gets every other unraisable exception
    import sys
    from concurrent.futures import ThreadPoolExecutor

    from gpuseg.io import readers

    monkeypatch.setattr(readers, "_looks_utf8", lambda *a, **k: True)
    rows = REES + "2019-10-01 00:00:05 UTC,caf\xe9,1\n" + "2019-10-01 00:00:06 UTC,view,1,2,,caf\xe9,3.0,541312140,s9\n"
    paths = []
    for i in range(6):
        paths.append(tmp_path / f"late{i}.csv")
        paths[-1].write_bytes(rows.encode("latin-1"))
    hook = sys.unraisablehook
    with ThreadPoolExecutor(4) as ex:
        counts = list(ex.map(lambda q: readers._read_csv_cpu(q, ["event_time", "brand", "user_id"], ["user_id"])[1],
                             paths * 3))
    assert counts == [1] * 18 and sys.unraisablehook is hook
    seen = []
    with readers._quiet_row_handler(print):
        monkeypatch.setattr(readers, "_PREVIOUS_HOOK", [seen.append])
        readers._swallow_quiet(type("A", (), {"object": print})())  # the quiet handler's: dropped
        readers._swallow_quiet(type("A", (), {"object": len})())  # anything else: passed on
        monkeypatch.undo()
    assert len(seen) == 1 and sys.unraisablehook is hook


def test_a_header_with_spaces_around_its_names_is_read(tmp_path, cpu):
    p = write(tmp_path / "padded.csv", REES.replace(",", ", ", 8).replace("event_time", " event_time", 1))
    d = load(str(p), cpu)
    assert len(d.frame) == 3 and d.frame["brand"].astype(str).tolist() == ["shiseido", "lenovo", "lenovo"]
    assert int(d.frame["user_id"].iloc[0]) == 541312140


def test_every_row_malformed_says_so(tmp_path, cpu):
    # a delimiter at the end of every line gives every row one field too many
    text = "".join(line + ",\n" for line in REES.splitlines()[1:])
    p = write(tmp_path / "trailing.csv", REES.splitlines()[0] + "\n" + text)
    with pytest.raises(DataError, match="none of its 3 data rows has the header's 9 fields"):
        load(str(p), cpu)


def test_text_columns_keep_their_text(tmp_path, cpu):
    # categories "1", "01" and "1.0" are three values, not one number (the Dask and GPU
    # readers read text columns as text too)
    text = "customer_id,timestamp,amount,category\n" + "".join(
        f"{i},2011-03-04 10:22:00,5.5,{c}\n" for i, c in enumerate(["1", "01", "1.0", "1", "true"]))
    d = load(str(write(tmp_path / "o.csv", text)), cpu)
    assert list(d.frame["category"].astype(str)) == ["1", "01", "1.0", "1", "true"]


def test_a_well_formed_file_is_parsed_without_the_row_handler(tmp_path, cpu, monkeypatch):
    # the handler costs Arrow a fifth of its parse; it is only used once a ragged row is seen
    import pyarrow.csv as pacsv

    handlers = []
    real = pacsv.read_csv

    def spy(*args, parse_options=None, **kw):
        handlers.append(parse_options.invalid_row_handler)
        return real(*args, parse_options=parse_options, **kw)

    monkeypatch.setattr(pacsv, "read_csv", spy)
    load(str(write(tmp_path / "ok.csv", REES)), cpu)
    assert handlers == [None]
    handlers.clear()
    load(str(write(tmp_path / "bad.csv", REES + "2019-10-01 00:00:05 UTC,view,1\n")), cpu)
    assert handlers[0] is None and len(handlers) == 2 and callable(handlers[1])


def test_bad_values_become_missing_not_errors(tmp_path, cpu):
    text = REES + "not a time,view,1,2,,b,abc,541312140,s1\n"
    d = load(str(write(tmp_path / "b.csv", text)), cpu)
    f = d.frame
    assert int(f["event_time"].isna().sum()) == 1
    assert int(f["price"].isna().sum()) == 1


@pytest.mark.parametrize(
    "text, expected",
    [
        ("", "file is empty"),
        ("a,b,c\n1,2,3\n", "none of the expected columns"),
        ("event_time,event_type,user_id,price\n", "no data rows"),
        ("event_time,event_type,user_id,price\n2019-10-01 00:00:00 UTC,view,1,cheap\n2019-10-01 00:00:00 UTC,view,1,dear\n",
         "column 'price' should hold numbers"),
        ("event_time,event_type,user_id,price\nmonday,view,1,3\ntuesday,view,1,3\n", "column 'event_time' should hold"),
        ("event_time,event_type,price\n2019-10-01 00:00:00 UTC,view,3\n", "lacks user_id"),
        ("event_time,event_type,user_id,price\n2019-10-01 00:00:00 UTC,view,1,true\n2019-10-01 00:00:00 UTC,view,1,false\n",
         "column 'price' should hold numbers, found true/false"),
    ],
    ids=["empty", "no-expected-columns", "header-only", "price-is-text", "time-is-text", "missing-user",
         "price-is-boolean"],
)
def test_bad_files_raise_one_clear_error(tmp_path, cpu, text, expected):
    p = write(tmp_path / "bad.csv", text)
    with pytest.raises((DataError, SchemaError), match=expected) as info:
        load(str(p), cpu)
    assert "bad.csv" in str(info.value)
    assert "\n" not in str(info.value)


def test_amounts_written_with_currency_symbols_and_thousands_separators(tmp_path, cpu):
    rows = ['c1,2021-01-01,"$1,234.50"', 'c2,2021-01-02,$12.00', 'c3,2021-01-03,USD 7', 'c4,2021-01-04,"-$3.10"',
            'c5,2021-01-05,n/a', 'c6,2021-01-06,"2,000"']
    p = write(tmp_path / "o.csv", "customer_id,timestamp,amount\n" + "\n".join(rows) + "\n")
    amount = load(str(p), cpu).frame["amount"]
    assert amount.iloc[:4].tolist() == [1234.5, 12.0, 7.0, -3.1] and np.isnan(amount.iloc[4]) and amount.iloc[5] == 2000
    # amounts in several currencies cannot be added up: refused, naming them
    mixed = ['c1,2021-01-01,"$1,234.50"', 'c2,2021-01-02,£12.00', 'c3,2021-01-03,€ 7', 'c4,2021-01-04,"-$3.10"']
    p = write(tmp_path / "m.csv", "customer_id,timestamp,amount\n" + "\n".join(mixed) + "\n")
    with pytest.raises(SchemaError, match=r"column 'amount' holds amounts in 3 currencies \(EUR, GBP, USD\)"):
        load(str(p), cpu)
    # without a symbol or a decimal point anywhere, "1,234" may be 1.234 written the European way: refused
    p = write(tmp_path / "e.csv", 'customer_id,timestamp,amount\nc1,2021-01-01,"1,234"\nc2,2021-01-02,"2,500"\n')
    with pytest.raises(SchemaError, match="should hold numbers, found text such as '1,234'"):
        load(str(p), cpu)
    # decimal commas, as European spreadsheets write them (here in a semicolon-separated file)
    p = write(tmp_path / "d.csv", 'customer_id;timestamp;amount\nc1;2021-01-01;12,50 €\nc2;2021-01-02;"1.234,5"\n'
                                  'c3;2021-01-03;7\nc4;2021-01-04;"€ 2.000,00"\n')
    assert load(str(p), cpu).frame["amount"].tolist() == [12.5, 1234.5, 7.0, 2000.0]
    # currency codes as well as symbols
    p = write(tmp_path / "c.csv", 'customer_id;timestamp;amount\nc1;2021-01-01;12,50 EUR\nc2;2021-01-02;EUR 3,99\n'
                                  'c3;2021-01-03;"1.000,00 EUR"\n')
    assert load(str(p), cpu).frame["amount"].tolist() == [12.5, 3.99, 1000.0]
    # an export that writes its large amounts with separators: those are read, not dropped
    p = write(tmp_path / "x.csv", "customer_id,timestamp,amount\n" + "".join(
        f"c{i},2021-01-01,{a}\n" for i, a in enumerate(["999.00", "12.50", '"1,234.50"', "7", "about 5"])))
    amount = load(str(p), cpu).frame["amount"]
    assert amount.iloc[:4].tolist() == [999.0, 12.5, 1234.5, 7.0] and np.isnan(amount.iloc[4])
    # one "1,5" does not turn a column of three-decimal prices into thousands: it stays unread
    p = write(tmp_path / "y.csv", "customer_id,timestamp,amount\n" + "".join(
        f"c{i},2021-01-01,{a}\n" for i, a in enumerate(["0.125"] * 5 + ['"1,5"'])))
    amount = load(str(p), cpu).frame["amount"]
    assert amount.iloc[:5].tolist() == [0.125] * 5 and np.isnan(amount.iloc[5])
    # most of a column unreadable dashes beside decimal commas: read as before
    p = write(tmp_path / "z.csv", "customer_id,timestamp,amount\n" + "".join(
        f"c{i},2021-01-01,{a}\n" for i, a in enumerate(["-"] * 150 + ['"12,50"'] * 400 + ["5"] * 10)))
    amount = load(str(p), cpu).frame["amount"]
    assert amount.isna().sum() == 150 and amount.iloc[150] == 12.5
    # a symbol does not tell 1.234 from 1234: refused; symbols without separators are plain
    for name, amounts, ok in (("s.csv", ['"1.234 €"', '"2.500 €"'], None), ("t.csv", ["$12", "$7"], [12.0, 7.0])):
        p = write(tmp_path / name, "customer_id,timestamp,amount\n" + "".join(
            f"c{i},2021-01-0{i + 1},{a}\n" for i, a in enumerate(amounts)))
        if ok is None:
            with pytest.raises(SchemaError, match="should hold numbers"):
                load(str(p), cpu)
        else:
            assert load(str(p), cpu).frame["amount"].tolist() == ok


@pytest.mark.parametrize(
    "spec, expected",
    [("missing.csv", "no such file"), ("*.nothing", "no file matches"), ("notes.txt", "unsupported file type")],
    ids=["missing", "empty-glob", "suffix"],
)
def test_paths_that_are_not_data(tmp_path, monkeypatch, spec, expected):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "notes.txt").write_text("hi")
    with pytest.raises(DataError, match=expected):
        resolve_paths(spec)


def test_mixed_folder_is_refused(tmp_path):
    (tmp_path / "a.csv").write_text(REES)
    pd.DataFrame({"x": [1]}).to_parquet(tmp_path / "b.parquet")
    with pytest.raises(DataError, match="mixes CSV and Parquet"):
        resolve_paths(str(tmp_path))


def test_corrupt_parquet(tmp_path, cpu):
    (tmp_path / "x.parquet").write_bytes(b"PAR1 not really")
    with pytest.raises(DataError, match="not a readable Parquet"):
        load(str(tmp_path / "x.parquet"), cpu)


def test_rename_of_absent_column(tmp_path, cpu):
    p = write(tmp_path / "e.csv", REES)
    with pytest.raises(SchemaError, match="has no column 'Nope'"):
        load(str(p), cpu, rename={"Nope": "user_id"})


def test_forced_format_reports_missing_columns():
    with pytest.raises(SchemaError, match="lacks column.*amount"):
        detect_format(["customer_id", "timestamp"], "orders")


@pytest.mark.parametrize(
    "columns, expected",
    [
        # UCI Online Retail: no --rename needed any more
        (["InvoiceNo", "StockCode", "Description", "Quantity", "InvoiceDate", "UnitPrice", "CustomerID", "Country"],
         {"InvoiceNo": "order_id", "StockCode": "product_id", "Description": "description", "Quantity": "quantity",
          "InvoiceDate": "timestamp", "UnitPrice": "unit_price", "CustomerID": "customer_id"}),
        # Online Retail II
        (["Invoice", "StockCode", "Description", "Quantity", "InvoiceDate", "Price", "Customer ID", "Country"],
         {"Invoice": "order_id", "StockCode": "product_id", "Description": "description", "Quantity": "quantity",
          "InvoiceDate": "timestamp", "Price": "unit_price", "Customer ID": "customer_id"}),
        # a spreadsheet export; the more specific name wins ("Order Date" before "Date")
        (["Client", "Date", "Order Date", "Order Total", "Qty"],
         {"Client": "customer_id", "Order Date": "timestamp", "Order Total": "amount", "Qty": "quantity"}),
        # a shop's order export, customers by e-mail. Its line items are left alone: the order's
        # total stands on its first line only, and the lines' quantity and price beside it would
        # turn that total into a unit price
        (["Name", "Email", "Financial Status", "Paid at", "Created at", "Total", "Lineitem quantity",
          "Lineitem price", "Lineitem sku", "Lineitem name"],
         {"Email": "customer_id", "Created at": "timestamp", "Total": "amount", "Financial Status": "status"}),
        # gpuseg's own names always win over another name for the same column
        (["customer", "customer_id", "date", "timestamp", "amount"],
         {"customer_id": "customer_id", "timestamp": "timestamp", "amount": "amount"}),
    ],
)
def test_orders_columns_are_found_by_their_common_other_names(columns, expected):
    schema, mapping = detect_format(columns)
    assert schema.name == "orders" and mapping == expected


def test_orders_with_a_price_and_no_quantity_are_one_item_per_line(tmp_path, cpu):
    from gpuseg.config import CleanConfig
    from gpuseg.prep.clean import clean

    p = write(tmp_path / "p.csv", "customer,date,price\n1,2021-01-01,10\n1,2021-02-01,12.5\n2,2021-01-03,7\n")
    d = load(str(p), cpu)
    assert d.schema.name == "orders" and d.column_map["price"] == "unit_price"
    frame = clean(d, CleanConfig(), cpu).frame
    assert frame["amount"].tolist() == [10.0, 12.5, 7.0] and frame["quantity"].tolist() == [1.0, 1.0, 1.0]


def test_a_guessed_total_beside_quantity_and_price_is_left_to_them():
    """A line-item export that repeats the order's total on each line: "Order Total" as the
    line amount counted each order once per line."""
    columns = ["Order Number", "Order Date", "Customer", "Order Total", "Item Name", "Qty", "Price"]
    schema, mapping = detect_format(columns)
    assert "Order Total" not in mapping and {"quantity", "unit_price"} <= set(mapping.values())
    # a line's total is the line amount (after its discount): kept
    assert detect_format(["Order ID", "Order Date", "Customer ID", "Qty", "Price", "Discount", "Line Total"]
                         )[1]["Line Total"] == "amount"
    # the user can still say what the column is
    assert detect_format(columns, rename={"Order Total": "amount"})[1]["Order Total"] == "amount"


@pytest.mark.parametrize("columns", [["user_id", "timestamp", "event_type", "product_id", "price"],
                                     ["user_id", "timestamp", "event_type", "product_id", "price", "quantity"]])
def test_an_event_log_lacking_a_column_is_not_read_as_orders(columns):
    """Its views would have counted as purchases."""
    with pytest.raises(SchemaError, match="looks like events input but lacks event_time"):
        detect_format(columns)


def test_a_column_taken_by_another_name_is_named_as_the_file_names_it(tmp_path, cpu):
    p = write(tmp_path / "q.csv", "customer_id,timestamp,amount,Qty\nc1,2021-01-01,5,box\nc2,2021-01-02,6,bag\n")
    with pytest.raises(SchemaError, match="column 'Qty' \\(read as 'quantity'\\) should hold numbers"):
        load(str(p), cpu)


def test_the_run_says_which_columns_it_took_by_another_name():
    from gpuseg.io.schemas import read_as

    mapping = {"InvoiceDate": "timestamp", "CustomerID": "customer_id", "Sum": "amount"}
    assert read_as(mapping, {"Sum": "amount"}) == "; columns read as InvoiceDate = timestamp"
    assert read_as({"customer_id": "customer_id"}) == ""


def test_event_logs_are_not_read_as_orders_by_another_name():
    rees = ["event_time", "event_type", "product_id", "category_id", "category_code", "brand", "price", "user_id",
            "user_session"]
    assert detect_format(rees)[0].name == "events"
    with pytest.raises(SchemaError, match="looks like events input but lacks event_type"):
        detect_format([c for c in rees if c != "event_type"])


@pytest.mark.parametrize(
    "values, fmt",
    [
        (["2019-10-01 00:00:04 UTC"], "%Y-%m-%d %H:%M:%S UTC"),
        (["2019-10-01T00:00:04Z"], "%Y-%m-%dT%H:%M:%SZ"),
        (["12/1/2010 8:26", "12/31/2010 8:26"], "%m/%d/%Y %H:%M"),
        (["31/12/2010 8:26", "1/12/2010 8:26"], "%d/%m/%Y %H:%M"),
        (["2019-10-01"], "%Y-%m-%d"),
        (["7/25/2021 2:05 PM", "12/1/2021 11:59 AM"], "%m/%d/%Y %I:%M %p"),
        (["25.07.2021 14:05:09"], "%d.%m.%Y %H:%M:%S"),
        (["2021/07/25 14:05:09"], "%Y/%m/%d %H:%M:%S"),
        (["2021/07/25"], "%Y/%m/%d"),
        (["25-07-2021", "01-12-2021"], "%d-%m-%Y"),
        (["25 Jul 2021", "1 December 2021"], "%d %b %Y"),
        (["Jul 25, 2021"], "%b %d, %Y"),
    ],
    ids=["rees46", "iso-z", "us", "european", "date", "us-12-hour", "german-seconds", "slashes-ymd", "slashes-date",
         "dashes-dmy", "month-names", "month-first"],
)
def test_timestamp_format_detection(values, fmt):
    assert detect_timestamp_format(values)[0] == fmt


def test_a_12_hour_clock_is_read_in_the_afternoon(tmp_path, cpu):
    p = write(tmp_path / "o.csv", "customer_id,timestamp,amount\nc1,7/25/2021 2:05 PM,5\nc2,7/26/2021 12:30 AM,6\n")
    d = load(str(p), cpu)
    assert d.timestamp_format == "%m/%d/%Y %I:%M %p"
    assert d.frame["timestamp"].tolist() == [pd.Timestamp("2021-07-25 14:05"), pd.Timestamp("2021-07-26 00:30")]


def test_from_frame_matches_file(tmp_path, cpu, small_events):
    events, _ = small_events
    a = from_frame(events, cpu)
    events.to_parquet(tmp_path / "e.parquet")
    b = load(str(tmp_path / "e.parquet"), cpu)
    pd.testing.assert_frame_equal(a.frame.reset_index(drop=True), b.frame.reset_index(drop=True), check_categorical=False)


@pytest.mark.parametrize("text", ["user_id,persona\n1,a\n2,b\n", "id\n1\n"], ids=["good", "one-column"])
def test_read_truth(tmp_path, text):
    p = write(tmp_path / "t.csv", text)
    if "persona" in text:
        s = read_truth(p)
        assert s.to_dict() == {"1": "a", "2": "b"}  # as written: the run matches them to the data's ids
    else:
        with pytest.raises(SchemaError):
            read_truth(p)


def test_truth_repeats_are_kept_once_and_conflicts_refused(tmp_path):
    assert read_truth(write(tmp_path / "t.csv", "user_id,persona\n1,a\n1,a\n2,b\n")).to_dict() == {"1": "a", "2": "b"}
    with pytest.raises(DataError, match=r"1 customers have more than one label, e.g. .1.: a, c"):
        read_truth(write(tmp_path / "u.csv", "user_id,persona\n1,a\n2,b\n1,c\n"))


@pytest.mark.parametrize("text, encoding", [
    ("customer_id,label\n00007,a\n00012,b\n", "utf-8"),
    ("customer_id;label\n00007;a\n00012;b\n", "utf-8"),  # the delimiter the data reader detects
    ("customer_id,label\n00007,Caf\u00e9\n00012,b\n", "latin-1"),
])
def test_truth_csv_is_read_as_the_data_is(tmp_path, text, encoding):
    """Leading zeros kept (a plain read_csv made 00007 the number 7, which matched no text id)."""
    p = tmp_path / "t.csv"
    p.write_bytes(text.encode(encoding))
    s = read_truth(p)
    assert list(s.index) == ["00007", "00012"] and s.iloc[1] == "b"


def test_truth_ids_are_matched_to_the_data_ids_kind():
    from gpuseg.errors import ConfigError
    from gpuseg.pipeline import _truth_keys_like

    text = pd.Series(["a", "b", "c", "d", "e", "f"],
                     index=pd.Index(["7", " 12", "x9", "8.0", "1234567890123456789", "99999999999999999999"]))
    as_int = _truth_keys_like(text, pd.Index([7, 12], dtype="int64"))
    # "x9" cannot be an integer id, nor can a number past int64; "8.0" is how a spreadsheet writes 8
    assert as_int.to_dict() == {7: "a", 12: "b", 8: "d", 1234567890123456789: "e"}
    ints = pd.Series(["a", "b"], index=pd.Index([7, 12]))
    assert _truth_keys_like(ints, pd.Index(["7", "12"], dtype=object)).to_dict() == {"7": "a", "12": "b"}
    with pytest.raises(ConfigError, match="'07' and '7'"):
        _truth_keys_like(pd.Series(["a", "b"], index=pd.Index(["07", "7"])), pd.Index([7], dtype="int64"))


def test_csv_read_matches_pandas(tmp_path, cpu, events_csv):
    d = load(str(events_csv), cpu)
    ref = pd.read_csv(events_csv)
    assert len(d.frame) == len(ref)
    np.testing.assert_allclose(d.frame["price"].to_numpy(), ref["price"].to_numpy())
    assert d.frame["user_id"].dtype == np.int64  # plain numeric ids without gaps become int64
    assert (d.frame["user_id"].to_numpy() == ref["user_id"].to_numpy()).all()


def test_day_month_order_decided_on_the_whole_column(tmp_path, cpu):
    # sorted by time: the first rows all have day <= 12 and parse either way
    days = pd.date_range("2020-01-01", "2020-02-09", freq="D")
    text = "customer_id,timestamp,amount\n" + "".join(
        f"{i % 7},{d.day}/{d.month}/{d.year} 10:00,5\n" for i, d in enumerate(days) for _ in range(100)
    )
    d = load(str(write(tmp_path / "dmy.csv", text)), cpu)
    assert d.timestamp_format == "%d/%m/%Y %H:%M"
    assert d.frame["timestamp"].notna().all()
    assert d.frame["timestamp"].max() == pd.Timestamp("2020-02-09 10:00")


def test_unix_times_with_gaps(tmp_path, cpu):
    p = write(tmp_path / "u.csv", "customer_id,timestamp,amount\n1,1570000000,3\n2,,4\n3,1570086400,5\n")
    d = load(str(p), cpu)
    assert d.timestamp_format == "numeric"
    assert d.frame["timestamp"].isna().tolist() == [False, True, False]
    assert d.frame["timestamp"].iloc[0] == pd.Timestamp("2019-10-02 07:06:40")


def test_parts_typed_differently_are_combined(tmp_path, cpu):
    part = tmp_path / "parts"
    part.mkdir()
    write(part / "a.csv", "customer_id,timestamp,amount\n1,2020-01-01,3\n2,2020-01-02,4\n")
    write(part / "b.csv", "customer_id,timestamp,amount\nC7,2020-01-03,five\nC8,2020-01-04,6\n")
    d = load(str(part), cpu)
    assert d.rows_read == 4
    assert d.frame["amount"].tolist()[:2] == [3.0, 4.0] and np.isnan(d.frame["amount"].iloc[2])


def test_repeated_header_is_refused(tmp_path, cpu):
    p = write(tmp_path / "r.csv", "customer_id,timestamp,amount,amount\n1,2020-01-01,3,4\n")
    with pytest.raises(SchemaError, match="'amount' appears more than once"):
        load(str(p), cpu)


def test_output_folder_inside_the_input_folder_is_not_read(tmp_path):
    write(tmp_path / "a.csv", REES)
    (tmp_path / "out").mkdir()
    pd.DataFrame({"x": [1]}).to_parquet(tmp_path / "out" / "features.parquet")
    files, kind = resolve_paths(str(tmp_path), exclude=tmp_path / "out")
    assert [f.name for f in files] == ["a.csv"] and kind == "csv"
    with pytest.raises(DataError, match="--input is empty"):
        resolve_paths("  ")


# --- ids checked by one Arrow cast, sessions handed over as codes ------------------------------

_TRICKY_IDS = ["", " 1", "1 ", "\t1", "1\n", "01", "00", "0", "7", "+1", "+0", "-1", "-0", "1e3", "1.0", "1_000", "1,000",
               "0x1F", "0X1f", "0b1", "１２", "٣", "²", "1\x00", "999999999999999999", "1000000000000000000",
               "0999999999999999999", "9223372036854775807", "9223372036854775808", "9" * 40, "12a", "a12"]


def _regex_rule(values) -> bool:
    """The rule before the cast (a regex): no gaps, ASCII digits only, at most 18 of them,
    no leading zero."""
    import re

    return bool(values) and all(v is not None and re.fullmatch(r"[0-9]+", v) is not None and len(v) <= 18
                                and not (v.startswith("0") and len(v) > 1) for v in values)


@pytest.mark.parametrize("value", _TRICKY_IDS + [None])
def test_plain_integer_ids_follow_the_regex_rule_on_tricky_values(value):
    import pyarrow as pa

    from gpuseg.io.readers import _plain_integers

    for values in ([value], [value, "12"], ["12", value, "3"]):
        col = pa.chunked_array([pa.array(values[:1], pa.string()), pa.array(values[1:], pa.string())])
        ints = _plain_integers(col)
        assert (ints is not None) == _regex_rule(values), values
        if ints is not None:
            assert ints.to_pylist() == [int(v) for v in values]


def test_plain_integer_ids_follow_the_regex_rule_on_random_text():
    import pyarrow as pa
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from gpuseg.io.readers import _plain_integers

    digits = st.text(alphabet="0123456789", min_size=1, max_size=21)
    text = st.one_of(digits, st.text(alphabet="0123456789+-x eE.١２", min_size=0, max_size=6),
                     st.integers(-10, 2**63 - 1).map(str), st.sampled_from(_TRICKY_IDS))

    @settings(max_examples=400, deadline=None, derandomize=True)
    @given(st.lists(text, min_size=1, max_size=6))
    def check(values):
        ints = _plain_integers(pa.chunked_array([pa.array(values, pa.string())]))
        assert (ints is not None) == _regex_rule(values)

    check()


def test_plain_integer_ids_refuse_no_column_but_text_without_gaps():
    import pyarrow as pa

    from gpuseg.io.readers import _plain_integers

    assert _plain_integers(pa.chunked_array([pa.array([], pa.string())])) is None
    assert _plain_integers(pa.chunked_array([pa.array([1, 2], pa.int64())])) is None
    assert _plain_integers(pa.chunked_array([pa.array(["1", None], pa.string())])) is None
    assert _plain_integers(pa.chunked_array([pa.array(["1", "2"], pa.large_string())])).to_pylist() == [1, 2]


def test_csv_ids_are_int64_only_when_every_one_is_a_plain_integer(tmp_path, cpu):
    p = write(tmp_path / "e.csv", REES)
    assert str(load(str(p), cpu).frame["user_id"].dtype) == "int64"
    q = write(tmp_path / "z.csv", REES.replace(",541312140,", ",0541312140,"))
    ids = load(str(q), cpu).frame["user_id"]
    assert ids.dtype.kind != "i" and "0541312140" in set(ids.astype(str))


def test_sessions_are_int32_codes_from_csv_and_parquet_and_frames(tmp_path, cpu):
    """The session reaches cleaning as int32 codes with <NA> for missing, whatever the input:
    equal ids equal codes, distinct ids distinct codes."""
    text = REES + "2019-10-01 00:00:05 UTC,view,1307067,2053013558920217191,,lenovo,251.74,550050854,\n"
    p = write(tmp_path / "e.csv", text)
    frames = [load(str(p), cpu).frame]
    raw = pd.read_csv(p, dtype={"user_session": "string"})
    raw.to_parquet(tmp_path / "plain.parquet")
    raw.assign(user_session=raw["user_session"].astype("category")).to_parquet(tmp_path / "dict.parquet")
    frames += [load(str(tmp_path / "plain.parquet"), cpu).frame, load(str(tmp_path / "dict.parquet"), cpu).frame]
    frames.append(from_frame(raw.assign(user_session=raw["user_session"].astype("category")), cpu).frame)
    frames.append(from_frame(raw, cpu).frame)
    for f in frames:
        s = f["user_session"]
        assert str(s.dtype) == "Int32"
        assert s.isna().tolist() == [False, False, False, True]
        assert s.iloc[1] == s.iloc[2] and s.iloc[0] != s.iloc[1]


def test_session_codes_agree_across_the_files_of_a_folder(tmp_path, cpu):
    """Files are joined before the session is encoded: a session in two files has one code,
    different sessions different codes (encoding file by file would give both files' first
    session code 0)."""
    d = tmp_path / "parts"
    d.mkdir()
    write(d / "a.csv", REES)
    second = REES.split("\n", 1)[0] + "\n" + (
        "2019-10-02 00:00:00 UTC,view,44600062,2103807459595387724,,shiseido,35.79,541312140,ffff0000\n"
        "2019-10-02 00:00:01 UTC,view,1307067,2053013558920217191,,lenovo,251.74,550050854,7c90fc70\n")
    write(d / "b.csv", second)
    f = load(str(d), cpu).frame
    by_text = dict(zip(["72d76fde", "7c90fc70", "7c90fc70", "ffff0000", "7c90fc70"], f["user_session"].tolist()))
    codes = f["user_session"].tolist()
    assert codes[1] == codes[2] == codes[4] and len({codes[0], codes[1], codes[3]}) == 3, by_text


def test_integer_sessions_stay_their_own_codes(tmp_path, cpu):
    raw = pd.read_csv(write(tmp_path / "e.csv", REES)).assign(user_session=[10, 20, 20])
    raw.to_parquet(tmp_path / "int.parquet")
    s = load(str(tmp_path / "int.parquet"), cpu).frame["user_session"]
    assert s.tolist() == [10, 20, 20]


def test_text_codes_of_many_chunks_and_dictionaries_agree():
    import pyarrow as pa

    from gpuseg.io.readers import text_codes

    col = pa.chunked_array([pa.array(["b", None, "a"]), pa.array(["a", "c", "b"])])
    dict_col = pa.chunked_array([pa.array(["b", None, "a"]).dictionary_encode(),
                                 pa.array(["a", "c", "b"]).dictionary_encode()])  # a dictionary per chunk
    # in_order: the chunks' dictionaries list values by first appearance (Arrow's CSV reader)
    for c, in_order in ((col, False), (dict_col, False), (dict_col, True), (col, True)):
        codes = pd.Series(text_codes(c, in_order))
        assert str(codes.dtype) == "Int32" and codes.isna().tolist() == [False, True, False, False, False, False]
        assert codes.tolist() == [0, pd.NA, 1, 1, 2, 0]


def test_csv_read_in_many_blocks_gives_the_sessions_first_appearance_codes(tmp_path, cpu, monkeypatch):
    # the CSV reader hands text over as a dictionary per block; the session codes and the
    # categories must be those of the whole column, as pd.factorize gives them
    import pyarrow.csv as pacsv

    rng = np.random.default_rng(0)
    sessions = [f"s{int(i)}" if i % 7 else "" for i in rng.integers(0, 40, 400)]
    brands = [f"b{int(i)}" if i % 5 else "" for i in rng.integers(0, 12, 400)]
    lines = [f"2019-10-01 00:{i // 60:02d}:{i % 60:02d} UTC,view,1,2,,{b},1.5,{541312140 + i % 9},{s}"
             for i, (s, b) in enumerate(zip(sessions, brands))]
    path = write(tmp_path / "blocks.csv", REES.splitlines()[0] + "\n" + "\n".join(lines) + "\n")
    real = pacsv.ReadOptions
    monkeypatch.setattr(pacsv, "ReadOptions", lambda **kw: real(**{**kw, "block_size": 512}))
    frame = load(str(path), cpu).frame
    want, _ = pd.factorize(pd.Series(sessions).replace("", None))
    got = frame["user_session"].astype("Int64").fillna(-1).to_numpy()
    assert np.array_equal(got, want)
    assert list(frame["brand"].cat.categories) == list(pd.unique(pd.Series([b for b in brands if b])))
    assert frame["brand"].astype(object).where(frame["brand"].notna(), "").tolist() == brands


def test_dask_pieces_keep_the_session_text(tmp_path, cpu):
    """A Dask run's pieces hash the session text to compare it across pieces: no codes there."""
    from gpuseg.io import readers

    p = write(tmp_path / "e.csv", REES)
    frame, _ = readers._read_cpu([p], "csv", ["user_id", "user_session"], ["user_session"],
                                 ["user_id", "user_session"], int_ids=False)
    assert str(frame["user_session"].dtype) == "category"


@pytest.mark.parametrize("value", [[541312140], {"a": 541312140}], ids=["list", "struct"])
def test_a_nested_id_column_is_refused_in_one_line(tmp_path, cpu, value):
    import pyarrow as pa
    import pyarrow.parquet as pq

    frame = pd.read_csv(__import__("io").StringIO(REES))
    table = pa.Table.from_pandas(frame, preserve_index=False)
    table = table.set_column(table.schema.get_field_index("user_id"), "user_id", pa.array([value] * len(frame)))
    pq.write_table(table, tmp_path / "nested.parquet")
    with pytest.raises(DataError, match="column 'user_id' holds .* values, not one plain value per row"):
        load(str(tmp_path / "nested.parquet"), cpu)


@pytest.mark.parametrize("rename", [{"quantity": "amount"}, {"qty": "Amount"}, {"amount": "customer_id"}])
def test_a_rename_onto_a_column_the_file_has_is_refused(tmp_path, cpu, rename):
    # the file's own amount (or customer_id) would be silently left out
    text = "customer_id,timestamp,amount,quantity,qty\n1,2011-01-01,3.5,2,2\n"
    with pytest.raises(SchemaError, match=r"already has a column '(amount|customer_id)', which would be left out"):
        load(str(write(tmp_path / "o.csv", text)), cpu, rename=rename)


def test_a_rename_of_both_columns_is_accepted(tmp_path, cpu):
    text = "customer_id,timestamp,amount,quantity\n1,2011-01-01,3.5,2\n"
    d = load(str(write(tmp_path / "o.csv", text)), cpu, rename={"quantity": "amount", "amount": "amount_listed"})
    assert d.column_map["quantity"] == "amount" and float(d.frame["amount"].iloc[0]) == 2.0


def test_a_given_timestamp_format_decides_over_arrows_own_reading_of_a_csv(tmp_path, cpu):
    # "2020-03-04 10:00:00" is an ISO time to Arrow (March 4); the user's format says the day
    # comes first (April 3): the format wins, as on the Dask pieces, which read text
    p = write(tmp_path / "ydm.csv", "customer_id,timestamp,amount\n1,2020-03-04 10:00:00,5\n2,2020-05-06 11:00:00,6\n")
    d = load(str(p), cpu, timestamp_format="%Y-%d-%m %H:%M:%S")
    assert d.timestamp_format == "%Y-%d-%m %H:%M:%S"
    assert list(d.frame["timestamp"]) == [pd.Timestamp("2020-04-03 10:00"), pd.Timestamp("2020-06-05 11:00")]
    plain = write(tmp_path / "iso.csv", "customer_id,timestamp,amount\n1,2020-03-04 10:00:00,5\n")
    assert load(str(plain), cpu).frame["timestamp"].iloc[0] == pd.Timestamp("2020-03-04 10:00")


@pytest.mark.parametrize("fmt", ["%Y-%m-%d %H:%M:%S UTC", "%Y-%m-%d %H:%M:%S%z", "%d/%m/%Y %H:%M"])
def test_times_parsed_in_pieces_and_threads_equal_one_parse(monkeypatch, fmt):
    """A long time column is parsed in slices in the run's threads: the same timestamps,
    gaps and unreadable values (NaT) as one parse of the whole column."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from gpuseg import backend as _backend
    from gpuseg.io import readers as R

    rng = np.random.default_rng(3)
    when = pd.Timestamp("2020-01-01") + pd.to_timedelta(rng.integers(0, 10**8, 1000), unit="s")
    text = pd.Series(when.strftime(fmt.replace("%z", "+0000")), dtype="str")
    text[rng.random(1000) < 0.05] = None
    text[rng.random(1000) < 0.05] = "not a time"
    monkeypatch.setattr(R, "_TIME_PIECE_ROWS", 37)
    monkeypatch.setattr(_backend, "RUN_THREADS", 2)
    got = R._parse_time_cpu(text, fmt)
    whole = pc.strptime(pa.array(text, type=pa.string(), from_pandas=True), format=fmt, unit="s", error_is_null=True)
    if whole.type.tz is not None:
        whole = whole.cast(pa.timestamp("s", tz="UTC")).cast(pa.timestamp("s"))
    expected = pd.Series(whole.to_numpy(zero_copy_only=False), name=text.name).astype("datetime64[s]")
    pd.testing.assert_series_equal(got, expected)
    assert got.isna().sum() == text.isna().sum() + (text == "not a time").sum()


@pytest.mark.parametrize("threads", [1, 2])
def test_arrow_columns_converted_keep_their_order_and_values(monkeypatch, threads):
    """The reader's per-column conversions (codes, integer ids, categories, dates) give each
    column its type and values, in the file's order, in one thread or in the run's threads."""
    import pyarrow as pa

    from gpuseg import backend as _backend
    from gpuseg.io import readers as R
    from gpuseg.io.readers import arrow_to_pandas

    monkeypatch.setattr(_backend, "RUN_THREADS", threads)
    monkeypatch.setattr(R, "_CONVERT_THREADS_ROWS", 0 if threads > 1 else 10**9)
    ran = []
    real = R.in_threads
    monkeypatch.setattr(R, "in_threads", lambda *a, **k: ran.append(1) or real(*a, **k))
    table = pa.table({
        "day": pa.array([0, 1, 2, None], type=pa.date32()),
        "session": pa.array(["s1", "s2", None, "s1"]),
        "user": pa.array(["7", "12", "7", "9"]),
        "code": pa.array(["007", "8", "9", "9"]),
        "kind": pa.array(["view", "cart", "view", None]),
        "price": pa.array([1.0, 2.5, None, 4.0]),
    })
    got = arrow_to_pandas(table, categorical=["kind"], ids=["user", "code", "session"], codes=["session"])
    assert list(got.columns) == ["day", "session", "user", "code", "kind", "price"]
    assert got["day"].tolist()[:3] == list(pd.to_datetime(["1970-01-01", "1970-01-02", "1970-01-03"]))
    assert got["day"].isna().tolist() == [False, False, False, True]
    assert got["session"].tolist() == [0, 1, pd.NA, 0] and str(got["session"].dtype) == "Int32"
    assert got["user"].tolist() == [7, 12, 7, 9] and got["user"].dtype == np.int64
    assert got["code"].tolist() == ["007", "8", "9", "9"]  # a leading zero keeps the ids text
    assert str(got["kind"].dtype) == "category" and got["kind"].tolist()[:3] == ["view", "cart", "view"]
    assert got["price"].tolist()[:2] == [1.0, 2.5]
    assert bool(ran) == (threads > 1)


@pytest.mark.parametrize("forms", [
    ("%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%SZ"),  # most plain, a few ISO with Z: the Z ones were dropped
    ("%Y-%m-%dT%H:%M:%S+02:00", "%Y-%m-%dT%H:%M:%SZ", "%Y-%m-%dT%H:%M:%S"),  # thirds: the naive third was dropped
])
def test_iso_timestamps_with_and_without_a_zone_are_read_together(cpu, forms):
    from gpuseg.io.readers import from_frame

    times = pd.Timestamp("2021-03-06 10:11:02") + pd.to_timedelta(np.arange(60) * 3_600, unit="s")
    if len(forms) == 2:
        text = [t.strftime(forms[1] if i % 20 == 0 else forms[0]) for i, t in enumerate(times)]
    else:  # the +02:00 ones written in local time
        text = [(t + pd.Timedelta(hours=2 * (i % 3 == 0))).strftime(forms[i % 3]) for i, t in enumerate(times)]
    df = pd.DataFrame({"customer_id": np.arange(60) % 7, "timestamp": text, "amount": 1.0})
    got = from_frame(df, cpu, "orders").frame["timestamp"]
    np.testing.assert_array_equal(got.to_numpy(), times.to_numpy().astype("datetime64[s]"))


@pytest.mark.parametrize("share, message", [(0.0, "layout gpuseg does not detect"), (0.4, "mixes timestamp formats")])
def test_an_unknown_time_layout_is_not_called_a_mix(cpu, share, message):
    """One consistent layout outside the detected ones was reported as a column mixing formats."""
    from gpuseg.io.readers import from_frame

    n = 50
    text = ["2020-03-06 10:11:02" if i < share * n else "06 Mar 2020 10:11" for i in range(n)]
    df = pd.DataFrame({"customer_id": np.arange(n) % 9, "timestamp": text, "amount": 1.0})
    with pytest.raises(SchemaError, match=message):
        from_frame(df, cpu, "orders")


def test_iso_leftovers_follow_a_detected_or_inherited_format_not_the_users(tmp_path, cpu):
    """assign passes the training data's detected format on: it dropped the ISO times run had read."""
    from gpuseg.io.readers import load_files

    times = pd.Timestamp("2021-03-06 10:11:02") + pd.to_timedelta(np.arange(40) * 3_600, unit="s")
    text = [t.strftime("%Y-%m-%dT%H:%M:%SZ" if i % 10 == 0 else "%Y-%m-%d %H:%M:%S") for i, t in enumerate(times)]
    text[5] = "1997"  # not a whole ISO date: still a bad time, not 1997-01-01
    path = tmp_path / "o.csv"
    pd.DataFrame({"customer_id": np.arange(40) % 7, "timestamp": text, "amount": 1.0}).to_csv(path, index=False)
    fmt = "%Y-%m-%d %H:%M:%S"
    inherited = load_files([path], "csv", cpu, "orders", timestamp_format=fmt, times_as_text=False).frame["timestamp"]
    users = load_files([path], "csv", cpu, "orders", timestamp_format=fmt).frame["timestamp"]
    expected = times.to_numpy().astype("datetime64[s]")
    assert inherited.isna().tolist() == [i == 5 for i in range(40)]
    np.testing.assert_array_equal(inherited.drop(index=5).to_numpy(), np.delete(expected, 5))
    assert users.isna().sum() == 5  # the user's format decides: the four ISO times and "1997" are bad


def test_an_inherited_format_the_new_times_are_not_in_gives_way_to_detection(tmp_path, cpu):
    """A model trained on day/month times refused REES46 times in assign, pointing to --config,
    which assign does not have."""
    from gpuseg.io.readers import load_files

    times = pd.Timestamp("2019-10-01 00:18:31") + pd.to_timedelta(np.arange(30) * 86_000, unit="s")
    path = tmp_path / "o.csv"
    pd.DataFrame({"customer_id": np.arange(30) % 7, "timestamp": times.strftime("%Y-%m-%d %H:%M:%S UTC"),
                  "amount": 1.0}).to_csv(path, index=False)
    got = load_files([path], "csv", cpu, "orders", timestamp_format="%d/%m/%Y %H:%M", times_as_text=False)
    np.testing.assert_array_equal(got.frame["timestamp"].to_numpy(), times.to_numpy().astype("datetime64[s]"))
    with pytest.raises(SchemaError, match="should hold format '%d/%m/%Y %H:%M'"):  # the user's own format decides
        load_files([path], "csv", cpu, "orders", timestamp_format="%d/%m/%Y %H:%M")


@pytest.mark.parametrize("times, expected", [
    (["2019-10-01 00:00:00 UTC", "2019-10-13 23:59:59 UTC"], "%Y-%m-%d %H:%M:%S UTC"),
    (["13/02/2019 10:00", "01/03/2019 11:30"], "%d/%m/%Y %H:%M"),
    (["01/02/2019 10:00", "03/04/2019 11:30"], None),  # day/month or month/day: the whole column decides
    (["2019-10-01 00:00:00", "2019-10-02 10:00:00"], None),  # ISO 8601: Arrow's reader types it itself
    (["19970101", "19970102"], None),  # numbers: read as dates after the reader
    (["2019-10-01 00:00:00 UTC", "tomorrow"], None),  # no format reads every one
    (["2019-10-01 00:00:00+0200", "2019-10-02 00:00:00+0200"], None),  # a zone: parsed after the reader
])
def test_typed_time_format_of_a_csv_head(tmp_path, times, expected):
    from gpuseg.io.readers import typed_time_format

    p = tmp_path / "t.csv"
    p.write_text("user_id,event_time,price\n" + "".join(f"{i},{t},1.5\n" for i, t in enumerate(times)))
    assert typed_time_format(p, "event_time") == expected
    assert typed_time_format(p, "missing") is None


@pytest.mark.parametrize("late", [None, "garbage", "2019-10-05T10:00:00Z", ""])
def test_times_typed_while_reading_are_those_parsed_after(tmp_path, monkeypatch, late):
    """The reader's typed times (:func:`typed_time_format`) give the frame, format and
    examples of a parse of the text after reading, also when a later time is bad, ISO 8601
    or missing (the file is then read again as before)."""
    from gpuseg import backend as _backend
    from gpuseg.io import readers

    rng = np.random.default_rng(0)
    n = 3000
    ts = pd.Timestamp("2019-10-01") + pd.to_timedelta(rng.integers(0, 30 * 86400, n), unit="s")
    frame = pd.DataFrame({"event_time": ts.strftime("%Y-%m-%d %H:%M:%S UTC"),
                          "event_type": rng.choice(["view", "cart", "purchase"], n),
                          "product_id": rng.integers(1, 50, n), "category_id": 7, "category_code": "a.b",
                          "brand": "x", "price": rng.random(n).round(2), "user_id": rng.integers(1, 90, n),
                          "user_session": rng.integers(1, 400, n).astype(str)})
    if late is not None:
        frame.loc[n - 10, "event_time"] = late
    p = tmp_path / "events.csv"
    frame.to_csv(p, index=False)
    cpu = _backend.select("cpu")
    parsed_after = []
    real_parse = readers._parse_time_cpu
    monkeypatch.setattr(readers, "_parse_time_cpu", lambda s, fmt: parsed_after.append(fmt) or real_parse(s, fmt))
    typed = load(p, cpu)
    assert bool(parsed_after) == (late not in (None, "")), "the typed read was not used (or not left)"
    monkeypatch.setattr(readers, "typed_time_format", lambda path, column: None)
    text = load(p, cpu)
    pd.testing.assert_frame_equal(typed.frame, text.frame)
    assert typed.timestamp_format == text.timestamp_format == "%Y-%m-%d %H:%M:%S UTC"
    assert typed.examples == text.examples and typed.rows_read == text.rows_read


@pytest.mark.parametrize("days, noted", [(range(1, 13), True), (range(1, 29), False)])
def test_dates_that_read_month_or_day_first_alike_say_which_was_taken(cpu, tmp_path, days, noted):
    """No day above 12: month first and day first read every date, so the run says which it
    took and how to take the other; one day above 12 decides, and nothing is said."""
    from gpuseg.io.readers import load_files, resolve_paths

    rng = np.random.default_rng(0)
    d = rng.choice(list(days), 200)
    m = rng.integers(1, 13, 200)
    text = [f"{a:02d}/{b:02d}/2021" for a, b in zip(m, d)]
    path = tmp_path / "orders.csv"
    pd.DataFrame({"customer_id": np.arange(200) % 9, "Order Date": text, "amount": 3.5}).to_csv(path, index=False)
    files, kind = resolve_paths(str(path))
    data = load_files(files, kind, cpu)
    assert data.timestamp_format == "%m/%d/%Y"
    if noted:
        assert len(data.notes) == 1 and data.notes[0].startswith("column 'Order Date': every time such as ")
        assert "took '%m/%d/%Y'" in data.notes[0] and "timestamp_format = '%d/%m/%Y'" in data.notes[0]
    else:
        assert data.notes == []


def test_formats_that_read_the_same_instants_are_not_called_ambiguous(cpu):
    """'...Z' and '...%z' both read '2021-03-04T10:00:00Z', to the same instant: no note."""
    from gpuseg.io.readers import from_frame

    df = pd.DataFrame({"customer_id": [1, 2, 3] * 10, "timestamp": ["2021-03-04T10:00:00Z"] * 30, "amount": 1.0})
    assert from_frame(df, cpu, "orders").notes == []
    df["timestamp"] = "01/01/2021"  # the same date either way round
    assert from_frame(df, cpu, "orders").notes == []


@pytest.mark.parametrize("columns, expected", [
    (["customer_id", "Date", "Time", "amount"], "Time"),
    (["Customer", "Order Date", "Order Time", "Total"], "Order Time"),
    (["customer_id", "Date", "amount"], None),
    (["customer_id", "timestamp", "Time", "amount"], None),  # the time read is not a date column
    (["customer_id", "Time", "amount"], None),  # Time alone is the timestamp
])
def test_a_time_column_beside_the_date_read_is_found(columns, expected):
    from gpuseg.io.schemas import ORDERS, match_columns, unused_time_column

    assert unused_time_column(columns, match_columns(columns, ORDERS), ORDERS) == expected


def test_a_date_and_a_time_column_are_joined(cpu, tmp_path):
    """Date and Time in two columns (a CSV, or text in a frame): one timestamp, so the time
    of day is not lost; a missing time leaves the date; the load says what it joined."""
    from gpuseg.io.readers import from_frame, load_files, resolve_paths

    df = pd.DataFrame({"customer_id": [1, 2, 1, 3], "Date": ["2021-03-01", "2021-03-02", "2021-03-05", "2021-03-06"],
                       "Time": ["14:22:05", "09:01", "22:10:00 ", None], "amount": [10.5, 5.0, 7.0, 1.0]})
    path = tmp_path / "orders.csv"
    df.to_csv(path, index=False)
    expected = [pd.Timestamp(t) for t in ("2021-03-01 14:22:05", "2021-03-02 09:01", "2021-03-05 22:10", "2021-03-06")]
    for data in (load_files(*resolve_paths(str(path)), cpu), from_frame(df, cpu, "orders")):
        assert data.column_map == {"customer_id": "customer_id", "Date": "timestamp", "amount": "amount"}
        assert data.notes == ["columns 'Date' and 'Time' joined into the timestamp"]
        assert list(data.frame["timestamp"]) == list(expected)


def test_a_date_and_time_joined_in_no_layout_leave_the_date_as_before(cpu, tmp_path):
    """ISO dates with 12-hour times: joined, they are in no layout gpuseg detects; rather
    than fail a file that read before, the date alone is the timestamp and the load says so."""
    from gpuseg.io.readers import load_files, resolve_paths

    df = pd.DataFrame({"customer_id": [1, 2, 1], "Date": ["2021-03-01", "2021-03-02", "2021-03-05"],
                       "Time": ["2:22:05 PM", "9:01:00 AM", "10:10:00 PM"], "amount": [10.5, 5.0, 7.0]})
    df.to_csv(tmp_path / "orders.csv", index=False)
    data = load_files(*resolve_paths(str(tmp_path / "orders.csv")), cpu)
    assert data.notes == ["column 'Time' not used: the times come from 'Date' alone (joined, they are in no layout "
                          "gpuseg reads), so the features of the time of day are left out; write date and time into "
                          "one column to use them"]
    assert list(data.frame["timestamp"]) == list(pd.to_datetime(["2021-03-01", "2021-03-02", "2021-03-05"]))
    assert data.examples == {}


def test_a_typed_date_and_time_are_not_joined_and_that_is_said(cpu, tmp_path):
    """Parquet date and time types (not text): the date alone is the timestamp, and the
    load says the times of day are left out, instead of dropping them without a word."""
    import datetime as dt

    from gpuseg.io.readers import load_files, resolve_paths

    df = pd.DataFrame({"customer_id": [1, 2, 1], "Date": pd.to_datetime(["2021-03-01", "2021-03-02", "2021-03-05"]),
                       "Time": [dt.time(14, 22), dt.time(9, 1), dt.time(22, 10)], "amount": [10.5, 5.0, 7.0]})
    df.to_parquet(tmp_path / "orders.parquet")
    data = load_files(*resolve_paths(str(tmp_path / "orders.parquet")), cpu)
    assert len(data.notes) == 1 and data.notes[0].startswith("column 'Time' not used")
    assert list(data.frame["timestamp"].dt.hour) == [0, 0, 0]

def test_blank_text_is_missing_in_parquet_as_in_csv(cpu, tmp_path):
    """A Parquet file (or a frame) with "" or spaces for a brand, a category or a session
    reads as the CSV of the same data: missing, so filled (or dropped) and counted as a gap,
    not a brand named '' (nor a session of spaces, in a CSV either)."""
    from gpuseg.config import CleanConfig
    from gpuseg.io.readers import from_frame, load_files, resolve_paths
    from gpuseg.io.synthetic import generate_events
    from gpuseg.prep.clean import clean

    ev, _ = generate_events(200, seed=1)
    for col in ("brand", "category_code", "user_session"):
        ev[col] = ev[col].astype(object).where(ev[col].notna(), "")
    ev.loc[::40, "user_session"] = ""
    ev.loc[1::40, "brand"] = "  "
    ev.loc[2::40, "user_session"] = "   "  # spaces: missing in a CSV too, not one session
    ev.to_csv(tmp_path / "e.csv", index=False)
    ev.to_parquet(tmp_path / "e.parquet")
    got = {}
    for name, data in (("csv", load_files(*resolve_paths(str(tmp_path / "e.csv")), cpu)),
                       ("parquet", load_files(*resolve_paths(str(tmp_path / "e.parquet")), cpu)),
                       ("frame", from_frame(ev, cpu, "events"))):
        c = clean(data, CleanConfig(), cpu)
        got[name] = (c.filled, c.dropped["missing_session"], c.rows_out, sorted(c.brand_names))
    assert got["parquet"] == got["frame"] and got["parquet"][:3] == got["csv"][:3]
    assert "" not in got["parquet"][3] and got["parquet"][0]["brand"] > 0 and got["parquet"][0]["user_session"] > 0


def test_a_blank_time_keeps_its_date_in_any_layout(cpu, tmp_path):
    """A row without a time is its date at midnight, in the other rows' layout: day-first
    dates keep it too (not only ISO ones)."""
    from gpuseg.io.readers import load_files, resolve_paths

    df = pd.DataFrame({"customer_id": [1, 2, 1, 3], "Date": ["15/01/2024", "16/01/2024", "17/01/2024", "18/01/2024"],
                       "Time": ["10:00", None, " ", "12:00"], "amount": 1.0})
    df.to_csv(tmp_path / "o.csv", index=False)
    data = load_files(*resolve_paths(str(tmp_path / "o.csv")), cpu)
    assert data.notes == ["columns 'Date' and 'Time' joined into the timestamp"]
    assert list(data.frame["timestamp"]) == [pd.Timestamp(t) for t in (
        "2024-01-15 10:00", "2024-01-16", "2024-01-17", "2024-01-18 12:00")]


def test_python_times_beside_a_text_date_are_not_joined(cpu):
    """A frame from a spreadsheet: text dates, datetime.time values (not text): no error, the
    date alone, and the note."""
    import datetime as dt

    from gpuseg.io.readers import from_frame

    df = pd.DataFrame({"customer_id": [1, 2], "Date": ["2021-03-01", "2021-03-02"],
                       "Time": [dt.time(10, 0), dt.time(11, 0)], "amount": 1.0})
    data = from_frame(df, cpu, "orders")
    assert data.notes[0].startswith("column 'Time' not used") and "not both text" in data.notes[0]


def test_a_model_trained_on_the_date_alone_reads_new_data_so(cpu, tmp_path):
    """join_time=False (a model saved before the reader joined them): the date alone, said."""
    from gpuseg.io.readers import load_files, resolve_paths

    pd.DataFrame({"customer_id": [1, 2], "Date": ["2021-03-01", "2021-03-02"], "Time": ["10:00", "11:00"],
                  "amount": 1.0}).to_csv(tmp_path / "o.csv", index=False)
    data = load_files(*resolve_paths(str(tmp_path / "o.csv")), cpu, join_time=False)
    assert list(data.frame["timestamp"].dt.hour) == [0, 0]
    assert "the model was trained on the date alone" in data.notes[0]


def test_two_columns_that_differ_only_in_case_are_refused_unless_renamed():
    from gpuseg.io.schemas import detect_format

    cols = ["event_time", "event_type", "price", "User ID", "USER_ID"]
    with pytest.raises(SchemaError, match="columns 'User ID' and 'USER_ID' could both be user_id; say which with "
                                          "--rename 'User ID=user_id' 'USER_ID=USER_ID_other'"):
        detect_format(cols)
    mapping = detect_format(cols, rename={"User ID": "user_id", "USER_ID": "USER_ID_other"})[1]
    assert mapping["User ID"] == "user_id" and "USER_ID" not in mapping


def test_a_folder_with_a_copy_of_a_file_is_refused(tmp_path):
    from gpuseg.io.readers import resolve_paths

    (tmp_path / "backup").mkdir()
    write(tmp_path / "a.csv", REES)
    write(tmp_path / "backup" / "a_old.csv", REES)
    with pytest.raises(DataError, match="a.csv and backup/a_old.csv hold the same data: every row would count twice"):
        resolve_paths(str(tmp_path))
    write(tmp_path / "backup" / "a_old.csv", REES.replace("35.79", "35.80"))  # same size, other data: read
    assert len(resolve_paths(str(tmp_path))[0]) == 2
    header = REES.splitlines()[0] + "\n"  # empty partitions (a header alone), as Spark and Dask write them
    write(tmp_path / "part-0.csv", header)
    write(tmp_path / "part-1.csv", header)
    assert len(resolve_paths(str(tmp_path))[0]) == 4


def test_times_half_in_one_layout_half_in_another_are_all_read(cpu):
    from gpuseg.io.readers import _parse_time

    t = pd.date_range("2019-10-01", periods=400, freq="37min")
    iso = t.strftime("%Y-%m-%dT%H:%M:%SZ").tolist()
    rees = t.strftime("%Y-%m-%d %H:%M:%S UTC").tolist()
    s = pd.Series([iso[i] if i % 2 == 0 else rees[i] for i in range(len(t))])  # ISO first: no layout reads half
    out, _ = _parse_time(pd.DataFrame({"t": s}), "t", cpu, "", "x", strict=False)
    assert out["t"].notna().all() and (out["t"].to_numpy() == t.to_numpy().astype("datetime64[s]")).all()
    # month first is never filled in with day first: "13/01/2020" stays unread beside "01/25/2020"
    mixed = pd.Series(["01/25/2020 10:00"] * 300 + ["13/01/2020 10:00"] * 10)
    out, fmt = _parse_time(pd.DataFrame({"t": mixed}), "t", cpu, "", "x", strict=False)
    assert int(out["t"].isna().sum()) == 10
    # beside ISO 8601, "03/01/2020" could be either: left unread rather than guessed
    iso_and_slashes = pd.Series(iso[:28] + ["03/01/2020 10:00"] * 24)
    out, _ = _parse_time(pd.DataFrame({"t": iso_and_slashes}), "t", cpu, "", "x", strict=False)
    assert int(out["t"].isna().sum()) == 24


def test_a_quote_left_open_in_the_last_field_counts_the_lines_it_swallowed(tmp_path, cpu):
    """The row keeps its fields (the open quote is in the last one), so Arrow keeps it; the
    rows after it vanish into that field, and are counted."""
    rest = "".join(f"2019-10-01 00:01:{i:02d} UTC,view,1,2,,b,3.0,541312140,s{i}{'x' * 60}\n" for i in range(30))
    p = write(tmp_path / "q.csv", REES + '2019-10-01 00:00:05 UTC,view,1,2,,b,3.0,541312140,"s8\n' + rest)
    d = load(str(p), cpu)
    assert len(d.frame) == 4 and d.rows_malformed == 30 and d.rows_read == 34
