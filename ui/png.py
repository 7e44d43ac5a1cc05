"""Standalone HTML pages as PNG images, rendered by headless Chromium through Playwright (the
comparison saved as PNG). Playwright is imported only when a PNG is asked for."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path


def chromium_path() -> str | None:
    """The Chromium that renders PNGs: ``AQUARIUM_CHROMIUM``, else one on the PATH."""
    return os.environ.get("AQUARIUM_CHROMIUM") or next(
        (p for p in (shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome")) if p), None
    )


def render_png(page_html: str, width: int = 1400) -> bytes:
    """A full-page screenshot of a standalone HTML page, taken by headless Chromium (Playwright).

    The page is loaded from a temporary file (its JS is inline: nothing is fetched) and shot once
    Bokeh has rendered every plot's canvas.
    """
    from playwright.sync_api import sync_playwright

    executable = chromium_path()
    with tempfile.TemporaryDirectory() as tmp, sync_playwright() as p:
        path = Path(tmp) / "comparison.html"
        path.write_text(page_html, encoding="utf-8")
        browser = p.chromium.launch(
            executable_path=executable,
            headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        try:
            page = browser.new_page(viewport={"width": width, "height": 900})
            page.goto(path.as_uri())
            page.wait_for_function(
                "() => window.Bokeh && Bokeh.documents.length > 0 && "
                "document.querySelectorAll('.bk-Column, .bk-Figure, div').length > 0"
            )
            page.wait_for_function("() => Bokeh.index && Object.keys(Bokeh.index).length > 0")
            # two animation frames: the canvases have painted after the last layout pass
            page.evaluate("() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")
            return page.screenshot(full_page=True)
        finally:
            browser.close()
