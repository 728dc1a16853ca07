"""Make docs/report.png, the README's picture of the report: a default run on the built-in
data, then the report's first screen in headless Chromium (Debian's ``chromium`` and
``chromium-driver``, through selenium).

    python docs/screenshot.py
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))


def main() -> int:
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    from gpuseg.cli import main as gpuseg

    os.environ["SE_OFFLINE"] = "true"
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out"
        if gpuseg(["run", "--out", str(out), "-q"]) != 0:
            return 1
        options = Options()
        options.binary_location = "/usr/bin/chromium"
        for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    f"--user-data-dir={Path(tmp) / 'profile'}", "--window-size=1280,1500", "--hide-scrollbars"):
            options.add_argument(arg)
        driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
        try:
            driver.get((out / "report.html").as_uri())
            driver.execute_script("document.getElementById('segments').scrollIntoView()")
            driver.save_screenshot(str(HERE / "report.png"))
        finally:
            driver.quit()
    print(HERE / "report.png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
