"""Small PNG figures for metadata and reports, and PNGs as Markdown images that need no file server.

A Markdown image with a relative link (`![deltas](deltas.png)`) resolves against the page
that shows it, so in the Dagster UI it points at the webserver, which does not serve the
state folder: a broken image. A `data:` URI carries the PNG itself; Dagster 1.13's
Markdown renderer allows `data:` image sources, and so do GitHub and most viewers.
Figures are drawn with matplotlib's Agg backend (no display needed) at a small size, so
a histogram or curve costs tens of kB of metadata.
"""

from __future__ import annotations

import base64
import io
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
FIGSIZE = (5.0, 3.0)
DPI = 80
# ![alt](target) with a target that is not already a URL (no scheme such as http: or data:)
_RELATIVE_IMAGE = re.compile(r"!\[(?P<alt>[^\]]*)\]\((?P<target>(?![a-zA-Z][a-zA-Z0-9+.-]*:)[^)\s]+)\)")


def png_data_uri(png: bytes | str | Path) -> str:
    """`data:image/png;base64,...` of PNG bytes or of a PNG file; anything else is refused."""
    data = Path(png).read_bytes() if isinstance(png, str | Path) else png
    if not data.startswith(PNG_MAGIC):
        where = f" ({png})" if isinstance(png, str | Path) else ""
        raise ValueError(f"not a PNG image{where}: starts with {data[:8]!r}")
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def markdown_image(png: bytes | str | Path, alt: str) -> str:
    """A Markdown image that carries the PNG itself."""
    alt = alt.replace("[", "(").replace("]", ")")
    return f"![{alt}]({png_data_uri(png)})"


def inline_markdown_images(markdown: str, base_dir: str | Path) -> tuple[str, list[Path]]:
    """Replace every relative PNG link whose file exists under `base_dir` by a data: URI.

    Returns the new Markdown and the files inlined; links to missing files, to other file
    types and to absolute URLs are left as they are.
    """
    base = Path(base_dir)
    inlined: list[Path] = []

    def _replace(match: re.Match) -> str:
        path = base / match.group("target")
        if path.suffix.lower() != ".png" or not path.is_file():
            return match.group(0)
        inlined.append(path)
        return markdown_image(path, match.group("alt"))

    return _RELATIVE_IMAGE.sub(_replace, markdown), inlined


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _png(fig) -> bytes:
    plt = _pyplot()
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=DPI)
    plt.close(fig)
    return buf.getvalue()


def histogram_png(counts: Mapping[str, float], title: str, xlabel: str = "bin", ylabel: str = "count") -> bytes:
    """A bar chart of already-binned counts, bins in the mapping's order (labels as given)."""
    if not counts:
        raise ValueError(f"histogram {title!r}: no bins")
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=FIGSIZE)
    labels = [str(k) for k in counts]
    ax.bar(range(len(labels)), [float(v) for v in counts.values()], color="tab:purple")
    ax.set_xticks(range(len(labels)), labels, rotation=45 if len(labels) > 5 else 0, ha="right", fontsize=7)
    ax.set_title(title, fontsize=9)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    return _png(fig)


def curves_png(
    series: Mapping[str, Sequence[tuple[float, float]]], title: str, xlabel: str = "step", ylabel: str = "loss"
) -> bytes:
    """One line per named series of (x, y) points."""
    if not any(series.values()):
        raise ValueError(f"curve {title!r}: no points")
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=FIGSIZE)
    for name, points in series.items():
        if points:
            xs, ys = zip(*sorted(points))
            ax.plot(xs, ys, marker="." if len(xs) < 30 else None, label=name)
    ax.set_title(title, fontsize=9)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if len(series) > 1:
        ax.legend(fontsize=7)
    return _png(fig)


def histogram_markdown(counts: Mapping[str, float], title: str, **labels: str) -> str:
    return markdown_image(histogram_png(counts, title, **labels), title)


def curve_markdown(points: Mapping[str, float], title: str, **labels: str) -> str:
    """A curve given as {x: y} with numeric-string keys, as the assets' loss_curve metadata holds it."""
    return markdown_image(
        curves_png({title: [(float(x), float(y)) for x, y in points.items()]}, title, **labels), title
    )
