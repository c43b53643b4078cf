"""Reading the user's data files (CSV, Parquet, Stata .dta, Excel) with one-line errors.

Every problem raises :class:`~fastpanel.cli._common.CLIError` with a message naming the file
and the problem: missing file, unknown format, unreadable or empty file, missing columns (with
close matches), text where numbers are needed, duplicate (entity, time) keys.
"""

from __future__ import annotations

import difflib
import re
from pathlib import Path

import pandas as pd

from fastpanel.cli._common import CLIError

__all__ = [
    "FORMATS",
    "read_table",
    "require_columns",
    "require_numeric",
    "check_duplicate_keys",
    "formula_columns",
]

FORMATS = {
    ".csv": "CSV", ".tsv": "TSV", ".txt": "CSV", ".parquet": "Parquet", ".pq": "Parquet",
    ".dta": "Stata", ".xlsx": "Excel", ".xlsm": "Excel", ".xls": "Excel",
}


def csv_header(path: str | Path) -> list[str] | None:
    """Column names of a comma-separated file from its first line (no data parsed), or None
    when the file is not a plain CSV."""
    import csv

    path = Path(path)
    if path.suffix.lower() != ".csv":
        return None
    with open(path, newline="", encoding="utf-8", errors="replace") as f:
        line = f.readline()
    return next(csv.reader([line])) if line else []


def read_table(path: str | Path, columns: list[str] | None = None) -> pd.DataFrame:
    """Read a data file into a DataFrame, choosing the reader from the file extension.

    Parameters
    ----------
    path : str or Path
        A ``.csv``/``.tsv``/``.txt``, ``.parquet``/``.pq``, ``.dta`` or ``.xlsx``/``.xls`` file.
    columns : list of str, optional
        Read only these columns (those not in the file are skipped; callers check them).

    Returns
    -------
    pandas.DataFrame

    Raises
    ------
    CLIError
        The file is missing, a directory, empty, of an unknown format or unreadable.
    """
    path = Path(path)
    if not path.exists():
        raise CLIError(f"file not found: {path}")
    if path.is_dir():
        raise CLIError(f"{path} is a directory, not a data file")
    suffix = path.suffix.lower()
    kind = FORMATS.get(suffix)
    if kind is None:
        known = ", ".join(sorted(FORMATS))
        raise CLIError(f"unknown file format {suffix or '(no extension)'!r} for {path}; "
                       f"use one of {known}")
    if path.stat().st_size == 0:
        raise CLIError(f"file {path} is empty")
    wanted = None if columns is None else set(columns)
    usecols = None if wanted is None else (lambda c: c in wanted)
    try:
        if kind in ("CSV", "TSV"):
            if kind == "TSV":
                frame = pd.read_csv(path, sep="\t", usecols=usecols)
            elif suffix == ".txt":  # delimiter sniffed
                frame = pd.read_csv(path, sep=None, engine="python", usecols=usecols)
            elif wanted is not None and (header := csv_header(path)) is not None:
                # a list (not a callable) lets the parser skip the other columns cheaply
                frame = pd.read_csv(path, usecols=[c for c in header if c in wanted])
            else:
                frame = pd.read_csv(path, usecols=usecols)
        elif kind == "Parquet":
            if wanted is not None:
                import pyarrow.parquet as pq

                names = pq.read_schema(path).names
                frame = pd.read_parquet(path, columns=[c for c in names if c in wanted])
            else:
                frame = pd.read_parquet(path)
        elif kind == "Stata":
            frame = pd.read_stata(path)
            if wanted is not None:
                frame = frame[[c for c in frame.columns if c in wanted]]
        else:
            frame = pd.read_excel(path, usecols=usecols)
    except ImportError as exc:
        extra = {"Parquet": "pyarrow", "Excel": "openpyxl"}.get(kind, str(exc))
        raise CLIError(f"reading {kind} files needs an optional package: pip install {extra} "
                       f"({exc})") from exc
    except pd.errors.EmptyDataError:
        raise CLIError(f"file {path} has no data (no header and no rows)") from None
    except (ValueError, OSError, UnicodeDecodeError, pd.errors.ParserError) as exc:
        message = " ".join(str(exc).split())
        raise CLIError(f"could not read {path} as {kind}: {message}") from exc
    except Exception as exc:  # noqa: BLE001 - third-party readers raise their own types
        message = " ".join(str(exc).split()) or type(exc).__name__
        raise CLIError(f"could not read {path} as {kind}: {message}") from exc
    if len(frame) == 0 or (frame.shape[1] == 0 and wanted is None):
        raise CLIError(f"file {path} has no data rows")
    return frame


