"""The dashboard's look: the seed's dark colours as page CSS, and the styling every figure shares.

The colours themselves live in ``palette.py`` (shared with the plot builders); this module turns
them into the CSS the template and the Tabulator receive, and into a dark Bokeh figure style.
"""

from __future__ import annotations

import html
from typing import Any

from .palette import (
    BACKGROUND,
    BACKGROUND_DARK,
    DANGER,
    GRID,
    INFO,
    PRIMARY,
    SUCCESS,
    TEXT,
    TEXT_MUTED,
    WARNING,
    status_colour,
)

__all__ = ["CSS", "TEMPLATE_OPTIONS", "badge", "html_pane", "style_figure"]

TEMPLATE_OPTIONS: dict[str, Any] = {
    "theme": "dark",
    "header_background": BACKGROUND_DARK,
    "header_color": TEXT,
}
"""The BootstrapTemplate's options (its resources are all bundled with Panel: no font CDN)."""

CSS = f"""
:root {{
  --aq-bg: {BACKGROUND}; --aq-bg-dark: {BACKGROUND_DARK}; --aq-primary: {PRIMARY};
  --aq-success: {SUCCESS}; --aq-warning: {WARNING}; --aq-danger: {DANGER}; --aq-info: {INFO};
  --aq-text: {TEXT}; --aq-muted: {TEXT_MUTED}; --aq-grid: {GRID};
}}
body, #main, .main, #content {{ background: var(--aq-bg) !important; color: var(--aq-text); }}
#header {{ border-bottom: 2px solid var(--aq-primary); }}
.aq-badge {{ display: inline-block; padding: 1px 8px; border-radius: 10px; font-size: 0.8em;
  font-weight: 600; color: #fff; line-height: 1.5; }}
.aq-card {{ background: var(--aq-bg-dark); border: 1px solid var(--aq-grid); border-radius: 6px;
  padding: 8px 14px; color: var(--aq-text); }}
.aq-card h3 {{ margin: 0 0 6px 0; font-size: 0.95em; color: var(--aq-muted); text-transform: uppercase;
  letter-spacing: 0.05em; }}
.aq-card table {{ border-collapse: collapse; width: 100%; font-size: 0.9em; }}
.aq-card td, .aq-card th {{ padding: 2px 8px 2px 0; text-align: left; vertical-align: top;
  border-bottom: 1px solid var(--aq-grid); }}
.aq-card th {{ color: var(--aq-muted); font-weight: 500; }}
.aq-muted {{ color: var(--aq-muted); }}
.aq-card a, .aq-report a {{ color: var(--aq-info); }}
.aq-card a:visited {{ color: var(--aq-info); }}
.aq-job {{ border-top: 1px solid var(--aq-grid); padding: 6px 0; }}
.aq-report {{ font-size: 0.85em; color: var(--aq-muted); margin: 2px 0 4px 0; }}
.aq-report table {{ border-collapse: collapse; margin-top: 4px; }}
.aq-report td, .aq-report th {{ padding: 2px 14px 2px 0; text-align: left; vertical-align: top; }}
.aq-report th {{ font-weight: 500; border-bottom: 1px solid var(--aq-grid); }}
.aq-lost, .aq-failed {{ color: var(--aq-danger); }}
.aq-ok {{ color: var(--aq-success); }}
.aq-gap {{ color: var(--aq-warning); font-weight: 600; }}
.aq-error {{ background: rgba(217, 83, 79, 0.15); border-left: 4px solid var(--aq-danger);
  padding: 6px 10px; color: var(--aq-text); }}
.aq-error pre {{ margin: 4px 0 0 0; font-size: 0.9em; white-space: pre; overflow-x: auto; }}
.aq-state {{ font-size: 0.85em; margin-left: 12px; white-space: nowrap; }}
.aq-dot {{ display: inline-block; width: 9px; height: 9px; border-radius: 50%; margin: 0 4px 0 10px; }}
.aq-title {{ font-size: 1.6em; font-weight: 600; margin: 0; }}
.aq-footer {{ border-top: 1px solid var(--aq-grid); color: var(--aq-muted); font-size: 0.85em;
  padding: 6px 2px; }}
"""


BADGE_STYLE = (
    "display:inline-block;padding:0 9px;border-radius:10px;font-size:0.85em;font-weight:600;color:#fff;line-height:1.6"
)


def badge(status: str) -> str:
    """A status as a coloured badge (the status text escaped: it is data). Inline styles: it is
    drawn inside components' shadow DOM, where page CSS does not reach."""
    return (
        f'<span class="aq-badge" style="{BADGE_STYLE};background:{status_colour(status)}">'
        f"{html.escape(status or 'unknown')}</span>"
    )


def html_pane(text: str = "", **options: Any) -> Any:
    """An HTML pane with the dashboard's classes available inside its shadow DOM."""
    import panel as pn

    return pn.pane.HTML(text, stylesheets=[CSS], **options)


def style_figure(fig: Any) -> None:
    """A Bokeh figure on the dark background: dark plot area, muted axes and grid."""
    fig.background_fill_color = BACKGROUND_DARK
    fig.border_fill_color = BACKGROUND
    fig.outline_line_color = GRID
    for axis in (*fig.xaxis, *fig.yaxis):
        axis.axis_line_color = GRID
        axis.major_tick_line_color = GRID
        axis.minor_tick_line_color = GRID
        axis.major_label_text_color = TEXT_MUTED
        axis.axis_label_text_color = TEXT_MUTED
    for grid in (*fig.xgrid, *fig.ygrid):
        grid.grid_line_color = GRID
        grid.grid_line_alpha = 0.6
    fig.title.text_color = TEXT
    fig.title.text_font_size = "11pt"
    if fig.legend:
        fig.legend.background_fill_color = BACKGROUND_DARK
        fig.legend.background_fill_alpha = 0.7
        fig.legend.label_text_color = TEXT
        fig.legend.border_line_color = GRID
