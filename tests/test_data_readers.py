"""Every reader on tiny files in the real on-disk formats, and their errors on bad ones."""
from __future__ import annotations

import logging
import os
import pickle

import numpy as np
import pytest

from tests import data_formats
from fastnst.train.data import (DataFormatError, MissingDataError, has_official_corruptions, load_cifar_c, load_test_set,
                        load_tinyimagenet_c, make_demo_dataset)
from fastnst.train.data.corrupted import corrupted_root
from fastnst.train.data.sources import ArraySource, FileSource, load_train_source
from fastnst.train.data.synthetic import load_synthetic, mmap_npz_member


@pytest.mark.parametrize("dataset, writer", [("cifar10", data_formats.write_cifar10),
                                             ("cifar100", data_formats.write_cifar100)])
def test_cifar_reads_pixels_and_labels_exactly(tmp_path, dataset, writer):
    train_x, train_y, test_x, test_y = writer(tmp_path)
    source = load_train_source(dataset, tmp_path)
    assert isinstance(source, ArraySource)
    np.testing.assert_array_equal(source.images, train_x)  # planar CHW on disk -> NHWC in memory
    np.testing.assert_array_equal(source.labels, train_y)
    images, labels = load_test_set(dataset, tmp_path)
    assert images.dtype == np.uint8 and labels.dtype == np.int64
    np.testing.assert_array_equal(images, test_x)
    np.testing.assert_array_equal(labels, test_y)


def test_cifar_refuses_pickles_that_run_code(tmp_path):
    data_formats.write_cifar10(tmp_path)

    class Exploit:
        def __reduce__(self):
            return (os.system, ("touch should-not-exist",))

    path = tmp_path / "cifar-10-batches-py" / "data_batch_3"
    path.write_bytes(pickle.dumps({b"data": Exploit(), b"labels": [0]}, protocol=2))
    with pytest.raises(DataFormatError, match="data_batch_3.*not allowed"):
        load_train_source("cifar10", tmp_path)
    assert not (tmp_path / "should-not-exist").exists() and not os.path.exists("should-not-exist")


def test_cifar_truncated_batch_names_the_file(tmp_path):
    data_formats.write_cifar10(tmp_path)
    path = tmp_path / "cifar-10-batches-py" / "data_batch_2"
    path.write_bytes(path.read_bytes()[:5000])
    with pytest.raises(DataFormatError, match="data_batch_2"):
        load_train_source("cifar10", tmp_path)


def test_cifar_missing_says_what_to_download_and_where(tmp_path):
    with pytest.raises(MissingDataError) as error:
        load_train_source("cifar100", tmp_path)
    message = str(error.value)
    assert "cifar-100-python.tar.gz" in message and str(tmp_path) in message and "--download" in message


def test_labels_out_of_range_and_empty_classes_are_errors(tmp_path):
    data_formats.write_cifar10(tmp_path)
    folder = tmp_path / "cifar-10-batches-py"
    with open(folder / "data_batch_1", "rb") as f:
        batch = pickle.load(f, encoding="bytes")
    good = batch[b"labels"]
    batch[b"labels"] = [12] + good[1:]
    (folder / "data_batch_1").write_bytes(pickle.dumps(batch, protocol=2))
    with pytest.raises(DataFormatError, match="outside \\[0, 10\\)"):
        load_train_source("cifar10", tmp_path)
    # Every sample of class 7 relabelled as 6: class 7 is then empty.
    for i in range(1, 6):
        with open(folder / f"data_batch_{i}", "rb") as f:
            batch = pickle.load(f, encoding="bytes")
        batch[b"labels"] = [6 if label in (7, 12) else label for label in batch[b"labels"]]
        (folder / f"data_batch_{i}").write_bytes(pickle.dumps(batch, protocol=2))
    with pytest.raises(DataFormatError, match="classes \\[7\\] have no samples"):
        load_train_source("cifar10", tmp_path)


