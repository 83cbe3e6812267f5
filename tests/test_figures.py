"""PNG figures and data: URI Markdown images (what the UI shows for plots and the report)."""

import base64
import io
import re

import matplotlib.image
import pytest

from assets.common import plots_of
from assets.evaluation import report_metadata
from ual_dagster.figures import (
    PNG_MAGIC,
    curves_png,
    histogram_png,
    inline_markdown_images,
    markdown_image,
    png_data_uri,
)

DATA_URI = re.compile(r"!\[(?P<alt>[^\]]*)\]\(data:image/png;base64,(?P<b64>[A-Za-z0-9+/=]+)\)")


def decode(markdown: str) -> list[tuple[str, object]]:
    """(alt, decoded image array) of every data: URI image in `markdown`."""
    return [
        (m["alt"], matplotlib.image.imread(io.BytesIO(base64.b64decode(m["b64"])), format="png"))
        for m in DATA_URI.finditer(markdown)
    ]


def test_histogram_and_curves_are_real_pngs():
    hist = histogram_png({"0.0-0.5": 3, "0.5-1.0": 7}, "scores")
    curve = curves_png({"sft": [(1, 2.0), (2, 1.5)], "ual": [(1, 2.1), (2, 1.4)]}, "loss")
    for png in (hist, curve):
        assert png.startswith(PNG_MAGIC)
        image = matplotlib.image.imread(io.BytesIO(png), format="png")
        assert image.shape[0] > 100 and image.shape[1] > 100
        assert image[..., :3].std() > 0.05  # something is drawn, not a blank canvas
    with pytest.raises(ValueError, match="no bins"):
        histogram_png({}, "empty")


def test_data_uri_round_trips_and_refuses_non_png(tmp_path):
    png = histogram_png({"a": 1}, "t")
    assert base64.b64decode(png_data_uri(png).split(",", 1)[1]) == png
    (tmp_path / "x.png").write_bytes(png)
    assert png_data_uri(tmp_path / "x.png") == png_data_uri(png)
    (tmp_path / "fake.png").write_text("<html>not found</html>")
    with pytest.raises(ValueError, match=r"not a PNG image .*fake\.png"):
        png_data_uri(tmp_path / "fake.png")
    assert decode(markdown_image(png, "a [b]"))[0][0] == "a (b)"  # brackets would end the alt text


def test_relative_links_are_inlined_and_others_left_alone(tmp_path):
    png = histogram_png({"a": 1}, "t")
    (tmp_path / "deltas.png").write_bytes(png)
    md = (
        "# R\n\n![deltas](deltas.png)\n\n![gone](missing.png)\n\n![web](https://example.org/x.png)\n"
        "![deltas again](deltas.png)"
    )
    out, inlined = inline_markdown_images(md, tmp_path)
    assert inlined == [tmp_path / "deltas.png"] * 2
    assert [alt for alt, _ in decode(out)] == ["deltas", "deltas again"]
    assert "![gone](missing.png)" in out and "![web](https://example.org/x.png)" in out
    assert "](deltas.png)" not in out


def test_report_metadata_embeds_every_plot(tmp_path):
    png = histogram_png({"a": 1}, "t")
    for name in ("deltas", "uncertainty", "extra"):
        (tmp_path / f"{name}.png").write_bytes(png)
    md_path = tmp_path / "report.md"
    text = "# UAL vs SFT\n\n![deltas](deltas.png)\n\n![uncertainty](uncertainty.png)\n"
    meta = report_metadata(md_path, text, [str(tmp_path / f"{n}.png") for n in ("deltas", "uncertainty", "extra")])
    assert meta["report"].value == str(md_path)
    assert [alt for alt, _ in decode(meta["preview"].value)] == ["deltas", "uncertainty"]
    assert set(meta) == {"report", "preview", "plot_extra"}  # the plot the Markdown does not show
    assert [alt for alt, _ in decode(meta["plot_extra"].value)] == ["extra"]


def test_histograms_and_loss_curves_in_metadata_get_pictures():
    meta = {
        "score_histogram": {"[0.0,0.5)": 4, "[0.5,1.0]": 6},
        "eps_histogram": {"min": 0.0, "max": 0.2, "histogram": {"0.00": 3, "0.10": 5}},
        "loss_curve_seed_0": {"25": 3.2, "50": 2.9},
        "reject_reasons": {"empty output": 2},  # not a histogram by name: no picture
        "n_kept": 10,
    }
    plots = plots_of(meta)
    assert set(plots) == {"score_histogram_plot", "eps_histogram_plot", "loss_curve_seed_0_plot"}
    for value in plots.values():
        assert len(decode(value.value)) == 1
