"""Tests for landmarklib.tagging and ``landmarklib tag``.

Most tests use a deterministic stand-in for a model: photos are flat colours, and
:func:`colour_classifier` knows which landmark each colour is (grey: not sure). One test tags
real photos with a real model (the session's tiny transfer model, trained in seconds).
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from landmarklib import cli, tagging
from landmarklib.embeddings import Recognition
from landmarklib.places import place_for
from landmarklib.sidecars import read_sidecar, sidecar_path

#: Colour of a photo -> the class it shows.
COLOURS = {
    "16.Eiffel_Tower": (200, 30, 30),
    "09.Golden_Gate_Bridge": (30, 200, 30),
    "37.sydney": (220, 220, 20),  # a landmarks44 folder
    "Faces_easy": (30, 30, 200),  # a class without a place
}
GREY = (128, 128, 128)


class ColourPredictor:
    """A stand-in for :class:`landmarklib.deployment.Predictor`: probability 0.9 for the class
    whose colour is nearest the photo's mean colour (within 60 levels, summed over R, G, B),
    else uniform. ``calls`` collects the batch sizes seen; ``interrupt_after`` raises
    KeyboardInterrupt at that batch (as Ctrl-C would)."""

    input_size = 64
    class_names = ["Eiffel Tower", "Golden Gate Bridge", "sydney", "Faces easy"]
    class_folders = list(COLOURS)

    def __init__(self, model_id: str, calls: list | None, interrupt_after: int | None):
        self.model_id, self.calls, self.interrupt_after = model_id, calls, interrupt_after

    def run(self, images):
        if self.calls is not None:
            if self.interrupt_after is not None and len(self.calls) == self.interrupt_after:
                raise KeyboardInterrupt
            self.calls.append(len(images))
        centres = np.array(list(COLOURS.values()), dtype=np.float32)
        rows = []
        for image in images:
            mean = np.asarray(image, dtype=np.float32).reshape(-1, 3).mean(axis=0)
            distance = np.abs(centres - mean).sum(axis=1)
            row = np.full(len(COLOURS), 1 / len(COLOURS), dtype=np.float32)
            if distance.min() < 60:
                row[:] = 0.1 / (len(COLOURS) - 1)
                row[distance.argmin()] = 0.9
            rows.append(row)
        return np.stack(rows), np.zeros((len(images), 2), dtype=np.float32)

    memory = None  # no memory beside it: no added landmarks, every photo "known"

    def place(self, name: str):
        return place_for(name)  # as Predictor.place without added landmarks

    def recognise(self, images, k: int = 3):
        """What :meth:`landmarklib.deployment.Predictor.recognise` answers without a memory."""
        probabilities, embeddings = self.run(images)
        none = np.zeros((len(images), 0))
        recognition = Recognition(probabilities, probabilities.max(axis=1).astype(np.float64),
                                  np.ones(len(images), bool), none.astype(np.int64),
                                  none.astype(np.float32))
        return recognition, (np.log(probabilities), np.log(probabilities), embeddings, None)


def colour_classifier(model_id: str = "colours@1", calls: list | None = None,
                      interrupt_after: int | None = None) -> ColourPredictor:
    return ColourPredictor(model_id, calls, interrupt_after)


def photo(path: Path, colour, gps: bool = False, size=(320, 240)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    exif = Image.Exif()
    if gps:  # 48°51'30.24"N 2°17'40.2"E, as a phone writes it
        exif.get_ifd(0x8825).update({1: "N", 2: (48.0, 51.0, 30.24), 3: "E", 4: (2.0, 17.0, 40.2)})
    Image.new("RGB", size, colour).save(path, exif=exif)
    return path


USER_SIDECAR = """<x:xmpmeta xmlns:x="adobe:ns:meta/">
 <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
  <rdf:Description rdf:about="" xmlns:xmp="http://ns.adobe.com/xap/1.0/"
    xmlns:dc="http://purl.org/dc/elements/1.1/" xmlns:exif="http://ns.adobe.com/exif/1.0/"
    xmp:Rating="5"{extra}>
   <dc:subject><rdf:Bag><rdf:li>family</rdf:li></rdf:Bag></dc:subject>
  </rdf:Description>
 </rdf:RDF>
