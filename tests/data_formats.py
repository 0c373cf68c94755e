"""Tiny copies of every on-disk data format the project reads, written the way the originals are.

Other tests import these writers; each returns what it wrote so a test can compare exactly.
"""
from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
from PIL import Image

TINYIMAGENET_CLASSES = 200
FAST_PICKLE = 4  # numpy arrays as plain bytes, with the globals of protocol 2 but no latin-1 strings


def random_images(rng: np.random.Generator, count: int, size: int) -> np.ndarray:
    """uint8 (count, size, size, 3) noise, never constant."""
    return rng.integers(0, 256, (count, size, size, 3), dtype=np.uint8)


def _write_cifar_pickle(path: Path, images: np.ndarray, labels: dict[bytes, list[int]], protocol: int = 2) -> None:
    """As the official files: a protocol-2 pickle of a dict with planar (N, 3072) uint8 b'data'. The reader
    takes protocol 4 (``FAST_PICKLE``) as well, 10x faster to write: protocol 2 turns the pixels into
    latin-1 strings, 1 s per 10,000 images on a 2-core CPU."""
    planar = images.transpose(0, 3, 1, 2).reshape(len(images), 3072)
    with open(path, "wb") as f:
        pickle.dump({b"batch_label": b"batch", b"data": planar, **labels,
                     b"filenames": [b"x.png"] * len(images)}, f, protocol=protocol)


def write_cifar10(root: Path, per_batch: int = 20, num_test: int = 20, seed: int = 0, protocol: int = 2):
    """``root/cifar-10-batches-py/{data_batch_1..5, test_batch, batches.meta}`` -> (train x, y, test x, y)."""
    rng = np.random.default_rng(seed)
    folder = Path(root) / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    train_x = random_images(rng, 5 * per_batch, 32)
    train_y = np.arange(5 * per_batch) % 10
    rng.shuffle(train_y)
    for i in range(5):
        rows = slice(i * per_batch, (i + 1) * per_batch)
        _write_cifar_pickle(folder / f"data_batch_{i + 1}", train_x[rows], {b"labels": train_y[rows].tolist()},
                            protocol)
    test_x, test_y = random_images(rng, num_test, 32), rng.integers(0, 10, num_test)
    _write_cifar_pickle(folder / "test_batch", test_x, {b"labels": test_y.tolist()}, protocol)
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({b"label_names": [b"c%d" % i for i in range(10)]}, f, protocol=2)
    return train_x, train_y, test_x, test_y


