"""landmarklib.data: locating, checking, splitting, statistics, transforms, loaders, caches."""

from __future__ import annotations

import functools
import http.server
import io
import shutil
import threading
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from landmarklib import data

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
LANDMARKS44 = SHARED / "landmarks44"


# ----------------------------------------------------------------------------- data_root


def test_data_root_order(tmp_path, monkeypatch):
    explicit = tmp_path / "explicit"
    from_env = tmp_path / "env"
    explicit.mkdir()
    from_env.mkdir()
    monkeypatch.setenv("LANDMARK_DATA", str(from_env))
    assert data.data_root(explicit) == explicit
    assert data.data_root() == from_env
    monkeypatch.setenv("LANDMARKLIB_TINY", "1")
    assert data.data_root() == data.tiny_data_root()
    assert data.data_root(explicit) == explicit
    monkeypatch.setenv("LANDMARKLIB_TINY", "0")
    monkeypatch.delenv("LANDMARK_DATA")
    with pytest.raises(FileNotFoundError, match="download_landmarks"):
        data.data_root()  # the private cache folder has no dataset


# --------------------------------------------------------------------------- layout check


def test_tiny_data_is_laid_out_like_the_real_dataset():
    report = data.check_layout(data.tiny_data_root())
    assert report.problems == []
    assert len(report.classes) >= 4
    assert report.classes[0] == "00.Haleakala_National_Park"
    assert all(n >= 6 for n in report.counts("train").values())
    assert all(n >= 2 for n in report.counts("test").values())
    total = sum(p.stat().st_size for p in data.tiny_data_root().rglob("*") if p.is_file())
    assert total <= 2 * 1024 * 1024


def test_broken_files_are_reported_not_fatal(tiny_copy):
    eiffel = tiny_copy / "train" / "16.Eiffel_Tower"
    photo = sorted(eiffel.glob("*.jpg"))[0]
    truncated = eiffel / "truncated.jpg"
    truncated.write_bytes(photo.read_bytes()[:1500])
    (eiffel / "notes.txt").write_text("not a photo")
    leaked = tiny_copy / "test" / "16.Eiffel_Tower" / "leaked.jpg"
    shutil.copy(sorted(eiffel.glob("*.jpg"))[1], leaked)

    with pytest.warns(UserWarning) as warned:
        report = data.check_layout(tiny_copy)
    assert report.problems == []
    assert report.not_images == [eiffel / "notes.txt"]
    assert [p for p, _ in report.unreadable] == [truncated]
    assert [test for _, test in report.duplicates] == [leaked]
    assert report.counts("train")["16.Eiffel_Tower"] == 10
    assert report.counts("test")["16.Eiffel_Tower"] == 4
    messages = " ".join(str(w.message) for w in warned)
    assert "truncated.jpg" in messages and "notes.txt" in messages and "leaked.jpg" in messages
    assert "truncated.jpg" in str(report) and "duplicate" in str(report)


def test_hidden_folders_are_not_classes(tiny_copy):
    (tiny_copy / "train" / ".ipynb_checkpoints").mkdir()
    (tiny_copy / "test" / "__MACOSX").mkdir()
    report = data.check_layout(tiny_copy)
    assert report.problems == [] and len(report.classes) == 7


def test_fatal_layout_problems(tiny_copy):
    shutil.rmtree(tiny_copy / "test" / "44.Trevi_Fountain")
    for photo in (tiny_copy / "train" / "41.Machu_Picchu").iterdir():
        photo.unlink()
    report = data.check_layout(tiny_copy)
    assert any("only in train ['44.Trevi_Fountain']" in p for p in report.problems)
    assert any("41.Machu_Picchu" in p and "no usable photo" in p for p in report.problems)
    shutil.rmtree(tiny_copy / "test")
    assert any("missing folder" in p for p in data.check_layout(tiny_copy).problems)
    with pytest.raises(ValueError, match="missing folder"):
        data.make_loaders(tiny_copy, progress=False)


