"""The web console in a real browser (Debian's chromium, driven by Playwright): the
real collector as a subprocess, an unmodified agent (examples/worker.py) run with
the environment variables only against the fake provider, and what a person sees
and does: the session appearing without a reload, its timeline and cost, the
captured content on a click, and "Stop session" ending the agent."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fakes.fake_llm import FakeLLM
from fixtures.browser import log_in
from fixtures.collector import CollectorProcess

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("browser")]
TIMEOUT_MS = 30_000
# A model the price database knows, which the fake provider serves under its own name.
PRICED_MODEL = "gpt-4o-2024-08-06"


@pytest.fixture
def worker(collector: CollectorProcess, fake_llm: FakeLLM) -> Iterator[Any]:
    """Starts examples/worker.py (as a user would run it) on the first call."""
    started: list[subprocess.Popen[str]] = []

    def start(name: str, program: str = "worker.py", **env: str) -> subprocess.Popen[str]:
        environment = {k: v for k, v in os.environ.items() if not k.startswith("FLIGHTDECK_")}
        environment.update(collector.env(), FLIGHTDECK_AGENT_NAME=name, FLIGHTDECK_SPOOL="off",
                           OPENAI_BASE_URL=f"{fake_llm.url}/v1", OPENAI_API_KEY="sk-test", **env)
        process = subprocess.Popen([sys.executable, str(ROOT / "examples" / program),
                                    "100000", "0.1", PRICED_MODEL], env=environment, cwd=ROOT,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        started.append(process)
        return process

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
        process.communicate(timeout=30)


def test_a_person_watches_an_agent_live_opens_its_timeline_and_stops_it(
        browser: Any, collector: CollectorProcess, worker: Any) -> None:
    from playwright.sync_api import expect

    # given: the console open and logged in, before any agent ran
    page = browser.new_page()
    log_in(page, collector.url, collector.token)
    expect(page.locator("#sessions tbody")).to_contain_text("No sessions yet")
    page.evaluate("window.__not_reloaded = true")

    # when an unmodified agent starts with the environment variables only
    agent = worker("console-worker", FLIGHTDECK_CAPTURE_PROMPTS="true")

    # then its session appears without a reload, active, with its calls and cost
    row = page.locator("#sessions tbody tr", has_text="console-worker")
    expect(row).to_be_visible(timeout=TIMEOUT_MS)
    expect(row.locator(".badge")).to_have_text("active")
    assert page.evaluate("window.__not_reloaded") is True
    expect(row.locator("td.cost")).to_have_text(re.compile(r"^\$0\.\d+$"))

    # when the person opens it: the timeline shows each call
    row.get_by_role("link").click()
    calls = page.locator("#timeline tbody tr[data-type=post_call]")
    expect(calls.first).to_be_visible(timeout=TIMEOUT_MS)
    expect(calls.first).to_contain_text("openai")
    expect(calls.first).to_contain_text(PRICED_MODEL)
    expect(calls.first.locator("td").nth(7)).to_have_text(re.compile(r"^\$0\.\d+$"))
    expect(page.locator("#usage svg")).to_be_visible()

    # and the captured content opens on a click
    calls.first.get_by_role("button", name=re.compile("captured content")).click()
    dialog = page.locator("#dialog")
    expect(dialog).to_contain_text("Response")
    expect(dialog).to_contain_text("explain")  # the prompt the worker sent
    page.get_by_role("button", name="Close dialog").click()

    # when the person presses "Stop session"
    page.get_by_role("button", name="Stop session").click()

    # then the agent's next call raises DirectiveError and it exits
    _, stderr = agent.communicate(timeout=60)
    assert agent.returncode != 0
    assert "DirectiveError: Directive shutdown: stopped from the console" in stderr
    # and the page shows the session stopped and the directive acknowledged, live
    expect(page.locator("#session-facts .badge")).to_have_text("stopped", timeout=TIMEOUT_MS)
    expect(page.locator("#session-directives tbody tr").first.locator(".badge")).to_have_text(
        "acknowledged", timeout=TIMEOUT_MS)


def test_the_operator_dialog_runs_a_custom_directive_degrades_then_stops_the_agent(
        browser: Any, collector: CollectorProcess, worker: Any) -> None:
    from playwright.sync_api import expect

    # given: an unmodified worker that registered a custom directive, open in the console
    agent = worker("tunable-worker", program="tunable_worker.py")
    page = browser.new_page()
    log_in(page, collector.url, collector.token)
    page.locator("#sessions tbody tr", has_text="tunable-worker").get_by_role("link").click(
        timeout=TIMEOUT_MS)
    expect(page.locator("#timeline tbody tr[data-type=post_call]").first).to_be_visible(
        timeout=TIMEOUT_MS)
    page.get_by_role("button", name="Operator actions…").click()
    dialog = page.get_by_role("dialog")
    status = dialog.get_by_role("status")

    # when the operator runs set_temperature from its form, then degrades the agent
    dialog.get_by_label("value (float, required)").fill("0.25")
    dialog.get_by_role("button", name="Run set_temperature").click()
    expect(status).to_contain_text("Run set_temperature: 1 directive issued")
    dialog.get_by_label("Model to use").fill("gpt-4o-mini-2024-07-18")
    dialog.get_by_role("button", name="Degrade agent").click()
    expect(status).to_contain_text("Degrade agent: 1 directive issued")
    page.get_by_role("button", name="Close dialog").click()

    # then each directive's state and result show, and the calls go to the new model
    rows = page.locator("#session-directives tbody tr")
    custom = rows.filter(has_text="set_temperature")
    expect(custom.locator(".badge")).to_have_text("success", timeout=TIMEOUT_MS)
    expect(custom).to_contain_text('"temperature": 0.25')
    expect(rows.filter(has_text="degrade").locator(".badge")).to_have_text(
        re.compile("acknowledged|success"), timeout=TIMEOUT_MS)
    expect(page.locator("#timeline tbody tr[data-type=post_call]").last).to_contain_text(
        "gpt-4o-mini-2024-07-18", timeout=TIMEOUT_MS)

    # and "Stop agent" ends it
    page.get_by_role("button", name="Operator actions…").click()
    dialog.get_by_role("button", name="Stop agent").click()
    _, stderr = agent.communicate(timeout=60)
    assert "DirectiveError: Directive shutdown_flavor" in stderr


def test_the_token_in_the_url_fragment_logs_in_and_leaves_the_address_bar(
        browser: Any, collector: CollectorProcess) -> None:
    from playwright.sync_api import expect

    page = browser.new_page()
    page.goto(f"{collector.url}/#token={collector.token}")

    expect(page.locator("#sessions")).to_be_visible(timeout=TIMEOUT_MS)
    assert collector.token not in page.url
    cookies = browser.cookies()
    assert [(c["httpOnly"], c["sameSite"]) for c in cookies] == [(True, "Strict")]
    assert collector.token not in str(cookies)
    # the entry with the token was replaced, not kept in the history
    page.go_back()
    assert page.url == "about:blank"


def test_a_wrong_token_keeps_the_login_form_and_says_so(
        browser: Any, collector: CollectorProcess) -> None:
    from playwright.sync_api import expect

    page = browser.new_page()
    page.goto(f"{collector.url}/")
    page.get_by_label("Collector token").fill("not-the-token")
    page.get_by_role("button", name="Log in").click()

    expect(page.get_by_role("alert")).to_have_text("Wrong token.")
    expect(page.locator("#sessions")).to_have_count(0)


def test_the_views_work_from_the_keyboard(browser: Any, collector: CollectorProcess,
                                          worker: Any) -> None:
    from playwright.sync_api import expect

    worker("keyboard-worker")
    page = browser.new_page()
    log_in(page, collector.url, collector.token)
    row = page.locator("#sessions tbody tr", has_text="keyboard-worker")
    expect(row).to_be_visible(timeout=TIMEOUT_MS)

    # a live refresh of the table leaves the keyboard's focus where it was
    row.get_by_role("link").focus()
    calls = row.locator("td").nth(7).text_content()
    expect(row.locator("td").nth(7)).not_to_have_text(str(calls), timeout=TIMEOUT_MS)
    assert page.evaluate("document.activeElement.closest('tr').textContent").count(
        "keyboard-worker") == 2

    # Tab to the first sort button and sort by it with the keyboard
    page.locator("button[data-sort=session]").focus()
    page.keyboard.press("Tab")
    page.keyboard.press("Enter")
    expect(page.locator("th[aria-sort=ascending]")).to_have_text(re.compile("Agent"))
    # the session link opens with Enter; the operator dialog opens and closes with Escape
    page.locator("#sessions tbody a").first.focus()
    page.keyboard.press("Enter")
    page.get_by_role("button", name="Operator actions…").focus()
    page.keyboard.press("Enter")
    expect(page.get_by_role("dialog")).to_be_visible()
    expect(page.get_by_label("Model to use")).to_be_visible()
    page.keyboard.press("Escape")
    expect(page.get_by_role("dialog")).to_be_hidden()
    # every control has a label a screen reader can read
    unlabelled = page.evaluate("""() => [...document.querySelectorAll('input, select, button')]
        .filter((el) => !(el.labels && el.labels.length) && !el.getAttribute('aria-label')
                && !el.textContent.trim()).map((el) => el.outerHTML)""")
    assert unlabelled == []
    # and every text has WCAG AA contrast (4.5:1) on each view
    assert page.evaluate(LOW_CONTRAST) == []
    page.get_by_role("link", name="Fleet").click()
    expect(page.locator("#fleet-agents")).to_be_visible()
    assert page.evaluate(LOW_CONTRAST) == []
    page.get_by_role("link", name="Sessions").click()
    expect(page.locator("#sessions tbody tr").first).to_be_visible()
    assert page.evaluate(LOW_CONTRAST) == []


# The text elements whose colour on their background is below 4.5:1 (WCAG 2 AA); disabled
# controls and the charts' SVG are left out, as WCAG leaves them.
LOW_CONTRAST = """() => {
  const channel = (v) => {
    v /= 255;
    return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4;
  };
  const luminance = (css) => {
    const [r, g, b] = css.match(/[\\d.]+/g).slice(0, 3).map(Number).map(channel);
    return 0.2126 * r + 0.7152 * g + 0.0722 * b;
  };
  const background = (el) => {
    for (let e = el; e; e = e.parentElement) {
      const colour = getComputedStyle(e).backgroundColor;
      const parts = colour.match(/[\\d.]+/g);
      if (parts && (parts.length < 4 || Number(parts[3]) > 0.5)) return colour;
    }
    return 'rgb(255, 255, 255)';
  };
  const low = [];
  for (const el of document.querySelectorAll('body *')) {
    if (el.closest('svg, [hidden], dialog:not([open]), :disabled, .skip')) continue;
    if (![...el.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim())) continue;
    const a = luminance(getComputedStyle(el).color);
    const b = luminance(background(el));
    const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
    const text = el.textContent.trim().slice(0, 30);
    if (ratio < 4.5) low.push(`${el.tagName} "${text}" ${ratio.toFixed(2)}`);
  }
  return low;
}"""