def test_tinyimagenet_train_and_val(tmp_path):
    written = data_formats.write_tinyimagenet(tmp_path, per_class=1, num_val=12)
    source = load_train_source("tinyimagenet", tmp_path)
    assert isinstance(source, FileSource) and len(source) == 200
    # Class index = sorted wnid, although wnids.txt is shuffled.
    for path, label in zip(source.paths, source.labels):
        assert path.parts[-3] == data_formats.wnid(label)
    images, labels = load_test_set("tinyimagenet", tmp_path)
    np.testing.assert_array_equal(labels, written["val"][1])
    assert images.shape == (12, 64, 64, 3)
    assert np.abs(images.astype(int) - written["val"][0]).mean() < 3  # JPEG q95 of flat blocks


def test_tinyimagenet_empty_class_and_bad_annotation(tmp_path):
    data_formats.write_tinyimagenet(tmp_path, per_class=1, num_val=4)
    folder = tmp_path / "tiny-imagenet-200"
    annotations = folder / "val" / "val_annotations.txt"
    annotations.write_text(annotations.read_text().replace(data_formats.wnid(0), "n_not_a_class", 1)
                           + "val_0.JPEG\tn_not_a_class\n")
    with pytest.raises(DataFormatError, match="val_annotations.txt:5"):
        load_test_set("tinyimagenet", tmp_path)
    for image in (folder / "train" / data_formats.wnid(5) / "images").iterdir():
        image.unlink()
    with pytest.raises(DataFormatError, match=f"class {data_formats.wnid(5)} has no JPEG"):
        load_train_source("tinyimagenet", tmp_path)


def test_tinyimagenet_missing(tmp_path):
    with pytest.raises(MissingDataError, match="tiny-imagenet-200.zip"):
        load_train_source("tinyimagenet", tmp_path)


def test_synthetic_npz_is_memory_mapped_not_loaded(tmp_path):
    images, labels = data_formats.write_synthetic_npz(tmp_path / "edm.npz", count=30)
    mapped, mapped_labels = load_synthetic(tmp_path / "edm.npz", 32, 10)
    assert isinstance(mapped, np.memmap) and not mapped.flags.writeable
    np.testing.assert_array_equal(mapped, images)
    np.testing.assert_array_equal(mapped_labels, labels)


def test_synthetic_compressed_npz_falls_back_with_a_warning(tmp_path, caplog):
    images, _ = data_formats.write_synthetic_npz(tmp_path / "edm.npz", count=10, compressed=True)
    with caplog.at_level(logging.WARNING):
        loaded = mmap_npz_member(tmp_path / "edm.npz", "image")
    np.testing.assert_array_equal(loaded, images)
    assert "compressed" in caplog.text


