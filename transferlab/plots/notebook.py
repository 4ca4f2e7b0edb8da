"""How a lesson stores its figures: interactive where JavaScript runs, a PNG where it does not."""

from __future__ import annotations

import warnings

import plotly.io as pio

INTERACTIVE = "plotly_mimetype+notebook_connected"


def notebook_renderers() -> str:
    """Set Plotly's renderers for a notebook and return them.

    Each figure is stored three ways: Plotly's own mimetype (interactive in JupyterLab), HTML that
    loads plotly.js from a CDN (nbviewer), and a PNG, for viewers that run no JavaScript, such as
    a repository's web view. The PNG needs kaleido and a Chrome or Chromium; without them the
    figures stay interactive only, and this says so once.
    """
    # kaleido's server ignores per-figure browser options and says so for every figure.
    warnings.filterwarnings("ignore", message="The kopts argument is ignored", category=UserWarning)
    try:
        import kaleido

        kaleido.start_sync_server(silence_warnings=True)  # one browser for every figure: 0.3 s each
        pio.to_image({"data": []}, format="png", width=10, height=10)
        renderers = INTERACTIVE + "+png"
    except Exception as error:  # noqa: BLE001 (no kaleido, no browser, a browser that will not start)
        print(f"Figures are interactive only: no PNG copies ({type(error).__name__}: {error}).")
        renderers = INTERACTIVE
    pio.renderers.default = renderers
    if renderers != INTERACTIVE:
        pio.renderers["png"].width, pio.renderers["png"].height = 900, 500
    return renderers
