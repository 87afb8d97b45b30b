"""Write a benchmark's figures into one ``## <title>`` section of a Markdown file, keeping the rest."""

from __future__ import annotations

from pathlib import Path


def write_section(path: Path, title: str, body: str) -> None:
    """Replace the ``## title`` section of ``path`` with ``body`` (append it when missing; create the
    file with a heading when it does not exist). Other sections are left exactly as they were."""
    heading = f"## {title}"
    text = path.read_text(encoding="utf-8") if path.exists() else "# Performance\n"
    lines = text.splitlines()
    start = next((i for i, line in enumerate(lines) if line.strip() == heading), None)
    section = [heading, "", *body.rstrip("\n").splitlines()]
    if start is None:
        out = [*lines, *([""] if lines and lines[-1].strip() else []), *section]
    else:
        end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
        tail = lines[end:]
        out = [*lines[:start], *section, *([""] if tail else []), *tail]
    path.write_text("\n".join(out) + "\n", encoding="utf-8")
