"""A headless Chromium for the console's browser tests, driven by Selenium, and the helpers they share.

    # the fixtures are registered for every test by tests/conftest.py (pytest_plugins)
    def test_sign_in(browser: WebDriver, console_gateway: GatewayProcess) -> None:
        sign_in(browser, console_gateway.url, console_gateway.admin_key)
        wait_for(browser, lambda d: d.find_element(By.ID, "overview-panel"))

``browser`` is one Chromium per test module (a fresh profile in a temporary folder); it skips the
module when Debian's ``chromium`` and ``chromium-driver`` are not installed (``scripts/test-services.sh``
installs them). ``console_gateway`` is one real ``lmdeck serve`` per module, with the bundled demo
model (priced, and cached on route ``demo-cached``; see :data:`CONSOLE_CONFIG`). Selenium never downloads a driver: both binaries are named explicitly.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from lmdeck.testing.servers import GatewayProcess, gateway_process

T = TypeVar("T")

#: Flags for a quiet, reproducible headless Chromium that reaches nothing but loopback.
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1280,900",
)
#: Seconds a wait for something in the page gives up after (generous: the machine may be busy).
WAIT_S = 60.0


def chromium_binaries() -> tuple[str, str] | None:
    """(chromium, chromedriver) paths, or None when either is missing."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    driver = shutil.which("chromedriver")
    return (browser, driver) if browser and driver else None


def start_browser(profile_dir: Path) -> Any:
    """A headless Chromium with a fresh profile in ``profile_dir`` (a Selenium ``WebDriver``).

    Raises ``RuntimeError`` naming the fix when Chromium or its driver is not installed.
    """
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    found = chromium_binaries()
    if found is None:
        raise RuntimeError("no chromium or chromedriver: apt-get install -y chromium chromium-driver")
    binary, driver = found
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile_dir}")
    service = Service(executable_path=driver)
    browser = webdriver.Chrome(options=options, service=service)
    browser.set_page_load_timeout(WAIT_S)
    return browser


def wait_for(browser: Any, condition: Callable[[Any], T], timeout: float = WAIT_S) -> T:
    """Poll ``condition(browser)`` until it returns something truthy (and return that) or ``timeout``
    seconds pass (``TimeoutError`` naming the page). Exceptions count as "not yet"."""
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = condition(browser)
            if value:
                return value
        except Exception as exc:  # an element not there yet, a stale one after an htmx swap
            last = exc
        time.sleep(0.1)
    raise TimeoutError(f"waited {timeout}s on {browser.current_url}; last error: {last!r}")


def chart_points(browser: Any, chart_id: str) -> int:
    """How many non-empty points the uPlot chart ``chart_id`` drew in its first series (0 before it is drawn)."""
    return int(
        browser.execute_script(
            "const el = document.getElementById(arguments[0]);"
            "if (!el || !el._uplot || !el.querySelector('canvas')) return 0;"
            "return el._uplot.data[1].filter(v => v !== null && v > 0).length;",
            chart_id,
        )
    )


def sign_in(browser: Any, base_url: str, key: str) -> None:
    """Sign in to the console at ``base_url`` with ``key`` and wait for the page after sign-in."""
    from selenium.webdriver.common.by import By

    browser.get(f"{base_url}/console/login")
    wait_for(browser, lambda d: d.find_elements(By.ID, "api_key") or d.find_elements(By.ID, "sign-out"))
    if browser.find_elements(By.ID, "sign-out"):  # already signed in: the sign-in page sent us on
        browser.find_element(By.ID, "sign-out").click()
        wait_for(browser, lambda d: d.find_elements(By.ID, "api_key"))
    field = browser.find_element(By.ID, "api_key")
    field.clear()
    field.send_keys(key)
    browser.find_element(By.ID, "sign-in").click()
    wait_for(browser, lambda d: d.find_elements(By.ID, "sign-out"))


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One headless Chromium for the test module; the module is skipped without Chromium."""
    if chromium_binaries() is None:
        pytest.skip("browser tests need chromium and chromium-driver (scripts/test-services.sh installs them)")
    with tempfile.TemporaryDirectory(prefix="lmdeck-chromium-") as profile:
        driver = start_browser(Path(profile))
        try:
            yield driver
        finally:
            driver.quit()


#: The bundled demo model priced as a hosted model would be (US dollars per 1M tokens), so spend is not zero.
DEMO_PRICE = {"input": "2000", "output": "8000"}
#: The configuration of ``console_gateway``: the bundled demo model (priced at :data:`DEMO_PRICE`), the
#: route ``demo-cached`` to it with the response cache on, fast retries.
CONSOLE_CONFIG: dict[str, Any] = {
    "retry": {"backoff_base": 0.01, "backoff_max": 0.05, "max_retry_after": 2.0},
    "policy": {"pricing": {"local:demo": DEMO_PRICE}},
    "routes": [
        {
            "name": "demo-cached",
            "targets": [{"provider": "local", "model": "demo", "timeout": 120, "max_retries": 0}],
            "cache": {"enabled": True},
        }
    ],
}


@pytest.fixture(scope="module")
def console_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    """One real ``lmdeck serve`` (bundled demo model) for the test module."""
    with gateway_process(CONSOLE_CONFIG, data_dir=tmp_path_factory.mktemp("console-gateway"), timeout=180.0) as gw:
        yield gw
