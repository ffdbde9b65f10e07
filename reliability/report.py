"""``faults-results.json`` and the markdown table made from it."""

from __future__ import annotations

import platform
import subprocess
from pathlib import Path
from typing import Any

import orjson

from reliability.services import REPO

COLUMNS = [
    ("scenario", "scenario"),
    ("sent", "sent"),
    ("responses", "responses"),
    ("lost", "lost"),
    ("clickhouse_rows", "CH rows"),
    ("duplicates_raw", "dup raw"),
    ("usage_overcount", "usage extra"),
    ("duplicates_final", "dup FINAL"),
    ("output_duplicates", "out dup"),
    ("output_missing", "out missing"),
    ("dead_letters", "dead letters"),
    ("dead_letter_duplicates", "DL dup"),
    ("poison", "poison"),
    ("recovery_s", "recovery s"),
    ("max_lag", "max lag"),
    ("seconds", "took s"),
    ("passed", "pass"),
]


def git_revision() -> str:
    done = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        check=False,
    )
    return done.stdout.strip() or "unknown"


def machine() -> dict[str, Any]:
    import os  # noqa: PLC0415 - only here

    return {
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "system": platform.platform(),
    }


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "**NO**"
    return str(value)


def _reasons(row: dict[str, Any]) -> str:
    got = row["dead_letters_by_reason"]
    expected = row["poison_dead_letters_expected"]
    parts = [
        f"{reason} {got.get(reason, 0)}/{expected.get(reason, 0)}"
        for reason in sorted(set(got) | set(expected))
    ]
    return ", ".join(parts) or "none"


def markdown(results: dict[str, Any]) -> str:
    """The table of every scenario, then the dead letters by reason and the checks."""
    rows = results["scenarios"]
    lines = [
        f"Profile `{results['profile']['name']}`, revision `{results['git']}`, "
        f"{results['started']} UTC, {results['seconds']:.0f} s in all.",
        "",
        "| " + " | ".join(title for _, title in COLUMNS) + " |",
        "|" + "|".join("---" if key == "scenario" else "---:" for key, _ in COLUMNS) + "|",
    ]
    lines += ["| " + " | ".join(_cell(row.get(key)) for key, _ in COLUMNS) + " |" for row in rows]
    lines += [
        "",
        "Dead letters by reason (read from the topic / expected from the poison sent):",
        "",
    ]
    lines += [f"- `{row['scenario']}`: {_reasons(row)}" for row in rows]
    lines += ["", "Evidence that each fault happened:", ""]
    for row in rows:
        checks = "; ".join(f"{name}: {_cell(ok)}" for name, ok in row["checks"].items())
        extra = f" ({row['error']})" if row.get("error") else ""
        notes = f" {'; '.join(row['notes'])}." if row.get("notes") else ""
        lines.append(f"- `{row['scenario']}`: {checks or 'none'}.{notes}{extra}")
    return "\n".join(lines) + "\n"


def write(path_json: Path, path_md: Path, results: dict[str, Any]) -> None:
    path_json.write_bytes(orjson.dumps(results, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS))
    path_md.write_text(markdown(results), encoding="utf-8")
