"""One GPU's history as a chart with axes: utilisation and memory % over the last minutes.

Drawn by textual-plotext (Textualize's wrapper of the plotext library). The chart is handed the
samples (`show`) and redraws on its own size; it makes no calls. The x axis is minutes before the
newest sample (negative, 0 = now), the y axis 0-100 %.
"""

from __future__ import annotations

from collections.abc import Sequence

from textual_plotext import PlotextPlot

from raytui.model.gpu_history import WINDOW_S


class GpuChart(PlotextPlot):
    DEFAULT_CSS = """
    GpuChart {
        height: 12;
        min-height: 8;
        width: 1fr;
        margin-bottom: 1;
    }
    """

    def __init__(self, title: str, *, window: float = WINDOW_S, id: str | None = None) -> None:
        super().__init__(id=id)
        self.chart_title = title
        self.window = window
        self.points = 0  # samples drawn

    def show(
        self,
        title: str,
        times: Sequence[float],
        util: Sequence[float | None],
        mem: Sequence[float | None],
    ) -> None:
        """Plot the samples (oldest first); gaps (None) are left out of each line."""
        self.chart_title = title
        plt = self.plt
        plt.clear_data()
        plt.clear_figure()
        plt.title(title)
        plt.xlabel("minutes ago")
        minutes = self.window / 60.0
        plt.xlim(-minutes, 0)
        plt.ylim(0, 100)
        plt.yticks([0, 25, 50, 75, 100])
        step = 5 if minutes >= 10 else 1
        ticks = [-float(m) for m in range(int(minutes) // step * step, -1, -step)]
        plt.xticks(ticks, [f"{abs(t):g}" for t in ticks])
        newest = times[-1] if times else 0.0
        self.points = len(times)
        for values, label, color in ((util, "util %", "green"), (mem, "mem %", "blue")):
            xs = [(t - newest) / 60.0 for t, v in zip(times, values, strict=False) if v is not None]
            ys = [v for v in values if v is not None]
            if xs:
                plt.plot(xs, ys, label=label, color=color, marker="braille")
        if not times:
            plt.text("no samples yet", x=-minutes / 2, y=50, alignment="center")
        self.refresh()