def require_columns(frame: pd.DataFrame, columns: list[str], source: str) -> None:
    """Raise if any of ``columns`` is missing, naming close matches."""
    available = [str(c) for c in frame.columns]
    for column in columns:
        if column not in frame.columns:
            close = difflib.get_close_matches(column, available, n=3)
            hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
            shown = ", ".join(available[:12]) + (", ..." if len(available) > 12 else "")
            raise CLIError(f"column {column!r} not found in {source}{hint} (columns: {shown})")


def require_numeric(frame: pd.DataFrame, columns: list[str], source: str) -> None:
    """Raise if a column that must hold numbers holds text, showing the first offending value."""
    for column in columns:
        series = frame[column]
        if pd.api.types.is_bool_dtype(series) or pd.api.types.is_numeric_dtype(series):
            continue
        converted = pd.to_numeric(series, errors="coerce")
        bad = series[converted.isna() & series.notna()]
        example = f" (row {bad.index[0] + 1}: {bad.iloc[0]!r})" if len(bad) else ""
        raise CLIError(f"column {column!r} in {source} is not numeric{example}; "
                       "clean it or declare it categorical with C(...)")


def check_duplicate_keys(frame: pd.DataFrame, entity: str, time: str, source: str) -> None:
    """Raise if an (entity, time) pair occurs more than once."""
    duplicated = frame.duplicated([entity, time], keep=False)
    if duplicated.any():
        first = frame.loc[duplicated, [entity, time]].iloc[0]
        n_dup = int(frame.duplicated([entity, time]).sum())
        raise CLIError(f"{n_dup} duplicate ({entity}, {time}) keys in {source}, e.g. "
                       f"({first[entity]!r}, {first[time]!r}); each entity may appear once per period")


_IDENT = re.compile(r"[A-Za-z_][A-Za-z_0-9.]*")


def formula_columns(formula: str, frame: pd.DataFrame, source: str = "the data"
                    ) -> tuple[list[str], list[str], list[str]]:
    """Columns named in ``formula``: (numeric-use columns, categorical-use columns, FE columns).

    Identifiers inside ``C(...)`` are categorical uses; names after ``|`` are fixed effects, except
    those of a final IV part ``| d ~ z``, which are numeric.
    A name that is neither a column nor called as a function raises :class:`CLIError`
    naming close matches.
    """
    if "~" not in formula:
        raise CLIError(f"formula {formula!r} has no '~'; write it as \"y ~ x1 + x2 | entity + time\"")
    formula = re.sub(r"(['\"]).*?\1", " ", formula)  # quoted strings are not column names
    main, _, effects = formula.partition("|")
    parts = effects.split("|") if effects else []
    if parts and "~" in parts[-1]:  # the IV part 'd ~ z' of 'y ~ x | fe | d ~ z': numeric columns
        main = f"{main} + {parts[-1].replace('~', '+')}"
        effects = "|".join(parts[:-1])
    unknown = [m.group(1) for m in re.finditer(r"([A-Za-z_][A-Za-z_0-9.]*)\s*(\()?", formula)
               if m.group(2) is None and m.group(1) not in frame.columns]
    if unknown:
        require_columns(frame, unknown[:1], source)
    categorical = []
    for inner in re.findall(r"C\(([^)]*)\)", main):
        categorical += [t for t in _IDENT.findall(inner) if t in frame.columns]
    numeric_part = re.sub(r"C\([^)]*\)", " ", main)
    numeric = [t for t in dict.fromkeys(_IDENT.findall(numeric_part)) if t in frame.columns]
    fixed = [t for t in dict.fromkeys(_IDENT.findall(effects)) if t in frame.columns]
    return numeric, categorical, fixed
