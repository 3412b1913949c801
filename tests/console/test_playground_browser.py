"""The prompt playground in a real browser (headless Chromium, Selenium) against a real ``lmdeck serve``
started as a new user starts it: no admin key set, so it prints one at first start. The bundled demo
model answers, so nothing leaves the machine."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select

from lmdeck.testing.browser import CONSOLE_CONFIG, chart_points, sign_in, wait_for
from lmdeck.testing.servers import GatewayProcess, gateway_process

PROMPT = "welcome"
V1 = {"text": "Say hello to {{ name }}.", "variables": {"name": "string"}}
V2 = {"text": "Say hello to {{ name }}, warmly.", "variables": {"name": "string"}, "route": "demo"}


@pytest.fixture(scope="module")
def first_start(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    """``lmdeck serve`` on an empty data dir with no admin key set: ``admin_key`` is the one it printed."""
    data_dir = tmp_path_factory.mktemp("first-start")
    with gateway_process(CONSOLE_CONFIG, data_dir=data_dir, admin_key=None, timeout=180.0) as gw:
        for spec in (V1, V2):
            made = httpx.post(
                f"{gw.url}/api/registry/prompts/{PROMPT}/versions", json=spec, headers=gw.headers(), timeout=60
            )
            assert made.status_code == 201, made.text
        yield gw


def run_in_playground(browser: Any, gw: GatewayProcess, name: str) -> tuple[str, str]:
    """From the prompt's page: open the playground on v1, fill ``name``, preview, run on ``demo``;
    the answer and the trace link's address."""
    browser.get(f"{gw.url}/console/registry/prompts/{PROMPT}")
    Select(wait_for(browser, lambda d: d.find_element(By.ID, "playground-version"))).select_by_value("1")
    browser.find_element(By.ID, "playground-open").click()
    field = wait_for(browser, lambda d: d.find_element(By.CSS_SELECTOR, '[data-variable="name"]'))
    assert browser.find_element(By.CSS_SELECTOR, 'input[name="version"]').get_attribute("value") == "1"
    field.send_keys(name)
    browser.find_element(By.ID, "playground-preview").click()
    preview = wait_for(browser, lambda d: d.find_element(By.ID, "preview-messages"))
    assert f"Say hello to {name}." in preview.text
    Select(browser.find_element(By.ID, "pg-route")).select_by_value("demo")
    browser.find_element(By.ID, "pg-max-tokens").send_keys("12")
    browser.find_element(By.ID, "playground-submit").click()
    answer = wait_for(browser, lambda d: d.find_element(By.ID, "playground-answer").text.strip())
    link = browser.find_element(By.ID, "playground-trace").get_attribute("href")
    assert link and "/console/traces/" in link
    assert browser.find_element(By.ID, "playground-tokens").text.split(" / ")[1] != "0"
    return answer, link


def open_trace(browser: Any, href: str) -> Any:
    """The trace page's request body once the trace is stored (traces land asynchronously: reloaded until then)."""

    def loaded(d: Any) -> Any:
        found = d.find_elements(By.ID, "request-body")
        if not found:
            d.get(href)
        return found[0] if found else None

    return wait_for(browser, loaded)


def test_a_new_user_runs_a_prompt_and_sees_it_in_traces_and_on_the_overview(
    browser: Any, first_start: GatewayProcess
) -> None:
    """The acceptance: sign in with the printed admin key, send a request from the playground, see it
    in the traces list and as a point on the overview's traffic chart."""
    gw = first_start
    sign_in(browser, gw.url, gw.admin_key)
    _, href = run_in_playground(browser, gw, "Ada")
    trace_id = href.rsplit("/", 1)[1]

    def listed(d: Any) -> bool:
        d.get(f"{gw.url}/console/traces")
        links = d.find_elements(By.CSS_SELECTOR, "#trace-table a.trace-link")
        return any((a.get_attribute("href") or "").endswith(trace_id) for a in links)

    wait_for(browser, listed)
    browser.get(f"{gw.url}/console/overview")
    wait_for(browser, lambda d: chart_points(d, "chart-traffic") > 0)
    assert int(browser.find_element(By.ID, "kpi-requests").text) >= 1


def test_run_a_prompt_version_and_open_its_trace(browser: Any, first_start: GatewayProcess) -> None:
    gw = first_start
    sign_in(browser, gw.url, gw.admin_key)
    answer, href = run_in_playground(browser, gw, "Grace")
    browser.find_element(By.ID, "playground-trace").click()
    body = open_trace(browser, href)
    assert "Say hello to Grace." in body.text
    assert browser.find_element(By.ID, "trace-status").text == "200"
    prompt_row = browser.find_element(By.XPATH, "//th[text()='Prompt']/following-sibling::td")
    assert prompt_row.text == f"{PROMPT} v1"
    # The stored response is shown as JSON: the answer appears as its JSON string does.
    assert json.dumps(answer)[1:-1] in browser.find_element(By.ID, "response-body").text


def test_bad_input_shows_its_4xx_message_in_place_of_the_answer(browser: Any, first_start: GatewayProcess) -> None:
    gw = first_start
    sign_in(browser, gw.url, gw.admin_key)
    browser.get(f"{gw.url}/console/registry/prompts/{PROMPT}/playground?version=1")
    wait_for(browser, lambda d: d.find_element(By.CSS_SELECTOR, '[data-variable="name"]')).send_keys("Ada")
    browser.find_element(By.ID, "pg-max-tokens").send_keys("lots")
    browser.find_element(By.ID, "playground-submit").click()
    error = wait_for(browser, lambda d: d.find_element(By.ID, "run-error"))
    assert "max_tokens" in error.text
    browser.find_element(By.CSS_SELECTOR, '[data-variable="name"]').clear()
    browser.find_element(By.ID, "playground-preview").click()
    missing = wait_for(browser, lambda d: d.find_element(By.ID, "preview-error"))
    assert "missing variable: name" in missing.text
