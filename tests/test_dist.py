"""Scale-out with Dask: the distributed load/clean/features equal the single-process run."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("distributed")

from distributed.diagnostics.plugin import WorkerPlugin  # noqa: E402
from sklearn.metrics import adjusted_rand_score  # noqa: E402

from gpuseg.cli import main  # noqa: E402
from gpuseg.config import build_config  # noqa: E402
from gpuseg.dist import _fence, plan_pieces, weighted_quantile  # noqa: E402
from gpuseg.errors import ConfigError, DataError  # noqa: E402
from gpuseg.io.synthetic import generate_events  # noqa: E402
from gpuseg.pipeline import run  # noqa: E402
from gpuseg.prep.clean import _price_fence  # noqa: E402


@pytest.fixture(scope="module")
def scheduler():
    from distributed import LocalCluster

    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0",
                           memory_limit="1GB")
    yield cluster.scheduler_address
    cluster.close()


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    d = tmp_path_factory.mktemp("dist")
    ev, truth = generate_events(2500, seed=7)
    n = len(ev)
    (d / "parts").mkdir()
    for i in range(7):  # rows of one customer spread over several files
        ev.iloc[i * n // 7:(i + 1) * n // 7].to_parquet(d / "parts" / f"part{i}.parquet", row_group_size=8000)
    ev.to_csv(d / "events.csv", index=False)
    rng = np.random.default_rng(0)
    orders = pd.DataFrame({
        "customer_id": rng.integers(0, 400, 6000).astype(str),
        "order_id": rng.integers(0, 2500, 6000),
        "timestamp": pd.Timestamp("2021-01-01") + pd.to_timedelta(rng.integers(0, 86400 * 90, 6000), unit="s"),
        "quantity": rng.integers(1, 4, 6000),
        "amount": np.round(rng.lognormal(3, 1, 6000), 2),
        "category": rng.choice(["toys.cars", "garden", "books.novels", None], 6000),
    })
    orders.to_csv(d / "orders.csv", index=False)
    return d


def _run(out: Path, inp: str, scheduler: str | None = None, dask: dict | None = None, methods: str = "kmeans"):
    file_values = {"dask": dask} if dask else None
    cfg = build_config(file_values, input=inp, out=str(out), methods=methods, k="4", stability=0, report=False,
                       device="cpu", cluster=scheduler)
    return run(cfg)


def _same(single, dist, exact_segments: bool = True):
    a = pd.read_parquet(single.out_dir / "features.parquet")
    b = pd.read_parquet(dist.out_dir / "features.parquet")
    assert list(a.columns) == list(b.columns)
    assert (a["customer_id"].to_numpy() == b["customer_id"].to_numpy()).all()
    np.testing.assert_allclose(b.drop(columns="customer_id").to_numpy(), a.drop(columns="customer_id").to_numpy(),
                               rtol=1e-9, atol=1e-9)
    sa = pd.read_parquet(single.out_dir / "segments.parquet")
    sb = pd.read_parquet(dist.out_dir / "segments.parquet")
    assert adjusted_rand_score(sa["segment"], sb["segment"]) == 1.0
    # lifetime value from the workers' purchase histories equals the single process's
    assert single.metrics["lifetime_value"]["status"] == dist.metrics["lifetime_value"]["status"] == "ok"
    for col in ("p_alive", "expected_purchases", "predicted_clv"):
        # (to the optimiser's tolerance: per-day sums added in another order move the optimum by ~1e-6)
        np.testing.assert_allclose(sb[col].to_numpy(float), sa[col].to_numpy(float), rtol=1e-4, equal_nan=True)
    ma, mb = single.metrics["data"], dist.metrics["data"]
    for key in ("rows_read", "rows_used", "rows_dropped", "customers", "features", "top_categories",
                "reference_time", "price_outlier_fence", "values_filled", "drop_examples"):
        assert ma[key] == mb[key], key


@pytest.fixture(scope="module")
def single_parquet(data, tmp_path_factory):
    return _run(tmp_path_factory.mktemp("single"), str(data / "parts"))


def test_parquet_parts_equal_the_single_process_run(data, scheduler, single_parquet, tmp_path):
    dist = _run(tmp_path / "dist", str(data / "parts"), scheduler)
    _same(single_parquet, dist)
    info = dist.metrics["dask"]
    assert info["workers"] == 2 and info["pieces"] >= 7 and info["cluster"] == scheduler
    assert info["cleaned_held"] is True
    # all customers fit in the report's sample here, so the row-level insights are equal too
    ia = json.loads((single_parquet.out_dir / "insights.json").read_text())
    ib = json.loads((dist.out_dir / "insights.json").read_text())
    assert ia == ib


def test_cleaning_again_instead_of_holding_gives_the_same_run(data, scheduler, single_parquet, tmp_path,
                                                              monkeypatch):
    """Under a memory limit the cleaned buckets are not held: the feature pass cleans the
    raw buckets again, with the same result."""
    import gpuseg.dist

    monkeypatch.setattr(gpuseg.dist, "HOLD_FRACTION", 0.0)
    dist = _run(tmp_path / "dist", str(data / "parts"), scheduler, {"partitions": 5})
    assert dist.metrics["dask"]["cleaned_held"] is False
    _same(single_parquet, dist)
    ia = json.loads((single_parquet.out_dir / "insights.json").read_text())
    assert ia == json.loads((dist.out_dir / "insights.json").read_text())


class _DieOnce(WorkerPlugin):
    """Worker plugin: the first worker to start a task whose key begins with ``prefix``
    exits at once (a crash: no cleanup, no goodbye), once per marker file."""

    name = "die-once"

    def __init__(self, prefix: str, marker: str, always: bool = False):
        self.prefix, self.marker, self.always = prefix, marker, always

    def transition(self, key, start, finish, **kwargs):
        name = key[0] if isinstance(key, tuple) else key
        if finish == "executing" and str(name).startswith(self.prefix):
            try:
                fd = os.open(self.marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                if not self.always:
                    return
            else:
                os.close(fd)
            os._exit(1)


def test_a_worker_that_dies_mid_run_is_replaced_and_the_run_finishes(data, single_parquet, tmp_path):
    """A worker process that crashes in the feature pass (the last one, with the most work
    to lose): the nanny starts a new one, Dask computes the lost buckets again from their
    lineage (the read and the shuffle), and the run's results equal the single-process
    run's."""
    import cloudpickle
    from distributed import Client, LocalCluster

    cloudpickle.register_pickle_by_value(__import__(__name__))
    marker = tmp_path / "died"
    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0",
                           memory_limit="1GB")
    try:
        with Client(cluster) as client:
            before = set(client.run(os.getpid).values())
            client.register_plugin(_DieOnce("features_rows", str(marker)))
            dist = _run(tmp_path / "dist", str(data / "parts"), cluster.scheduler_address, {"partitions": 6})
            after = set(client.run(os.getpid).values())
    finally:
        cluster.close()
        cloudpickle.unregister_pickle_by_value(__import__(__name__))
    assert marker.exists(), "no worker died: the test did not test anything"
    assert before != after  # one worker process was replaced
    assert dist.metrics["dask"]["workers_replaced"] == 1
    _same(single_parquet, dist)


