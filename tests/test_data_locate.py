"""landmarklib.data.locate: where the dataset is, and downloading it."""

from __future__ import annotations

import http.server
import io
import threading
import zipfile
from pathlib import Path

import pytest

from landmarklib import data
from landmarklib.data import locate


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
        with pytest.raises(Exception):  # noqa: B017 - requests or pooch, whichever notices first
            data.download_landmarks(tmp_path, url=server.url, progressbar=False)
    assert not (tmp_path / "landmark_images.zip").exists()
    assert not (tmp_path / "landmark_images").exists()
    with _Server(body) as server:  # the next try starts again and succeeds
        root = data.download_landmarks(tmp_path, url=server.url, progressbar=False)
    assert data.check_layout(root).problems == []


def test_data_root_downloads_on_request(tmp_path, monkeypatch):
    monkeypatch.setenv("LANDMARKLIB_CACHE", str(tmp_path))
    with _Server(_zip_of(data.tiny_data_root())) as server:
        monkeypatch.setattr(locate, "DATASET_URL", server.url)
        assert data.data_root(download=True) == tmp_path / "landmark_images"
