"""landmarklib.cli: the landmarklib command, its exit codes and messages."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from landmarklib import cli
from landmarklib.data import tiny_data_root

EIFFEL = sorted((tiny_data_root() / "test" / "16.Eiffel_Tower").glob("*.jpg"))
TAJ = sorted((tiny_data_root() / "test" / "21.Taj_Mahal").glob("*.jpg"))


@pytest.fixture
def model(tiny_model_file, monkeypatch) -> Path:
    monkeypatch.setenv("LANDMARKLIB_MODEL", str(tiny_model_file))
    return tiny_model_file


def test_cli_members_must_not_be_negative(capsys):
    from landmarklib import cli

    with pytest.raises(SystemExit) as usage:
        cli.main(["train", "transfer", "--members", "-1"])
    assert usage.value.code == 2
    assert "must be at least 0, got -1" in capsys.readouterr().err


def test_cli_predict_text_and_json(model, capsys, tmp_path):
    assert cli.main(["predict", str(EIFFEL[0]), "-k", "2"]) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith(f"{EIFFEL[0]}: Eiffel Tower (") and line.count("%") == 2

    folder = tmp_path / "photos"
    folder.mkdir()
    for photo in EIFFEL + TAJ:
        (folder / photo.name).write_bytes(photo.read_bytes())
    (folder / "readme.txt").write_text("skipped: not a photo")
    assert cli.main(["predict", str(folder), "--json", "-k", "3"]) == 0
    answers = json.loads(capsys.readouterr().out)
    assert len(answers) == len(EIFFEL) + len(TAJ)
    first = {a["file"]: a["predictions"][0] for a in answers}
    assert first[str(folder / EIFFEL[0].name)]["name"] == "Eiffel Tower"
    assert first[str(folder / EIFFEL[0].name)]["country"] == "France"
    assert "openstreetmap.org" in first[str(folder / EIFFEL[0].name)]["map_url"]


def test_cli_errors_have_exit_codes_and_one_line(model, capsys, tmp_path):
    bad = tmp_path / "notes.txt"
    bad.write_text("hello")
    assert cli.main(["predict", str(bad), str(EIFFEL[0])]) == 1
    captured = capsys.readouterr()
    assert captured.out.startswith(f"{EIFFEL[0]}: Eiffel Tower")
    assert captured.err.strip() == (
        f"landmarklib predict: {bad}: not an image file PIL can read (is it a photo?)")
    assert cli.main(["predict", str(EIFFEL[0]), "-k", "8"]) == 1
    assert len(capsys.readouterr().err.strip().splitlines()) == 1
    with pytest.raises(SystemExit) as bad_k:
        cli.main(["predict", str(EIFFEL[0]), "-k", "0"])
    assert bad_k.value.code == 2
    capsys.readouterr()
    empty = tmp_path / "no photos"
    (empty / ".ipynb_checkpoints").mkdir(parents=True)
    (empty / ".ipynb_checkpoints" / "x.jpg").write_bytes(EIFFEL[0].read_bytes())
    assert cli.main(["predict", str(empty)]) == 1
    assert capsys.readouterr().err.strip() == (
        f"landmarklib predict: {empty}: no photos in this folder")
    assert cli.main(["train", "transfer", "--out", str(tmp_path),
                     "--data", str(tiny_data_root())]) == 1
    assert "is a folder" in capsys.readouterr().err
    assert cli.main(["predict", str(EIFFEL[0]), "--model", str(tmp_path / "none.pt")]) == 1
    assert "No trained model" in capsys.readouterr().err
    with pytest.raises(SystemExit) as usage:
        cli.main(["predict"])
    assert usage.value.code == 2


def test_cli_check_and_evaluate(model, capsys):
    assert cli.main(["check", "--data", str(tiny_data_root())]) == 0
    assert "7 classes" in capsys.readouterr().out
    assert cli.main(["evaluate", "--data", str(tiny_data_root()), "--json"]) == 0
    out = capsys.readouterr().out
    result = json.loads(out[out.index("{"):])
    assert result["total"] == 21 and result["correct"] >= 15


def test_cli_train_records_the_precision(tmp_path, capsys):
    import torch

    out = tmp_path / "scratch.pt"
    assert cli.main(["train", "scratch", "--data", str(tiny_data_root()), "--epochs", "1",
                     "--precision", "float32", "--out", str(out)]) == 0
    record = torch.load(out, weights_only=True)
    assert record["precision"] == record["metrics"]["precision"] == "float32"
    assert "trained in float32" in capsys.readouterr().out
    with pytest.raises(SystemExit) as stopped:
        cli.main(["train", "scratch", "--precision", "float8"])
    assert stopped.value.code == 2 and "float32" in capsys.readouterr().err


def test_cli_evaluate_prints_the_whole_reason(model, tiny_copy, capsys):
    import shutil

    shutil.rmtree(tiny_copy / "test" / "44.Trevi_Fountain")
    assert cli.main(["evaluate", "--data", str(tiny_copy)]) == 1
    err = capsys.readouterr().err
    assert "cannot be used" in err and "PROBLEM: class folders differ" in err
    assert "only in train ['44.Trevi_Fountain']" in err


def test_cli_predict_finds_every_kind_of_photo_in_a_folder(model, tmp_path, capsys):
    from PIL import Image

    folder = tmp_path / "mixed"
    folder.mkdir()
    Image.open(EIFFEL[0]).save(folder / "eiffel.avif")
    Image.open(TAJ[0]).save(folder / "taj.webp")
    (folder / "notes.txt").write_text("not a photo")
    assert cli.main(["predict", str(folder), "--json", "-k", "1"]) == 0
    answers = json.loads(capsys.readouterr().out)
    assert [Path(a["file"]).name for a in answers] == ["eiffel.avif", "taj.webp"]
    assert all(len(a["predictions"]) == 1 for a in answers)


def test_python_dash_m_runs_the_command():
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-m", "landmarklib", "predict", "--help"],
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0 and "usage: landmarklib predict" in result.stdout
    wrong = subprocess.run([sys.executable, "-m", "landmarklib", "no-such-command"],
                           capture_output=True, text=True, check=False)
    assert wrong.returncode == 2 and "invalid choice" in wrong.stderr