def test_a_run_whose_workers_keep_dying_fails_in_one_line_and_writes_nothing(data, tmp_path, capsys):
    import cloudpickle
    import dask
    from distributed import Client, LocalCluster

    cloudpickle.register_pickle_by_value(__import__(__name__))
    out = tmp_path / "o"
    out.mkdir()
    (out / "mine.txt").write_text("the user's")  # beside an earlier run's files
    (out / "metrics.json").write_text('{"gpuseg_version": "0.1.0"}')
    with dask.config.set({"distributed.scheduler.allowed-failures": 0}):  # the first death, not the fourth
        cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0",
                               memory_limit="1GB")
    try:
        with Client(cluster) as client:
            client.register_plugin(_DieOnce("features_rows", str(tmp_path / "died"), always=True))
            rc = main(["run", "--input", str(data / "parts"), "--methods", "kmeans", "--k", "4", "--stability", "0",
                       "--no-report", "--out", str(out), "--cluster", cluster.scheduler_address])
    finally:
        cluster.close()
        cloudpickle.unregister_pickle_by_value(__import__(__name__))
    err = capsys.readouterr().err
    assert rc == 2
    line = [x for x in err.splitlines() if "error" in x.lower()]
    assert len(line) == 1 and "died repeatedly while computing features" in line[0], err[-2000:]
    assert "Traceback" not in err
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".gpuseg-")) == ["metrics.json", "mine.txt"]
    assert (out / "metrics.json").read_text() == '{"gpuseg_version": "0.1.0"}'
    assert not list(out.glob(".gpuseg-tmp-*"))


@pytest.mark.parametrize("partitions", [3, 17])
def test_partition_count_does_not_change_results(data, scheduler, single_parquet, tmp_path, partitions):
    dist = _run(tmp_path / "dist", str(data / "parts"), scheduler, {"partitions": partitions})
    assert dist.metrics["dask"]["partitions"] == partitions
    _same(single_parquet, dist)


def test_csv_byte_ranges_equal_the_single_process_run(data, scheduler, tmp_path):
    single = _run(tmp_path / "single", str(data / "events.csv"))
    dist = _run(tmp_path / "dist", str(data / "events.csv"), scheduler, {"piece_mb": 1, "partitions": 5})
    assert dist.metrics["dask"]["pieces"] >= 10  # a 13 MB file in 1 MB ranges
    _same(single, dist)