def test_unicode_names_and_mixed_formats(tmp_path):
    for split, count in (("train", 3), ("test", 1)):
        for name in ("00.anıtkabir", "01.boğaziçi_köprüsü"):
            folder = tmp_path / split / name
            folder.mkdir(parents=True)
            for i, (mode, ext) in enumerate([("CMYK", ".jpeg"), ("P", ".png"), ("L", ".JPG")][:count]):
                Image.new("RGB", (20, 20), (i * 80, 10, 100 if split == "train" else 200)).convert(mode).save(folder / f"{i}{ext}")
    report = data.check_layout(tmp_path, decode=True)
    assert report.problems == [] and report.unreadable == []
    assert report.counts("train") == {"00.anıtkabir": 3, "01.boğaziçi_köprüsü": 3}
    assert data.class_names(tmp_path) == ["anıtkabir", "boğaziçi köprüsü"]


@pytest.mark.skipif(not LANDMARKS44.is_dir(), reason="needs ../shared/data/landmarks44")
def test_landmarks44_counts_and_split():
    report = data.check_layout(LANDMARKS44)
    assert len(report.classes) == 44
    assert len(report.files["train"]) == 4400 and len(report.files["test"]) == 1100
    keys = [str(p.relative_to(LANDMARKS44)) for p, _ in report.files["train"]]
    targets = [t for _, t in report.files["train"]]
    train, val = data.stratified_split(keys, targets)
    assert (len(train), len(val)) == (3520, 880)
    assert np.bincount(np.asarray(targets)[val]).tolist() == [20] * 44


def test_class_names_follow_sorted_folders():
    assert data.class_names(["09.Golden_Gate_Bridge", "16.Eiffel_Tower"]) == [
        "Golden Gate Bridge", "Eiffel Tower"]
    assert data.class_names(data.tiny_data_root())[1] == "Golden Gate Bridge"


# ------------------------------------------------------------------------------------ split


def test_stratified_split_is_stable_and_stratified():
    keys = [f"train/{c:02d}/{i}.jpg" for c in range(5) for i in range(99 + (c % 2))]
    targets = [int(k.split("/")[1]) for k in keys]
    train, val = data.stratified_split(keys, targets, 0.2, seed=0)
    assert len(val) == 5 * 20 and len(train) == len(keys) - 100
    assert set(train).isdisjoint(val) and sorted(train + val) == list(range(len(keys)))
    # The split depends on names, not on the order files were listed in.
    order = np.random.default_rng(1).permutation(len(keys))
    _, val_shuffled = data.stratified_split([keys[i] for i in order], [targets[i] for i in order])
    assert sorted(keys[order[i]] for i in val_shuffled) == sorted(keys[i] for i in val)
    assert data.stratified_split(keys, targets, 0.2, seed=1)[1] != val
    # A fixed example, so a change of algorithm cannot pass unnoticed.
    assert data.stratified_split([f"{i}" for i in range(10)], [0] * 10, 0.3)[1] == [4, 7, 9]
    with pytest.raises(ValueError):
        data.stratified_split(keys, targets[:-1])


# ------------------------------------------------------------------------------ statistics


def test_channel_stats_reads_only_the_files_given(tiny_copy, monkeypatch):
    report = data.check_layout(tiny_copy)
    train = report.files["train"][::2]
    opened = []
    original = data.open_image
    monkeypatch.setattr(data, "open_image", lambda p: opened.append(Path(p)) or original(p))
    mean, std = data.channel_stats(train, size=32, progress=False)
    assert sorted(opened) == sorted(p for p, _ in train)
    assert all(0 < m < 1 for m in mean) and all(0 < s < 0.5 for s in std)
    # Against a direct computation over the same pixels.
    to_tensor = data.eval_transform(32, None, None)
    pixels = torch.cat([to_tensor(original(p)).flatten(1) for p, _ in train], dim=1).double()
    assert np.allclose(mean, pixels.mean(1).numpy(), atol=1e-6)
    assert np.allclose(std, pixels.std(1, correction=0).numpy(), atol=1e-6)
    # Second call: from the cache, nothing opened.
    opened.clear()
    assert data.channel_stats(train, size=32, progress=False) == (mean, std)
    assert opened == []


