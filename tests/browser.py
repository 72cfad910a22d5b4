"""A real headless browser for tests of the HTML pages: Debian's chromium and chromedriver
driven with selenium (the driver's path given explicitly, so selenium-manager never runs
and nothing is downloaded). Tests that need it skip with the reason when it is absent."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
#: Screenshots are copied here too, for people to look at after a run.
SCREENS = Path("/tmp/tilefleet-screens")


def _missing() -> str | None:
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (the test extra)"
    for path in (CHROMIUM, CHROMEDRIVER):
        if not path.exists():
            return (
                f"{path} not found: apt-get install -y --no-install-recommends "
                "chromium chromium-driver"
            )
    return None


@pytest.fixture
def browser(tmp_path):
    """A headless Chromium session (1400x1000); ``browser.shot(name)`` saves a screenshot
    into the test's tmp dir and /tmp/tilefleet-screens/."""
    reason = _missing()
    if reason:
        pytest.skip(reason)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--window-size=1400,1000",
        "--user-data-dir=" + str(tmp_path / "chromium-profile"),
    ):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)

    def shot(name: str, full: bool = True) -> Path:
        """The page (all of it with ``full``, else the window) as a PNG."""
        path = tmp_path / f"{name}.png"
        size = driver.get_window_size()
        if full:
            height = driver.execute_script("return document.documentElement.scrollHeight")
            driver.set_window_size(size["width"], min(int(height) + 120, 8000))
        driver.save_screenshot(str(path))
        if full:
            driver.set_window_size(size["width"], size["height"])
        SCREENS.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, SCREENS / path.name)
        return path

    driver.shot = shot
    try:
        yield driver
    finally:
        driver.quit()
