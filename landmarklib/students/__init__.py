"""Classroom assignments: exercise checks, and student versions of the notebooks.

* :mod:`~landmarklib.students.checks`: the ``check_*`` functions the notebooks' check cells
  call (``students.check_split(...)``).
* :mod:`~landmarklib.students.assignments`: :func:`make_student_notebooks`, the student
  versions (``landmarklib make-student OUT_DIR``).

See docs/teaching.md for teachers.
"""

from landmarklib.students.assignments import (
    BEGIN,
    END,
    HINT,
    STUDENT_NOTE,
    default_notebooks_dir,
    exercises,
    make_student_notebook,
    make_student_notebooks,
)
from landmarklib.students.checks import (
    ExerciseError,
    check_accuracy,
    check_finetuning,
    check_frozen,
    check_gradcam,
    check_head_optimizer,
    check_knn_scores,
    check_model_output,
    check_normalisation,
    check_overfit,
    check_predictions,
    check_split,
    check_training_step,
)

__all__ = [
    "BEGIN", "END", "HINT", "STUDENT_NOTE", "default_notebooks_dir", "exercises",
    "make_student_notebook", "make_student_notebooks",
    "ExerciseError", "check_accuracy", "check_finetuning", "check_frozen", "check_gradcam",
    "check_head_optimizer", "check_model_output", "check_normalisation", "check_overfit",
    "check_predictions", "check_split", "check_training_step", "check_knn_scores",
]
