"""The README's configuration reference is generated from the annotated config.yaml.

Regenerate it with `.venv/bin/python -m tests.test_docs > /tmp/table.md` and paste it between the
`config-table` markers of README.md.
"""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
START, END = "<!-- config-table:start -->", "<!-- config-table:end -->"


def config_table() -> str:
    """Markdown table of every key in config.yaml: dotted key, default, its comment."""
    stack: list[tuple[int, str]] = []
    rows = ["| key | default | what it does |", "|---|---|---|"]
    for line in (ROOT / "config.yaml").read_text(encoding="utf-8").splitlines():
        match = re.match(r"^(\s*)([A-Za-z_]+):\s*(.*)$", line)
        if line.lstrip().startswith("#") or match is None:
            continue
        indent, key, rest = len(match.group(1)), match.group(2), match.group(3)
        while stack and stack[-1][0] >= indent:
            stack.pop()
        value, _, comment = rest.partition("#")
        if not value.strip():
            stack.append((indent, key))
            continue
        dotted = ".".join([name for _, name in stack] + [key])
        text = " ".join(comment.split()).replace("|", "\\|")
        rows.append(f"| `{dotted}` | `{value.strip()}` | {text} |")
    return "\n".join(rows)


def test_readme_config_reference_matches_config_yaml() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    block = readme.split(START, 1)[1].split(END, 1)[0].strip()
    assert block == config_table(), "README config table is stale: see this module's docstring"


def test_every_config_key_is_explained() -> None:
    for row in config_table().splitlines()[2:]:
        assert not row.endswith("|  |"), f"config.yaml key without a comment: {row}"


if __name__ == "__main__":
    import sys

    sys.stdout.write(config_table() + "\n")