</x:xmpmeta>
"""


@pytest.fixture
def library(tmp_path) -> Path:
    return make_library(tmp_path)


def make_library(tmp_path: Path) -> Path:
    """A photo library with everything the tagger meets (see EXPECTED), in ``tmp_path/library``,
    with a folder outside it that links point to."""
    root = tmp_path / "library"
    photo(root / "2019" / "paris" / "eiffel_1.jpg", COLOURS["16.Eiffel_Tower"])
    photo(root / "2019" / "paris" / "eiffel_2.JPG", COLOURS["16.Eiffel_Tower"])
    photo(root / "2019" / "sf" / "golden gate.jpg", COLOURS["09.Golden_Gate_Bridge"])
    photo(root / "Türkiye ☀" / "köprü İstanbul.jpg", COLOURS["37.sydney"])
    photo(root / "faces.png", COLOURS["Faces_easy"])
    photo(root / "fog.jpg", GREY)
    photo(root / "phone.jpg", COLOURS["16.Eiffel_Tower"], gps=True)
    photo(root / "rated.jpg", COLOURS["09.Golden_Gate_Bridge"])
    (root / "rated.jpg.xmp").write_text(USER_SIDECAR.format(extra=""), encoding="utf-8")
    photo(root / "located.jpg", COLOURS["09.Golden_Gate_Bridge"])
    (root / "located.xmp").write_text(USER_SIDECAR.format(
        extra=' exif:GPSLatitude="45,45.5N" exif:GPSLongitude="4,50.5E"'), encoding="utf-8")
    (root / "broken.jpg").write_bytes(b"a text file named like a photo")
    good = (root / "2019" / "paris" / "eiffel_1.jpg").read_bytes()
    (root / "2019" / "truncated.jpg").write_bytes(good[: len(good) // 2])
    (root / "notes.txt").write_text("not a photo")
    photo(root / ".thumbnails" / "eiffel.jpg", COLOURS["16.Eiffel_Tower"])
    photo(root / ".hidden.jpg", COLOURS["16.Eiffel_Tower"])
    outside = photo(tmp_path / "outside" / "elsewhere.jpg", COLOURS["16.Eiffel_Tower"])
    os.symlink(outside.parent, root / "2019" / "link to outside")
    os.symlink(outside, root / "2019" / "linked.jpg")
    os.symlink(root, root / "2019" / "loop")
    return root


EXPECTED = {
    "2019/paris/eiffel_1.jpg": (tagging.TAGGED, "Eiffel Tower"),
    "2019/paris/eiffel_2.JPG": (tagging.TAGGED, "Eiffel Tower"),
    "2019/sf/golden gate.jpg": (tagging.TAGGED, "Golden Gate Bridge"),
    "Türkiye ☀/köprü İstanbul.jpg": (tagging.TAGGED, "Sydney Harbour Bridge"),
    "faces.png": (tagging.TAGGED, "Faces easy"),
    "fog.jpg": (tagging.NOT_SURE, "Eiffel Tower"),
    "phone.jpg": (tagging.HAS_LOCATION, ""),
    "rated.jpg": (tagging.TAGGED, "Golden Gate Bridge"),
    "located.jpg": (tagging.HAS_LOCATION, ""),
    "broken.jpg": (tagging.FAILED, ""),
    "2019/truncated.jpg": (tagging.FAILED, ""),
}


def statuses(summary: tagging.TagSummary, root: Path) -> dict[str, tuple[str, str]]:
    return {Path(row.file).relative_to(root).as_posix(): (row.status, row.landmark)
            for row in summary.rows}


def checksums(folder: Path) -> dict[str, str]:
    """sha256 of every file under ``folder`` (links not followed)."""
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and not p.is_symlink()}


def run(paths, classifier=None, **options) -> tagging.TagSummary:
    return tagging.tag_paths([str(p) for p in paths], classifier or colour_classifier(),
                             progress=False, batch_size=options.pop("batch_size", 3), **options)


# ---------------------------------------------------------------------------- a whole library


def test_every_kind_of_photo_gets_its_status(library):
    summary = run([library])
    assert statuses(summary, library) == EXPECTED
    assert summary.counts == {"tagged": 6, "not sure": 1, "has location": 2, "already tagged": 0,
                              "failed": 2}
    reasons = {Path(row.file).name: row.reason for row in summary.rows}
    assert "not an image file" in reasons["broken.jpg"]
    assert "truncated" in reasons["truncated.jpg"]
    assert reasons["faces.png"] == "no known place for this landmark: keywords only"
    assert reasons["phone.jpg"] == "GPS coordinates in the photo's EXIF"
    phone = next(row for row in summary.rows if row.file.endswith("phone.jpg"))
    assert (phone.latitude, phone.longitude) == pytest.approx((48.8584, 2.2945), abs=1e-9)
    assert reasons["located.jpg"] == "location in located.xmp"
    assert str(summary).startswith("11 photos: 6 tagged, 1 not sure, 2 had a location")


def test_sidecars_only_for_tagged_photos_and_read_by_exiftool(library, exiftool):
    summary = run([library])
    written = sorted(p.relative_to(library).as_posix() for p in library.rglob("*.xmp"))
    assert written == ["2019/paris/eiffel_1.jpg.xmp", "2019/paris/eiffel_2.JPG.xmp",
                       "2019/sf/golden gate.jpg.xmp", "Türkiye ☀/köprü İstanbul.jpg.xmp",
                       "faces.png.xmp", "located.xmp", "rated.jpg.xmp"]
    tagged = [row for row in summary.rows if row.status == tagging.TAGGED]
    found = exiftool([sidecar_path(row.file) for row in tagged])
    for row in tagged:
        tags = found[sidecar_path(row.file)]
        place = place_for(row.landmark)
        assert tags["XMP-landmarklib:Model"] == "colours@1"
        assert tags["XMP-landmarklib:Probability"] == pytest.approx(0.9, abs=1e-4)
        if place is None:  # Faces easy: keywords only
            assert "XMP-exif:GPSLatitude" not in tags
            assert tags["XMP-dc:Subject"] == "Faces easy"
            continue
        assert tags["XMP-exif:GPSLatitude"] == pytest.approx(place.latitude, abs=1e-5)
        assert tags["XMP-exif:GPSLongitude"] == pytest.approx(place.longitude, abs=1e-5)
        subjects = tags["XMP-dc:Subject"]
        assert {place.name, place.city, place.country} <= set(subjects)
    rated = found[library / "rated.jpg.xmp"]
    assert rated["XMP-xmp:Rating"] == 5  # merged: the user's rating and keyword are kept
    assert rated["XMP-dc:Subject"] == ["family", "Golden Gate Bridge", "San Francisco",
                                       "United States"]


def test_photos_and_everything_else_are_never_modified(library, tmp_path):
    before = checksums(tmp_path)
    run([library])
    after = checksums(tmp_path)
    new_or_changed = {name for name in after if before.get(name) != after[name]}
    assert new_or_changed == {f"library/{name}.xmp" for name, (status, _) in EXPECTED.items()
                              if status == tagging.TAGGED}  # rated.jpg.xmp merged, others new
    assert set(before) <= set(after)


def test_hidden_files_links_and_loops_are_not_followed(library):
    summary = run([library])
    files = {Path(row.file).name for row in summary.rows}
    assert not files & {"eiffel.jpg", ".hidden.jpg", "elsewhere.jpg", "linked.jpg", "notes.txt"}
    assert not (library.parent / "outside" / "elsewhere.jpg.xmp").exists()
    assert not list((library / ".thumbnails").glob("*.xmp"))


def test_files_given_one_by_one(library, tmp_path):
    summary = run([library / "fog.jpg", library / "notes.txt", tmp_path / "missing.jpg"])
    rows = {Path(row.file).name: row for row in summary.rows}
    assert rows["fog.jpg"].status == tagging.NOT_SURE
    assert rows["notes.txt"].status == tagging.FAILED
    assert rows["missing.jpg"].status == tagging.FAILED and rows["missing.jpg"].reason == \
        "no such file"


def test_exif_gps_south_and_west(tmp_path):
    path = tmp_path / "sydney.jpg"
    exif = Image.Exif()
    exif.get_ifd(0x8825).update({1: "S", 2: (33.0, 51.0, 8.28), 3: "W", 4: (122.0, 28.0, 41.88)})
    Image.new("RGB", (64, 48), GREY).save(path, exif=exif)
    (row,) = run([path]).rows
    assert row.status == tagging.HAS_LOCATION
    assert (row.latitude, row.longitude) == pytest.approx((-33.8523, -122.4783), abs=1e-9)


# -------------------------------------------------------------------------- resume after a stop


def test_second_run_does_not_redo_photos_tagged_by_the_same_model(library):
    run([library])
    for name in ("2019/paris/eiffel_2.JPG.xmp", "faces.png.xmp"):  # as if never written
        (library / name).unlink()
    calls: list[int] = []
    summary = run([library], colour_classifier(calls=calls))
    assert sum(calls) == 3  # eiffel_2, faces and fog (not sure is not remembered)
    assert summary.counts == {"tagged": 2, "not sure": 1, "has location": 2, "already tagged": 4,
                              "failed": 2}
    # Another model tags again what the first one tagged (but not the user's locations).
    calls.clear()
    summary = run([library], colour_classifier("colours@2", calls=calls))
    assert sum(calls) == 7 and summary.counts["tagged"] == 6
    assert read_sidecar(library / "rated.jpg.xmp").model == "colours@2"


def test_another_model_leaves_a_location_the_user_changed(library, exiftool):
    """ExifTool stands for a photo manager: a city changed by hand makes the location the
    user's; a rating changed elsewhere in a sidecar does not."""
    run([library])
    edited, rated = library / "2019/sf/golden gate.jpg.xmp", library / "2019/paris/eiffel_1.jpg.xmp"
    older = library / "2019/paris/eiffel_2.JPG.xmp"  # as written before LocationDigest existed
    older.write_text(re.sub(r'\s*landmarklib:LocationDigest="\w+"', "", older.read_text(
        encoding="utf-8")), encoding="utf-8")
    deleted = library / "Türkiye ☀/köprü İstanbul.jpg.xmp"
    for path, edit in ((edited, ["-XMP-photoshop:City=Sausalito"]),
                       (rated, ["-XMP-xmp:Rating=3"]), (older, ["-XMP-photoshop:City=Passy"]),
                       (deleted, [f"-{key}=" for key in ("XMP-exif:GPSLatitude",
                                  "XMP-exif:GPSLongitude", "XMP-photoshop:City",
                                  "XMP-photoshop:Country", "XMP-iptcCore:Location",
                                  "XMP-iptcExt:LocationShown")])):
        subprocess.run([shutil.which("exiftool"), "-overwrite_original", *edit, str(path)],
                       check=True, capture_output=True)
    assert read_sidecar(older).location_unedited is None and not read_sidecar(deleted).has_location
    summary = run([library], colour_classifier("colours@2"))
    rows = statuses(summary, library)
    for name in ("2019/sf/golden gate.jpg", "2019/paris/eiffel_2.JPG",
                 "Türkiye ☀/köprü İstanbul.jpg"):
        assert rows[name][0] == tagging.HAS_LOCATION, name
    assert (read_sidecar(edited).city, read_sidecar(edited).model) == ("Sausalito", "colours@1")
    assert read_sidecar(older).city == "Passy" and not read_sidecar(deleted).has_location
    row = next(r for r in summary.rows if r.file.endswith("köprü İstanbul.jpg"))
    assert row.reason.endswith("changed since it was tagged: the user's")
    assert rows["2019/paris/eiffel_1.jpg"] == (tagging.TAGGED, "Eiffel Tower")
    assert read_sidecar(rated).model == "colours@2"
    assert exiftool([rated])[rated]["XMP-xmp:Rating"] == 3


