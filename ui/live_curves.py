"""One chart per metric of a run that grows while the run trains.

A chart starts from the store's window of the metric, downsampled on the server to about the
plot's width, then streams the points the live hub delivers into its ``ColumnDataSource``s
(``stream(..., rollover=)``: only the new points travel). When the streamed tail has doubled the
points on screen, the chart re-reads the downsampled window, so a long run never holds more than
about two points per pixel. Zooming (a ``RangesUpdate`` from the toolbar) re-reads the visible
step range at full resolution, again capped at the plot's width; reset returns to the whole run.

Two modes: ``mean`` draws the mean across ranks with a min/max band (streamed up to the lowest
step every rank has reached, so a step is drawn once all ranks logged it), ``ranks`` one line
per rank. Smoothing applies on top (``smoothing.py``) and runs incrementally on streamed points.
Every method runs on the session's Bokeh document thread.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from bokeh.core.property.descriptors import UnsetValueError
from bokeh.events import RangesUpdate
from bokeh.models import ColumnDataSource, HoverTool
from bokeh.plotting import figure

from aquarium.agent.errors import RunNotFoundError
from aquarium.collector import Api, KeyNotFoundError
from aquarium.collector.live import Points

from .palette import series_colour
from .smoothing import Smoother, Smoothing
from .theme import style_figure

__all__ = ["CurveOptions", "MetricChart", "source_name"]

log = logging.getLogger("aquarium.ui.live_curves")

DEFAULT_WIDTH = 800  # pixels a chart is assumed to have until the browser reports its width
MODES = {"Mean, min/max band": "mean", "Per rank": "ranks"}


@dataclass(frozen=True)
class CurveOptions:
    mode: str = "mean"  # "mean" or "ranks"
    smoothing: Smoothing = Smoothing()
    log_y: bool = False


def source_name(run_id: str, key: str, line: str) -> str:
    """The name of a line's data source (``line`` is "mean" or "rank<N>"): tests find it in the page."""
    return f"curve|{run_id}|{key}|{line}"


def _empty(band: bool) -> dict[str, Any]:
    data: dict[str, Any] = {"step": np.array([], dtype=np.int64), "value": np.array([]), "smooth": np.array([])}
    if band:
        data |= {"lo": np.array([]), "hi": np.array([])}
    return data


class Line:
    """One drawn series: its data source, the last step it holds, and its smoother's state."""

    def __init__(self, name: str, rank: int | None, smoothing: Smoothing) -> None:
        self.rank = rank  # None: the mean across ranks
        self.source = ColumnDataSource(data=_empty(rank is None), name=name)
        self.smoothing = smoothing
        self.smoother = Smoother(smoothing)
        self.last_step: int | None = None

    def __len__(self) -> int:
        return len(self.source.data["step"])

    def replace(self, steps: np.ndarray, values: np.ndarray, lo: np.ndarray | None, hi: np.ndarray | None) -> None:
        self.smoother = Smoother(self.smoothing)
        data: dict[str, Any] = {"step": steps, "value": values, "smooth": self.smoother.feed(values)}
        if self.rank is None:
            data |= {"lo": values if lo is None else lo, "hi": values if hi is None else hi}
        self.source.data = data
        self.last_step = int(steps[-1]) if len(steps) else None

    def append(
        self, steps: np.ndarray, values: np.ndarray, lo: np.ndarray | None, hi: np.ndarray | None, rollover: int
    ) -> int:
        """Stream the points past ``last_step``; returns how many were new."""
        if self.last_step is not None:
            keep = steps > self.last_step
            steps, values = steps[keep], values[keep]
            lo, hi = (None if lo is None else lo[keep]), (None if hi is None else hi[keep])
        if not len(steps):
            return 0
        order = np.argsort(steps, kind="stable")
        steps, values = steps[order], values[order]
        new: dict[str, Any] = {"step": steps, "value": values, "smooth": self.smoother.feed(values)}
        if self.rank is None:
            new |= {"lo": values if lo is None else lo[order], "hi": values if hi is None else hi[order]}
        self.source.stream(new, rollover=rollover)
        self.last_step = int(steps[-1])
        return len(steps)

    def set_smoothing(self, smoothing: Smoothing) -> None:
        self.smoothing = smoothing
        self.smoother = Smoother(smoothing)
        data: dict[str, Any] = dict(self.source.data)
        data["smooth"] = self.smoother.feed(np.asarray(data["value"], dtype=np.float64))
        self.source.data = data