def test_synthetic_errors_name_the_file(tmp_path):
    data_formats.write_synthetic_npz(tmp_path / "edm.npz", count=10, size=32)
    with pytest.raises(DataFormatError, match="edm.npz.*uint8 \\(N, 64, 64, 3\\)"):
        load_synthetic(tmp_path / "edm.npz", 64, 10)
    data = (tmp_path / "edm.npz").read_bytes()
    (tmp_path / "cut.npz").write_bytes(data[: len(data) // 2])
    with pytest.raises(DataFormatError, match="cut.npz"):
        load_synthetic(tmp_path / "cut.npz", 32, 10)
    with pytest.raises(MissingDataError, match="--synthetic .*absent.npz"):
        load_synthetic(tmp_path / "absent.npz", 32, 10)


@pytest.mark.parametrize("severity", [1, 3, 5])
def test_cifar_c_severity_rows(tmp_path, severity):
    folder = corrupted_root("cifar10", tmp_path)
    written = data_formats.write_cifar_c(folder, per_severity=6)
    images, labels = load_cifar_c(folder, "gaussian_noise", severity)
    rows = slice((severity - 1) * 6, severity * 6)
    np.testing.assert_array_equal(images, written["gaussian_noise"][rows])
    np.testing.assert_array_equal(labels, written["labels"][rows])


def test_cifar_c_errors(tmp_path):
    folder = tmp_path / "CIFAR-10-C"
    with pytest.raises(MissingDataError, match="CIFAR-10-C.tar"):
        load_cifar_c(folder, "fog", 1)
    data_formats.write_cifar_c(folder)
    with pytest.raises(ValueError, match="severity must be 1..5"):
        load_cifar_c(folder, "gaussian_noise", 6)
    np.save(folder / "fog.npy", np.zeros((7, 32, 32, 3), np.uint8))
    with pytest.raises(DataFormatError, match="fog.npy"):
        load_cifar_c(folder, "fog", 1)
    assert not has_official_corruptions("cifar10", tmp_path)  # 2 of 15 corruptions present


def test_has_official_corruptions_when_all_fifteen_exist(tmp_path):
    from fastnst.train.data.corrupted import _BENCHMARK_CORRUPTIONS

    data_formats.write_cifar_c(tmp_path / "CIFAR-100-C", corruptions=_BENCHMARK_CORRUPTIONS, per_severity=1)
    assert has_official_corruptions("cifar100", tmp_path)
    assert not has_official_corruptions("cifar10", tmp_path)
    assert not has_official_corruptions("demo", tmp_path)


def test_tinyimagenet_c(tmp_path):
    images, labels = data_formats.write_tinyimagenet_c(tmp_path / "Tiny-ImageNet-C", "fog", 3)
    read, read_labels = load_tinyimagenet_c(tmp_path / "Tiny-ImageNet-C", "fog", 3)
    np.testing.assert_array_equal(read_labels, labels)
    assert np.abs(read.astype(int) - images).mean() < 3
    with pytest.raises(MissingDataError, match="Tiny-ImageNet-C.tar"):
        load_tinyimagenet_c(tmp_path / "Tiny-ImageNet-C", "fog", 4)


def test_demo_dataset_is_cifar10_layout_and_balanced(tmp_path):
    folder = make_demo_dataset(tmp_path, num_train=200, num_test=50, num_synthetic=60, seed=1)
    assert sorted(p.name for p in (folder / "cifar-10-batches-py").iterdir()) == [
        "batches.meta", "data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5", "test_batch"]
    source = load_train_source("demo", tmp_path)
    assert source.images.shape == (200, 32, 32, 3)
    assert np.bincount(source.labels).tolist() == [20] * 10
    synthetic, synthetic_labels = load_synthetic(folder / "synthetic.npz", 32, 10)
    assert len(synthetic) == 60 and set(synthetic_labels.tolist()) == set(range(10))
    assert not np.array_equal(synthetic[:10], source.images[:10])


def test_demo_dataset_is_learnable(tmp_path):
    """Nearest class mean on colour-invariant features beats chance by far: the classes carry signal."""
    make_demo_dataset(tmp_path, num_train=1000, num_test=300, num_synthetic=10)
    train = load_train_source("demo", tmp_path)
    test_x, test_y = load_test_set("demo", tmp_path)

    def features(images):  # |FFT| of the per-image standardized grey image: shape, not colour or position
        grey = images.astype(np.float32).mean(-1)
        grey = (grey - grey.mean((1, 2), keepdims=True)) / (grey.std((1, 2), keepdims=True) + 1e-6)
        spectrum = np.abs(np.fft.fft2(grey))[:, :16, :16].reshape(len(images), -1)
        return spectrum / np.linalg.norm(spectrum, axis=1, keepdims=True)

    train_features, test_features = features(train.images), features(test_x)
    centroids = np.stack([train_features[train.labels == k].mean(0) for k in range(10)])
    accuracy = (np.argmax(test_features @ centroids.T, axis=1) == test_y).mean()
    assert accuracy > 0.5, accuracy


def test_missing_demo_set_says_it_is_generated(tmp_path):
    with pytest.raises(MissingDataError, match="generated, not downloaded.*`python -m train.data.demo --data-root "):
        load_train_source("demo", tmp_path)