def test_a_new_tagger_not_sure_says_the_sidecar_keeps_the_earlier_answer(library):
    run([library])
    summary = run([library], colour_classifier("colours@2"), threshold=0.99)
    row = next(r for r in summary.rows if r.file.endswith("eiffel_1.jpg"))
    assert row.status == tagging.NOT_SURE
    assert row.reason.endswith("the sidecar keeps an earlier tagger's answer, Eiffel Tower")
    fog = next(r for r in summary.rows if r.file.endswith("fog.jpg"))
    assert fog.status == tagging.NOT_SURE and "earlier" not in fog.reason
    assert read_sidecar(library / "2019/paris/eiffel_1.jpg.xmp").model == "colours@1"
    # the earlier answer in the other naming's sidecar, beside a sidecar of the user's
    shutil.copy(library / "2019/paris/eiffel_1.jpg.xmp", library / "2019/paris/eiffel_1.xmp")
    (library / "2019/paris/eiffel_1.jpg.xmp").write_text(USER_SIDECAR.format(extra=""),
                                                         encoding="utf-8")
    summary = run([library], colour_classifier("colours@3"), threshold=0.99)
    row = next(r for r in summary.rows if r.file.endswith("eiffel_1.jpg"))
    assert row.reason.endswith("the sidecar keeps an earlier tagger's answer, Eiffel Tower")


