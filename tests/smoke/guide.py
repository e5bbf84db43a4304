"""The researcher's guide (docs/*.md) as the tests read it: its pages and the code blocks in them.

Each example lives once, in the guide, as a fenced block right after a marker line:

    <!-- example: NAME -->     a block a researcher copies (python: run in a kernel; bash: run in a shell
                               of the user's server, as in a JupyterLab terminal)
    <!-- error: NAME -->       a message the guide shows (```text); a test reproduces it

The tests run the block's text unchanged, so the guide cannot drift from what works. A fenced block
without a marker is an error (tests/unit/test_guide_docs.py), so nothing a researcher may copy goes untested.
"""

import re
from dataclasses import dataclass
from pathlib import Path

DOCS = Path(__file__).resolve().parents[2] / "docs"
INDEX = DOCS / "README.md"
# Reading order of the pages; tests run a page's examples in this order, in one kernel, as a reader would.
PAGES = ("README.md", "getting-started.md", "help.md", "home.md", "scratch.md", "data.md", "dask.md", "packages.md")

MARKER = re.compile(r"^<!--\s*(example|error):\s*([a-z0-9-]+)\s*-->\s*$")
FENCE = re.compile(r"^```(\S*)\s*$")


@dataclass(frozen=True)
class Block:
    page: str
    line: int  # 1-based line of the opening fence
    language: str
    kind: str  # "example", "error" or "" (no marker: not allowed)
    name: str
    text: str

    @property
    def where(self):
        return f"docs/{self.page}:{self.line}"


def blocks(page):
    """The fenced blocks of docs/<page>, each with the marker on the line before it (if any)."""
    lines = (DOCS / page).read_text().splitlines()
    found, i = [], 0
    while i < len(lines):
        fence = FENCE.match(lines[i])
        if not fence:
            i += 1
            continue
        start = i
        end = next((j for j in range(i + 1, len(lines)) if lines[j].rstrip() == "```"), None)
        if end is None:
            raise ValueError(f"docs/{page}:{start + 1}: code block never closed")
        marker = MARKER.match(lines[start - 1]) if start else None
        kind, name = marker.groups() if marker else ("", "")
        found.append(Block(page, start + 1, fence.group(1), kind, name, "\n".join(lines[start + 1:end]) + "\n"))
        i = end + 1
    return found


def all_blocks():
    return [block for page in PAGES for block in blocks(page)]


def examples(page=None):
    return [b for b in all_blocks() if b.kind == "example" and (page is None or b.page == page)]


def example(name):
    matches = [b for b in all_blocks() if b.kind == "example" and b.name == name]
    if len(matches) != 1:
        raise LookupError(f"the guide has {len(matches)} examples named {name!r}, wanted exactly one")
    return matches[0]


def error(name):
    matches = [b for b in all_blocks() if b.kind == "error" and b.name == name]
    if len(matches) != 1:
        raise LookupError(f"the guide has {len(matches)} error blocks named {name!r}, wanted exactly one")
    return matches[0]


def table(page, first_header):
    """The Markdown table of docs/<page> whose first header cell is `first_header`, as a list of row dicts."""
    lines = (DOCS / page).read_text().splitlines()
    for i, line in enumerate(lines):
        cells = _cells(line)
        if cells and cells[0] == first_header:
            rows = []
            for row in lines[i + 2:]:
                if not row.startswith("|"):
                    break
                rows.append(dict(zip(cells, _cells(row))))
            return rows
    raise LookupError(f"docs/{page} has no table starting with the column {first_header!r}")


def _cells(line):
    if not line.startswith("|"):
        return None
    return [cell.strip() for cell in line.strip().strip("|").split("|")]


def as_shell_command(text, stdin=""):
    """Python code that runs a bash block in the user's server, as a JupyterLab terminal would (from the home
    directory, `stdin` typed at its prompts), prints its output, and raises with the output if a line fails."""
    return (
        "import os, subprocess\n"
        f"_guide = subprocess.run(['bash', '-e', '-c', {text!r}], cwd=os.path.expanduser('~'), input={stdin!r},\n"
        "                        capture_output=True, text=True, start_new_session=True)\n"
        "print(_guide.stdout + _guide.stderr, end='')\n"
        "if _guide.returncode:\n"
        "    raise RuntimeError(f'exit {_guide.returncode}:\\n{_guide.stdout}\\n{_guide.stderr}')\n"
    )
