"""``fastpanel info FILE --entity COL --time COL``: the structure of a panel data file."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd

from fastpanel.cli._common import CLIError, add_global_options, echo
from fastpanel.cli.io import csv_header, read_table, require_columns

__all__ = ["register", "run", "panel_info"]


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("info", help="panel structure of a data file (N, T, balance, gaps, missing)",
                       description="Describe the panel structure of FILE: entities, periods, "
                       "balance, gaps, missing values per column and duplicate keys. Exits with "
                       "code 1 when (entity, time) keys are duplicated.",
                       epilog="example: fastpanel info data.csv --entity city --time year")
    p.add_argument("file", help="CSV, Parquet, Stata .dta or Excel file")
    p.add_argument("--entity", required=True, metavar="COL", help="entity (panel unit) column")
    p.add_argument("--time", required=True, metavar="COL", help="time column")
    p.add_argument("--json", action="store_true", help="print the description as JSON")
    add_global_options(p, suppress=True)
    p.set_defaults(handler=run)


def panel_info(frame: pd.DataFrame, entity: str, time: str) -> dict:
    """Panel structure of ``frame``: N, T, balance, gaps, missing values, duplicate keys."""
    keys = frame[[entity, time]]
    n_missing_keys = int(keys.isna().any(axis=1).sum())
    keys = keys.dropna()
    n_entities = int(keys[entity].nunique())
    periods = pd.Index(keys[time].unique())
    try:
        periods = periods.sort_values()
    except TypeError:
        pass
    duplicates = int(keys.duplicated().sum())
    unique = keys.drop_duplicates()
    per_entity = unique.groupby(entity, sort=False)[time].nunique()
    n_periods = len(periods)
    # balance is a property of the distinct keys: duplicated keys are reported as duplicates
    balanced = bool(n_missing_keys == 0 and (per_entity == n_periods).all())
    # A gap: an entity observed in two periods but not in a period between them.
    position = pd.Series(range(n_periods), index=periods)
    pos = unique[time].map(position)
    span = pos.groupby(unique[entity], sort=False).agg(["min", "max", "count"])
    gaps = span["max"] - span["min"] + 1 - span["count"]
    return {
        "rows": int(len(frame)),
        "columns": int(frame.shape[1]),
        "entities": n_entities,
        "periods": n_periods,
        "first_period": str(periods[0]) if n_periods else None,
        "last_period": str(periods[-1]) if n_periods else None,
        "balanced": balanced,
        "min_periods_per_entity": int(per_entity.min()) if len(per_entity) else 0,
        "max_periods_per_entity": int(per_entity.max()) if len(per_entity) else 0,
        "entities_with_gaps": int((gaps > 0).sum()),
        "missing_periods_in_gaps": int(gaps.sum()),
        "rows_with_missing_keys": n_missing_keys,
        "duplicate_keys": duplicates,
        "missing_by_column": {str(c): int(v) for c, v in frame.isna().sum().items()},
        "dtypes": {str(c): str(t) for c, t in frame.dtypes.items()},
    }


# Above this many columns only the key columns are read (a header of 1,000,000 columns must not
# cost minutes and gigabytes when the command needs two of them).
_MAX_COLUMNS_READ = 1000


def run(args: argparse.Namespace) -> int:
    path = Path(args.file)
    header = csv_header(path) if path.is_file() and path.stat().st_size else None
    columns = None
    if header:
        present = set(header)
        missing = [c for c in (args.entity, args.time) if c not in present]
        if missing and len(header) <= _MAX_COLUMNS_READ:
            require_columns(pd.DataFrame(columns=header), missing, args.file)  # names close matches
        elif missing:
            raise CLIError(f"column {missing[0]!r} is not in {args.file}")
        if len(header) > _MAX_COLUMNS_READ:
            columns = [args.entity, args.time]
    frame = read_table(args.file, columns=columns)
    require_columns(frame, [args.entity, args.time], args.file)
    info = panel_info(frame, args.entity, args.time)
    if columns is not None:
        info["columns"] = len(header)
        info["columns_read"] = columns
        echo(args, f"note: {len(header):,} columns; only {', '.join(columns)} were read "
                   "(missing values are shown for those)")
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        width = 26
        lines = [f"file: {args.file}",
                 f"{'rows x columns':<{width}}{info['rows']:,} x {info['columns']}",
                 f"{'entities (N)':<{width}}{info['entities']:,}  ({args.entity})",
                 f"{'periods (T)':<{width}}{info['periods']:,}  ({args.time}: "
                 f"{info['first_period']} .. {info['last_period']})",
                 f"{'balanced':<{width}}{'yes' if info['balanced'] else 'no'}",
                 f"{'periods per entity':<{width}}{info['min_periods_per_entity']} .. "
                 f"{info['max_periods_per_entity']}",
                 f"{'entities with gaps':<{width}}{info['entities_with_gaps']:,} "
                 f"({info['missing_periods_in_gaps']:,} missing periods)",
                 f"{'rows with missing keys':<{width}}{info['rows_with_missing_keys']:,}",
                 f"{'duplicate (entity, time)':<{width}}{info['duplicate_keys']:,}",
                 "missing values per column:"]
        for column, n_missing in info["missing_by_column"].items():
            lines.append(f"  {column:<{width - 2}}{n_missing:,}  [{info['dtypes'][column]}]")
        echo(args, "\n".join(lines), force=True)
    if info["duplicate_keys"]:
        raise CLIError(f"{info['duplicate_keys']} duplicate ({args.entity}, {args.time}) keys in "
                       f"{args.file}; each entity may appear once per period")
    return 0
