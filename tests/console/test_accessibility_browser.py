"""Accessibility of every console page in a real browser: axe-core (npm ``axe-core``, vendored in
``tests/data/axe-core/``) checks labels, names, contrast, landmarks and ARIA against WCAG 2 A and AA rules in
the light and the dark theme, and the keyboard reaches the skip link first with a visible focus ring."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from openai import OpenAI
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

from lmdeck.testing.browser import sign_in, wait_for
from lmdeck.testing.servers import GatewayProcess

AXE = Path(__file__).resolve().parents[1] / "data" / "axe-core" / "axe.min.js"
#: The rule sets checked: WCAG 2.0 and 2.1, levels A and AA (axe-core's tags).
WCAG_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]


def axe_violations(browser: Any) -> list[str]:
    """Run axe-core on the current page; one line per violation: rule, impact and the first offending nodes."""
    if not browser.execute_script("return typeof window.axe !== 'undefined'"):
        browser.execute_script(AXE.read_text(encoding="utf-8"))
    result = browser.execute_async_script(
        "const [tags, done] = arguments;"
        "axe.run(document, {runOnly: {type: 'tag', values: tags}, resultTypes: ['violations']})"
        ".then(r => done(r.violations.map(v => ({id: v.id, impact: v.impact,"
        " nodes: v.nodes.slice(0, 3).map(n => n.target.join(' '))}))))"
        ".catch(e => done([{id: 'axe-error', impact: 'critical', nodes: [String(e)]}]));",
        WCAG_TAGS,
    )
    return [f"{v['id']} ({v['impact']}): {', '.join(v['nodes'])}" for v in result]


def settled(browser: Any) -> bool:
    """The page has loaded and no htmx request is in flight or still waiting on its ``load`` trigger."""
    return bool(
        browser.execute_script(
            "return document.readyState === 'complete' && !document.querySelector('.htmx-request')"
            " && !Array.from(document.querySelectorAll('[hx-trigger~=\"load\"]'))"
            ".some(el => /Loading/.test(el.textContent));"
        )
    )


#: A prompt whose page and playground are checked too (one variable of each input kind).
A11Y_PROMPT = {
    "text": "{{ who }} {{ n }} {{ loud }} {{ tags }}",
    "variables": {
        "who": {"type": "string", "description": "who to greet"},
        "n": "integer",
        "loud": "boolean",
        "tags": "list",
    },
}


def console_paths(browser: Any, gw: GatewayProcess) -> list[str]:
    """Every page in the admin's navigation, the detail page of the newest trace, and a prompt's page and
    playground."""
    browser.get(f"{gw.url}/console/traces")
    link = wait_for(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#trace-table a.trace-link"))[0]
    detail = link.get_attribute("href")
    nav = [a.get_attribute("href") for a in browser.find_elements(By.CSS_SELECTOR, "nav a")]
    prompt = f"{gw.url}/console/registry/prompts/a11y-greet"
    return [*nav, detail, prompt, f"{prompt}/playground"]


@pytest.fixture(scope="module")
def signed_in(browser: Any, console_gateway: GatewayProcess) -> list[str]:
    gw = console_gateway
    client = OpenAI(base_url=gw.base_url, api_key=gw.admin_key)
    client.chat.completions.create(
        model="demo",
        messages=[{"role": "user", "content": "Count the r in strawberry."}],
        max_tokens=8,
        extra_headers={"x-request-id": "a11y-1"},
    )
    gw.trace("a11y-1", timeout=300)
    if httpx.get(f"{gw.url}/api/registry/prompts/a11y-greet", headers=gw.headers(), timeout=60).status_code == 404:
        made = httpx.post(
            f"{gw.url}/api/registry/prompts/a11y-greet/versions", json=A11Y_PROMPT, headers=gw.headers(), timeout=60
        )
        assert made.status_code == 201, made.text
    sign_in(browser, gw.url, gw.admin_key)
    return console_paths(browser, gw)


def set_theme(browser: Any, theme: str) -> None:
    browser.execute_script("localStorage.setItem('lmdeck-theme', arguments[0]);", theme)


@pytest.mark.parametrize("theme", ["light", "dark"])
def test_every_page_passes_axe_core_in_both_themes(
    browser: Any, console_gateway: GatewayProcess, signed_in: list[str], theme: str
) -> None:
    assert len(signed_in) >= 8, signed_in
    sign_in(browser, console_gateway.url, console_gateway.admin_key)
    set_theme(browser, theme)
    problems: dict[str, list[str]] = {}
    for url in signed_in:
        browser.get(url)
        wait_for(browser, settled)
        assert browser.execute_script("return document.documentElement.dataset.theme") == theme
        found = axe_violations(browser)
        if found:
            problems[url] = found
    assert problems == {}


def test_axe_core_finds_an_unlabelled_input_and_low_contrast_text(
    browser: Any, console_gateway: GatewayProcess, signed_in: list[str]
) -> None:
    sign_in(browser, console_gateway.url, console_gateway.admin_key)
    browser.get(signed_in[0])
    wait_for(browser, settled)
    browser.execute_script(
        "const main = document.getElementById('main');"
        'main.insertAdjacentHTML(\'beforeend\', \'<input type="text" id="unlabelled">'
        '<p style="color:#bbb;background:#fff">faint</p>\');'
    )
    found = " ".join(axe_violations(browser))
    assert "label (critical): #unlabelled" in found and "color-contrast" in found


def test_the_sign_in_page_passes_axe_core(browser: Any, console_gateway: GatewayProcess) -> None:
    browser.delete_all_cookies()
    browser.get(f"{console_gateway.url}/console/login")
    wait_for(browser, lambda d: d.find_element(By.ID, "api_key"))
    assert axe_violations(browser) == []


def test_the_keyboard_reaches_the_skip_link_first_and_focus_is_visible(
    browser: Any, console_gateway: GatewayProcess, signed_in: list[str]
) -> None:
    sign_in(browser, console_gateway.url, console_gateway.admin_key)
    browser.get(signed_in[0])
    wait_for(browser, settled)
    ActionChains(browser).send_keys(Keys.TAB).perform()
    focused = browser.switch_to.active_element
    assert focused.get_attribute("class") == "skip" and focused.get_attribute("href").endswith("#main")
    assert focused.value_of_css_property("outline-style") != "none"
    for _ in range(3):  # the next stops are the brand and the navigation, each with a focus ring
        ActionChains(browser).send_keys(Keys.TAB).perform()
        now = browser.switch_to.active_element
        assert now.tag_name in ("a", "button", "select", "input")
        assert now.value_of_css_property("outline-style") != "none"


def sideways(browser: Any) -> list[str]:
    """What makes the page wider than the window: each element that ends past its right edge while its parent
    does not (tag, id, class and right edge in CSS pixels); empty when the page does not scroll sideways."""
    return list(
        browser.execute_script(
            "if (document.documentElement.scrollWidth <= window.innerWidth) return [];"
            "const past = e => e.getBoundingClientRect().right > window.innerWidth + 1;"
            "return Array.from(document.querySelectorAll('body *')).filter(e => past(e) && !past(e.parentElement))"
            ".map(e => `${e.tagName}#${e.id}.${e.className} ${Math.round(e.getBoundingClientRect().right)}px`)"
            ".concat([`page ${document.documentElement.scrollWidth}px`]);"
        )
    )


def test_every_page_fits_a_narrow_screen(browser: Any, console_gateway: GatewayProcess, signed_in: list[str]) -> None:
    """At 400 CSS pixels no page scrolls sideways: wide tables and code scroll inside their own card."""
    sign_in(browser, console_gateway.url, console_gateway.admin_key)
    browser.set_window_size(400, 900)
    try:
        assert browser.execute_script("return window.innerWidth") <= 400
        wide = {}
        for url in signed_in:
            browser.get(url)
            wait_for(browser, settled)
            if found := sideways(browser):
                wide[url] = found
        assert wide == {}
    finally:
        browser.set_window_size(1280, 900)