def test_interrupted_run_finishes_on_the_second(library):
    calls: list[int] = []
    summary = tagging.TagSummary()
    with pytest.raises(KeyboardInterrupt):
        tagging.tag_paths([library], colour_classifier(calls=calls, interrupt_after=2),
                          batch_size=2, progress=False, summary=summary)
    first = {row.file for row in summary.rows if row.status == tagging.TAGGED}
    assert len(calls) == 2 and 1 <= len(first) <= 4 and len(summary.rows) < len(EXPECTED)
    assert not [p for p in library.rglob("*") if p.name.endswith(".tmp")]
    for file in first:
        assert read_sidecar(sidecar_path(file)).model == "colours@1"
    calls.clear()
    again = run([library], colour_classifier(calls=calls))
    assert statuses(again, library) == {
        name: ((tagging.ALREADY_TAGGED, landmark) if str(library / name) in first
               else (status, landmark)) for name, (status, landmark) in EXPECTED.items()}
    assert sum(calls) == 7 - len(first)


def test_abandoned_temporary_files_are_removed(library):
    """A kill between writing a sidecar's temporary file and renaming it leaves the temporary
    file (never a half-written sidecar): the next run writing that sidecar removes it, unless
    its writer lives."""
    dead = library / "2019" / "paris" / ".eiffel_1.jpg.xmp.4194999-k1ll3d.tmp"  # no such pid
    alive = library / "2019" / "paris" / f".eiffel_2.JPG.xmp.{os.getpid()}-4l1v3.tmp"
    for leftover in (dead, alive):
        leftover.write_text("<x:xmpmeta")
    run([library], dry_run=True)
    assert dead.exists() and alive.exists()  # a dry run writes and removes nothing
    run([library])
    assert not dead.exists() and alive.exists()


