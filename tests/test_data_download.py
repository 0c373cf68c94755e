"""The downloader and its manifest, against a local HTTP server on 127.0.0.1 (never the internet)."""
from __future__ import annotations

import dataclasses
import hashlib
import http.server
import io
import json
import logging
import os
import shutil
import socket
import subprocess
import tarfile
import threading

import pytest

from fastnst.train.data import download, manifest
from fastnst.train.data.download import ChecksumError, DownloadError, download_file, extract_archive
from fastnst.train.data.errors import DataFormatError
from fastnst.train.data.manifest import Checksum, ChecksumApi, Item, RemoteFile


class _RangeHandler(http.server.BaseHTTPRequestHandler):
    """Serves ``server.files`` (name -> bytes) with HTTP Range support; ``server.cut_after`` (name -> n)
    sends only the first n bytes of a body, then drops the connection."""

    def do_GET(self):
        name = self.path.lstrip("/")
        self.server.requests.append(name)
        body = self.server.files.get(name)
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
        end = self.server.cut_after.pop(name, len(body))
        # Counted before the write: the client may see the last byte (and the test assert) before
        # this handler thread runs its next line.
        self.server.bytes_sent += max(0, end - start)
        self.wfile.write(body[start:end])

    def log_message(self, *args):
        pass


@pytest.fixture()
def server():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _RangeHandler)
    httpd.files, httpd.bytes_sent, httpd.honour_range, httpd.cut_after, httpd.requests = {}, 0, True, {}, []
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()
    thread.join()


def url(server, name):
    return f"http://127.0.0.1:{server.server_address[1]}/{name}"