def test_orders_equal_the_single_process_run(data, scheduler, tmp_path):
    single = _run(tmp_path / "single", str(data / "orders.csv"))
    dist = _run(tmp_path / "dist", str(data / "orders.csv"), scheduler, {"piece_mb": 1, "partitions": 4})
    assert "items_per_order" in single.metrics["data"]["features"]
    _same(single, dist)


def test_shop_exports_equal_the_single_process_run(data, scheduler, tmp_path):
    """Order statuses, e-mail ids in other case and capped spend read on the workers as in
    one process; ids that differ in case only share a bucket, so the e-mails merge."""
    orders = pd.read_csv(data / "orders.csv")
    rng = np.random.default_rng(3)
    orders["customer_id"] = [f"C{c}@Shop.com" if rng.random() < 0.3 else f"c{c}@shop.com"
                             for c in orders["customer_id"]]
    orders["status"] = rng.choice(["paid", "paid", "paid", "refunded", "Paid"], len(orders))
    orders.loc[:4, "amount"] = 1e6
    orders.to_csv(tmp_path / "shop.csv", index=False)
    single = _run(tmp_path / "single", str(tmp_path / "shop.csv"))
    dist = _run(tmp_path / "dist", str(tmp_path / "shop.csv"), scheduler, {"piece_mb": 1, "partitions": 4})
    a = pd.read_parquet(single.out_dir / "features.parquet")
    b = pd.read_parquet(dist.out_dir / "features.parquet")
    assert (a["customer_id"].to_numpy() == b["customer_id"].to_numpy()).all()
    np.testing.assert_allclose(b.drop(columns="customer_id").to_numpy(), a.drop(columns="customer_id").to_numpy(),
                               rtol=1e-9, atol=1e-9)
    ma, mb = single.metrics["data"], dist.metrics["data"]
    for key in ("rows_read", "rows_used", "rows_dropped", "customers", "values_capped"):
        assert ma[key] == mb[key], key
    assert ma["rows_dropped"]["not_completed"] > 0 and ma["emails_merged"] > 0
    for key in ("emails_merged", "spend_capped", "customers_in"):
        assert ma[key] == pytest.approx(mb[key]), key


def test_kmeans_on_the_workers_equals_kmeans_in_process(data, scheduler, single_parquet, tmp_path):
    """``[dask] kmeans = "workers"``: the customer table goes to the workers in row blocks
    and K-means runs there as map-reduce Lloyd iterations; the segments equal the
    in-process fit's, and the model it saves assigns like one fitted in-process."""
    dist = _run(tmp_path / "dist", str(data / "parts"), scheduler, {"kmeans": "workers"})
    assert dist.metrics["dask"]["kmeans"] == "workers"
    _same(single_parquet, dist)
    a = single_parquet.metrics["methods"]["kmeans"]
    b = dist.metrics["methods"]["kmeans"]
    assert b["inertia"] == pytest.approx(a["inertia"], rel=1e-5)
    rc = main(["assign", "--model", str(dist.out_dir / "model"), "--input", str(data / "parts"),
               "--out", str(tmp_path / "assigned.parquet")])
    assert rc == 0
    assigned = pd.read_parquet(tmp_path / "assigned.parquet")
    segments = pd.read_parquet(dist.out_dir / "segments.parquet")
    assert (assigned["segment"].to_numpy() == segments["segment"].to_numpy()).all()


def test_report_sample_is_used_and_said(data, scheduler, tmp_path, capsys):
    rc = main(["run", "--input", str(data / "parts"), "--methods", "kmeans", "--k", "4", "--stability", "0",
               "--no-report", "--out", str(tmp_path / "o"), "--cluster", scheduler, "--config",
               str(_toml(tmp_path, "[dask]\ninsight_customers = 500\n"))])
    err = capsys.readouterr().err
    assert rc == 0
    m = re.search(r"seeded sample of ([\d,]+) of 2,500 customers", err)
    assert m and "dashboard" in err
    n = int(m.group(1).replace(",", ""))
    assert 450 <= n <= 500  # whole bins of a 12-bit hash, at most insight_customers
    assert json.loads((tmp_path / "o" / "metrics.json").read_text())["dask"]["insight_customers"] == n
    # the sample is whole customers: their rows, and no others'
    features = pd.read_parquet(tmp_path / "o" / "features.parquet")
    from gpuseg.dist.tasks import SAMPLE_BITS, sample_hash

    bins = (sample_hash(features["customer_id"].to_numpy(), 0) >> np.uint64(64 - SAMPLE_BITS)).astype(np.int64)
    cum = np.bincount(bins, minlength=1 << SAMPLE_BITS).cumsum()
    assert n == cum[cum <= 500][-1]


