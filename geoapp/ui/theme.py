"""Look of the app: system fonts only (no web-font request, so offline pages stay offline) and CSS."""

from __future__ import annotations

import gradio as gr

SANS = ("Segoe UI", "Helvetica Neue", "Arial", "Liberation Sans", "sans-serif")
MONO = ("Consolas", "DejaVu Sans Mono", "Liberation Mono", "monospace")

CSS = """
.geoapp-random {background:#b3261e; color:#fff; padding:10px 14px; border-radius:6px; font-size:15px;
  margin:4px 0; box-shadow:0 1px 3px rgba(0,0,0,.25);}
.geoapp-random b, .geoapp-random code, .geoapp-random strong {color:#fff; letter-spacing:.02em;}
.geoapp-random code {background:rgba(255,255,255,.18); padding:0 4px; border-radius:3px;}
.geoapp-error {background:#fdecea; color:#611a15; border:1px solid #f5c2c0; padding:8px 12px; border-radius:6px; margin:4px 0;}
.geoapp-warning {background:#fff8e1; color:#5d4200; border:1px solid #ffe08a; padding:6px 12px; border-radius:6px; margin:4px 0;}
.geoapp-error ul, .geoapp-warning ul {margin:4px 0 0 18px; padding:0;}
.geoapp-notice {background:#e8f0fe; color:#0b2a5b; border:1px solid #b6ccf5; padding:10px 14px; border-radius:6px;}
.geoapp-notice code {white-space:nowrap;}
#geoapp-header h1 {margin-bottom:0;}
/* Tables (Gradio's data frame: th headers, div[role=gridcell] cells): text wraps between words, so headers,
   ids, hashes and numbers stay whole; only a word wider than its column (a long file name) breaks. The
   column widths leave each column room for its longest header word and value. */
.geoapp-table th, .geoapp-table th *, .geoapp-table [role=gridcell], .geoapp-table [role=gridcell] *,
.geoapp-table td, .geoapp-table td * {word-break:normal !important; overflow-wrap:break-word !important;
  hyphens:none !important;}
.geoapp-table [role=gridcell], .geoapp-table td {font-variant-numeric:tabular-nums;}
/* Long paths (the case store) wrap inside their box instead of running out of it. */
#geoapp-case-store, #geoapp-case-store code {overflow-wrap:anywhere;}
"""


def build_theme() -> gr.themes.Base:
    """Gradio's default look with system fonts (the default theme would fetch none, but say so explicitly)."""
    return gr.themes.Default(primary_hue="blue", font=SANS, font_mono=MONO)
