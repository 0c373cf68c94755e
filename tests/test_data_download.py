"""Download helpers against a local HTTP server on 127.0.0.1 (never the internet)."""
from __future__ import annotations

import hashlib
import http.server
import io
import tarfile
import threading

import pytest

from fastnst.train.data import download
from fastnst.train.data.download import ChecksumError, download_file, extract_archive
from fastnst.train.data.errors import DataFormatError


class _RangeHandler(http.server.BaseHTTPRequestHandler):
    """Serves ``server.files`` (name -> bytes) with HTTP Range support, logging bytes sent."""

    def do_GET(self):
        body = self.server.files.get(self.path.lstrip("/"))
        if body is None:
            self.send_error(404)
            return
        start = 0
        if (header := self.headers.get("Range")) and self.server.honour_range:
            start = int(header.removeprefix("bytes=").split("-")[0])
            if start >= len(body):
                self.send_error(416)
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(body) - start))
        self.end_headers()
        self.wfile.write(body[start:])
        self.server.bytes_sent += len(body) - start

    def log_message(self, *args):
        pass


@pytest.fixture()
def server():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _RangeHandler)
    httpd.files, httpd.bytes_sent, httpd.honour_range = {}, 0, True
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()
    thread.join()


def _url(server, name):
    return f"http://127.0.0.1:{server.server_address[1]}/{name}"


def _tar_gz(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


@pytest.fixture()
def archive_bytes():
    import os

    return _tar_gz({"toy-set/a.bin": os.urandom(50_000), "toy-set/sub/b.txt": b"hello"})


def test_download_verify_and_extract(tmp_path, server, archive_bytes):
    server.files["toy.tar.gz"] = archive_bytes
    path = download_file(_url(server, "toy.tar.gz"), tmp_path / "toy.tar.gz",
                         md5=hashlib.md5(archive_bytes).hexdigest(), sha256=hashlib.sha256(archive_bytes).hexdigest())
    assert path.read_bytes() == archive_bytes and not (tmp_path / "toy.tar.gz.part").exists()
    placed = extract_archive(path, tmp_path / "data")
    assert placed == [tmp_path / "data" / "toy-set"]
    assert (tmp_path / "data" / "toy-set" / "sub" / "b.txt").read_bytes() == b"hello"
    assert [p.name for p in (tmp_path / "data").iterdir()] == ["toy-set"]  # no staging folder left


def test_download_resumes_a_partial_file(tmp_path, server, archive_bytes):
    server.files["toy.tar.gz"] = archive_bytes
    half = len(archive_bytes) // 2
    (tmp_path / "toy.tar.gz.part").write_bytes(archive_bytes[:half])
    download_file(_url(server, "toy.tar.gz"), tmp_path / "toy.tar.gz", md5=hashlib.md5(archive_bytes).hexdigest())
    assert server.bytes_sent == len(archive_bytes) - half
    assert (tmp_path / "toy.tar.gz").read_bytes() == archive_bytes


def test_server_without_range_support_restarts(tmp_path, server, archive_bytes):
    server.files["toy.tar.gz"], server.honour_range = archive_bytes, False
    (tmp_path / "toy.tar.gz.part").write_bytes(b"stale bytes of another attempt")
    download_file(_url(server, "toy.tar.gz"), tmp_path / "toy.tar.gz", sha256=hashlib.sha256(archive_bytes).hexdigest())
    assert (tmp_path / "toy.tar.gz").read_bytes() == archive_bytes


def test_corrupted_download_is_rejected_and_deleted(tmp_path, server, archive_bytes):
    corrupted = bytearray(archive_bytes)
    corrupted[1000] ^= 0xFF
    server.files["toy.tar.gz"] = bytes(corrupted)
    with pytest.raises(ChecksumError, match="toy.tar.gz: md5 .* does not match"):
        download_file(_url(server, "toy.tar.gz"), tmp_path / "toy.tar.gz", md5=hashlib.md5(archive_bytes).hexdigest())
    assert list(tmp_path.iterdir()) == []


def test_broken_archive_extracts_nothing(tmp_path, archive_bytes):
    (tmp_path / "cut.tar.gz").write_bytes(archive_bytes[: len(archive_bytes) // 2])
    with pytest.raises(DataFormatError, match="cut.tar.gz: cannot extract"):
        extract_archive(tmp_path / "cut.tar.gz", tmp_path / "data")
    assert list((tmp_path / "data").iterdir()) == []


def test_archive_escaping_the_folder_is_refused(tmp_path):
    (tmp_path / "evil.tar.gz").write_bytes(_tar_gz({"../escaped.txt": b"x"}))
    with pytest.raises(DataFormatError, match="outside the target folder"):
        extract_archive(tmp_path / "evil.tar.gz", tmp_path / "data")
    assert not (tmp_path / "escaped.txt").exists()


def test_download_dataset_end_to_end(tmp_path, server, archive_bytes, monkeypatch):
    server.files["toy.tar.gz"] = archive_bytes
    monkeypatch.setitem(download.ARCHIVES, "toy", download.Archive(
        _url(server, "toy.tar.gz"), hashlib.md5(archive_bytes).hexdigest(), "toy-set"))
    folder = download.download_dataset("toy", tmp_path)
    assert folder == tmp_path / "toy-set" and (folder / "a.bin").stat().st_size == 50_000
    assert not (tmp_path / "toy.tar.gz").exists()
    sent = server.bytes_sent
    assert download.download_dataset("toy", tmp_path) == folder and server.bytes_sent == sent  # present: no fetch


def test_known_archives_have_checksums_where_published():
    assert {name for name, entry in download.ARCHIVES.items() if entry.md5 is None} == {"tinyimagenet-c"}
    assert all(len(entry.md5) == 32 for entry in download.ARCHIVES.values() if entry.md5)


def test_command_line(tmp_path, server, archive_bytes, monkeypatch, capsys):
    server.files["toy.tar.gz"] = archive_bytes
    monkeypatch.setitem(download.ARCHIVES, "toy", download.Archive(
        _url(server, "toy.tar.gz"), hashlib.md5(archive_bytes).hexdigest(), "toy-set"))
    download.main(["toy", "--data-root", str(tmp_path), "--keep-archive"])
    assert f"toy: {tmp_path / 'toy-set'}" in capsys.readouterr().out
    assert (tmp_path / "toy.tar.gz").exists() and (tmp_path / "toy-set" / "a.bin").exists()
    with pytest.raises(SystemExit):
        download.main(["imagenet", "--data-root", str(tmp_path)])