def _toml(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "c.toml"
    p.write_text(text)
    return p


def test_local_cluster_from_the_command_line(data, tmp_path, capfd):
    rc = main(["run", "--input", str(data / "parts"), "--methods", "kmeans", "--k", "4", "--stability", "0",
               "--no-report", "--out", str(tmp_path / "o"), "--cluster", "local", "--workers", "2",
               "--memory-limit", "1GB"])
    captured = capfd.readouterr()
    err = captured.err
    assert rc == 0, err
    assert "a local Dask cluster of 2 worker(s)" in err
    # the last line says where the work ran, not only this process's CPU
    assert "Ran on 2 Dask worker(s) (local: load, clean, features) and " in captured.out + err
    m = json.loads((tmp_path / "o" / "metrics.json").read_text())
    assert m["dask"]["kind"] == "dask" and m["data"]["customers"] == 2500


def test_the_shuffles_routine_warnings_stay_off_the_console(tmp_path):
    # in a process of its own: pytest's capture would hide what Dask's log handler prints
    import subprocess
    import sys

    from gpuseg.io.synthetic import generate_events

    events, _ = generate_events(300, seed=2)
    events.to_parquet(tmp_path / "e.parquet")
    done = subprocess.run([sys.executable, "-m", "gpuseg", "run", "--input", str(tmp_path / "e.parquet"), "--methods",
                           "kmeans", "--k", "3", "--stability", "0", "--no-report", "--out", str(tmp_path / "o"),
                           "--cluster", "local", "-q"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "Shuffle" not in done.stderr and "WARNING" not in done.stderr, done.stderr


def test_unreachable_scheduler_is_one_line_and_writes_nothing(data, tmp_path, capsys):
    rc = main(["run", "--input", str(data / "parts"), "--out", str(tmp_path / "o"), "--cluster",
               "tcp://127.0.0.1:9", "-q"])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("gpuseg: error: --cluster tcp://127.0.0.1:9") and err.count("\n") == 1
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("bad", [{"cluster": "nonsense"}, {"workers": -1}, {"memory_limit": "lots"}])
def test_bad_dask_options(bad):
    with pytest.raises(ConfigError):
        build_config(input="x.csv", **bad)


def test_fill_mode_and_synthetic_input_are_refused_with_a_cluster():
    with pytest.raises(ConfigError, match="fill_missing"):
        build_config({"clean": {"fill_missing": "mode"}}, input="x.csv", cluster="local")
    with pytest.raises(ConfigError, match="needs --input"):
        build_config(cluster="local")


def test_weighted_quantile_matches_numpy():
    rng = np.random.default_rng(1)
    values = np.round(rng.lognormal(2, 1, 5000), 1)
    u, c = np.unique(values, return_counts=True)
    for q in (0, 0.1, 0.25, 0.5, 0.75, 0.999, 1):
        assert weighted_quantile(u, c, q) == pytest.approx(np.quantile(values, q), rel=1e-12)


def test_fence_from_counts_matches_the_single_process_fence():
    from gpuseg import backend
    from gpuseg.config import CleanConfig

    rng = np.random.default_rng(2)
    prices = pd.Series(np.round(rng.lognormal(3, 1.2, 20000), 2))
    for cfg in (CleanConfig(), CleanConfig(iqr_on_log=False, iqr_factor=1.5)):
        expected = _price_fence(prices, cfg, backend.select("cpu"))
        got = _fence(prices.value_counts(), cfg)
        assert got == pytest.approx(expected, rel=1e-12)


def test_plan_pieces_covers_a_csv_exactly(data):
    path = data / "events.csv"
    pieces = plan_pieces([path], "csv", 1 << 20)
    assert pieces[0][2] == 0 and pieces[-1][3] == path.stat().st_size
    assert all(a[3] == b[2] for a, b in zip(pieces, pieces[1:]))
    from gpuseg.dist.tasks import _read_csv_range

    total = sum(_read_csv_range(path, p[2], p[3], ["user_id"], ["user_id"])[0].num_rows for p in pieces)
    assert total == len(pd.read_csv(path, usecols=["user_id"]))


def _big_csv(path: Path, size: int) -> None:
    """A CSV of more than ``size`` bytes: one generated million events, written again and
    again with other customer ids (generating every copy would take minutes)."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    ev, _ = generate_events(5_000, seed=100)  # about 250,000 events, 33 MB of CSV
    # every column but the id as text once, so each copy is written without formatting
    ev = ev.astype({c: "string" for c in ev.columns if c != "user_id"})
    table = pa.Table.from_pandas(ev, preserve_index=False)
    users = table.column("user_id").to_numpy()
    i = 0
    with pacsv.CSVWriter(path, table.schema) as writer:
        while path.stat().st_size <= size:
            writer.write_table(table.set_column(table.schema.get_field_index("user_id"), "user_id",
                                                pa.array(users + i * 1_000_000_000)))
            i += 1


#: The CI run: 2 workers at 800 MiB on a CSV 1.2 times that (about 2 minutes on 2 cores).
#: GPUSEG_MEMORY_LIMIT_MB=1024 GPUSEG_MEMORY_FACTOR=10 is the issue's ten-times case (about
#: 20 minutes here, with a 10.7 GB CSV; GPUSEG_MEMORY_TEST_CSV keeps the file).
MEMORY_LIMIT_MB = int(os.environ.get("GPUSEG_MEMORY_LIMIT_MB", "800"))
MEMORY_FACTOR = float(os.environ.get("GPUSEG_MEMORY_FACTOR", "1.2"))


def test_peak_worker_memory_stays_within_the_limit_on_data_larger_than_it(tmp_path, capsys):
    """``--cluster local --workers 2 --memory-limit 800MiB`` segments a CSV larger than that
    limit: no worker is restarted, and every worker's peak resident memory stays below the
    limit (the nanny kills a worker that crosses 95% of it)."""
    limit = MEMORY_LIMIT_MB << 20
    size = int(MEMORY_FACTOR * limit)
    path = Path(os.environ.get("GPUSEG_MEMORY_TEST_CSV", tmp_path / "big.csv"))
    if not path.is_file() or path.stat().st_size <= size:
        _big_csv(path, size)
    rc = main(["run", "--input", str(path), "--methods", "kmeans", "--k", "5", "--stability", "0", "--no-report",
               "--out", str(tmp_path / "o"), "--cluster", "local", "--workers", "2",
               "--memory-limit", f"{MEMORY_LIMIT_MB}MiB"])
    err = capsys.readouterr().err
    assert rc == 0, err[-3000:]
    info = json.loads((tmp_path / "o" / "metrics.json").read_text())["dask"]
    assert info["cleaned_held"] is False and info["workers"] == 2
    assert info["memory_limit_mb"] == MEMORY_LIMIT_MB
    assert info["workers_replaced"] == 0, err[-3000:]
    assert 0 < info["peak_worker_memory_mb"] < info["memory_limit_mb"], info


@pytest.mark.gpu
@pytest.mark.rapids
def test_dask_cuda_on_one_gpu_equals_plain_cudf(data, tmp_path):
    """LocalCUDACluster (one worker per GPU) against the single-process cuDF run."""
    from gpuseg import backend as _backend

    probe = _backend.probe_gpu()
    if not probe.available:
        pytest.skip(f"no GPU backend: {probe.reason}")
    pytest.importorskip("dask_cuda")
    cfg = dict(input=str(data / "parts"), methods="kmeans", k="4", stability=0, report=False, device="gpu")
    single = run(build_config(out=str(tmp_path / "single"), **cfg))
    dist = run(build_config(out=str(tmp_path / "dist"), cluster="local", **cfg))
    assert dist.metrics["dask"]["kind"] == "dask-cuda"
    _same(single, dist)


def test_a_csv_range_of_a_padded_header_is_read_by_its_stripped_names(tmp_path):
    # "event_time, event_type, ...": every piece of a Dask run reads the names as the
    # single-process reader does (read_header strips them)
    from gpuseg.dist.tasks import _read_csv_range

    path = tmp_path / "padded.csv"
    rows = "".join(f"2019-10-01 00:00:0{i} UTC,view,{540 + i}\n" for i in range(6))
    path.write_text("event_time, event_type , user_id\n" + rows)
    size = path.stat().st_size
    tables = [_read_csv_range(path, a, b, ["event_type", "user_id"], ["user_id"])[0]
              for a, b in ((0, size // 2), (size // 2, size))]
    assert sum(t.num_rows for t in tables) == 6
    assert tables[0].column_names == ["event_type", "user_id"] and tables[0].column("user_id")[0].as_py() == "540"


def test_a_csv_range_with_a_ragged_row_that_is_not_utf8_is_read_as_latin1_quietly(tmp_path, capfd):
    # Arrow cannot hand the row handler a row it cannot decode: the range is read again as
    # Latin-1, the ragged row counted, and Python prints no "Exception ignored" for it
    from gpuseg.dist.tasks import _read_csv_range

    path = tmp_path / "late.csv"
    rows = "event_time,event_type,user_id\n2019-10-01 00:00:05 UTC,view,1\n"
    rows += "2019-10-01 00:00:06 UTC,caf\xe9,2,extra\n2019-10-01 00:00:07 UTC,caf\xe9,3\n"
    path.write_bytes(rows.encode("latin-1"))
    table, bad = _read_csv_range(path, 0, path.stat().st_size, ["event_type", "user_id"], ["user_id"])
    assert bad == 1 and table.num_rows == 2 and table.column("event_type")[1].as_py() == "caf\xe9"
    assert "Exception ignored" not in capfd.readouterr().err


def test_the_shuffle_log_level_is_given_back_when_the_session_closes():
    import logging

    from gpuseg import backend as _backend

    log = logging.getLogger("distributed.shuffle")
    log.setLevel(logging.INFO)
    session = _backend.dask_session("local", _backend.select("cpu"), workers=1)
    try:
        assert log.level == logging.ERROR
    finally:
        session.close()
    assert log.level == logging.INFO
    log.setLevel(logging.NOTSET)


def test_buckets_with_text_and_integer_ids_become_text():
    """One id with a leading zero left its bucket's ids as text beside int64 buckets, and
    sorting the features of all buckets raised a TypeError."""
    from gpuseg.dist import _ids_of_one_type

    ints = pd.DataFrame({"x": [1.0, 2.0]}, index=pd.Index([750511442, 12], name="customer_id"))
    text = pd.DataFrame({"x": [3.0]}, index=pd.Index(["0750511443"], name="customer_id"))
    table = pd.concat(_ids_of_one_type([ints, text])).sort_index()
    assert list(table.index) == ["0750511443", "12", "750511442"] and table.index.name == "customer_id"
    rows = _ids_of_one_type([ints.reset_index(), text.reset_index()], "customer_id")
    assert [list(r["customer_id"]) for r in rows] == [["750511442", "12"], ["0750511443"]]
    same = [ints, ints]
    assert _ids_of_one_type(same) is same  # nothing to change
    floats = pd.DataFrame({"x": [4.0]}, index=pd.Index([12.5], name="customer_id"))
    assert pd.concat(_ids_of_one_type([floats, text])).sort_index().index.tolist() == ["0750511443", "12.5"]


def test_an_id_stored_as_an_integer_a_float_or_text_goes_to_one_bucket():
    from gpuseg.dist.tasks import bucket_of

    forms = [pd.DataFrame({"c": pd.Series([123, 4], dtype="int64")}),
             pd.DataFrame({"c": [123.0, np.nan]}),  # a part with a missing id stores floats
             pd.DataFrame({"c": [" 123 ", "4.00"]}),  # blanks around an id: clean trims them
             pd.DataFrame({"c": pd.Categorical(["123.0", "4"])})]
    buckets = [bucket_of(f, "c", 97).tolist() for f in forms]
    assert len({b[0] for b in buckets}) == 1, buckets  # 123 everywhere
    assert buckets[0][1] == buckets[2][1] == buckets[3][1]  # 4 everywhere
    # a whole float of 13 digits hashes as its integer: on pandas the text "6543210987654.0" did
    # already; this guards the cuDF path, which writes it as 6.543210987654e+12
    big = [pd.DataFrame({"c": pd.Series([6543210987654], dtype="int64")}), pd.DataFrame({"c": [6543210987654.0]})]
    assert bucket_of(big[0], "c", 97).tolist() == bucket_of(big[1], "c", 97).tolist()


def test_parquet_parts_with_integer_and_float_ids_equal_the_single_process_run(data, scheduler, tmp_path):
    """A part with a missing id stores its ids as floats: 123.0 was hashed as "123.0" and 123
    of the other parts as "123", so a customer with rows in both was split between buckets,
    counted twice, and the run crashed in the insights."""
    (tmp_path / "parts").mkdir()
    for i, f in enumerate(sorted((data / "parts").glob("*.parquet"))):
        part = pd.read_parquet(f)
        if i == 3:
            part["user_id"] = part["user_id"].astype("float64")
            part.loc[part.index[0], "user_id"] = np.nan
        part.to_parquet(tmp_path / "parts" / f.name)
    single = _run(tmp_path / "single", str(tmp_path / "parts"))
    dist = _run(tmp_path / "dist", str(tmp_path / "parts"), scheduler)
    assert single.metrics["data"]["rows_dropped"]["missing_customer_id"] == 1
    _same(single, dist)


def test_parquet_parts_with_ids_of_different_types_are_refused_in_one_line(tmp_path):
    from gpuseg.dist import _refuse_mixed_id_types
    from gpuseg.errors import DataError

    pd.DataFrame({"user_id": [1, 2]}).to_parquet(tmp_path / "a.parquet")
    pd.DataFrame({"user_id": pd.Categorical(["3"])}).to_parquet(tmp_path / "b.parquet")
    pd.DataFrame({"user_id": ["4"]}).to_parquet(tmp_path / "c.parquet")
    pd.DataFrame({"user_id": [5.0, np.nan]}).to_parquet(tmp_path / "d.parquet")  # a missing id makes floats
    pd.DataFrame({"user_id": [None, None]}).to_parquet(tmp_path / "e.parquet")  # all empty: no type to compare
    _refuse_mixed_id_types([tmp_path / "b.parquet", tmp_path / "c.parquet"], ["user_id"])  # text, coded or not
    _refuse_mixed_id_types([tmp_path / n for n in ("a.parquet", "d.parquet", "e.parquet")], ["user_id"])
    with pytest.raises(DataError, match="'user_id' is numbers in a.parquet and text in b.parquet"):
        _refuse_mixed_id_types([tmp_path / "a.parquet", tmp_path / "b.parquet"], ["user_id"])


def test_the_example_of_a_bad_value_is_named_as_in_one_process(data, scheduler, tmp_path):
    """The Dask clean line said "bad_timestamp 1 rows" without the value one process names."""
    ev = pd.read_csv(data / "events.csv", nrows=3000)
    bad = ev.head(1).assign(event_time="garbage", user_id=999_999_999)
    pd.concat([ev, bad], ignore_index=True).to_csv(tmp_path / "bad.csv", index=False)
    single = _run(tmp_path / "single", str(tmp_path / "bad.csv"))
    dist = _run(tmp_path / "dist", str(tmp_path / "bad.csv"), scheduler)
    assert single.metrics["data"]["drop_examples"] == {"bad_timestamp": "garbage"}
    assert dist.metrics["data"]["drop_examples"] == single.metrics["data"]["drop_examples"]


def test_a_dask_piece_joins_a_date_and_a_time_column(tmp_path):
    """A Dask piece joins a Time column to the Date read as the timestamp, as one process
    does, and says so for the load line."""
    from gpuseg.dist.tasks import read_piece
    from gpuseg.io.schemas import ORDERS, match_columns

    path = tmp_path / "orders.csv"
    path.write_text("customer_id,Date,Time,amount\n1,2021-03-01,14:22:05,10.5\n2,2021-03-02,,4.0\n")
    mapping = match_columns(["customer_id", "Date", "Time", "amount"], ORDERS)
    frame, info = read_piece((str(path), "file"), kind="csv", columns=[*mapping, "Time"], categorical=[],
                             ids=["customer_id"], schema_name="orders", mapping=mapping, ts_format="", backend="cpu",
                             pair=("Date", "Time"))
    assert info["notes"] == ["columns 'Date' and 'Time' joined into the timestamp"]
    assert list(frame["timestamp"]) == [pd.Timestamp("2021-03-01 14:22:05"), pd.Timestamp("2021-03-02")]


def test_parts_of_which_only_some_lack_a_session_equal_the_single_process_run(data, scheduler, tmp_path):
    """A part with an empty session made its session hashes float64 (missing as NaN), which the
    shuffle could not concatenate with the other parts' int64 hashes above 2**53: the run
    crashed. The rows without a session are kept in both runs, in sessions cut at gaps."""
    (tmp_path / "parts").mkdir()
    for i, f in enumerate(sorted((data / "parts").glob("*.parquet"))[:3]):
        part = pd.read_parquet(f)
        if i == 1:
            part["user_session"] = part["user_session"].astype(object)
            part.loc[part.index[:5], "user_session"] = None
        part.to_csv(tmp_path / "parts" / f"part{i}.csv", index=False)
    single = _run(tmp_path / "single", str(tmp_path / "parts"))
    dist = _run(tmp_path / "dist", str(tmp_path / "parts"), scheduler)
    assert single.metrics["data"]["values_filled"]["user_session"] == 5
    _same(single, dist)


def test_pieces_whose_days_are_all_twelve_or_less_read_as_the_others(data, scheduler, tmp_path):
    """Day-first dates in two parts, one with days 1-12 only: that part alone reads month first,
    and its customers' recency moved by months. The pieces now read in one format, the one
    every piece reads, as one process reads the whole column."""
    orders = pd.read_csv(data / "orders.csv", parse_dates=["timestamp"])
    orders = orders[orders["customer_id"].astype(int) < 200]
    early = orders["timestamp"].dt.day <= 12
    (tmp_path / "parts").mkdir()
    for name, part in (("a.csv", orders[early]), ("b.csv", orders[~early])):
        part.assign(timestamp=part["timestamp"].dt.strftime("%d/%m/%Y %H:%M")).to_csv(tmp_path / "parts" / name,
                                                                                    index=False)
    single = _run(tmp_path / "single", str(tmp_path / "parts"))
    dist = _run(tmp_path / "dist", str(tmp_path / "parts"), scheduler)
    assert single.metrics["data"]["timestamp_format"] == "%d/%m/%Y %H:%M"
    assert dist.metrics["data"]["timestamp_format"] == single.metrics["data"]["timestamp_format"]
    a = pd.read_parquet(single.out_dir / "features.parquet")
    b = pd.read_parquet(dist.out_dir / "features.parquet")
    np.testing.assert_allclose(b["recency_days"].to_numpy(), a["recency_days"].to_numpy(), atol=1e-9)


def test_pieces_each_in_a_format_of_its_own_that_no_other_reads_keep_it(data, scheduler, tmp_path):
    """A part written day first (days above 12) beside one written month first (days above
    12): no time reads in both formats, each piece's own format reads it right, so nothing is
    read again; the features are those of the same orders written in one format."""
    orders = pd.read_csv(data / "orders.csv", parse_dates=["timestamp"])
    orders = orders[(orders["timestamp"].dt.day > 12) & (orders["customer_id"].astype(int) < 150)]
    (tmp_path / "parts").mkdir()
    (tmp_path / "one").mkdir()
    for name, fmt, part in (("a.csv", "%d/%m/%Y %H:%M", orders.iloc[::2]),
                            ("b.csv", "%m/%d/%Y %H:%M", orders.iloc[1::2])):
        part.assign(timestamp=part["timestamp"].dt.strftime(fmt)).to_csv(tmp_path / "parts" / name, index=False)
    orders.assign(timestamp=orders["timestamp"].dt.strftime("%Y-%m-%d %H:%M")).to_csv(tmp_path / "one" / "o.csv",
                                                                                   index=False)
    dist = _run(tmp_path / "dist", str(tmp_path / "parts"), scheduler)
    single = _run(tmp_path / "single", str(tmp_path / "one"))
    x = pd.read_parquet(single.out_dir / "features.parquet")
    y = pd.read_parquet(dist.out_dir / "features.parquet")
    np.testing.assert_allclose(y["recency_days"].to_numpy(), x["recency_days"].to_numpy(), atol=1e-9)


def test_pieces_whose_formats_differ_only_in_layout_read_as_before(data, scheduler, tmp_path):
    """"... UTC" in one part and plain ISO 8601 (with a bad value, so it stays text) in the
    other read the same instants: nothing to reconcile, and no refusal (a reviewer's case)."""
    orders = pd.read_csv(data / "orders.csv", parse_dates=["timestamp"]).iloc[:3000]
    a, b = orders.iloc[:2000], orders.iloc[2000:]
    (tmp_path / "parts").mkdir()
    a.assign(timestamp=a["timestamp"].dt.strftime("%Y-%m-%d %H:%M:%S UTC")).to_csv(tmp_path / "parts" / "a.csv",
                                                                                 index=False)
    bad = b["timestamp"].dt.strftime("%Y-%m-%d %H:%M:%S").where(np.arange(len(b)) != 5, "garbage")
    b.assign(timestamp=bad).to_csv(tmp_path / "parts" / "b.csv", index=False)
    single = _run(tmp_path / "single", str(tmp_path / "parts"))
    dist = _run(tmp_path / "dist", str(tmp_path / "parts"), scheduler)
    assert dist.metrics["data"]["rows_dropped"]["bad_timestamp"] == single.metrics["data"]["rows_dropped"][
        "bad_timestamp"] == 1
    x = pd.read_parquet(single.out_dir / "features.parquet")
    y = pd.read_parquet(dist.out_dir / "features.parquet")
    np.testing.assert_allclose(y["recency_days"].to_numpy(), x["recency_days"].to_numpy(), atol=1e-9)


def test_pieces_whose_formats_read_each_others_times_to_other_dates_and_each_other_little_are_refused():
    """Month first in one piece, day first in another, and each reads some of the other's
    times to another date: no format reads half of both, so the run asks for the format."""
    from gpuseg.dist import _one_time_format

    ambiguous = [f"0{d}/0{m}/2021 10:00" for d in range(1, 4) for m in range(1, 3)]  # 6 both ways
    month_first = [f"02/{d}/2021 10:00" for d in range(13, 29)] + ambiguous
    day_first = [f"{d}/02/2021 10:00" for d in range(13, 29)] + ambiguous
    infos = [{"timestamp_format": "%m/%d/%Y %H:%M", "time_sample": month_first},
             {"timestamp_format": "%d/%m/%Y %H:%M", "time_sample": day_first}]
    with pytest.raises(DataError, match="read the same times to different dates"):
        _one_time_format(None, ["a", "b"], [None, None], infos, {}, print)
    # a layout difference alone is left as it is, without reading anything again
    same = [{"timestamp_format": "%Y-%m-%d %H:%M:%S UTC", "time_sample": ["2021-01-02 10:00:00 UTC"]},
            {"timestamp_format": "%Y-%m-%d %H:%M:%S", "time_sample": ["2021-01-03 10:00:00"]}]
    assert _one_time_format(None, ["a", "b"], ["r0", "r1"], same, {}, print) == (["r0", "r1"], same)
