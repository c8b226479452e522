"""Build the tiny real dataset shipped inside the package, in ``landmarklib/tiny/``.

CI and the notebooks' "tiny mode" use it so that every notebook runs in seconds.
It is laid out exactly like the real Udacity ``landmark_images`` dataset::

    landmarklib/tiny/train/NN.Real_Folder_Name/<stem>.jpg   (10 photos per class)
    landmarklib/tiny/test/NN.Real_Folder_Name/<stem>.jpg    ( 3 photos per class)

and holds 7 of the 50 classes, with the real dataset's class folder names:

* ``00.Haleakala_National_Park``: original dataset photos from
  ``landmark_images_partial/`` (800 px), downscaled to 160 px on the long side
  (aspect ratio kept) and saved as JPEG quality 85.
* ``09``, ``16``, ``21``, ``28``, ``41``, ``44``: photos of the same landmarks from
  ``landmarks44/`` (96x96 px), kept at their native size. An RGB JPEG is copied
  byte for byte; any other image is converted to an RGB JPEG.

Train photos come from the source's ``train/`` folder, test photos from its
``test/`` folder. Photos are taken in sorted file-name order, the first ones
that qualify; a photo is skipped when it is in ``EXCLUDED`` (checked by eye:
not the landmark), does not open with Pillow, is grayscale (a grayscale mode,
or RGB with three identical channels), is byte-identical to a train photo of
its class (test only), or would overwrite an already chosen file of the same
stem. Every skip is listed in ``PROVENANCE.md``, which this script writes together with a table of every
file (tiny path, source path, md5).

The script is idempotent: it deletes ``landmarklib/tiny/`` and rebuilds it.
It needs only Pillow and the standard library. The md5 of a re-encoded photo
depends on the Pillow / libjpeg version; copied photos keep their source md5.

Usage (from anywhere)::

    python scripts/make_tiny_data.py [SHARED_DATA]

``SHARED_DATA`` defaults to ``../shared/data`` relative to the repository root.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import PIL
from PIL import Image, ImageChops

REPO_ROOT = Path(__file__).resolve().parent.parent
TINY_DIR = REPO_ROOT / "landmarklib" / "tiny"
DEFAULT_SHARED_DATA = REPO_ROOT.parent / "shared" / "data"

N_PHOTOS = {"train": 10, "test": 3}  # per class
LONG_SIDE = 160  # px, for the downscaled 800 px originals
JPEG_QUALITY = 85  # for every photo this script re-encodes
MAX_TOTAL_BYTES = 2 * 1024 * 1024  # the whole tiny folder, PROVENANCE.md included

GRAYSCALE_MODES = {"1", "L", "LA", "I", "I;16", "F"}

# Photos that would otherwise be chosen but do not show the landmark (found by
# looking at every chosen photo); paths relative to shared/data.
EXCLUDED = {
    "landmarks44/train/37.sydney/image_101.jpg": "not the Sydney Harbour Bridge (artwork of a suspension bridge)",
}


@dataclass(frozen=True)
class TinyClass:
    name: str  # class folder name in the real dataset (and in tiny/)
    dataset: str  # folder under shared/data holding train/ and test/
    source_folder: str  # class folder name inside that dataset
    action: str  # "downscale" (to LONG_SIDE) or "copy" (native size)


CLASSES = [
    TinyClass(
        "00.Haleakala_National_Park",
        "landmark_images_partial",
        "00.Haleakala_National_Park",
        "downscale",
    ),
    TinyClass("09.Golden_Gate_Bridge", "landmarks44", "15.golden_gate", "copy"),
    TinyClass("16.Eiffel_Tower", "landmarks44", "12.eiffel_tower", "copy"),
    TinyClass("21.Taj_Mahal", "landmarks44", "38.taj_mahal", "copy"),
    TinyClass("28.Sydney_Harbour_Bridge", "landmarks44", "37.sydney", "copy"),
    TinyClass("41.Machu_Picchu", "landmarks44", "21.machu_picchu", "copy"),
    TinyClass("44.Trevi_Fountain", "landmarks44", "40.trevi_fountain", "copy"),
]

# Where each source dataset came from, as stated in shared/data/README.md.
DATASET_ORIGIN = {
    "landmark_images_partial": (
        "Original photos of the Udacity `landmark_images` dataset (a subset of the Google "
        "Landmarks Dataset v2), recovered from public copies on GitHub; the repository and "
        "path of each file are in `landmark_images_partial/SOURCES.tsv` and in the upstream "
        "column below. Licence: Google Landmarks v2 terms, each image under its own licence; "
        "attribution by file id (the file stem)."
    ),
    "landmarks44": (
        "github.com/arazosman/Landmark-Detection, folder `Model Training/Dataset` "
        "(44 classes, photos collected from the web, stored squashed to 96x96 px). The repository "
        "is MIT-licensed (`landmarks44/LICENSE.repo-MIT.txt`, Copyright (c) 2019 Osman Araz); that "
        "licence is the repository's: no separate licence or author is recorded for the photos."
    ),
}
LANDMARKS44_UPSTREAM = "arazosman/Landmark-Detection"


@dataclass
class Chosen:
    tiny_path: Path  # relative to TINY_DIR
    source_path: Path  # relative to shared/data
    how: str  # "copied", "converted to RGB JPEG", "downscaled ..."
    upstream: str
    md5: str = ""


def md5_of(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def image_files(folder: Path) -> list[Path]:
    """The files of a folder, in sorted file-name order."""
    return sorted(
        (p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")),
        key=lambda p: p.name,
    )


def read_sources_tsv(shared: Path) -> dict[str, str]:
    """landmark_images_partial/SOURCES.tsv: file (train/NN.x/y.jpg) -> upstream repo/path."""
    upstream = {}
    with open(
        shared / "landmark_images_partial" / "SOURCES.tsv", newline="", encoding="utf-8"
    ) as f:
        for row in csv.DictReader(f, delimiter="\t"):
            upstream[row["file"]] = f"{row['source_repo']}: {row['source_path']}"
    return upstream


def to_rgb(im: Image.Image) -> Image.Image:
    """Convert any colour mode to RGB, putting transparent parts on white."""
    if im.mode == "RGB":
        return im
    if im.mode in ("RGBA", "LA", "PA") or "transparency" in im.info:
        rgba = im.convert("RGBA")
        background = Image.new("RGB", rgba.size, (255, 255, 255))
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    return im.convert("RGB")


def write_photo(source: Path, target: Path, action: str) -> str:
    """Write one photo of the tiny set; return what was done to it."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with Image.open(source) as im:
        im.load()
        if action == "downscale":
            w, h = im.size
            scale = LONG_SIDE / max(w, h)
            size = (max(1, round(w * scale)), max(1, round(h * scale)))
            small = to_rgb(im).resize(size, Image.Resampling.LANCZOS)
            small.save(target, "JPEG", quality=JPEG_QUALITY)
            return f"downscaled {w}x{h} -> {size[0]}x{size[1]}, JPEG q{JPEG_QUALITY}"
        if im.format == "JPEG" and im.mode == "RGB":
            shutil.copyfile(source, target)
            return "copied (original bytes)"
        to_rgb(im).save(target, "JPEG", quality=JPEG_QUALITY)
        return f"converted {im.format} {im.mode} -> RGB JPEG q{JPEG_QUALITY}"