def test_make_loaders_never_touches_test_or_validation_for_stats(tiny_copy, monkeypatch):
    seen = []
    original = data.channel_stats
    monkeypatch.setattr(data, "channel_stats",
                        lambda samples, *a, **k: seen.extend(samples) or original(samples, *a, **k))
    loaders = data.make_loaders(tiny_copy, size=48, batch_size=8, progress=False)
    valid_paths = {loaders.valid.dataset.dataset.dataset.samples[i][0]
                   for i in loaders.valid.dataset.dataset.indices}
    assert seen and all("/train/" in str(p) for p, _ in seen)
    assert valid_paths.isdisjoint(p for p, _ in seen)
    assert len(seen) + len(valid_paths) == 70


# ------------------------------------------------------------------------ transforms, loaders


def test_transforms_give_normalised_square_tensors():
    photo = Image.new("RGB", (300, 200), (255, 0, 0))
    mean, std = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)
    for transform in (data.train_transform(64, mean, std), data.eval_transform(64, mean, std)):
        for image in (photo, torch.full((3, 200, 300), 255, dtype=torch.uint8)):
            out = transform(image)
            assert out.shape == (3, 64, 64) and out.dtype == torch.float32
    red = data.eval_transform(64, mean, std)(photo)
    assert torch.allclose(red[0], torch.full((64, 64), 2.0))
    assert torch.allclose(red[1], torch.full((64, 64), -2.0))
    assert torch.allclose(data.denormalize(red, mean, std)[0], torch.ones(64, 64))


@pytest.mark.parametrize("in_memory", [True, False])
def test_make_loaders_on_tiny_data(in_memory):
    loaders = data.make_loaders(data.tiny_data_root(), size=64, batch_size=16,
                                in_memory=in_memory, num_workers=0, progress=False)
    assert (len(loaders.train.dataset), len(loaders.valid.dataset), len(loaders.test.dataset)) == (56, 14, 21)
    images, labels = next(iter(loaders.train))
    assert images.shape == (16, 3, 64, 64) and images.dtype == torch.float32
    assert labels.dtype == torch.int64 and 0 <= labels.min() and labels.max() < 7
    assert loaders.class_names[0] == "Haleakala National Park"
    # Eval batches are deterministic; normalised training pixels are centred near 0.
    a, _ = next(iter(loaders.valid))
    b, _ = next(iter(loaders.valid))
    assert torch.equal(a, b)
    assert abs(float(images.mean())) < 0.5


# ------------------------------------------------------------------------ resized-image cache


def test_resized_copy_is_a_dataset_and_is_reused(tiny_copy, tmp_path):
    dest = tmp_path / "resized"
    out = data.resized_copy(tiny_copy, short_side=48, dest=dest, progress=False)
    report = data.check_layout(out)
    assert report.classes == data.check_layout(tiny_copy).classes
    assert len(report.files["train"]) == 70 and len(report.files["test"]) == 21
    assert all(min(Image.open(p).size) == 48 for p, _ in report.files["train"])
    stamps = {p: p.stat().st_mtime_ns for p, _ in report.files["train"]}
    # Unchanged sources: nothing rewritten. A changed and a removed source: only those.
    changed = sorted((tiny_copy / "train" / "16.Eiffel_Tower").glob("*.jpg"))[0]
    Image.new("RGB", (90, 60), "blue").save(changed)
    removed = sorted((tiny_copy / "train" / "21.Taj_Mahal").glob("*.jpg"))[0]
    removed.unlink()
    data.resized_copy(tiny_copy, short_side=48, dest=dest, progress=False)
    after = {p: p.stat().st_mtime_ns for p, _ in data.check_layout(out).files["train"]}
    rewritten = [p for p in after if after[p] != stamps[p]]
    assert [p.name for p in rewritten] == [changed.name]
    assert len(after) == 69 and Image.open(dest / "train/16.Eiffel_Tower" / changed.name).size == (72, 48)


