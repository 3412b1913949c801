"""The registry, evaluation and release pages in a real browser (headless Chromium, Selenium) against a
real ``lmdeck serve`` with the bundled demo model: a label move and its history, a prompt diff, an eval
comparison, a release page whose chart draws the analysis, and a viewer without edit buttons whose
forged posts are refused."""

from __future__ import annotations

import time
from typing import Any

import httpx
from openai import OpenAI
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select

from lmdeck.testing.browser import sign_in, wait_for
from lmdeck.testing.servers import GatewayProcess

PROMPT_V1 = {"text": "Say hello to {{ name }}.\nBe brief.", "variables": {"name": "string"}}
PROMPT_V2 = {"text": "Say hello to {{ name }}.\nBe warm.", "variables": {"name": "string"}}


def api(gw: GatewayProcess, method: str, path: str, key: str | None = None, **kwargs: Any) -> httpx.Response:
    return httpx.request(method, f"{gw.url}{path}", headers=gw.headers(key), timeout=120, **kwargs)


def ensure_prompt(gw: GatewayProcess) -> None:
    if api(gw, "GET", "/api/registry/prompts/greet").status_code == 200:
        return
    for spec in (PROMPT_V1, PROMPT_V2):
        assert api(gw, "POST", "/api/registry/prompts/greet/versions", json=spec).status_code == 201


