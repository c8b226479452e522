"""landmarklib.students.assignments: student notebooks, with solutions replaced by exercises.

One student notebook is run to its first exercise.
"""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest

from landmarklib import cli, students
from landmarklib.students import assignments

NOTEBOOKS = students.default_notebooks_dir()
SOLUTIONS = sorted(NOTEBOOKS.glob("0*.ipynb"))


def test_solution_block_becomes_a_stub_with_the_hint():
    source = ("def f(x):\n    # HINT: double it\n    ### BEGIN SOLUTION\n    y = 2 * x\n"
              "    return y\n    ### END SOLUTION\n\nf(1)\n"
              "### BEGIN SOLUTION\nz = 1\n### END SOLUTION")
    student, count = assignments._replace_solutions(source)
    assert count == 2
    assert student == ("def f(x):\n    # HINT: double it\n"
                       "    raise NotImplementedError('Exercise: double it')\n\nf(1)\n"
                       f"raise NotImplementedError('Exercise: {assignments.DEFAULT_HINT}')")


@pytest.mark.parametrize("source, match", [
    ("### BEGIN SOLUTION\nx = 1", "without ### END"),
    ("x = 1\n### END SOLUTION", "without ### BEGIN"),
    ("### BEGIN SOLUTION\n### BEGIN SOLUTION\n### END SOLUTION", "inside another"),
])
def test_unmatched_markers_are_errors(source, match):
    with pytest.raises(ValueError, match=match):
        assignments._replace_solutions(source)


# the exercises issue 7 asks for, by the library call each solution makes
REQUIRED = {
    "01": ["data.stratified_split", "data.eval_transform"],
    "02": ["models.LandmarkCNN", "loss.backward()", "training.overfit_one_batch"],
    "03": ["transfer.build_transfer_model", "make_optimizer(model.head"],
    "04": ["inference.predict_landmarks"],
    "05": ["test_embeddings @ training.T"],
}


def _solution_lines(source: str) -> list[str]:
    blocks = re.findall(r"### BEGIN SOLUTION\n(.*?)### END SOLUTION", source, re.S)
    return [line.strip() for block in blocks for line in block.splitlines() if line.strip()]


@pytest.fixture(scope="module")
def student_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("student")
    assert cli.main(["make-student", str(out)]) == 0
    return out


@pytest.mark.parametrize("path", SOLUTIONS, ids=lambda p: p.name[:2])
def test_student_notebook_has_no_solutions(path, student_dir):
    solution = nbformat.read(path, as_version=4)
    student = nbformat.read(student_dir / path.name, as_version=4)
    solved = [cell.source for cell in solution.cells if cell.cell_type == "code"]
    given = [cell for cell in student.cells if cell.cell_type == "code"]
    assert len(solved) == len(given)
    blocks = 0
    for source, cell in zip(solved, given):
        assert not cell.outputs and cell.execution_count is None
        assert "SOLUTION" not in cell.source
        if "### BEGIN SOLUTION" not in source:
            assert cell.source == source  # code outside the exercises is unchanged
            continue
        outside = {line.strip() for line in re.sub(
            r"### BEGIN SOLUTION\n.*?### END SOLUTION\n?", "", source, flags=re.S).splitlines()}
        # the hint (in its comment and in the stub) may name what to call
        code = re.sub(r"# HINT: .*|raise NotImplementedError\(.*\)", "", cell.source)
        leaked = [line for line in _solution_lines(source)
                  if line not in outside and line in code]
        assert leaked == [], f"solution text left in the student version: {leaked}"
        hints = re.findall(r"# HINT: (.*)", source)
        assert hints and all(f"# HINT: {hint}" in cell.source for hint in hints)
        stubs = re.findall(r"raise NotImplementedError\('Exercise: (.*)'\)", cell.source)
        assert stubs == hints
        blocks += len(stubs)
    assert blocks == _blocks_in(path) and blocks >= 1
    made = "\n".join(_solution_lines("\n".join(solved)))
    assert all(call in made for call in REQUIRED[path.name[:2]])


def _blocks_in(path: Path) -> int:
    return sum(cell.source.count("### BEGIN SOLUTION")
               for cell in nbformat.read(path, as_version=4).cells)


@pytest.mark.parametrize("path", SOLUTIONS, ids=lambda p: p.name[:2])
def test_every_exercise_is_followed_by_a_check(path):
    """The first code cell after an exercise (or after a run of exercise cells, which then
    share it) is a check cell."""
    notebook = nbformat.read(path, as_version=4)
    exercise_cells = {index for index, _ in students.exercises(notebook)}
    for index in sorted(exercise_cells):
        following = [c.source for i, c in enumerate(notebook.cells)
                     if i > index and c.cell_type == "code" and i not in exercise_cells]
        assert following and following[0].startswith("students.check_"), \
            f"{path.name}: exercise in cell {index} has no check cell after it"


def test_make_student_refuses_to_overwrite_the_solutions():
    with pytest.raises(ValueError, match="overwrite"):
        students.make_student_notebooks(NOTEBOOKS, NOTEBOOKS)


# ------------------------------------------------------- student notebooks, executed

# 04 is left out only for time: it trains a small model (15 s) before its first exercise.
EXECUTED = ["01_data_exploration.ipynb", "02_cnn_from_scratch.ipynb", "03_transfer_learning.ipynb"]


@pytest.mark.parametrize("name", EXECUTED, ids=lambda n: n[:2])
def test_student_notebook_stops_at_its_first_exercise(name, student_dir, monkeypatch):
    """The student version runs (tiny mode) up to its first exercise and stops there with the
    hint; for notebook 01, pasting the solution in then makes its check cell pass (what a
    teacher checks by hand)."""
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    monkeypatch.setenv("LANDMARKLIB_TINY", "1")
    monkeypatch.setenv("MPLBACKEND", "agg")
    student = nbformat.read(student_dir / name, as_version=4)
    first = next(i for i, c in enumerate(student.cells)
                 if c.cell_type == "code" and "NotImplementedError(" in c.source)
    hint = re.search(r"# HINT: (.*)", student.cells[first].source).group(1)
    client = NotebookClient(student, timeout=300, kernel_name="python3",
                            resources={"metadata": {"path": str(student_dir)}})
    with client.setup_kernel():
        for index, cell in enumerate(student.cells):
            if cell.cell_type != "code":
                continue
            try:
                client.execute_cell(cell, index)
            except CellExecutionError as error:
                assert index == first, f"cell {index} failed before the first exercise: {error}"
                assert error.ename == "NotImplementedError"
                assert error.evalue == f"Exercise: {hint}"
                break
        else:
            pytest.fail("the student notebook ran through without stopping at an exercise")
        if name != "01_data_exploration.ipynb":
            return
        # the student pastes the solution; the check cell right after it now passes
        solution = nbformat.read(NOTEBOOKS / name, as_version=4)
        student.cells[first].source = next(c.source for c in solution.cells
                                           if "### BEGIN SOLUTION" in c.source)
        client.execute_cell(student.cells[first], first)
        check = student.cells[first + 1]
        assert check.source.startswith("students.check_split")
        client.execute_cell(check, first + 1)
        assert "".join(o.get("text", "") for o in check.outputs).startswith("✓ split")
