"""What the page loads: Bokeh's MathJax bundle only when something on the page needs it.

Panel (1.9) adds ``bokeh-mathjax.min.js`` (1.8 MB, a third of the page's JavaScript) to every
served page that holds an HTML pane, in case its text holds ``$$`` maths. The dashboard's HTML
panes never render maths (``pn.pane.HTML`` has ``disable_math`` on by default, and every
Markdown pane here turns it off), so the page asks for the bundle only when Bokeh itself finds
maths in the models (a TeX axis label, a ``MathText``) or ``pn.extension("mathjax")`` was
loaded: Panel's own rule before it widened it to every HTML pane.

This is done by wrapping the one function Panel's page handler calls to list the page's
resources (``panel.io.server.bundle_resources``); a test checks the served page for the bundle,
so a Panel upgrade that moves the call is noticed.
"""

from __future__ import annotations

from typing import Any

__all__ = ["install", "use_mathjax"]

_installed = False


def use_mathjax(roots: Any) -> bool:
    """Whether these models need MathJax: Bokeh's own test, or the extension loaded explicitly."""
    from bokeh.embed.bundle import _use_mathjax
    from panel.config import panel_extension

    return bool(roots and _use_mathjax(roots)) or "mathjax" in panel_extension._loaded_extensions


def install() -> None:
    """Wrap Panel's resource bundling for served pages (once per process)."""
    global _installed
    if _installed:
        return
    import panel.io.server as served

    original = served.bundle_resources  # type: ignore[attr-defined]

    def bundle_resources(roots: Any, resources: Any, *args: Any, **options: Any) -> Any:
        if options.get("enable_mathjax", "auto") == "auto" and len(args) < 3:
            options["enable_mathjax"] = use_mathjax(roots)
        return original(roots, resources, *args, **options)

    served.bundle_resources = bundle_resources  # type: ignore[attr-defined]
    _installed = True