def write_cifar100(root: Path, num_train: int = 200, num_test: int = 50, seed: int = 0):
    """``root/cifar-100-python/{train, test, meta}`` with fine and coarse labels -> (train x, y, test x, y)."""
    rng = np.random.default_rng(seed)
    folder = Path(root) / "cifar-100-python"
    folder.mkdir(parents=True, exist_ok=True)
    train_x, train_y = random_images(rng, num_train, 32), np.arange(num_train) % 100
    test_x, test_y = random_images(rng, num_test, 32), rng.integers(0, 100, num_test)
    for name, x, y in (("train", train_x, train_y), ("test", test_x, test_y)):
        _write_cifar_pickle(folder / name, x, {b"fine_labels": y.tolist(), b"coarse_labels": (y // 5).tolist()})
    with open(folder / "meta", "wb") as f:
        pickle.dump({b"fine_label_names": [b"f%d" % i for i in range(100)]}, f, protocol=2)
    return train_x, train_y, test_x, test_y


def wnid(i: int) -> str:
    return f"n{i:08d}"


def _save_jpeg(path: Path, pixels: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path, quality=95, subsampling=0)  # 4:4:4: decoded pixels stay close


def smooth_images(rng: np.random.Generator, count: int, size: int) -> np.ndarray:
    """Low-frequency uint8 images that survive JPEG nearly unchanged (for comparing decoded pixels)."""
    base = rng.integers(0, 256, (count, 4, 4, 3)).astype(np.uint8)
    return base.repeat(size // 4, axis=1).repeat(size // 4, axis=2)


def write_tinyimagenet(root: Path, per_class: int = 1, num_val: int = 20, seed: int = 0,
                       classes: int = TINYIMAGENET_CLASSES) -> dict:
    """``root/tiny-imagenet-200/`` with wnids.txt, train/<wnid>/images/*.JPEG, val/images + annotations.

    wnids.txt is written in shuffled order, as the original is not sorted. Returns the written
    pixels and labels (by sorted wnid): {"train": (x, y, paths), "val": (x, y)}.
    """
    rng = np.random.default_rng(seed)
    folder = Path(root) / "tiny-imagenet-200"
    folder.mkdir(parents=True, exist_ok=True)
    ids = [wnid(i) for i in range(classes)]
    (folder / "wnids.txt").write_text("\n".join(rng.permutation(ids)) + "\n")
    train_x = smooth_images(rng, classes * per_class, 64)
    train_y = np.repeat(np.arange(classes), per_class)
    paths = []
    for i, (pixels, label) in enumerate(zip(train_x, train_y)):
        path = folder / "train" / ids[label] / "images" / f"{ids[label]}_{i}.JPEG"
        _save_jpeg(path, pixels)
        paths.append(path)
    val_x, val_y = smooth_images(rng, num_val, 64), rng.integers(0, classes, num_val)
    lines = []
    for i, (pixels, label) in enumerate(zip(val_x, val_y)):
        _save_jpeg(folder / "val" / "images" / f"val_{i}.JPEG", pixels)
        lines.append(f"val_{i}.JPEG\t{ids[label]}\t0\t0\t63\t63")
    (folder / "val" / "val_annotations.txt").write_text("\n".join(lines) + "\n")
    return {"train": (train_x, train_y, paths), "val": (val_x, val_y)}


def write_synthetic_npz(path: Path, count: int = 40, size: int = 32, num_classes: int = 10, seed: int = 1,
                        compressed: bool = False):
    """An EDM-style set: .npz with ``image`` uint8 (N, size, size, 3) and ``label`` -> (x, y)."""
    rng = np.random.default_rng(seed)
    images, labels = random_images(rng, count, size), rng.integers(0, num_classes, count)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    (np.savez_compressed if compressed else np.savez)(path, image=images, label=labels)
    return images, labels


def write_cifar_c(folder: Path, corruptions: tuple[str, ...] = ("gaussian_noise",), per_severity: int = 6,
                  seed: int = 2) -> dict:
    """``folder/<corruption>.npy`` (5 * per_severity, 32, 32, 3) and ``labels.npy`` -> {name: x, "labels": y}."""
    rng = np.random.default_rng(seed)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    labels = np.tile(rng.integers(0, 10, per_severity), 5)
    np.save(folder / "labels.npy", labels)
    written = {"labels": labels}
    for name in corruptions:
        written[name] = random_images(rng, 5 * per_severity, 32)
        np.save(folder / f"{name}.npy", written[name])
    return written


def write_tinyimagenet_c(folder: Path, corruption: str = "fog", severity: int = 3, per_class: int = 1,
                         seed: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """``folder/<corruption>/<severity>/<wnid>/*.JPEG`` for all 200 classes -> (x, y by sorted wnid)."""
    rng = np.random.default_rng(seed)
    images = smooth_images(rng, TINYIMAGENET_CLASSES * per_class, 64)
    labels = np.repeat(np.arange(TINYIMAGENET_CLASSES), per_class)
    for i, (pixels, label) in enumerate(zip(images, labels)):
        _save_jpeg(Path(folder) / corruption / str(severity) / wnid(label) / f"{i}.JPEG", pixels)
    return images, labels


def noise_body_jpeg(seed: int = 0, size: int = 64) -> bytes:
    """A JPEG of random pixels whose headers are valid and whose entropy-coded data is random bytes
    (issue 14's file): DALI's CPU decoder returns noise for it without an error; strict decoders refuse it."""
    import io

    rng = np.random.default_rng(seed)
    encoded = io.BytesIO()
    Image.fromarray(random_images(rng, 1, size)[0]).save(encoded, "JPEG", quality=75)
    data = encoded.getvalue()
    scan = data.index(b"\xff\xda")  # start of scan: every header before it stays valid
    start = scan + 2 + int.from_bytes(data[scan + 2:scan + 4], "big")
    return data[:start] + rng.integers(0, 256, len(data) - 2 - start, dtype=np.uint8).tobytes() + b"\xff\xd9"


IMAGEFOLDER_CLASSES = ("bird", "cat", "dog")
IMAGEFOLDER_COLOURS = ((200, 40, 40), (40, 200, 40), (40, 40, 200))  # each class's tint


def write_image_folder(root: Path, per_class: int = 20, val_per_class: int = 4, size: int = 96, seed: int = 0) -> dict:
    """``root/train/<class>/`` and ``root/val/<class>/`` as a user's folder: JPEG and PNG files alternating,
    ``size`` px, each class tinted its colour; one training image is greyscale (an 'L' JPEG) and one training
    PNG has a damaged pixel stream (PIL and DALI refuse it). -> {"corrupt": path, "grayscale": path,
    "train": [(path, label)], "val": [(path, label)]}."""
    rng = np.random.default_rng(seed)
    root = Path(root)
    written = {"train": [], "val": []}
    for split, count in (("train", per_class), ("val", val_per_class)):
        for label, (name, colour) in enumerate(zip(IMAGEFOLDER_CLASSES, IMAGEFOLDER_COLOURS)):
            for index in range(count):
                pixels = np.clip(smooth_images(rng, 1, size)[0] // 3 + np.array(colour) * 2 // 3, 0, 255).astype(np.uint8)
                path = root / split / name / f"{name}_{index:03d}.{'jpg' if index % 2 == 0 else 'png'}"
                path.parent.mkdir(parents=True, exist_ok=True)
                if path.suffix == ".jpg":
                    Image.fromarray(pixels).save(path, quality=95, subsampling=0)
                else:
                    Image.fromarray(pixels).save(path)
                written[split].append((path, label))
    grayscale = root / "train" / IMAGEFOLDER_CLASSES[1] / f"{IMAGEFOLDER_CLASSES[1]}_002.jpg"
    Image.fromarray(smooth_images(rng, 1, size)[0]).convert("L").save(grayscale, quality=95)
    corrupt = root / "train" / IMAGEFOLDER_CLASSES[2] / f"{IMAGEFOLDER_CLASSES[2]}_001.png"
    data = bytearray(corrupt.read_bytes())
    start = data.index(b"IDAT") + 4
    data[start + 2:start + 60] = rng.integers(0, 256, 58, dtype=np.uint8).tobytes()  # zlib stream damaged, CRC left
    corrupt.write_bytes(bytes(data))
    written.update(corrupt=corrupt, grayscale=grayscale)
    return written
