"""The deck in a real browser: served on 127.0.0.1 by Streamlit, opened in Debian's headless chromium
through selenium. The voting matrix and the book render, a draft containing `<script>` shows as text
and never runs, the lineage labels and the telemetry headers are readable (a minimum on-screen font size,
human column names), and every view leaves a screenshot under docs/screenshots/ (shown in the README)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from deck import queries
from deck.domains import registered_family
from deck.launcher import deck_command
from dream_pipeline.defs.epoch.partitions import epoch_key
from dream_pipeline.domains import load_domain
from tests.code_repair_epochs import HOSTILE_LINE, write_code_repair_epochs

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
SCREENSHOTS = Path(__file__).resolve().parents[1] / "docs" / "screenshots"
PLANTED = "A line of prose, then <script>window.__pwned = 1; document.title = 'pwned'</script> and **no bold**."
# quiet logs, and no PHASE gate: the tests must not depend on the time of day they run at
RUN_CONFIG = {"loggers": {"console": {"config": {"log_level": "ERROR"}}},
              "ops": {"roster_drafts_and_votes": {"config": {"phase_gate": False}}}}
VIEWS = {  # view → its heading and the element that shows it has rendered
    "matrix": ("The voting matrix, live", '[data-testid="stVegaLiteChart"]'),
    "chopping-block": ("On the chopping block", '[data-testid="stVegaLiteChart"]'),
    "ratings": ("Ratings over time", '[data-testid="stVegaLiteChart"]'),
    "book": ("The book", '[data-testid="stText"]'),
    "lineage": ("Lineage", '[data-testid="stGraphVizChart"] svg'),
    "telemetry": ("Telemetry", '[data-testid="stVegaLiteChart"]'),
    "similar": ("Similar drafts", '[data-testid="stDataFrame"]'),
    "glossary": ("Glossary", '[data-testid="stMarkdown"]'),
}
CODE_REPAIR_VIEWS = {  # CodeRepair's own views, as VIEWS above
    "repair-task": ("The task and its fixes", '[data-testid="stCode"]'),
    "calibration": ("How good is the jury?", '[data-testid="stVegaLiteChart"]'),
}
CODE_REPAIR_SCREENSHOTS = ["code-repair", "calibration"]
MIN_LABEL_PX = 11.0  # the smallest text a reader can read on the deck without zooming


def _require_browser() -> None:
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not shutil.which(p)]
    if missing:
        message = f"{', '.join(missing)} missing: apt-get install chromium chromium-driver (.ci/run does)"
        if os.environ.get("CI"):
            pytest.fail(message)  # CI installs them; never skip the browser test there
        pytest.skip(message)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def served_deck(fabric, database_url: str, run_epoch, tmp_path: Path) -> Iterator[str]:
    """Three real epochs, a `<script>` planted in the last chapter and its draft, the deck on localhost."""
    _require_browser()
    for number in (1, 2, 3):
        assert run_epoch(number, run_config=RUN_CONFIG).success
    last = fabric.epoch(epoch_key("space_time", 3))
    with fabric.connection() as conn:
        conn.execute("UPDATE chapters SET text = %s WHERE epoch_id = %s", (PLANTED, last.epoch_id))
        conn.execute("UPDATE drafts SET text = %s WHERE epoch_id = %s AND agent_id = %s",
                     (PLANTED, last.epoch_id, last.winner_agent_id))
    with _serve(database_url, tmp_path) as base:
        yield base


@pytest.fixture
def served_code_repair_deck(fabric, database_url: str, run_epoch, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """Two committed CodeRepair epochs beside a book without epochs, a `<script>` line planted in a losing fix
    of epoch 1, the deck on localhost; yields its address and the planted fix's author.

    The epochs are the loop's own (through Dagster, the offline engine and the sandbox) once the CodeRepair
    domain is registered, else the literal ones of tests/code_repair_epochs.py."""
    _require_browser()
    fabric.ensure_book(load_domain("space_time"))
    if registered_family("code_repair") == "code_repair":
        for number in (1, 2):
            assert run_epoch(number, book="code_repair", run_config=RUN_CONFIG).success
    else:
        write_code_repair_epochs(fabric, epochs=2)
    first = fabric.epoch(epoch_key("code_repair", 1))
    with fabric.connection() as conn:
        planted = conn.execute(
            "UPDATE candidate_tests t SET code = t.code || %s FROM drafts d WHERE d.draft_id = t.draft_id"
            " AND t.draft_id = (SELECT x.draft_id FROM drafts x WHERE x.epoch_id = %s AND x.agent_id <> %s"
            "   ORDER BY x.agent_name LIMIT 1) RETURNING d.agent_name",
            ("\n" + HOSTILE_LINE + "\n", first.epoch_id, first.winner_agent_id)).fetchone()["agent_name"]
    with _serve(database_url, tmp_path) as base:
        yield base, planted


@contextmanager
def _serve(database_url: str, tmp_path: Path) -> Iterator[str]:
    """The deck served on a free localhost port as the read-only role, until the block ends."""
    port = _free_port()
    env = dict(os.environ, **{queries.URL_VARIABLE: os.environ.get("DREAM_TEST_DECK_DATABASE_URL")
                              or queries.reader_url(database_url)})
    command = [sys.executable, *deck_command("127.0.0.1", port)[1:], "--server.fileWatcherType", "none"]
    log = (tmp_path / "streamlit.log").open("w")
    server = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT,
                              cwd=Path(__file__).resolve().parents[1])
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{base}/_stcore/health", timeout=2) as reply:  # noqa: S310 — localhost
                    if reply.status == 200:
                        break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError((tmp_path / "streamlit.log").read_text()) from None
                time.sleep(0.2)
        yield base
    finally:
        server.terminate()
        server.wait(timeout=20)
        log.close()


@pytest.fixture
def browser(tmp_path: Path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--hide-scrollbars", "--force-device-scale-factor=1", "--window-size=1280,900",
                 f"--user-data-dir={tmp_path / 'chromium'}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    driver.set_window_size(1280, 900)
    try:
        yield driver
    finally:
        driver.quit()


def _show(driver, view: str, family: str = "book") -> None:
    """Switch to `view` with the sidebar (one page load for the whole tour) and wait until it has drawn."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    from deck.views import views_for

    heading, selector = {**VIEWS, **CODE_REPAIR_VIEWS}[view]
    label = next(v.title for v in views_for(family) if v.slug == view)
    wait = WebDriverWait(driver, 45, poll_frequency=0.1)
    radio = wait.until(lambda d: d.find_element(
        By.XPATH, f'//*[@data-testid="stSidebar"]//label[.//p[normalize-space()="{label}"]]'))
    radio.click()

    def drawn(d) -> bool:
        headings = [h.text for h in d.find_elements(By.CSS_SELECTOR, '[data-testid="stHeading"] h2')]
        return heading in headings and bool(d.find_elements(By.CSS_SELECTOR, selector))

    wait.until(drawn)
    time.sleep(0.6)  # charts draw just after their element appears


