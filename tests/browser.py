"""Headless Chromium helpers shared by the browser tests (Debian's chromium + chromium-driver).

Tests that use them carry ``requires_chromium`` so they are skipped, saying why, on a machine
without the browser. Chromium gets the flags that keep it off this machine's closed network.
"""
from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest

CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--no-first-run")

requires_chromium = pytest.mark.skipif(
    not (CHROMIUM.exists() and CHROMEDRIVER.exists()),
    reason="needs /usr/bin/chromium and /usr/bin/chromedriver (apt-get install chromium chromium-driver)")


def new_driver(profile_dir: Path, size: str = "1400,1300"):
    """A headless Chromium WebDriver with a fresh profile in ``profile_dir``."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (*FLAGS, f"--window-size={size}", f"--user-data-dir={profile_dir}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(str(CHROMEDRIVER)))
    driver.set_page_load_timeout(60)
    return driver


def value(driver, css: str) -> str:
    """The ``value`` of the first element matching ``css`` ('' if none)."""
    return driver.execute_script(f"const e = document.querySelector({css!r}); return e ? e.value : '';") or ""


def wait_for(driver, condition, timeout: float = 120):
    """Poll ``condition(driver)`` until truthy; returns its value. Errors while the page re-renders count as 'not yet'."""
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout, poll_frequency=0.3,
                         ignored_exceptions=(WebDriverException,)).until(lambda d: condition(d))


def element(driver, css: str, timeout: float = 60):
    """The first element matching ``css``, waiting for it to be rendered."""
    from selenium.webdriver.common.by import By

    return wait_for(driver, lambda d: next(iter(d.find_elements(By.CSS_SELECTOR, css)), None), timeout)


def click(driver, css: str) -> None:
    target = element(driver, css)
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", target)
    target.click()


def open_tab(driver, name: str, url: str | None = None) -> None:
    """Load ``url`` (if given) and click the tab labelled ``name``."""
    from selenium.webdriver.common.by import By

    if url:
        driver.get(url)
    wait_for(driver, lambda d: next(iter(d.find_elements(
        By.XPATH, f"//button[@role='tab' and normalize-space(.)='{name}']")), None), timeout=60).click()


def set_number(driver, css: str, number) -> None:
    """Replace the content of the input matching ``css`` and leave it (Tab) so Gradio sees the change."""
    from selenium.webdriver.common.keys import Keys

    box = element(driver, css)
    box.send_keys(Keys.CONTROL, "a")
    box.send_keys(str(number), Keys.TAB)


def open_tab_with_numbers(driver, url: str, tab: str, numbers: dict[str, object]) -> None:
    """Load ``url``, open the tab labelled ``tab`` and type each number into the number input of the
    component whose elem_id is its key (e.g. ``{"lab-n": 4}``), leaving each field so Gradio sees it."""
    open_tab(driver, tab, url)
    for elem_id, number in numbers.items():
        set_number(driver, f"#{elem_id} input[type=number]", number)
    time.sleep(0.5)  # let Gradio send the last change before the test clicks a button


def save_screenshot(driver, folder: Path, name: str) -> Path:
    """A full-page screenshot in ``folder``, also copied to ``$STUDIO_SCREENSHOT_DIR`` when set."""
    height = driver.execute_script("return document.body.scrollHeight")
    driver.set_window_size(1400, min(max(height, 900), 2400))
    driver.execute_script("window.scrollTo(0, 0);")
    path = folder / name
    assert driver.save_screenshot(str(path)) and path.stat().st_size > 10_000
    if os.environ.get("STUDIO_SCREENSHOT_DIR"):
        target = Path(os.environ["STUDIO_SCREENSHOT_DIR"])
        target.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, target / name)
    return path