class MetricChart:
    """The chart of one metric of one run (see the module docstring)."""

    def __init__(self, api: Api, run_id: str, key: str, ranks: list[int], options: CurveOptions) -> None:
        self.api, self.run_id, self.key = api, run_id, key
        self.ranks = sorted(ranks) or [0]
        self.options = options
        self.view: tuple[int | None, int | None] = (None, None)  # the step range read; None: open
        self.extent: tuple[int, int] | None = None  # the steps the whole run spans, as last read
        self.fetches = 0  # window reads (initial, compaction, zoom), for the status line
        self.rank_last: dict[int, int] = {}  # mean mode: the last step each rank has logged
        self._raw: list[Any] = []  # the renderers of the logged values and of the smoothed ones
        self._smooth: list[Any] = []
        self.figure = figure(
            title=key,
            height=280,
            sizing_mode="stretch_width",
            min_width=300,
            output_backend="webgl",
            tools="pan,wheel_zoom,box_zoom,reset,save",
            active_scroll="wheel_zoom",
            active_drag="box_zoom",
            y_axis_type="log" if options.log_y else "linear",
            x_axis_label="step",
            name=f"chart|{run_id}|{key}",
        )
        self.figure.toolbar.logo = None
        if options.mode == "mean":
            self.lines = {-1: Line(source_name(run_id, key, "mean"), None, options.smoothing)}
        else:
            self.lines = {r: Line(source_name(run_id, key, f"rank{r}"), r, options.smoothing) for r in self.ranks}
        for index, line in enumerate(self.lines.values()):
            self._draw(line, index)
        self.figure.add_tools(
            HoverTool(tooltips=[("step", "@step"), ("value", "@value{0.[0000]}")], mode="vline", renderers="auto")
        )
        style_figure(self.figure)
        self.figure.on_event(RangesUpdate, self._on_ranges)  # type: ignore[arg-type]

    # -- drawing ----------------------------------------------------------------------------------
    def _draw(self, line: Line, index: int) -> None:
        colour = series_colour(index)
        smoothed = self.options.smoothing.kind != "none"
        if line.rank is None and len(self.ranks) > 1:
            self.figure.varea("step", "lo", "hi", source=line.source, fill_color=colour, fill_alpha=0.18)
        legend: dict[str, Any] = (
            {"legend_label": f"rank {line.rank}"} if line.rank is not None and len(self.ranks) > 1 else {}
        )
        raw = self.figure.line(
            "step",
            "value",
            source=line.source,
            line_color=colour,
            line_width=1.3,
            alpha=0.3 if smoothed else 1.0,
            **legend,
        )
        smooth = self.figure.line(
            "step", "smooth", source=line.source, line_color=colour, line_width=2.2, visible=smoothed
        )
        self._raw.append(raw)
        self._smooth.append(smooth)
        if self.figure.legend:
            self.figure.legend.location = "top_right"
            self.figure.legend.click_policy = "hide"
            style_figure(self.figure)

    @property
    def samples(self) -> int:
        """Points a read may return: the plot's width in pixels (never more points than pixels)."""
        try:
            width = self.figure.inner_width  # reported by the browser once the figure is drawn
        except UnsetValueError:
            return DEFAULT_WIDTH
        return int(width) if isinstance(width, int) and width > 50 else DEFAULT_WIDTH

    @property
    def points(self) -> int:
        return sum(len(line) for line in self.lines.values())

    # -- reading the store ------------------------------------------------------------------------
    def load(self) -> None:
        """(Re)read the viewed range, downsampled to the plot's width."""
        start, end = self.view
        self.fetches += 1
        for line in self.lines.values():
            steps, values, lo, hi = self._read(line, start, end, self.samples)
            line.replace(steps, values, lo, hi)
            if start is None and end is None and len(steps):
                self._widen(int(steps[0]), int(steps[-1]))
        if self.options.mode == "mean":
            mean_last = self.lines[-1].last_step
            self.rank_last = {} if mean_last is None else {r: mean_last for r in self.ranks}

    def _read(
        self, line: Line, start: int | None, end: int | None, samples: int | None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None]:
        try:
            if line.rank is None:
                w = self.api.series(self.run_id, self.key, agg="all", samples=samples, start=start, end=end)
            else:
                w = self.api.series(self.run_id, self.key, rank=line.rank, samples=samples, start=start, end=end)
        except (KeyNotFoundError, RunNotFoundError):
            return np.array([], dtype=np.int64), np.array([]), None, None
        return np.asarray(w.steps), np.asarray(w.values, dtype=np.float64), w.min, w.max

    # -- live -------------------------------------------------------------------------------------
    def take(self, points: Points) -> int:
        """Stream the live ``points`` of this metric; returns how many points were drawn."""
        if points.key != self.key or not len(points):
            return 0
        if self.view[1] is not None:  # zoomed into the past: new points are off screen until reset
            return 0
        if self.options.mode == "ranks":
            line = self.lines.get(points.rank)
            if line is None:
                line = self.lines[points.rank] = Line(
                    source_name(self.run_id, self.key, f"rank{points.rank}"), points.rank, self.options.smoothing
                )
                self.ranks = sorted({*self.ranks, points.rank})
                self._draw(line, len(self.lines) - 1)
            drawn = line.append(points.steps, points.values, None, None, self.rollover)
        else:
            self.rank_last[points.rank] = max(self.rank_last.get(points.rank, -(2**63)), int(points.steps.max()))
            if points.rank not in self.ranks:
                self.ranks = sorted({*self.ranks, points.rank})
            drawn = self._stream_mean(min(self.rank_last.get(r, -(2**63)) for r in self.ranks))
        self._grew(points)
        return drawn

    def _stream_mean(self, frontier: int | None) -> int:
        line = self.lines[-1]
        if frontier is not None and line.last_step is not None and frontier <= line.last_step:
            return 0
        start = None if line.last_step is None else line.last_step + 1
        steps, values, lo, hi = self._read(line, start, frontier, self.samples)
        return line.append(steps, values, lo, hi, self.rollover)

    def resync(self) -> None:
        """Read what the store holds past each line's last step (points may have been missed)."""
        if self.view[1] is not None:
            return
        for line in self.lines.values():
            start = None if line.last_step is None else line.last_step + 1
            steps, values, lo, hi = self._read(line, start, None, self.samples)
            line.append(steps, values, lo, hi, self.rollover)
        last = self.lines[-1].last_step if self.options.mode == "mean" else None
        if last is not None:
            self.rank_last = {r: last for r in self.ranks}
        self._grew(None)

    def ended(self) -> None:
        """The run finished: draw the mean up to the last step any rank logged."""
        if self.options.mode == "mean" and self.view[1] is None:
            self._stream_mean(None)

    @property
    def rollover(self) -> int:
        return 4 * self.samples

    def _grew(self, points: Points | None) -> None:
        if points is not None and len(points):
            self._widen(int(points.steps.min()), int(points.steps.max()))
        if max((len(line) for line in self.lines.values()), default=0) > 2 * self.samples:
            self.load()  # the live tail doubled what is on screen: downsample again

    def _widen(self, first: int, last: int) -> None:
        self.extent = (first, last) if self.extent is None else (min(first, self.extent[0]), max(last, self.extent[1]))

    # -- zoom -------------------------------------------------------------------------------------
    def _on_ranges(self, event: RangesUpdate) -> None:
        if event.x0 is None or event.x1 is None:
            return
        self.zoom(event.x0, event.x1)

    def zoom(self, x0: float, x1: float) -> None:
        """Show steps ``x0``..``x1``: at full resolution up to the plot's width; the whole run when
        the range covers it."""
        if self.extent is None:
            return
        first, last = self.extent
        # the steps on screen and one past each edge, so that the line runs across the edges
        start, end = max(math.floor(x0), first), min(math.ceil(x1), last)
        if end <= start:
            end = min(start + 1, last)
        view: tuple[int | None, int | None] = (None, None) if start <= first and end >= last else (start, end)
        if view == self.view:
            return
        self.view = view
        self.load()

    def retire(self) -> None:
        """Leaving the page: give the names back (the browser may keep the old models a while,
        and a name must find one model)."""
        self.figure.name = None
        for line in self.lines.values():
            line.source.name = None

    def set_smoothing(self, smoothing: Smoothing) -> None:
        self.options = replace(self.options, smoothing=smoothing)
        smoothed = smoothing.kind != "none"
        for line in self.lines.values():
            line.set_smoothing(smoothing)
        for raw in self._raw:
            raw.glyph.line_alpha = 0.3 if smoothed else 1.0
        for smooth in self._smooth:
            smooth.visible = smoothed
