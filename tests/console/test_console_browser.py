"""The console in a real browser (headless Chromium, Selenium) against a real ``lmdeck serve``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import httpx
from openai import OpenAI
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select

from lmdeck.testing.browser import chart_points, sign_in, wait_for
from lmdeck.testing.servers import GatewayProcess


def test_sign_in_and_see_a_request_on_the_overview_chart(browser: Any, console_gateway: GatewayProcess) -> None:
    client = OpenAI(base_url=console_gateway.base_url, api_key=console_gateway.admin_key)
    client.chat.completions.create(model="demo", messages=[{"role": "user", "content": "What is 2+2?"}], max_tokens=8)
    sign_in(browser, console_gateway.url, console_gateway.admin_key)
    browser.get(f"{console_gateway.url}/console/overview")
    wait_for(browser, lambda d: chart_points(d, "chart-traffic") > 0)
    assert int(browser.find_element(By.ID, "kpi-requests").text) >= 1
    cookies = {c["name"]: c for c in browser.get_cookies()}
    session = cookies["lmdeck_console"]
    assert session["httpOnly"] and session["sameSite"] == "Strict" and session["path"] == "/console"
    assert console_gateway.admin_key not in str(cookies)
    assert browser.execute_script("return document.cookie").find("lmdeck_console") == -1


def test_filter_traces_and_open_one(browser: Any, console_gateway: GatewayProcess) -> None:
    client = OpenAI(base_url=console_gateway.base_url, api_key=console_gateway.admin_key)
    client.chat.completions.create(
        model="demo",
        messages=[{"role": "user", "content": "Name a colour."}],
        max_tokens=8,
        extra_body={"tags": ["console-filter"]},
        extra_headers={"x-request-id": "console-filter-1"},
    )
    console_gateway.trace("console-filter-1")
    sign_in(browser, console_gateway.url, console_gateway.admin_key)
    browser.get(f"{console_gateway.url}/console/traces")
    tag = wait_for(browser, lambda d: d.find_element(By.ID, "f-tag"))
    tag.send_keys("console-filter")
    browser.find_element(By.ID, "apply-filters").click()
    wait_for(browser, lambda d: "tag=console-filter" in d.current_url)
    links = wait_for(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#trace-table a.trace-link"))
    assert len(links) == 1
    links[0].click()
    body = wait_for(browser, lambda d: d.find_element(By.ID, "request-body"))
    assert "Name a colour." in body.text
    assert browser.find_element(By.ID, "trace-status").text == "200"


def test_create_a_key_and_call_the_api_with_it(browser: Any, console_gateway: GatewayProcess) -> None:
    sign_in(browser, console_gateway.url, console_gateway.admin_key)
    browser.get(f"{console_gateway.url}/console/keys")
    wait_for(browser, lambda d: d.find_element(By.ID, "k-name")).send_keys("made in the console")
    Select(browser.find_element(By.ID, "k-role")).select_by_value("developer")
    browser.find_element(By.ID, "create-key").click()
    secret = wait_for(browser, lambda d: d.find_element(By.ID, "new-key").text)
    rows = browser.find_elements(By.CSS_SELECTOR, "#key-table tbody tr")
    assert any("made in the console" in r.text and "developer" in r.text for r in rows)
    assert secret not in browser.find_element(By.ID, "key-table").text
    models = OpenAI(base_url=console_gateway.base_url, api_key=secret).models.list()
    assert any(m.id == "demo" for m in models.data)


def test_the_spend_chart_and_a_burn_down_draw_and_the_audit_chain_is_verified(
    browser: Any, console_gateway: GatewayProcess
) -> None:
    gw = console_gateway
    keys = httpx.get(f"{gw.url}/api/keys", headers=gw.headers(), timeout=60).json()["data"]
    admin = next(k["id"] for k in keys if k["role"] == "admin")
    budget = {"scope": "key", "subject_id": admin, "period": "day", "limit_usd": "100"}
    made = httpx.put(f"{gw.url}/api/budgets", json=budget, headers=gw.headers(), timeout=60)
    assert made.status_code == 200, made.text
    client = OpenAI(base_url=gw.base_url, api_key=gw.admin_key)
    client.chat.completions.create(
        model="demo",
        messages=[{"role": "user", "content": "Count to three."}],
        max_tokens=8,
        extra_headers={"x-request-id": "console-spend-1"},
    )
    gw.trace("console-spend-1")
    sign_in(browser, gw.url, gw.admin_key)
    browser.get(f"{gw.url}/console/spend?by=key&period=day")
    wait_for(browser, lambda d: chart_points(d, "chart-spend") > 0)
    wait_for(browser, lambda d: chart_points(d, f"chart-burn-{made.json()['id']}") > 0)
    browser.get(f"{gw.url}/console/audit")
    status = wait_for(browser, lambda d: d.find_element(By.ID, "chain-status"))
    assert "verified" in status.text
    assert browser.find_elements(By.CSS_SELECTOR, "#audit-table tr.audit-entry")


SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "console"


def test_screenshots_of_the_main_pages(browser: Any, console_gateway: GatewayProcess) -> None:
    """With LMDECK_WRITE_SCREENSHOTS=1, saves the overview, traces list and a trace's detail into docs/console/."""
    client = OpenAI(base_url=console_gateway.base_url, api_key=console_gateway.admin_key)
    for n, question in enumerate(("How many r are in strawberry?", "What is 12 + 30?", "Name a colour.")):
        client.chat.completions.create(
            model="demo",
            messages=[{"role": "user", "content": question}],
            max_tokens=16,
            extra_headers={"x-request-id": f"screenshot-{n}"},
        )
    console_gateway.trace("screenshot-2", timeout=300)
    sign_in(browser, console_gateway.url, console_gateway.admin_key)
    shots = {}
    browser.get(f"{console_gateway.url}/console/overview")
    wait_for(browser, lambda d: chart_points(d, "chart-traffic") > 0)
    shots["overview"] = browser.get_screenshot_as_png()
    browser.get(f"{console_gateway.url}/console/traces")
    link = wait_for(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#trace-table a.trace-link"))[0]
    shots["traces"] = browser.get_screenshot_as_png()
    link.click()
    wait_for(browser, lambda d: d.find_element(By.ID, "request-body"))
    shots["trace-detail"] = browser.get_screenshot_as_png()
    assert all(png.startswith(b"\x89PNG") for png in shots.values())
    if os.environ.get("LMDECK_WRITE_SCREENSHOTS") == "1":
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        for name, png in shots.items():
            (SCREENSHOTS / f"{name}.png").write_bytes(png)


def test_sign_out_returns_to_the_sign_in_page(browser: Any, console_gateway: GatewayProcess) -> None:
    sign_in(browser, console_gateway.url, console_gateway.admin_key)
    browser.find_element(By.ID, "sign-out").click()
    wait_for(browser, lambda d: d.current_url.endswith("/console/login"))
    browser.get(f"{console_gateway.url}/console/overview")
    wait_for(browser, lambda d: "/console/login" in d.current_url)
    assert httpx.get(f"{console_gateway.url}/console/overview", follow_redirects=False).status_code == 303
