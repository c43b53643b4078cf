"""A report folder: report.md, a self-contained report.html, .tex tables, PNG figures and JSON.

The folder is written to a temporary sibling directory and moved into place only when every
file is complete, so an interrupted or failed run never leaves a partial report that looks
finished. An existing folder is replaced only if it is empty or a previous fastpanel report.
"""

from __future__ import annotations

import base64
import contextlib
import html
import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastpanel.report.results import to_jsonable

__all__ = ["Report", "ReportWriteError", "RESULTS_FILE", "check_output_dir"]

RESULTS_FILE = "results.json"
_GENERATOR = "fastpanel"

_CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;max-width:60rem;margin:2rem auto;
padding:0 1rem;color:#222;line-height:1.45}
h1{border-bottom:2px solid #1f4e79}h2{color:#1f4e79;margin-top:2rem}
table{border-collapse:collapse;margin:1rem 0;font-size:.9rem}
th,td{padding:.25rem .6rem;border-bottom:1px solid #ddd;text-align:right}
th:first-child,td:first-child{text-align:left}caption{font-weight:600;text-align:left;padding:.3rem 0}
.notes{font-size:.8rem;color:#555}.banner{background:#fff4d6;border:1px solid #e0c060;padding:.6rem 1rem}
pre{background:#f6f6f6;padding:.6rem;overflow-x:auto;font-size:.85rem}figure{margin:1rem 0}
figcaption{font-size:.85rem;color:#444}img{max-width:100%}
"""


class ReportWriteError(OSError):
    """The report folder cannot be written (permissions, not a directory, not ours to replace)."""


@dataclass
class _Block:
    kind: str  # heading | paragraph | banner | table | figure | code
    text: str = ""
    level: int = 2
    md: str = ""
    html: str = ""
    name: str = ""
    data: bytes = b""


@dataclass
class Report:
    """Collects headings, paragraphs, tables and figures, then writes the report folder.

    Parameters
    ----------
    title : str
        Report title (first heading).
    """

    title: str
    blocks: list[_Block] = field(default_factory=list)
    files: dict[str, bytes] = field(default_factory=dict)
    results: dict[str, Any] = field(default_factory=dict)

    def heading(self, text: str, level: int = 2) -> None:
        """Add a section heading."""
        self.blocks.append(_Block("heading", text=text, level=level))

    def paragraph(self, text: str) -> None:
        """Add a paragraph of plain text."""
        self.blocks.append(_Block("paragraph", text=text))

    def banner(self, text: str) -> None:
        """Add a highlighted notice (e.g. that the data are synthetic)."""
        self.blocks.append(_Block("banner", text=text))

    def code(self, text: str) -> None:
        """Add a preformatted block."""
        self.blocks.append(_Block("code", text=text))

    def table(self, md: str, html_table: str, *, tex: str | None = None,
              tex_name: str | None = None) -> None:
        """Add a table given in Markdown and HTML; ``tex`` is also written as ``tex_name``."""
        self.blocks.append(_Block("table", md=md, html=html_table, name=tex_name or ""))
        if tex is not None:
            if not tex_name:
                raise ValueError("tex_name is required when tex is given")
            self.files[tex_name] = tex.encode()

    def figure(self, name: str, png: bytes, caption: str) -> None:
        """Add a PNG figure: written as ``name``, embedded as a data URI in the HTML."""
        if not png.startswith(b"\x89PNG\r\n\x1a\n"):
            raise ValueError(f"figure {name!r} is not PNG data")
        self.blocks.append(_Block("figure", name=name, text=caption, data=png))
        self.files[name] = png

    # -- rendering ---------------------------------------------------------------------------
    def to_markdown(self) -> str:
        """The report as Markdown (figures referenced as files beside it)."""
        out = [f"# {self.title}", ""]
        for b in self.blocks:
            if b.kind == "heading":
                out += ["#" * b.level + " " + b.text, ""]
            elif b.kind == "paragraph":
                out += [b.text, ""]
            elif b.kind == "banner":
                out += [f"> **{b.text}**", ""]
            elif b.kind == "code":
                out += ["```", b.text, "```", ""]
            elif b.kind == "table":
                out += [b.md, ""]
            elif b.kind == "figure":
                out += [f"![{b.text}]({b.name})", "", f"*{b.text}*", ""]
        return "\n".join(out)

    def to_html(self) -> str:
        """The report as one self-contained HTML page: figures are base64 data URIs."""
        out = ["<!DOCTYPE html>", "<html lang=\"en\"><head><meta charset=\"utf-8\">",
               f"<title>{html.escape(self.title)}</title>", f"<style>{_CSS}</style>",
               "</head><body>", f"<h1>{html.escape(self.title)}</h1>"]
        for b in self.blocks:
            if b.kind == "heading":
                out.append(f"<h{b.level}>{html.escape(b.text)}</h{b.level}>")
            elif b.kind == "paragraph":
                out.append(f"<p>{html.escape(b.text)}</p>")
            elif b.kind == "banner":
                out.append(f"<p class=\"banner\"><strong>{html.escape(b.text)}</strong></p>")
            elif b.kind == "code":
                out.append(f"<pre>{html.escape(b.text)}</pre>")
            elif b.kind == "table":
                out.append(b.html)
            elif b.kind == "figure":
                data = base64.b64encode(b.data).decode("ascii")
                out.append(f"<figure><img alt=\"{html.escape(b.text)}\" "
                           f"src=\"data:image/png;base64,{data}\">"
                           f"<figcaption>{html.escape(b.text)}</figcaption></figure>")
        out.append("</body></html>")
        return "\n".join(out)

    # -- writing -------------------------------------------------------------------------------
    def write(self, out_dir: str | os.PathLike[str]) -> Path:
        """Write the folder atomically and return its path.

        Raises
        ------
        ReportWriteError
            The location cannot be written, or it holds files that are not a fastpanel report.
        """
        target = Path(out_dir).resolve()
        _check_replaceable(target)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.partial-", dir=target.parent))
        except OSError as exc:
            raise ReportWriteError(f"cannot write the report to {target}: {exc.strerror or exc}") from exc
        try:
            names = sorted({*self.files, "report.md", "report.html", RESULTS_FILE})
            payload = {"generator": _GENERATOR, "files": names, **to_jsonable(self.results)}
            contents = {**self.files,
                        "report.md": self.to_markdown().encode(),
                        "report.html": self.to_html().encode(),
                        RESULTS_FILE: json.dumps(payload, indent=2, allow_nan=False).encode()}
            for name, data in contents.items():
                (staging / name).write_bytes(data)
            os.chmod(staging, 0o755)
            if target.exists():
                # A previous report: replace only the files a report writes (its manifest and
                # this one's), each atomically; anything the user added there stays.
                previous = set(_manifest(target)) | set(names)
                for name in previous - set(names):
                    with contextlib.suppress(FileNotFoundError):
                        (target / name).unlink()
                for name in names:
                    os.replace(staging / name, target / name)
                shutil.rmtree(staging, ignore_errors=True)
            else:
                os.rename(staging, target)
        except OSError as exc:
            shutil.rmtree(staging, ignore_errors=True)
            raise ReportWriteError(f"cannot write the report to {target}: {exc.strerror or exc}") from exc
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return target


def check_output_dir(out_dir: str | os.PathLike[str]) -> None:
    """Raise :class:`ReportWriteError` now if :meth:`Report.write` would refuse ``out_dir``.

    Lets a long computation fail fast, before any work, on an unusable output location.
    """
    target = Path(out_dir).resolve()
    _check_replaceable(target)
    parent = next((p for p in [target.parent, *target.parent.parents] if p.exists()), None)
    if parent is None or not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise ReportWriteError(f"cannot write the report to {target}: {parent} is not a writable directory")


# what a report folder held before the manifest was recorded in results.json
_KNOWN_FILES = ("report.html", "report.md", "results.json", "lr_curve.png", "coefficients.png",
                "table_fixed_effects.tex", "table_threshold_tests.tex", "table_threshold.tex",
                "table_cross_sections.tex")


def _manifest(target: Path) -> list[str]:
    """Names of the files a previous report wrote into ``target`` (plain names only)."""
    try:
        files = json.loads((target / RESULTS_FILE).read_text()).get("files")
    except (OSError, ValueError, AttributeError):
        files = None
    if not isinstance(files, list):
        files = list(_KNOWN_FILES)
    return [f for f in files if isinstance(f, str) and f == Path(f).name and not f.startswith(".")]


def _check_replaceable(target: Path) -> None:
    if not target.exists():
        return
    if not target.is_dir():
        raise ReportWriteError(f"cannot write the report to {target}: it exists and is not a directory")
    entries = list(target.iterdir())
    if not entries:
        return
    marker = target / RESULTS_FILE
    try:
        if json.loads(marker.read_text()).get("generator") == _GENERATOR:
            return
    except (OSError, ValueError, AttributeError):
        pass
    raise ReportWriteError(f"{target} is not empty and is not a previous fastpanel report; "
                           "choose a new or empty directory")