def is_gray_rgb(im: Image.Image) -> bool:
    """True for an RGB image whose three channels are identical (a black-and-white photo)."""
    r, g, b = im.split()
    return (
        ImageChops.difference(r, g).getbbox() is None
        and ImageChops.difference(g, b).getbbox() is None
    )


def why_not(source: Path, shared: Path, train_md5s: set[str], split: str) -> str | None:
    """The reason a candidate photo is skipped, or None if it qualifies."""
    if source.relative_to(shared).as_posix() in EXCLUDED:
        return EXCLUDED[source.relative_to(shared).as_posix()]
    try:
        with Image.open(source) as im:
            im.load()
            mode = im.mode
            gray_rgb = mode == "RGB" and is_gray_rgb(im)
    except Exception as error:  # noqa: BLE001 - any failure to decode means "skip"
        return f"does not open with Pillow ({type(error).__name__})"
    if mode in GRAYSCALE_MODES:
        return f"grayscale (mode {mode})"
    if gray_rgb:
        return "grayscale content (RGB with three identical channels)"
    if split == "test" and md5_of(source) in train_md5s:
        return "byte-identical to a train photo of the same class"
    return None


def build(shared: Path) -> tuple[list[Chosen], list[tuple[Path, str]]]:
    """Choose and write every photo; return the chosen photos and the skipped ones."""
    partial_upstream = read_sources_tsv(shared)
    chosen: list[Chosen] = []
    skipped: list[tuple[Path, str]] = []
    for cls in CLASSES:
        class_root = shared / cls.dataset
        train_md5s = {md5_of(p) for p in image_files(class_root / "train" / cls.source_folder)}
        for split, n_wanted in N_PHOTOS.items():
            taken: list[Chosen] = []
            for source in image_files(class_root / split / cls.source_folder):
                if len(taken) == n_wanted:
                    break
                tiny_path = Path(split) / cls.name / f"{source.stem}.jpg"
                reason = why_not(source, shared, train_md5s, split)
                if reason is None and any(c.tiny_path == tiny_path for c in taken):
                    reason = f"same stem as an already chosen photo ({tiny_path.name})"
                if reason is not None:
                    skipped.append((source.relative_to(shared), reason))
                    continue
                how = write_photo(source, TINY_DIR / tiny_path, cls.action)
                relative_in_dataset = source.relative_to(class_root).as_posix()
                upstream = (
                    partial_upstream.get(relative_in_dataset, "")
                    if cls.dataset == "landmark_images_partial"
                    else LANDMARKS44_UPSTREAM
                )
                taken.append(Chosen(tiny_path, source.relative_to(shared), how, upstream))
            if len(taken) < n_wanted:
                sys.exit(
                    f"only {len(taken)} usable {split} photos for {cls.name}, wanted {n_wanted}"
                )
            chosen.extend(taken)
    for c in chosen:
        c.md5 = md5_of(TINY_DIR / c.tiny_path)
    return chosen, skipped


