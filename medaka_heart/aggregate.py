"""Pure tables across videos: the conditions table (n, mean and SD per group) of a run."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from .schema import USABLE_STATUSES

CONDITION_METRICS = ("hr_bpm", "ef_pct", "fs_minor_pct")
USABLE_STATUS = USABLE_STATUSES  # reused (or, before, skipped) = an earlier run's results


def conditions_table(summary: pd.DataFrame, group_by: Sequence[str] = (),
                     metrics: Sequence[str] = CONDITION_METRICS) -> pd.DataFrame:
    """One row per value (combination) of the `group_by` columns of summary.csv.

    Columns: the group columns, n_videos (analysed), n_failed, then `<metric>_mean` and
    `<metric>_sd` (SD with ddof=1, NaN for one video) of each metric over the analysed videos.
    Without `group_by`, one row for the whole run. Rows are sorted by group value.
    """
    missing = [c for c in group_by if c not in summary.columns]
    if missing:
        raise ValueError(f"cannot group by {', '.join(missing)}: no such column "
                         f"(columns: {', '.join(map(str, summary.columns))})")
    table = summary.copy()
    table["_usable"] = table["status"].isin(USABLE_STATUS)
    for m in metrics:
        table[m] = pd.to_numeric(table[m], errors="coerce").where(table["_usable"])
    keys = list(group_by)
    if not keys:
        table["_all"] = "all"
        keys = ["_all"]
    for k in keys:  # group on text, so that empty cells form a group of their own
        table[k] = table[k].astype("string").fillna("")
    rows = []
    for values, group in table.groupby(keys, sort=True, dropna=False):
        values = values if isinstance(values, tuple) else (values,)
        row = dict(zip(keys, values, strict=True))
        row["n_videos"] = int(group["_usable"].sum())
        row["n_failed"] = int((group["status"] == "failed").sum())
        for m in metrics:
            v = group[m].to_numpy(dtype=float)
            v = v[np.isfinite(v)]
            row[f"{m}_mean"] = float(v.mean()) if v.size else np.nan
            row[f"{m}_sd"] = float(v.std(ddof=1)) if v.size > 1 else np.nan
        rows.append(row)
    out = pd.DataFrame(rows)
    return out.drop(columns=["_all"]) if "_all" in out.columns else out
