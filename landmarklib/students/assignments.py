"""Student versions of the notebooks: solutions replaced by exercises.

The notebooks mark the code a student writes with nbgrader's markers::

    # HINT: split with data.stratified_split(keys, targets, val_fraction=..., seed=...)
    ### BEGIN SOLUTION
    train_idx, val_idx = data.stratified_split(keys, targets, val_fraction=0.2, seed=0)
    ### END SOLUTION

:func:`make_student_notebooks` (``landmarklib make-student OUT_DIR``) writes copies in which each
such block becomes ``raise NotImplementedError("Exercise: <hint>")``, with outputs cleared.
After each exercise a check cell (:mod:`landmarklib.students.checks`) tells the student whether
the work is right. See docs/teaching.md for teachers.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["BEGIN", "END", "HINT", "STUDENT_NOTE", "exercises", "make_student_notebook",
           "make_student_notebooks", "default_notebooks_dir"]

BEGIN = "### BEGIN SOLUTION"
END = "### END SOLUTION"
HINT = "# HINT:"
DEFAULT_HINT = "write the missing code"

STUDENT_NOTE = (
    "> **Student version.** Each cell that raises `NotImplementedError(\"Exercise: ...\")` is an "
    "exercise: replace that line with your code (the `# HINT:` line above it says what to write), "
    "run the cell, then run the check cell after it. A check prints ✓ when your code is right, "
    "and tells you what is wrong otherwise."
)


def _replace_solutions(source: str, where: str = "cell") -> tuple[str, int]:
    """``source`` with each solution block replaced by a ``NotImplementedError`` stub;
    returns ``(new_source, blocks_replaced)``."""
    lines = source.split("\n")
    out: list[str] = []
    inside, count = None, 0
    for number, line in enumerate(lines, 1):
        stripped = line.strip()
        if stripped == BEGIN:
            if inside is not None:
                raise ValueError(f"{where}, line {number}: {BEGIN} inside another solution block")
            indent = line[: len(line) - len(line.lstrip())]
            hint = DEFAULT_HINT
            if out and out[-1].strip().startswith(HINT):
                hint = out[-1].strip()[len(HINT):].strip() or DEFAULT_HINT
            inside = (indent, hint)
        elif stripped == END:
            if inside is None:
                raise ValueError(f"{where}, line {number}: {END} without {BEGIN}")
            indent, hint = inside
            out.append(f"{indent}raise NotImplementedError({('Exercise: ' + hint)!r})")
            inside, count = None, count + 1
        elif inside is None:
            out.append(line)
    if inside is not None:
        raise ValueError(f"{where}: {BEGIN} without {END}")
    return "\n".join(out), count


def exercises(notebook) -> list[tuple[int, str]]:
    """The exercises of a solution notebook: ``(cell index, hint)`` per solution block."""
    found = []
    for index, cell in enumerate(notebook.cells):
        if cell.cell_type != "code":
            continue
        lines = cell.source.split("\n")
        for number, line in enumerate(lines):
            if line.strip() == BEGIN:
                before = lines[number - 1].strip() if number else ""
                hint = before[len(HINT):].strip() if before.startswith(HINT) else DEFAULT_HINT
                found.append((index, hint))
    return found


def make_student_notebook(notebook):
    """A student version of a solution notebook (an ``nbformat`` notebook; a new object):
    solution blocks replaced by stubs, outputs and execution counts cleared, and a note on
    how the exercises work after the first cell (if the notebook has any)."""
    import copy

    import nbformat

    student = copy.deepcopy(notebook)
    total = 0
    for index, cell in enumerate(student.cells):
        if cell.cell_type == "code":
            cell.source, count = _replace_solutions(cell.source, f"cell {index}")
            total += count
            cell.outputs = []
            cell.execution_count = None
            cell.metadata.pop("execution", None)
    if total:
        student.cells.insert(1, nbformat.v4.new_markdown_cell(STUDENT_NOTE))
    return student


def make_student_notebooks(src_dir: str | os.PathLike, out_dir: str | os.PathLike) -> list[Path]:
    """Write the student version of every notebook in ``src_dir`` to ``out_dir``.

    Returns the paths written. Notebooks without exercises are copied with outputs cleared.

    Raises:
        FileNotFoundError: ``src_dir`` holds no notebook.
        ValueError: unmatched solution markers (names the notebook, cell and line).
    """
    import nbformat

    sources = sorted(Path(src_dir).glob("*.ipynb"))
    if not sources:
        raise FileNotFoundError(f"no notebooks (*.ipynb) in {src_dir}")
    out = Path(out_dir)
    if out.resolve() == Path(src_dir).resolve():
        raise ValueError("the student notebooks would overwrite the solutions: "
                         "choose another folder")
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for path in sources:
        notebook = nbformat.read(path, as_version=4)
        try:
            student = make_student_notebook(notebook)
        except ValueError as error:
            raise ValueError(f"{path.name}: {error}") from None
        target = out / path.name
        nbformat.write(student, target)
        written.append(target)
    return written


def default_notebooks_dir() -> Path:
    """The solution notebooks of this checkout (``notebooks/`` next to the package)."""
    return Path(__file__).resolve().parents[2] / "notebooks"
