"""``landmarklib make-student``: the student versions of the notebooks, for teachers."""

from __future__ import annotations


def add_parsers(commands) -> None:
    student = commands.add_parser(
        "make-student", help="write student versions of the notebooks (solutions removed)")
    student.add_argument("out_dir", metavar="OUT_DIR", help="folder to write them to")
    student.add_argument("--notebooks",
                         help="folder of solution notebooks (default: this checkout's notebooks/)")
    student.set_defaults(run=_make_student)


def _make_student(args) -> int:
    from landmarklib import students

    source = args.notebooks or students.default_notebooks_dir()
    for path in students.make_student_notebooks(source, args.out_dir):
        print(path)
    return 0