def test_image_sizes_reads_headers():
    paths = [p for p, _ in data.check_layout(data.tiny_data_root()).files["train"]]
    sizes = data.image_sizes(paths)
    assert sizes.shape == (70, 2) and sizes.dtype == np.int64
    assert {tuple(s) for s in sizes[10:]} == {(96, 96)}
    assert max(sizes[:10].max(axis=1)) == 160


# ------------------------------------------------------------------------------- download


def _zip_of(folder: Path) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                archive.write(path, "landmark_images/" + str(path.relative_to(folder)))
    return buffer.getvalue()


class _Server:
    """An HTTP server on 127.0.0.1 that serves one body, optionally cut short."""

    def __init__(self, body: bytes, cut_at: int | None = None):
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - http.server's naming
                outer.requests += 1
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body[: cut_at] if cut_at else body)
                self.wfile.flush()
                self.close_connection = True

            def log_message(self, *args):
                pass

        self.requests = 0
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_port}/landmark_images.zip"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


def test_download_unzips_and_checks(tmp_path):
    body = _zip_of(data.tiny_data_root())
    with _Server(body) as server:
        root = data.download_landmarks(tmp_path, url=server.url, progressbar=False)
        assert root == tmp_path / "landmark_images"
        assert len(data.check_layout(root).files["test"]) == 21
        # A second call finds the data and downloads nothing.
        assert data.download_landmarks(tmp_path, url=server.url, progressbar=False) == root
        assert server.requests == 1
    assert not list(tmp_path.glob(".unzip-*"))


def test_download_checks_the_hash(tmp_path):
    body = _zip_of(data.tiny_data_root())
    with _Server(body) as server:
        with pytest.raises(ValueError, match="SHA256"):
            data.download_landmarks(tmp_path, url=server.url, known_hash="sha256:" + "0" * 64,
                                    progressbar=False)
    assert not (tmp_path / "landmark_images.zip").exists()


def test_partial_download_is_never_taken_for_a_whole_one(tmp_path):
    body = _zip_of(data.tiny_data_root())
    with _Server(body, cut_at=len(body) // 2) as server:
        with pytest.raises(Exception):
            data.download_landmarks(tmp_path, url=server.url, progressbar=False)
    assert not (tmp_path / "landmark_images.zip").exists()
    assert not (tmp_path / "landmark_images").exists()
    with _Server(body) as server:  # the next try starts again and succeeds
        root = data.download_landmarks(tmp_path, url=server.url, progressbar=False)
    assert data.check_layout(root).problems == []


def test_data_root_downloads_on_request(tmp_path, monkeypatch):
    monkeypatch.setenv("LANDMARKLIB_CACHE", str(tmp_path))
    with _Server(_zip_of(data.tiny_data_root())) as server:
        monkeypatch.setattr(data, "DATASET_URL", server.url)
        assert data.data_root(download=True) == tmp_path / "landmark_images"


def test_resized_copy_copies_small_photos_as_they_are(tiny_copy, tmp_path):
    out = data.resized_copy(tiny_copy, short_side=100, dest=tmp_path / "r", progress=False)
    source = sorted((tiny_copy / "train" / "16.Eiffel_Tower").glob("*.jpg"))[0]  # 96 x 96
    assert (out / "train/16.Eiffel_Tower" / source.name).read_bytes() == source.read_bytes()
    haleakala = sorted((out / "train/00.Haleakala_National_Park").glob("*.jpg"))[0]  # 160 x 120
    assert min(Image.open(haleakala).size) == 100