def check(chosen: list[Chosen]) -> None:
    """Fail loudly if the tiny set is not what it must be."""
    for split, n in N_PHOTOS.items():
        for cls in CLASSES:
            found = list((TINY_DIR / split / cls.name).glob("*.jpg"))
            assert len(found) == n, f"{split}/{cls.name}: {len(found)} photos, wanted {n}"
    assert len(list(TINY_DIR.rglob("*.jpg"))) == len(chosen)
    for c in chosen:
        with Image.open(TINY_DIR / c.tiny_path) as im:
            im.load()
            assert im.format == "JPEG" and im.mode == "RGB", f"{c.tiny_path}: {im.format} {im.mode}"
    train_md5s = {c.md5 for c in chosen if c.tiny_path.parts[0] == "train"}
    leaks = [c.tiny_path for c in chosen if c.tiny_path.parts[0] == "test" and c.md5 in train_md5s]
    assert not leaks, f"test photos byte-identical to a train photo: {leaks}"
    assert len({c.md5 for c in chosen}) == len(chosen), "two tiny photos are byte-identical"


def write_provenance(chosen: list[Chosen], skipped: list[tuple[Path, str]]) -> None:
    lines = [
        "# Provenance of the tiny dataset",
        "",
        "Generated by `scripts/make_tiny_data.py` (do not edit by hand; rerun the script).",
        f"Built with Pillow {PIL.__version__}. The md5 of a re-encoded photo depends on the Pillow /",
        "libjpeg version; copied photos keep the md5 of their source file.",
        "",
        "A real-photo miniature of the Udacity `landmark_images` dataset (50 classes) for CI and the",
        "notebooks' tiny mode: 7 classes, each with "
        f"{N_PHOTOS['train']} train and {N_PHOTOS['test']} test photos, under the real dataset's class folder names.",
        "Train photos come from the source's `train/` folder and test photos from its `test/` folder;",
        "no tiny file is byte-identical to another (md5 checked). Photos are the first ones, in sorted",
        "file-name order, that open with Pillow, are not grayscale, were not excluded by eye (not the",
        "landmark), and (test only) are not byte-identical to a train photo of the class in the source.",
        "Source paths are relative to `shared/data/`.",
        "",
        "## Classes",
        "",
        "| tiny class folder | source folder | what was done |",
        "|---|---|---|",
    ]
    for cls in CLASSES:
        done = (
            f"downscaled to {LONG_SIDE} px on the long side (aspect ratio kept), JPEG quality {JPEG_QUALITY}"
            if cls.action == "downscale"
            else f"kept at native 96x96 px; RGB JPEGs copied byte for byte, other images converted to RGB JPEG (quality {JPEG_QUALITY})"
        )
        lines.append(
            f"| `{cls.name}` | `{cls.dataset}/{{train,test}}/{cls.source_folder}/` | {done} |"
        )
    lines += ["", "## Sources and licences", ""]
    for dataset in sorted({cls.dataset for cls in CLASSES}):
        lines.append(f"- `{dataset}/`: {DATASET_ORIGIN[dataset]}")
    lines += [
        "- `28.Sydney_Harbour_Bridge`: the `landmarks44` class `sydney` shows the harbour bridge "
        "(not the opera house); shared/data/README.md notes that a few of its photos are mislabelled.",
        "",
        "## Skipped source photos",
        "",
    ]
    if skipped:
        lines += ["| source path | reason |", "|---|---|"]
        lines += [f"| `{path.as_posix()}` | {reason} |" for path, reason in skipped]
    else:
        lines.append("None.")
    lines += [
        "",
        "## Files",
        "",
        "| tiny path | source path | md5 of tiny file | what was done | upstream |",
        "|---|---|---|---|---|",
    ]
    for c in chosen:
        lines.append(
            f"| `{c.tiny_path.as_posix()}` | `{c.source_path.as_posix()}` | `{c.md5}` | {c.how} | {c.upstream} |"
        )
    (TINY_DIR / "PROVENANCE.md").write_text("\n".join(lines) + "\n", encoding="utf-8")


def total_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "shared_data",
        nargs="?",
        type=Path,
        default=DEFAULT_SHARED_DATA,
        help="folder holding landmark_images_partial/ and landmarks44/ (default: ../shared/data from the repo root)",
    )
    shared = parser.parse_args(argv).shared_data.resolve()
    for dataset in {cls.dataset for cls in CLASSES}:
        if not (shared / dataset).is_dir():
            sys.exit(
                f"{shared / dataset} not found; pass the shared data folder as the first argument"
            )

    if TINY_DIR.exists():
        shutil.rmtree(TINY_DIR)
    TINY_DIR.mkdir(parents=True)

    chosen, skipped = build(shared)
    check(chosen)
    write_provenance(chosen, skipped)

    size = total_bytes(TINY_DIR)
    assert size <= MAX_TOTAL_BYTES, f"tiny set is {size} bytes, over {MAX_TOTAL_BYTES}"
    for split in N_PHOTOS:
        n = sum(1 for c in chosen if c.tiny_path.parts[0] == split)
        print(f"{split}: {n} photos in {len(CLASSES)} classes")
    print(f"skipped {len(skipped)} source photos; total {size} bytes in {TINY_DIR}")


if __name__ == "__main__":
    main()
