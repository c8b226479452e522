"""landmarklib.data.subset: a dataset folder with some of the classes, as links."""

from __future__ import annotations

import pytest

from landmarklib import data

KEEP = ["16.Eiffel_Tower", "44.Trevi_Fountain"]


def test_class_subset_links_the_classes_and_loads_like_any_dataset(tmp_path):
    source = data.tiny_data_root()
    root = data.class_subset(source, tmp_path / "two", KEEP)
    assert data.class_subset(source, root, KEEP) == root  # made twice: the same
    report = data.check_layout(root, warn=False)
    assert report.classes == KEEP and not report.problems
    assert len(report.files["train"]) == 20 and len(report.files["test"]) == 6
    assert (root / "train" / KEEP[0]).is_symlink()
    assert sorted(p.name for p in (source / "train" / KEEP[0]).iterdir()) == sorted(
        p.name for p in (root / "train" / KEEP[0]).iterdir())


def test_class_subset_made_twice_from_class_folders_that_are_links(tmp_path):
    source = tmp_path / "linked"  # a dataset assembled from links to another's classes
    for split in ("train", "test"):
        (source / split).mkdir(parents=True)
        for name in KEEP:
            (source / split / name).symlink_to(data.tiny_data_root() / split / name)
    root = data.class_subset(source, tmp_path / "one", KEEP[:1])
    assert data.class_subset(source, root, KEEP[:1]) == root
    assert len(data.check_layout(root, warn=False).files["train"]) == 10


def test_class_subset_names_what_is_wrong(tmp_path):
    with pytest.raises(ValueError, match="has no class '99.Atlantis'"):
        data.class_subset(data.tiny_data_root(), tmp_path / "x", ["99.Atlantis"])
    with pytest.raises(ValueError, match="at least one class"):
        data.class_subset(data.tiny_data_root(), tmp_path / "x", [])
    (tmp_path / "y" / "train" / KEEP[0]).mkdir(parents=True)
    with pytest.raises(FileExistsError, match="is not a link"):
        data.class_subset(data.tiny_data_root(), tmp_path / "y", KEEP)