def test_the_deck_in_a_real_browser(served_deck, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    browser.get(f"{served_deck}/?view=matrix")
    for view in VIEWS:
        _show(browser, view)
        body = browser.find_element(By.TAG_NAME, "body").text
        assert "Traceback" not in body and not browser.find_elements(By.CSS_SELECTOR, '[data-testid="stException"]')
        assert browser.current_url.endswith(f"view={view}")  # every view has its own address
        if view == "matrix":
            chart = browser.find_element(By.CSS_SELECTOR, VIEWS["matrix"][1])
            assert chart.size["height"] > 150 and chart.find_elements(By.CSS_SELECTOR, "canvas, svg")
            assert "committed" in body and "The masks each voter saw" in body
        if view == "book":
            assert "Chapter 3" in body and "Chapter 1" in body
            planted = [e for e in browser.find_elements(By.CSS_SELECTOR, '[data-testid="stText"]')
                       if e.text == PLANTED]
            assert planted  # the script is visible as text, exactly as written
            # open the multiverse of the last epoch: its five drafts side by side, the planted one as text too
            toggle = browser.find_element(By.XPATH, '//label[.//p[contains(., "drafts of epoch 3 side by side")]]')
            toggle.click()
            # the canon's draft (the planted one) comes first: wait for all five, not only for it
            WebDriverWait(browser, 30).until(
                lambda d: len(d.find_elements(By.CSS_SELECTOR, '[data-testid="stText"]')) >= 3 + 5)
            texts = [e.text for e in browser.find_elements(By.CSS_SELECTOR, '[data-testid="stText"]')]
            assert len(texts) == 3 + 5 and texts.count(PLANTED) == 2
            assert browser.execute_script("return window.__pwned === undefined")
            heading = browser.find_element(By.XPATH, '//h3[contains(., "Chapter 3")]')
            browser.execute_script("arguments[0].scrollIntoView({block: 'start'})", heading)
            time.sleep(0.5)
            assert browser.execute_script("return window.__pwned === undefined")
            assert browser.title != "pwned"
            assert not browser.execute_script(
                "return [...document.querySelectorAll('script')].some(s => s.textContent.includes('__pwned'))")
        if view == "lineage":
            sizes = _lineage_label_sizes(browser)
            assert sizes and min(sizes) >= MIN_LABEL_PX, sizes
        if view == "telemetry":
            headers, size = _grid_headers(browser)
            assert headers[:6] == ["Epoch", "Status", "Duration (s)", "Dead time (s)", "Downtime (s)", "Drafts"]
            assert not any("_" in h for h in headers), headers  # no raw column names
            assert size >= MIN_LABEL_PX
        _scroll_for_screenshot(browser)
        browser.save_screenshot(str(SCREENSHOTS / f"{view}.png"))
    assert sorted(p.stem for p in SCREENSHOTS.glob("*.png")) == sorted([*VIEWS, *CODE_REPAIR_SCREENSHOTS])


def test_a_code_repair_epoch_in_a_real_browser(served_code_repair_deck, browser):
    """The domain picker, a CodeRepair epoch's task with its fixes as diffs, tests beside peer scores, a fix
    holding `<script>` shown as code and never run; the jury's calibration. Screenshots: code-repair.png,
    calibration.png."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    base, planted = served_code_repair_deck
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    browser.set_window_size(1280, 1500)
    browser.get(f"{base}/?view=repair-task&domain=code_repair")
    wait = WebDriverWait(browser, 45, poll_frequency=0.1)
    text = lambda d: d.find_element(By.TAG_NAME, "body").text  # noqa: E731
    codes = lambda d: [e.text for e in d.find_elements(By.CSS_SELECTOR, '[data-testid="stCode"]')]  # noqa: E731
    wait.until(lambda d: "— the winner" in text(d) and "The task: " in text(d))
    picker = wait.until(lambda d: d.find_element(By.CSS_SELECTOR, '[data-testid="stSidebar"] [data-testid="stSelectbox"]'))
    shown = picker.get_attribute("textContent") + " ".join(
        i.get_attribute("value") or "" for i in picker.find_elements(By.TAG_NAME, "input"))
    assert "code_repair · CodeRepair" in shown, shown  # the domain picker, on CodeRepair
    labels = [e.text for e in browser.find_elements(By.CSS_SELECTOR, '[data-testid="stSidebar"] label')]
    assert "The task and its fixes" in labels and "Jury calibration" in labels and "The book" not in labels
    assert "committed" in text(browser) and "candidate fixes" in text(browser)
    # epoch 1: its task, its fixes (the winner's open), then the planted fix opened and read as code
    box = browser.find_element(By.CSS_SELECTOR, '[data-testid="stNumberInput"] input')
    box.send_keys(Keys.CONTROL, "a")
    box.send_keys("1", Keys.ENTER)
    wait.until(lambda d: d.find_element(By.CSS_SELECTOR, '[data-testid="stMetricValue"]').text == "1")
    wait.until(lambda d: "— the winner" in text(d) and any(c.startswith("def ") for c in codes(d)))
    wait.until(lambda d: "against the buggy function" in text(d) or "The buggy function unchanged" in text(d))
    assert "Traceback" not in text(browser) and not browser.find_elements(By.CSS_SELECTOR, '[data-testid="stException"]')
    browser.execute_script("document.activeElement.blur()")  # the epoch box, out of focus for the picture
    time.sleep(0.6)
    _scroll_for_screenshot(browser)
    browser.save_screenshot(str(SCREENSHOTS / "code-repair.png"))
    browser.find_element(By.XPATH, f'//summary[.//p[starts-with(normalize-space(), "{planted}")]]').click()
    wait.until(lambda d: any(HOSTILE_LINE.strip() in c for c in codes(d)))  # verbatim, in the diff
    assert browser.execute_script("return window.__pwned === undefined")
    assert not browser.execute_script(
        "return [...document.querySelectorAll('script')].some(s => s.textContent.includes('__pwned'))")
    _show(browser, "calibration", "code_repair")
    body = text(browser)
    assert "Spearman" in body and "The latest epoch calibrated (2)" in body and "Traceback" not in body
    browser.set_window_size(1280, 900)
    _scroll_for_screenshot(browser)
    browser.save_screenshot(str(SCREENSHOTS / "calibration.png"))


def _lineage_label_sizes(driver) -> list[float]:
    """The on-screen font size (px) of every label of the lineage graph: its SVG font size times the scale
    the page draws the SVG at."""
    return driver.execute_script("""
        const svg = document.querySelector('[data-testid="stGraphVizChart"] svg');
        const box = svg.viewBox.baseVal;
        const scale = box && box.width ? svg.getBoundingClientRect().width / box.width : 1;
        return [...svg.querySelectorAll('text')].map(t => parseFloat(t.getAttribute('font-size') || '14') * scale);
    """)


def _grid_headers(driver) -> tuple[list[str], float]:
    """The first data grid's column headers as the browser has them (Streamlit's grid draws on a canvas and
    keeps an accessible table of the visible cells) and the font size (px) it draws the headers in."""
    headers, style = driver.execute_script("""
        const grid = document.querySelector('[data-testid="stDataFrame"]');
        const headers = [...grid.querySelectorAll('[role="columnheader"]')].map(h => h.textContent.trim());
        const styled = [...grid.querySelectorAll('*')].find(
            el => getComputedStyle(el).getPropertyValue('--gdg-header-font-style'));
        return [headers, styled ? getComputedStyle(styled).getPropertyValue('--gdg-header-font-style') : ''];
    """)
    size = next((float(part[:-2]) for part in style.split() if part.endswith("px")), 0.0)
    return headers, size


def _scroll_for_screenshot(driver) -> None:
    """Back to the top of the view (the test scrolled while it used the page)."""
    driver.execute_script("document.querySelectorAll('*').forEach(e => { if (e.scrollTop) e.scrollTop = 0; })")
    time.sleep(0.4)
