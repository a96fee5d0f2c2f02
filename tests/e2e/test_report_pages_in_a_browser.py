"""The pages as a person sees them: Debian's chromium, driven by playwright, on the local stack's output.

The interrupted-and-resumed run of the end-to-end stack (the demo's story, smaller) and one inference
batch are fetched with ``spotline report`` into a folder, opened from disk, and checked as a person
would: two attempts on the curve and the interruption where it happened, the savings figure of
report.json, no request leaving the page, no console error, nothing wider than a 390 px phone.
Screenshots go to build/report-screenshots/ (not committed); their paths are printed.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from spotline.domain.states import RunKind
from spotline.reports.page import savings_sentence, usd
from spotline.runs.report_page import PAGE_CONTENT_TYPE
from spotline_local.cli.main import main
from tests.e2e.conftest import E2E, INTERRUPT_AT, TrainedRun, wait_for

pytestmark = pytest.mark.slow

CHROMIUM = "/usr/bin/chromium"
# What the machines here need for chromium to start offline (its background services would only
# knock on closed doors); the user-data folder is a fresh one per test module.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PHONE = {"width": 390, "height": 844}
SCREENSHOTS = Path(__file__).resolve().parents[2] / "build" / "report-screenshots"
BATCH = "e2e-line-9"


@dataclass
class OpenedPage:
    page: Any
    url: str
    requests: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def outside_requests(self) -> list[str]:
        """Requests other than the page's own file (data: images are part of it)."""
        return [u for u in self.requests if u != self.url and not u.startswith("data:")]

    def fits(self) -> bool:
        return bool(self.page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"))

    def shot(self, name: str) -> Path:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / name
        self.page.screenshot(path=str(path), full_page=True)
        sys.stdout.write(f"\nscreenshot: {path}\n")
        return path


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    assert Path(CHROMIUM).exists(), "Debian's chromium is missing: `make setup` installs it"
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium-profile")),
            executable_path=CHROMIUM,
            headless=True,
            args=CHROMIUM_ARGS,
            viewport=PHONE,
        )
        try:
            yield context
        finally:
            context.close()


def open_page(browser: Any, path: Path) -> OpenedPage:
    page = browser.new_page()
    opened = OpenedPage(page, path.resolve().as_uri())
    page.on("request", lambda r: opened.requests.append(r.url))
    page.on("console", lambda m: opened.problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: opened.problems.append(str(e)))
    page.goto(opened.url)
    page.wait_for_load_state("load")
    return opened