# -------------------------------------------------------------------------------------- options


def test_sidecar_naming_photo_xmp(library):
    summary = run([library / "2019"], naming="photo.xmp")
    assert summary.counts["tagged"] == 3
    assert sorted(p.name for p in library.joinpath("2019").rglob("*.xmp")) == [
        "eiffel_1.xmp", "eiffel_2.xmp", "golden gate.xmp"]
    again = run([library / "2019"])  # either naming tells that the photo is done
    assert again.counts["already tagged"] == 3 and not list(library.rglob("2019/**/*.jpg.xmp"))


def test_an_existing_sidecar_of_the_other_naming_is_merged_into(library, exiftool):
    """rated.jpg has digiKam's rated.jpg.xmp: tagging with --sidecar photo.xmp merges there."""
    run([library / "rated.jpg"], naming="photo.xmp")
    assert not (library / "rated.xmp").exists()
    tags = exiftool([library / "rated.jpg.xmp"])[library / "rated.jpg.xmp"]
    assert tags["XMP-xmp:Rating"] == 5
    assert tags["XMP-photoshop:City"] == "San Francisco"


def test_threshold(library):
    assert run([library], threshold=0.95).counts["tagged"] == 0
    assert run([library], threshold=0.0, dry_run=True).counts["tagged"] == 7  # fog too
    with pytest.raises(ValueError, match="from 0 to 1"):
        run([library], threshold=1.5)
    with pytest.raises(ValueError, match="photo.jpg.xmp, photo.xmp"):
        run([library], naming="photo.XMP")


def test_dry_run_writes_nothing(library, tmp_path):
    before = checksums(tmp_path)
    summary = run([library], dry_run=True)
    assert checksums(tmp_path) == before
    assert statuses(summary, library) == EXPECTED
    assert summary.dry_run and str(summary).endswith("(dry run: nothing written)")
    row = next(r for r in summary.rows if r.file.endswith("eiffel_1.jpg"))
    assert row.reason == "dry run: nothing written" and row.latitude == 48.8584


# ------------------------------------------------------------------------------- the command


def tag_command(monkeypatch, classifier, argv: list[str]) -> int:
    from landmarklib import deployment

    monkeypatch.setattr(deployment, "get_predictor", lambda model=None: classifier)
    return cli.main(["tag", *argv])