@pytest.fixture()
def closed_port_url():
    """A URL on 127.0.0.1 where nothing listens: connections are refused, as without a network."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/CIFAR-10-C.tar"


def tar_bytes(files: dict[str, bytes], mode: str = "w:gz") -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode=mode) as archive:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


@pytest.fixture()
def archive_bytes():
    return tar_bytes({"toy-set/a.bin": os.urandom(50_000), "toy-set/sub/b.txt": b"hello"})


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# ----------------------------------------------------------------------------- one file

def test_download_verify_and_extract(tmp_path, server, archive_bytes):
    server.files["toy.tar.gz"] = archive_bytes
    path = download_file(url(server, "toy.tar.gz"), tmp_path / "toy.tar.gz", md5=md5(archive_bytes),
                         sha256=sha256(archive_bytes), size=len(archive_bytes))
    assert path.read_bytes() == archive_bytes and not (tmp_path / "toy.tar.gz.part").exists()
    placed = extract_archive(path, tmp_path / "data")
    assert placed == [tmp_path / "data" / "toy-set"]
    assert (tmp_path / "data" / "toy-set" / "sub" / "b.txt").read_bytes() == b"hello"
    assert [p.name for p in (tmp_path / "data").iterdir()] == ["toy-set"]  # no staging folder left


def test_download_resumes_a_partial_file(tmp_path, server, archive_bytes):
    server.files["toy.tar.gz"] = archive_bytes
    half = len(archive_bytes) // 2
    (tmp_path / "toy.tar.gz.part").write_bytes(archive_bytes[:half])
    download_file(url(server, "toy.tar.gz"), tmp_path / "toy.tar.gz", md5=md5(archive_bytes))
    assert server.bytes_sent == len(archive_bytes) - half
    assert (tmp_path / "toy.tar.gz").read_bytes() == archive_bytes


def test_server_without_range_support_restarts(tmp_path, server, archive_bytes):
    server.files["toy.tar.gz"], server.honour_range = archive_bytes, False
    (tmp_path / "toy.tar.gz.part").write_bytes(b"stale bytes of another attempt")
    download_file(url(server, "toy.tar.gz"), tmp_path / "toy.tar.gz", sha256=sha256(archive_bytes))
    assert (tmp_path / "toy.tar.gz").read_bytes() == archive_bytes
    assert server.bytes_sent == len(archive_bytes)


def test_complete_partial_file_is_verified_without_a_transfer(tmp_path, server, archive_bytes):
    server.files["toy.tar.gz"] = archive_bytes
    (tmp_path / "toy.tar.gz.part").write_bytes(archive_bytes)  # the server answers 416: nothing left to send
    download_file(url(server, "toy.tar.gz"), tmp_path / "toy.tar.gz", md5=md5(archive_bytes))
    assert server.bytes_sent == 0 and (tmp_path / "toy.tar.gz").read_bytes() == archive_bytes


def test_corrupted_download_is_rejected_and_deleted(tmp_path, server, archive_bytes):
    corrupted = bytearray(archive_bytes)
    corrupted[1000] ^= 0xFF
    server.files["toy.tar.gz"] = bytes(corrupted)
    with pytest.raises(ChecksumError, match="toy.tar.gz: md5 .* does not match the official"):
        download_file(url(server, "toy.tar.gz"), tmp_path / "toy.tar.gz", md5=md5(archive_bytes))
    assert list(tmp_path.iterdir()) == []


def test_wrong_size_is_rejected_before_hashing(tmp_path, server, archive_bytes):
    server.files["toy.tar.gz"] = archive_bytes
    with pytest.raises(ChecksumError, match=f"{len(archive_bytes)} bytes, but .* is published as 123 bytes"):
        download_file(url(server, "toy.tar.gz"), tmp_path / "toy.tar.gz", size=123)
    assert list(tmp_path.iterdir()) == []


def test_third_party_checksum_decides_only_without_an_official_one(tmp_path, server, archive_bytes, caplog):
    server.files["toy.tar.gz"] = archive_bytes
    wrong = Checksum("sha256", "0" * 64, "third-party", "some project's pin")
    official = Checksum("md5", md5(archive_bytes), "official", "the publisher")
    with caplog.at_level(logging.WARNING):
        download_file(url(server, "toy.tar.gz"), tmp_path / "a.tar.gz", checksums=(official, wrong))
    assert (tmp_path / "a.tar.gz").exists() and "some project's pin" in caplog.text  # logged, kept
    with pytest.raises(ChecksumError, match="does not match the third-party"):
        download_file(url(server, "toy.tar.gz"), tmp_path / "b.tar.gz", checksums=(wrong,))
    assert not (tmp_path / "b.tar.gz").exists() and not (tmp_path / "b.tar.gz.part").exists()


def test_git_blob_checksum_is_gits_object_id(tmp_path, server, caplog):
    data = os.urandom(3000)
    (tmp_path / "blob.bin").write_bytes(data)
    expected = subprocess.run(["git", "hash-object", str(tmp_path / "blob.bin")], capture_output=True, text=True,
                              check=True).stdout.strip()
    assert download.file_digest(tmp_path / "blob.bin", "git-blob-sha1") == expected
    server.files["w.pth"] = data
    cross_check = Checksum("git-blob-sha1", "f" * 40, "cross-check", "the authors' committed copy")
    with caplog.at_level(logging.WARNING):  # a cross-check never deletes: it only says the copies differ
        download_file(url(server, "w.pth"), tmp_path / "w.pth", checksums=(cross_check,))
    assert (tmp_path / "w.pth").read_bytes() == data and "the authors' committed copy" in caplog.text


def test_download_log_records_the_sha256(tmp_path, server, archive_bytes):
    server.files["toy.tar.gz"] = archive_bytes
    download_file(url(server, "toy.tar.gz"), tmp_path / "toy.tar.gz", record=tmp_path / "log.jsonl")
    record = json.loads((tmp_path / "log.jsonl").read_text())
    assert record["sha256"] == sha256(archive_bytes) and record["url"] == url(server, "toy.tar.gz")


# ----------------------------------------------------------------------------- no network, dropped connections

def test_unreachable_url_is_one_line_and_leaves_no_file(tmp_path, closed_port_url):
    with pytest.raises(DownloadError) as raised:
        download_file(closed_port_url, tmp_path / "CIFAR-10-C.tar")
    message = str(raised.value)
    assert "\n" not in message and closed_port_url in message and "refused" in message.lower()
    assert list(tmp_path.iterdir()) == []  # not even an empty .part
    with pytest.raises(DownloadError):
        download_file(closed_port_url, tmp_path / "data" / "adain" / "decoder.pth")
    assert list(tmp_path.iterdir()) == []  # nor the folders made for it


def test_dropped_connection_keeps_a_resumable_part_file_only(tmp_path, server, archive_bytes):
    server.files["toy.tar.gz"] = archive_bytes
    server.cut_after["toy.tar.gz"] = 20_000
    with pytest.raises(DownloadError, match=r"closed after 20000 of \d+ bytes.*kept in .*toy.tar.gz.part"):
        download_file(url(server, "toy.tar.gz"), tmp_path / "toy.tar.gz", md5=md5(archive_bytes))
    assert [p.name for p in tmp_path.iterdir()] == ["toy.tar.gz.part"]  # never a truncated final file
    assert (tmp_path / "toy.tar.gz.part").stat().st_size == 20_000
    download_file(url(server, "toy.tar.gz"), tmp_path / "toy.tar.gz", md5=md5(archive_bytes))
    assert server.bytes_sent == len(archive_bytes)  # 20000 + the rest: nothing fetched twice
    assert (tmp_path / "toy.tar.gz").read_bytes() == archive_bytes


def test_mirror_is_used_when_the_first_url_fails(tmp_path, server, archive_bytes, closed_port_url):
    server.files["toy.tar.gz"] = archive_bytes
    urls = (closed_port_url, url(server, "gone.tar.gz"), url(server, "toy.tar.gz"))
    download_file(urls, tmp_path / "toy.tar.gz", md5=md5(archive_bytes), record=tmp_path / "log.jsonl")
    assert (tmp_path / "toy.tar.gz").read_bytes() == archive_bytes
    assert json.loads((tmp_path / "log.jsonl").read_text())["url"] == urls[2]
    with pytest.raises(DownloadError, match="any of 2 URLs: .*refused.*HTTP 404"):
        download_file(urls[:2], tmp_path / "other.tar.gz")


def test_full_disk_is_refused_before_downloading(tmp_path, server, archive_bytes, monkeypatch):
    server.files["toy.tar.gz"] = archive_bytes
    monkeypatch.setattr(download.shutil, "disk_usage", lambda path: shutil._ntuple_diskusage(10**12, 10**12, 1000))
    with pytest.raises(DownloadError, match="needs .* free in"):
        download_file(url(server, "toy.tar.gz"), tmp_path / "toy.tar.gz", size=len(archive_bytes))
    assert server.requests == []


# ----------------------------------------------------------------------------- extraction

def test_broken_archive_extracts_nothing(tmp_path, archive_bytes):
    (tmp_path / "cut.tar.gz").write_bytes(archive_bytes[: len(archive_bytes) // 2])
    with pytest.raises(DataFormatError, match="cut.tar.gz: cannot extract"):
        extract_archive(tmp_path / "cut.tar.gz", tmp_path / "data")
    assert list((tmp_path / "data").iterdir()) == []


def test_archive_escaping_the_folder_is_refused(tmp_path):
    (tmp_path / "evil.tar.gz").write_bytes(tar_bytes({"../escaped.txt": b"x"}))
    with pytest.raises(DataFormatError, match="outside the target folder"):
        extract_archive(tmp_path / "evil.tar.gz", tmp_path / "data")
    assert not (tmp_path / "escaped.txt").exists()


@pytest.mark.parametrize("wrapped", [True, False])
def test_add_on_archive_is_merged_into_the_extracted_set(tmp_path, wrapped):
    (tmp_path / "main.tar").write_bytes(tar_bytes({"Set-C/fog/1/a.JPEG": b"fog"}, mode="w"))
    prefix = "Set-C/" if wrapped else ""  # the add-on may or may not repeat the set's folder
    (tmp_path / "extra.tar").write_bytes(tar_bytes({f"{prefix}spatter/1/b.JPEG": b"spatter"}, mode="w"))
    extract_archive(tmp_path / "main.tar", tmp_path / "data")
    extract_archive(tmp_path / "extra.tar", tmp_path / "data", merge_into="Set-C")
    assert sorted(p.name for p in (tmp_path / "data" / "Set-C").iterdir()) == ["fog", "spatter"]
    assert (tmp_path / "data" / "Set-C" / "spatter" / "1" / "b.JPEG").read_bytes() == b"spatter"


# ----------------------------------------------------------------------------- checksums published by an API

def test_checksum_published_by_zenodo_or_hugging_face_decides(tmp_path, server, caplog):
    data = os.urandom(4000)
    server.files["file.npy"] = data
    server.files["api/zenodo"] = json.dumps({"files": [
        {"key": "other.npy", "checksum": "md5:" + "0" * 32, "size": 1},
        {"key": "file.npy", "checksum": "md5:" + md5(data), "size": len(data)}]}).encode()
    server.files["api/hf"] = json.dumps([{"type": "file", "path": "dir/file.npy", "size": 134,
                                          "lfs": {"oid": "1" * 64, "size": len(data)}}]).encode()
    zenodo = RemoteFile((url(server, "file.npy"),), "file.npy", "file", "z/file.npy",
                        checksum_api=ChecksumApi("zenodo", url(server, "api/zenodo"), "file.npy"))
    assert download.fetch_file(zenodo, tmp_path) == tmp_path / "z" / "file.npy"
    hugging_face = dataclasses.replace(zenodo, target="h/file.npy", checksum_api=ChecksumApi(
        "huggingface", url(server, "api/hf"), "dir/file.npy"))
    with pytest.raises(ChecksumError, match="does not match the official 1111.*Hugging Face"):
        download.fetch_file(hugging_face, tmp_path)
    unlisted = dataclasses.replace(zenodo, target="u/file.npy", checksum_api=ChecksumApi(
        "zenodo", url(server, "api/missing"), "file.npy"))
    with caplog.at_level(logging.WARNING):  # no published checksum reachable: the sha256 is logged instead
        download.fetch_file(unlisted, tmp_path)
    assert "HTTP 404" in caplog.text and sha256(data) in caplog.text


# ----------------------------------------------------------------------------- the manifest and the command line

@pytest.fixture()
def toy_manifest(server, monkeypatch, archive_bytes):
    """A manifest of three items in the real layouts, served by the loopback server."""
    weights = os.urandom(5000)
    server.files.update({"toy.tar.gz": archive_bytes, "w.pth": weights})
    items = {
        "toy": Item("toy", "a toy data set", (RemoteFile(
            (url(server, "toy.tar.gz"),), "toy.tar.gz", "tar.gz", "toy-set", size=len(archive_bytes),
            checksums=(Checksum("md5", md5(archive_bytes), "official", "test"),)),), datasets=("toyset",)),
        "toy-weights": Item("toy-weights", "toy weights", (RemoteFile(
            (url(server, "w.pth"),), "w.pth", "file", "weights/w.pth", size=len(weights),
            checksums=(Checksum("sha256", sha256(weights), "third-party", "test"),)),), datasets=("toyset",)),
        "toy-bar": Item("toy-bar", "a set nobody publishes", generate="make it yourself with make_bar.py",
                        generated_into="Toy-Bar", datasets=("toyset",)),
    }
    monkeypatch.setattr(manifest, "ITEMS", items)
    return items


def test_list_shows_sizes_and_what_is_present(tmp_path, toy_manifest, archive_bytes, capsys):
    (tmp_path / "weights").mkdir()
    (tmp_path / "weights" / "w.pth.part").write_bytes(b"x" * 2000)
    assert download.main(["--list", "--data-root", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    rows = {line.split()[0]: line for line in out.splitlines() if line.startswith("toy")}
    assert "missing" in rows["toy"] and f"{len(archive_bytes) / 1e3:.3g} kB" in rows["toy"]
    assert "md5 official" in rows["toy"] and "toy-set/" in rows["toy"]
    assert "partial: 2 kB of 5 kB in w.pth.part" in rows["toy-weights"]
    assert "generate" in rows["toy-bar"] and "make it yourself with make_bar.py" in out  # the reason is given
    assert "not yet here: 2 items" in out

    assert download.main(["toy", "--data-root", str(tmp_path)]) == 0
    capsys.readouterr()
    download.main(["--list", "--data-root", str(tmp_path)])
    assert "present" in next(line for line in capsys.readouterr().out.splitlines() if line.startswith("toy "))


def test_list_of_a_selection_names_the_command_that_fetches_just_that(tmp_path, toy_manifest, capsys):
    """``--list --for cifar10`` must not advise ``--all`` (every data set, ~28 GB for the real manifest)."""
    toy_manifest["other"] = dataclasses.replace(toy_manifest["toy-weights"], name="other", datasets=("otherset",))
    assert download.main(["--list", "--for", "toyset", "--data-root", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "not yet here: 2 items" in out and f"download --for toyset --data-root {tmp_path})" in out
    assert download.main(["--list", "toy-weights", "--data-root", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "not yet here: 1 item," in out and f"download toy-weights --data-root {tmp_path})" in out
    assert download.main(["--list", "--data-root", str(tmp_path)]) == 0
    assert f"download --all --data-root {tmp_path}, or name the items)" in capsys.readouterr().out


def test_all_fetches_everything_once(tmp_path, server, toy_manifest, capsys):
    assert download.main(["--all", "--data-root", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert f"toy: {tmp_path / 'toy-set'}" in out and f"toy-weights: {tmp_path / 'weights' / 'w.pth'}" in out
    assert (tmp_path / "toy-set" / "a.bin").stat().st_size == 50_000 and not (tmp_path / "toy.tar.gz").exists()
    sent = server.bytes_sent
    assert download.main(["--all", "--data-root", str(tmp_path)]) == 0
    assert server.bytes_sent == sent  # present: nothing fetched again
    assert len((tmp_path / download.DOWNLOAD_LOG).read_text().splitlines()) == 2


def test_for_dataset_skips_what_must_be_generated_and_says_so(tmp_path, toy_manifest, capsys):
    assert download.main(["--for", "toyset", "--data-root", str(tmp_path), "--keep-archive"]) == 0
    out = capsys.readouterr().out
    assert "toy-bar: skipped, no published download" in out and (tmp_path / "toy.tar.gz").exists()
    assert download.main(["toy-bar", "--data-root", str(tmp_path)]) == 2  # asked for by name: an error
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "toy-bar: no published download: make it yourself" in err


def test_no_network_is_one_line_per_item_and_exit_2(tmp_path, toy_manifest, closed_port_url, monkeypatch, capsys):
    for item in toy_manifest.values():
        if item.files:
            monkeypatch.setitem(toy_manifest, item.name, dataclasses.replace(
                item, files=tuple(dataclasses.replace(f, urls=(closed_port_url,)) for f in item.files)))
    assert download.main(["toy", "toy-weights", "--data-root", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and all(closed_port_url in line and "refused" in line.lower() for line in err)
    assert not any("Traceback" in line for line in err)
    assert sorted(p.name for p in tmp_path.rglob("*")) == []  # no file, and no empty folder made for one


def test_unknown_item_is_a_usage_error(tmp_path, toy_manifest):
    with pytest.raises(SystemExit) as exit_info:
        download.main(["imagenet", "--data-root", str(tmp_path)])
    assert exit_info.value.code == 2


def test_markdown_table_has_a_row_per_file():
    table = download.format_markdown(list(manifest.ITEMS_LIST))
    rows = [line for line in table.splitlines()[2:]]
    assert len(rows) == sum(max(1, len(item.files)) for item in manifest.ITEMS_LIST)
    for item in manifest.ITEMS_LIST:
        for entry in item.files:
            assert entry.urls[0] in table and entry.target.split("/")[0] in table


# ----------------------------------------------------------------------------- the real manifest

def test_real_manifest_is_consistent():
    items = manifest.ITEMS_LIST
    assert len({item.name for item in items}) == len(items) == len(manifest.ITEMS)
    targets = [entry.target for item in items for entry in item.files] + \
              [item.generated_into for item in items if not item.downloadable]
    assert len(set(targets)) == len(targets)
    hex_lengths = {"md5": 32, "sha256": 64, "git-blob-sha1": 40}
    for item in items:
        assert item.downloadable == bool(item.files), item.name
        for entry in item.files:
            assert all(u.startswith(("https://", "http://cs231n.stanford.edu/")) for u in entry.urls), item.name
            # every file is verified against something, or its distributor's checksum is read at download time
            assert entry.checksums or entry.checksum_api, item.name
            for check in entry.checksums:
                assert len(check.value) == hex_lengths[check.algorithm] and int(check.value, 16) >= 0
    # the fixed Tiny-ImageNet-C copy (Zenodo 8206060), not the official record with the broken frost folder
    assert all("8206060" in entry.urls[0] for entry in manifest.ITEMS["tinyimagenet-c"].files)


def test_loaders_take_urls_and_folders_from_the_manifest():
    from fastnst.train.data import cifar, corrupted, tinyimagenet

    for dataset, folder in cifar.CIFAR_FOLDERS.items():
        assert manifest.remote_file(dataset).target == folder
        assert cifar._DOWNLOAD_URLS[dataset] == manifest.primary_url(dataset)
    for dataset, folder in corrupted.CORRUPTED_FOLDERS.items():
        assert manifest.remote_file(f"{dataset}-c").target == folder
        assert corrupted.DOWNLOAD_URLS[dataset] == manifest.primary_url(f"{dataset}-c")
    assert tinyimagenet.FOLDER == manifest.remote_file("tinyimagenet").target
    assert tinyimagenet.DOWNLOAD_URL == manifest.primary_url("tinyimagenet")


def test_missing_data_messages_name_the_download_command(tmp_path):
    from fastnst.train.data.cifar import cifar_folder
    from fastnst.train.data.errors import MissingDataError

    with pytest.raises(MissingDataError, match=f"python -m train.data.download cifar10 --data-root {tmp_path}"):
        cifar_folder("cifar10", tmp_path)


def test_docs_page_shows_the_current_manifest():
    from pathlib import Path

    page = (Path(__file__).resolve().parent.parent / "docs" / "data.md").read_text()
    assert download.format_markdown(list(manifest.ITEMS_LIST)) in page  # if not: paste `python -m train.data.download --list --markdown` into docs/data.md