def fetch(e2e: E2E, run_id: str, out: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    assert main(["report", run_id, "--workdir", str(e2e.stack.workdir), "--out", str(out)]) == 0
    written = capsys.readouterr().out
    assert "fetched from" in written, written  # as published, not rendered by the CLI
    return Path(written.split("wrote ", 1)[1].split(" - ", 1)[0])


def test_the_run_page_shows_both_attempts_the_interruption_and_the_savings(
    e2e: E2E, trained_run: TrainedRun, browser: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key = f"runs/{trained_run.run_id}/report.html"
    wait_for("the run's page", lambda: key in e2e.keys(key) or None)
    head = e2e.client("s3").head_object(Bucket=e2e.bucket, Key=key)
    assert head["ContentType"] == PAGE_CONTENT_TYPE
    report = e2e.report(trained_run.run_id)
    curves = e2e.curves(trained_run.run_id)
    (stop,) = curves.interruptions
    assert stop.step >= INTERRUPT_AT

    opened = open_page(browser, fetch(e2e, trained_run.run_id, tmp_path, capsys))
    page = opened.page
    attempts = page.locator("polyline[data-metric='train/loss']").evaluate_all(
        "ls => ls.map(l => l.dataset.attempt)"
    )
    assert sorted(attempts) == ["1", "2"]
    interrupted = page.locator("[data-interrupted-at]").first
    assert interrupted.get_attribute("data-interrupted-at") == str(stop.step)
    assert interrupted.get_attribute("data-attempt") == "1"
    assert interrupted.bounding_box() is not None  # drawn, not only present
    resumed = page.locator("[data-resumed-at][data-attempt='2']").first
    assert resumed.get_attribute("data-resumed-at") == str(curves.resumed_at(2))
    saved = page.locator("[data-field=savings_usd]").first
    assert float(saved.get_attribute("data-value") or "nan") == report["savings"]["savings_usd"]
    assert saved.inner_text() == usd(report["savings"]["savings_usd"])
    assert page.locator("[data-field=savings_sentence]").inner_text() == savings_sentence(report["savings"])
    assert page.locator("[data-field=emulated]").is_visible()  # the local stack says so
    assert page.locator("[data-field=status]").inner_text() == "SUCCEEDED"

    assert opened.fits(), "wider than a 390 px phone"
    opened.shot("run-report-390px.png")
    page.set_viewport_size({"width": 1280, "height": 900})
    opened.shot("run-report-1280px.png")
    page.emulate_media(media="print")
    page.set_viewport_size(PHONE)
    assert opened.fits()
    assert opened.outside_requests == []
    assert opened.problems == []


def test_the_batch_page_shows_counts_findings_and_links_back_to_the_model_run(
    e2e: E2E,
    trained_run: TrainedRun,
    dataset: dict[str, Path],
    browser: Any,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    s3 = e2e.client("s3")
    for path in sorted(dataset["unlabelled"].glob("*.jpg")):
        s3.upload_file(str(path), e2e.bucket, f"inference/{BATCH}/{path.name}")
    e2e.put(f"inference/{BATCH}/broken.jpg", b"not a picture")
    e2e.put(f"inference/{BATCH}/_READY", b"")
    started = wait_for(
        "the batch's inference run",
        lambda: next(
            (r for r in e2e.ledger.recent_runs(100) if r.kind == RunKind.INFERENCE and BATCH in r.source.key),
            None,
        ),
        90,
    )
    assert e2e.finished(started.run_id).status == "SUCCEEDED"
    page_key = f"results/{BATCH}/report.html"
    wait_for("the batch's page", lambda: page_key in e2e.keys(page_key) or None)
    summary = json.loads(e2e.read(f"results/{BATCH}/summary.json"))
    alert = wait_for(
        "the batch's alert", lambda: e2e.alerts(lambda m: m["subject"].startswith(BATCH)) or None
    )
    assert json.loads(alert[0]["message"])["report_page"] == f"s3://{e2e.bucket}/{page_key}"

    # both pages on disk, in the bucket's layout, so the link back to the model's run works
    fetch(e2e, trained_run.run_id, tmp_path, capsys)
    opened = open_page(browser, fetch(e2e, started.run_id, tmp_path, capsys))
    page = opened.page
    assert page.locator("[data-field=images]").inner_text() == str(summary["images"])
    for name, count in summary["detections_per_class"].items():
        assert page.locator(f"[data-class='{name}']").inner_text() == str(count)
    previews = page.locator("figure[data-preview] img")
    assert previews.count() == len(summary["previews"])
    assert all(w > 0 for w in previews.evaluate_all("imgs => imgs.map(i => i.naturalWidth)"))
    assert "broken.jpg" in page.locator("#unreadable").inner_text()
    assert opened.fits(), "wider than a 390 px phone"
    opened.shot("batch-report-390px.png")
    page.set_viewport_size({"width": 1280, "height": 900})
    opened.shot("batch-report-1280px.png")
    assert opened.outside_requests == []
    assert opened.problems == []

    page.locator("[data-field=model_report]").click()
    page.wait_for_load_state("load")
    assert page.url.endswith(f"runs/{trained_run.run_id}/report.html")
    assert page.locator("[data-field=status]").inner_text() == "SUCCEEDED"
