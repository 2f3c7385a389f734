"""README.md stays a newcomer's page: short, every link resolves, every notebook listed."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def test_readme_is_at_most_1000_words():
    assert len(README.split()) <= 1000, f"README.md has {len(README.split())} words (at most 1,000)"


def test_every_relative_link_in_the_readme_resolves():
    links = re.findall(r"\]\(([^)#\s]+)", README)
    local = [link for link in links if not re.match(r"[a-z]+://", link)]
    assert local, "no relative links found: the pattern is wrong"
    missing = [link for link in local if not (ROOT / link).exists()]
    assert not missing, f"README links to missing files: {missing}"


def test_the_notebook_table_lists_every_notebook():
    notebooks = sorted(p.name for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    assert notebooks
    assert [n for n in notebooks if f"notebooks/{n}" not in README] == []


def test_the_readme_points_to_the_lab_and_the_benchmarks():
    for target in ("studies/README.md", "benchmarks/README.md", "data/README.md"):
        assert f"]({target})" in README