def test_move_a_prompt_label_see_its_history_and_view_a_diff(browser: Any, console_gateway: GatewayProcess) -> None:
    gw = console_gateway
    ensure_prompt(gw)
    sign_in(browser, gw.url, gw.admin_key)
    browser.get(f"{gw.url}/console/registry/prompts/greet")
    form = wait_for(browser, lambda d: d.find_element(By.ID, "move-form"))
    form.find_element(By.ID, "move-pointer").send_keys("production")
    Select(form.find_element(By.ID, "move-version")).select_by_value("2")
    form.find_element(By.ID, "move-reason").send_keys("warmer greeting")
    form.find_element(By.ID, "move-submit").click()
    row = wait_for(browser, lambda d: d.find_element(By.CSS_SELECTOR, "#history tr.history-row"))
    assert "production" in row.text and "v2" in row.text and "warmer greeting" in row.text
    assert api(gw, "GET", "/api/registry/prompts/greet/resolve").json()["version"] == 2

    Select(browser.find_element(By.ID, "diff-from")).select_by_value("1")
    Select(browser.find_element(By.ID, "diff-to")).select_by_value("2")
    browser.find_element(By.ID, "diff-submit").click()
    changed = wait_for(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#prompt-diff tr.diff-replace"))
    assert "Be brief." in changed[0].text and "Be warm." in changed[0].text


def run_to_end(gw: GatewayProcess, **body: Any) -> str:
    started = api(gw, "POST", "/api/evaluation/runs", json=body)
    assert started.status_code == 202, started.text
    run_id: str = started.json()["id"]
    deadline = time.monotonic() + 300
    while (run := api(gw, "GET", f"/api/evaluation/runs/{run_id}").json())["status"] == "running":
        assert time.monotonic() < deadline, f"eval run {run_id} still running: {run}"
        time.sleep(0.2)
    assert run["status"] == "succeeded", run
    return run_id


def test_open_an_eval_comparison(browser: Any, console_gateway: GatewayProcess) -> None:
    gw = console_gateway
    ensure_prompt(gw)
    rows = [{"input": {"name": n}, "expected": "hello"} for n in ("Ada", "Bo", "Cy")]
    assert api(gw, "POST", "/api/registry/datasets/names/versions", json={"rows": rows}).status_code in (200, 201)
    common = {"dataset": "names@1", "route": "demo", "evaluators": ["exact", "contains"], "max_tokens": 4}
    a = run_to_end(gw, prompt="greet@1", **common)
    b = run_to_end(gw, prompt="greet@2", **common)
    sign_in(browser, gw.url, gw.admin_key)
    browser.get(f"{gw.url}/console/evaluation/compare?a={a}&b={b}")
    row = wait_for(browser, lambda d: d.find_element(By.CSS_SELECTOR, '#compare-evaluators tr[data-evaluator="exact"]'))
    assert row.text.startswith("exact")
    assert browser.find_element(By.ID, "changed-rows").is_displayed()


def chart_points(browser: Any) -> int:
    """Points the first release-metric chart drew in its baseline series (0 until uPlot has drawn)."""
    return int(
        browser.execute_script(
            "const el = document.querySelector('[data-chart=\"release-metric\"]');"
            "if (!el || !el._uplot || !el.querySelector('canvas')) return 0;"
            "return el._uplot.data[1].filter(v => v !== null && v !== undefined).length;"
        )
    )


def test_a_release_page_draws_its_analysis(browser: Any, console_gateway: GatewayProcess) -> None:
    gw = console_gateway
    spec = {
        "name": "warmer",
        "route": "demo",
        "candidate": {"params": {"temperature": 0.7}},
        "strategy": {"steps": [50, 100], "interval_s": 0.001, "min_samples": 2},
        "metrics": [{"name": "error_rate", "tolerance": 0.5}],
    }
    assert api(gw, "POST", "/api/releases", json=spec).status_code == 201
    assert api(gw, "POST", "/api/releases/warmer/start").status_code == 200
    client = OpenAI(base_url=gw.base_url, api_key=gw.admin_key)
    for user in range(10):
        client.chat.completions.create(
            model="demo", user=f"u{user}", messages=[{"role": "user", "content": "Hi"}], max_tokens=2
        )
    deadline = time.monotonic() + 120
    while True:  # the trace of each request is written behind it: analyse until both variants count
        decided = api(gw, "POST", "/api/releases/analyze", json={}).json()["data"]
        if decided and decided[0]["decision"] != "wait":
            break
        assert time.monotonic() < deadline, f"the release was never analysed: {decided}"
        time.sleep(0.2)
    sign_in(browser, gw.url, gw.admin_key)
    browser.get(f"{gw.url}/console/releases/warmer")
    wait_for(browser, lambda d: chart_points(d) >= 1)
    assert browser.find_element(By.ID, "release-state").text in ("canary", "promoted", "rolled_back")
    assert browser.find_elements(By.CSS_SELECTOR, '#release-metrics tr[data-metric="error_rate"]')


def forged_post(browser: Any, path: str, token: str | None) -> int:
    """POST ``path`` from the page with the session cookie (and ``token`` as the form's CSRF field)."""
    return int(
        browser.execute_async_script(
            "const [path, token, done] = arguments;"
            "const body = new URLSearchParams({pointer: 'production', version: '1'});"
            "if (token) body.set('csrf_token', token);"
            "fetch(path, {method: 'POST', body, redirect: 'manual'}).then(r => done(r.status));",
            path,
            token,
        )
    )


def test_a_viewer_sees_no_edit_buttons_and_a_forged_post_is_refused(
    browser: Any, console_gateway: GatewayProcess
) -> None:
    gw = console_gateway
    ensure_prompt(gw)
    viewer = api(gw, "POST", "/api/keys", json={"name": "console viewer", "role": "viewer"}).json()["key"]
    sign_in(browser, gw.url, viewer)
    browser.get(f"{gw.url}/console/registry/prompts/greet")
    wait_for(browser, lambda d: d.find_element(By.ID, "history"))
    assert not browser.find_elements(By.ID, "move-form")
    browser.get(f"{gw.url}/console/routes")
    wait_for(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "[data-route]"))
    assert not browser.find_elements(By.CSS_SELECTOR, ".weights-form, .save-weights")
    token = browser.find_element(By.CSS_SELECTOR, 'meta[name="csrf-token"]').get_attribute("content")
    before = api(gw, "GET", "/api/registry/prompts/greet/history").json()["data"]
    assert forged_post(browser, "/console/registry/prompts/greet/move", token) == 403  # a viewer's own token
    assert forged_post(browser, "/console/registry/prompts/greet/move", None) == 403  # no token at all
    assert api(gw, "GET", "/api/registry/prompts/greet/history").json()["data"] == before


def test_an_experiment_chart_names_its_variants_on_the_x_axis(browser: Any, console_gateway: GatewayProcess) -> None:
    gw = console_gateway
    spec = {
        "name": "cooler",
        "route": "demo",
        "variants": [{"name": "control", "weight": 1}, {"name": "cool", "weight": 1, "route": "demo-cached"}],
    }
    made = api(gw, "POST", "/api/experiments", json=spec)
    assert made.status_code == 201, made.text
    client = OpenAI(base_url=gw.base_url, api_key=gw.admin_key)
    for user in range(4):
        client.chat.completions.create(
            model="demo", user=f"x{user}", messages=[{"role": "user", "content": "Hi"}], max_tokens=2
        )
    sign_in(browser, gw.url, gw.admin_key)
    browser.get(f"{gw.url}/console/evaluation/experiments/cooler")
    axis = wait_for(
        browser,
        lambda d: d.execute_script(
            "const el = document.querySelector('[data-chart=\"variants\"]');"
            "if (!el || !el._uplot) return null;"
            "return el._uplot.axes[0]._values;"
        ),
    )
    assert [v for v in axis if v] == ["control", "cool"], axis
