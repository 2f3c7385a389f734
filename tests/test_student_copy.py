"""tools/student_copy.py: the copies keep every code cell (so the suite's student-mode Run All of the
notebooks, with the stubs empty, covers them too) and carry no outputs and no solution blocks."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_student_copies_keep_the_code_and_drop_outputs_and_solutions(tmp_path):
    done = subprocess.run([sys.executable, str(ROOT / "tools" / "student_copy.py"), "--out", str(tmp_path)],
                          capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    originals = sorted((ROOT / "notebooks").glob("[0-9]*.ipynb"))
    assert [p.name for p in sorted(tmp_path.glob("*.ipynb"))] == [p.name for p in originals]
    for original in originals:
        before = json.loads(original.read_text())["cells"]
        after = json.loads((tmp_path / original.name).read_text())["cells"]
        code = lambda cells: ["".join(c["source"]) for c in cells if c["cell_type"] == "code"]  # noqa: E731
        assert code(after) == code(before), original.name
        assert all(not c.get("outputs") and c.get("execution_count") is None for c in after if c["cell_type"] == "code")
        solutions = [c for c in before if "Show a solution" in "".join(c["source"])]
        assert solutions, f"{original.name} has no solution block to remove"
        assert not any("Show a solution" in "".join(c["source"]) for c in after)
        assert len(after) == len(before) - len(solutions)


def test_student_copy_refuses_a_missing_notebook(tmp_path):
    done = subprocess.run([sys.executable, str(ROOT / "tools" / "student_copy.py"), "--out", str(tmp_path),
                           "notebooks/99_none.ipynb"], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 2 and "no such notebook" in done.stderr
