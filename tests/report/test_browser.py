"""The report's customer lookup in a real browser (headless Chromium through Selenium).

Skipped unless /usr/bin/chromium, /usr/bin/chromedriver and selenium are there (Debian:
``apt-get install chromium chromium-driver``; ``pip install selenium``). The driver is given
explicitly, so Selenium Manager never runs (and ``SE_OFFLINE`` keeps it offline if it did).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pandas as pd
import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")

if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
    pytest.skip("needs /usr/bin/chromium and /usr/bin/chromedriver (apt-get install chromium chromium-driver)",
                allow_module_level=True)
webdriver = pytest.importorskip("selenium.webdriver")

from selenium.common.exceptions import NoAlertPresentException  # noqa: E402
from selenium.webdriver.chrome.options import Options  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

HOSTILE_ID = "<script>alert(1)</script>"


@pytest.fixture(scope="module")
def report_dir(tmp_path_factory, small_run, copy_run):
    """A small real run (first customer renamed to a hostile id) with its report."""
    from gpuseg.errors import DeviceError
    from gpuseg.report.html import build_report
    from gpuseg.report.plots import PLOTS, make_plots

    out = copy_run(small_run, tmp_path_factory.mktemp("browser") / "out", HOSTILE_ID)
    try:
        plots = make_plots(out, {}, include=[p for p in PLOTS if p != "umap"])
    except DeviceError:  # no matplotlib: the lookup is what is tested here
        plots = {}
    build_report(out, {}, plots=plots)
    return out


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    mp.setenv("SE_OFFLINE", "true")
    options = Options()
    options.binary_location = str(CHROMIUM)
    profile = tmp_path_factory.mktemp("chromium-profile")
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--no-first-run", f"--user-data-dir={profile}", "--window-size=1400,1000"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()
        mp.undo()


def look_up(driver, customer_id: str):
    box = driver.find_element(By.ID, "lookup-id")
    box.clear()
    box.send_keys(customer_id)
    box.send_keys(Keys.ENTER)
    WebDriverWait(driver, 10).until(lambda d: d.find_element(By.ID, "lookup-result").text.strip())
    return driver.find_element(By.ID, "lookup-result")


def no_alert(driver) -> bool:
    try:
        driver.switch_to.alert
    except NoAlertPresentException:
        return True
    return False


def test_lookup_in_a_browser(report_dir, browser, tmp_path):
    seg = pd.read_parquet(report_dir / "segments.parquet")
    browser.get((report_dir / "report.html").resolve().as_uri())
    assert browser.title == "gpuseg segmentation report"
    assert no_alert(browser)

    row = seg.iloc[len(seg) // 2]
    look_up(browser, f"  {row['customer_id']} ")  # pasted with spaces
    assert browser.find_element(By.ID, "lookup-customer").text == str(row["customer_id"])
    assert browser.find_element(By.ID, "lookup-segment").text == str(int(row["segment"]))
    assert browser.find_element(By.ID, "lookup-name").text == row["segment_name"]
    assert abs(float(browser.find_element(By.ID, "lookup-confidence").text) - float(row["confidence"])) <= 6e-4
    assert browser.find_element(By.ID, "lookup-low").text == ("yes" if row["low_confidence"] else "no")
    assert "monetary" in browser.find_element(By.ID, "lookup-result").text

    browser.find_element(By.ID, "lookup-id").clear()
    browser.find_element(By.ID, "lookup-id").send_keys(HOSTILE_ID)
    browser.find_element(By.ID, "lookup-go").click()  # the button works as Enter does
    WebDriverWait(browser, 10).until(lambda d: d.find_element(By.ID, "lookup-customer").text == HOSTILE_ID)
    assert browser.find_element(By.ID, "lookup-name").text == seg.iloc[0]["segment_name"]
    assert no_alert(browser)

    result = look_up(browser, "no-such-customer-42")
    assert "not found" in result.text and "no-such-customer-42" in result.text
    assert no_alert(browser)

    look_up(browser, str(row["customer_id"]))
    browser.execute_script("document.getElementById('lookup').scrollIntoView()")
    shot = tmp_path / "report-lookup.png"
    assert browser.save_screenshot(str(shot))
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    target = os.environ.get("GPUSEG_SCREENSHOT_DIR")
    if target:
        Path(target).mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, Path(target) / shot.name)
        browser.execute_script("window.scrollTo(0, 0)")
        browser.save_screenshot(str(Path(target) / "report-top.png"))


def test_page_makes_no_network_requests(report_dir, browser):
    browser.get((report_dir / "report.html").resolve().as_uri())
    urls = browser.execute_script(
        "return performance.getEntriesByType('resource').map(function (e) { return e.name; })")
    assert [u for u in urls if not u.startswith("data:")] == []
    assert browser.execute_script("return document.images.length") > 0
    broken = browser.execute_script(
        "return Array.prototype.filter.call(document.images, function (i) { return !i.complete || !i.naturalWidth; })"
        ".length")
    assert broken == 0