def test_command_exit_status_and_reports(library, tmp_path, monkeypatch, capsys):
    reports = [f"--report={tmp_path / 'r.csv'}", f"--geojson={tmp_path / 'r.geojson'}",
               f"--map={tmp_path / 'm.html'}"]
    assert tag_command(monkeypatch, colour_classifier(), [str(library), *reports]) == 1
    out, err = capsys.readouterr()
    assert "11 photos: 6 tagged" in out and "broken.jpg: not an image file" in err
    assert "has no markers" not in err
    assert all(Path(p.split("=")[1]).is_file() for p in reports)
    shutil.rmtree(library / "2019")
    (library / "broken.jpg").unlink()
    assert tag_command(monkeypatch, colour_classifier(), [str(library), "--quiet"]) == 0


def test_command_dry_run_writes_only_the_report(library, tmp_path, monkeypatch):
    before = checksums(tmp_path)
    status = tag_command(monkeypatch, colour_classifier(),
                         [str(library), "--dry-run", f"--report={tmp_path / 'r.csv'}"])
    assert status == 1  # two broken photos
    after = checksums(tmp_path)
    assert {name for name in after if before.get(name) != after[name]} == {"r.csv"}


def test_command_says_when_the_map_has_no_markers(library, tmp_path, monkeypatch, capsys):
    page = tmp_path / "m.html"
    tag_command(monkeypatch, colour_classifier(), [str(library), "--dry-run", "--threshold=1",
                                                   f"--map={page}"])
    assert f"{page} has no markers" in capsys.readouterr().err and page.is_file()


def test_command_interrupted(library, monkeypatch, capsys, tmp_path):
    classifier = colour_classifier(calls=[], interrupt_after=1)
    status = tag_command(monkeypatch, classifier, [str(library), "--batch-size=2",
                                                   f"--report={tmp_path / 'r.csv'}"])
    assert status == 130
    assert "run the same command again" in capsys.readouterr().err
    assert (tmp_path / "r.csv").read_text(encoding="utf-8-sig").count("\n") >= 2


# ----------------------------------------------------------------------- a real model, end to end


def test_real_model_end_to_end(tiny_model_file, tmp_path, exiftool):
    """The tiny transfer model tags copies of the tiny test photos: what it writes is what
    predict_landmarks answers, and most photos get their own landmark's place."""
    from landmarklib import deployment, inference
    from landmarklib.data import tiny_data_root

    library = Path(shutil.copytree(tiny_data_root() / "test", tmp_path / "photos"))
    before = checksums(library)
    classifier = deployment.get_predictor(tiny_model_file)
    assert classifier.model_id.startswith("tiny_model.onnx@sha256:")
    summary = run([library], classifier, threshold=0.0, batch_size=8)
    assert summary.counts["tagged"] == 21 and not summary.failed
    found = exiftool([sidecar_path(row.file) for row in summary.rows])
    right = 0
    for row in summary.rows:
        answer = inference.predict_landmarks(row.file, k=1, model=tiny_model_file)[0]
        place = place_for(answer)
        assert row.landmark == place.name
        tags = found[sidecar_path(row.file)]
        assert tags["XMP-exif:GPSLatitude"] == pytest.approx(place.latitude, abs=1e-5)
        assert tags["XMP-landmarklib:Model"] == classifier.model_id
        right += place is place_for(Path(row.file).parent.name)
    assert right >= 14  # of 21 (chance: 3)
    assert {k: v for k, v in checksums(library).items() if not k.endswith(".xmp")} == before
    assert run([library], classifier).counts["already tagged"] == 21


def test_sidecar_for_an_upload(tmp_path, exiftool):
    predictor = colour_classifier()
    sure = np.array([0.9, 0.05, 0.03, 0.02], dtype=np.float32)
    sidecar = tagging.sidecar_for("holiday 1.JPG", sure, predictor)
    assert sidecar.name == "holiday 1.JPG.xmp" and sidecar.parent != tmp_path
    tags = exiftool([sidecar])[sidecar]
    assert tags["XMP-exif:GPSLatitude"] == pytest.approx(place_for("16.Eiffel_Tower").latitude,
                                                          abs=1e-5)
    assert tags["XMP-landmarklib:Model"] == "colours@1"
    assert tagging.sidecar_for("x.jpg", np.full(4, 0.25, dtype=np.float32), predictor) is None
    assert tagging.sidecar_for("x.jpg", sure, predictor, naming="photo.xmp").name == "x.xmp"
