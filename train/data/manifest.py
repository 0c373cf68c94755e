"""Every external file the paper's runs need, in one table: where it comes from, how to check it, where it goes.

``python -m train.data.download --list`` prints this table with what is already under ``--data-root``;
``--all``, ``--for DATASET`` or item names fetch it. The loaders (cifar.py, corrupted.py, tinyimagenet.py,
synthetic.py) and ``train.run``'s defaults read their URLs and target paths from here, so each fact is
written once. Every checksum names who publishes it (``Checksum.source``, shown in docs/data.md); the
values were compiled from the distributors' pages and the projects that pin these files, without
downloading the files themselves.

Checksums, by who publishes them (``Checksum.role``):

* ``official``: the distributor's own (the data set page, the Zenodo record, Hugging Face's LFS hash,
  the blob id of a commit-pinned GitHub file). A mismatch deletes the file and stops.
* ``third-party``: the same value pinned by several other projects for the same URL, where the
  distributor publishes none. It decides only when no official checksum is known; otherwise a
  disagreement is logged as a warning (the distributor's hash wins).
* ``cross-check``: tells something worth knowing but is not a property of the download itself
  (the authors' committed copy of the AdaIN weights); a mismatch is logged, never fatal.

Where nothing is published in the table, ``ChecksumApi`` names the Zenodo or Hugging Face metadata
endpoint that lists the distributor's checksum; it is read at download time. If that fails too, the
download's sha256 is computed and logged (and written to ``DATA_ROOT/download-log.jsonl``).
"""
from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path

_HENDRYCKS_COMMIT = "8190fe329f5f072a06e3a2aea02bb5dda69aed9f"  # hendrycks/robustness, holds the frost textures
_ADAIN_RELEASE = "https://github.com/naoto0804/pytorch-AdaIN/releases/download/v0.0.0"
_AUTHORS = "Georgsiedel/model-based-data-augmentation@07e47c1"


@dataclass(frozen=True)
class Checksum:
    algorithm: str   # "md5", "sha256" or "git-blob-sha1" (sha1 of b"blob <size>\0" + bytes: a git blob id)
    value: str
    role: str        # "official", "third-party" or "cross-check" (module docstring)
    source: str      # who publishes it

    def __post_init__(self):
        assert self.algorithm in ("md5", "sha256", "git-blob-sha1"), self.algorithm
        assert self.role in ("official", "third-party", "cross-check"), self.role


@dataclass(frozen=True)
class ChecksumApi:
    """A metadata endpoint that lists the distributor's checksum of one file, read at download time."""
    kind: str        # "zenodo" (GET /api/records/<id>: files[].key, .checksum "md5:...", .size)
    #                  or "huggingface" (GET /api/<type>s/<repo>/tree/<rev>/<dir>: [].path, .lfs.oid = sha256, .size)
    url: str
    key: str         # the file's key (Zenodo) or path in the repository (Hugging Face)


@dataclass(frozen=True)
class RemoteFile:
    urls: tuple[str, ...]          # the first is tried first; the others are mirrors serving the same bytes
    file_name: str                 # saved under this name (archives: in the data root, removed after extraction)
    layout: str                    # "tar", "tar.gz", "zip" (extracted) or "file" (saved at ``target``)
    target: str                    # path under the data root that exists once this file is in place
    size: int | None = None        # exact byte count where published
    approx_size: int | None = None  # an estimate for --list where no size is published
    checksums: tuple[Checksum, ...] = ()
    checksum_api: ChecksumApi | None = None
    merge_into: str | None = None  # archives whose top-level entries go into this folder (an add-on archive)
    also_accepted: tuple[str, ...] = ()  # other paths under the data root that count as this file (authors' names)

    def __post_init__(self):
        assert self.layout in ("tar", "tar.gz", "zip", "file"), self.layout

    @property
    def shown_size(self) -> int | None:
        return self.size if self.size is not None else self.approx_size


@dataclass(frozen=True)
class Item:
    name: str
    description: str
    files: tuple[RemoteFile, ...] = ()
    note: str = ""
    generate: str | None = None    # items with no published download: why, and how to make them
    generated_into: str | None = None  # where a generated item goes under the data root
    datasets: tuple[str, ...] = ()  # the runs (``--for DATASET``) that need this item

    @property
    def downloadable(self) -> bool:
        return self.generate is None


def _zenodo(record: int, key: str) -> tuple[str, ChecksumApi]:
    """The canonical file URL of a Zenodo record and the API that lists its md5."""
    return (f"https://zenodo.org/records/{record}/files/{key}?download=1",
            ChecksumApi("zenodo", f"https://zenodo.org/api/records/{record}", key))


def _huggingface(kind: str, repo: str, path: str) -> tuple[str, ChecksumApi]:
    """A ``resolve/main`` URL and the tree API that lists the file's LFS sha256 (kind: "datasets" or "models")."""
    prefix = "datasets/" if kind == "datasets" else ""
    folder = path.rsplit("/", 1)[0]
    return (f"https://huggingface.co/{prefix}{repo}/resolve/main/{path}",
            ChecksumApi("huggingface", f"https://huggingface.co/api/{kind}/{repo}/tree/main/{folder}", path))


_TINY_C_URL, _TINY_C_API = _zenodo(8206060, "Tiny-ImageNet-C.tar")
_TINY_C_EXTRA_URL, _TINY_C_EXTRA_API = _zenodo(8206060, "Tiny-ImageNet-C-extra.tar")
_STYLE_FEATS_URL, _STYLE_FEATS_API = _zenodo(16279015, "style_feats_adain_1000.npy")
_EDM_CIFAR10_URL, _EDM_CIFAR10_API = _huggingface("datasets", "P2333/DM-Improves-AT", "cifar10/1m.npz")
_EDM_CIFAR100_URL, _EDM_CIFAR100_API = _huggingface("datasets", "P2333/DM-Improves-AT", "cifar100/1m.npz")
_EDM_TINY_URL, _EDM_TINY_API = _huggingface("models", "wzekai99/DM-Improves-AT", "edm_data/tiny/tiny_edm_1m.npz")

# frost1..5 (frost6 ships too but the official scripts draw randint(5) and never use it):
# (name, bytes, sha256 computed from the blob, git blob id in the pinned commit's tree)
_FROST = (
    ("frost1.png", 1_199_930, "ff9f907860bd7a835d459e32f9d588062b7f61ee267343cc7222b56753a14755",
     "c7b78a17938df51894497b4782decbd82532dd5f"),
    ("frost2.png", 299_002, "fe211a89b336999c207a852ce05818d4545d0b57c5beadd824b4cc9d9a9b6137",
     "48f7a861ffa41b6d7496b701fef96d5edf739282"),
    ("frost3.png", 299_002, "2d0d50b4a9bb213f38b024ef7768731bb83cc08d2f26b5766bbc167cdfa0e504",
     "d47f9d25f41251ee9a66b294c0bbfad6053017c9"),
    ("frost4.jpg", 36_734, "3f8b91ca1a9fa7167b09e773da53f5ae60d0a1fd88f02a783f6e328a72887f6e",
     "f8b0c413176d70150b593e029d84b4a88c21dd4b"),
    ("frost5.jpg", 155_150, "5fc6a19df4a429ba68abdcc8f8a4278d4c9f81c9ccafd2c92ab0c8cf8992ebd2",
     "95dc9056926d8201df760535f9bb9112f012e862"),
)

_C_BAR_WHY = ("no pre-generated copy is published: facebookresearch/augmentation-corruption ships only the "
              "generator (its one download is ImageNet-C-bar) and the paper's authors did not publish theirs")


def _edm_note(dataset: str) -> str:
    return (f"EDM 1M set of Wang et al. 2023 (github.com/wzekai99/DM-Improves-AT): .npz of 'image' uint8 NHWC and "
            f"'label'. The authors' name for it, DATA_ROOT/{dataset}-add-1m-dm.npz ({_AUTHORS}:experiments/"
            f"data.py:452), is accepted too. Size estimated; the sha256 comes from Hugging Face's API.")


ITEMS_LIST: tuple[Item, ...] = (
    Item("cifar10", "CIFAR-10, python version", (RemoteFile(
        ("https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",),
        "cifar-10-python.tar.gz", "tar.gz", "cifar-10-batches-py", size=170_498_071, checksums=(
            Checksum("md5", "c58f30108f718f92721af3b95e74349a", "official", "www.cs.toronto.edu/~kriz/cifar.html"),
            Checksum("sha256", "6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce", "third-party",
                     "Git-LFS pointer of a Hugging Face mirror (cnak47/cv-datasets)"))),),
        datasets=("cifar10",)),
    Item("cifar100", "CIFAR-100, python version", (RemoteFile(
        ("https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",),
        "cifar-100-python.tar.gz", "tar.gz", "cifar-100-python", size=169_001_437, checksums=(
            Checksum("md5", "eb9058c3a382ffc7106e4002c42a8d85", "official",
                     "www.cs.toronto.edu/~kriz/cifar.html, as pinned by torchvision (CIFAR100.tgz_md5)"),
            Checksum("sha256", "85cd44d02ba6437773c5bbd22e183051d648de2e7d6b014e1ef29b855ba677a7", "third-party",
                     "Git-LFS pointer of a Hugging Face mirror (cnak47/cv-datasets)"))),),
        datasets=("cifar100",)),
    Item("tinyimagenet", "TinyImageNet-200 (train, labelled val, test)", (RemoteFile(
        ("http://cs231n.stanford.edu/tiny-imagenet-200.zip",
         "https://cs231n.stanford.edu/tiny-imagenet-200.zip",
         "https://zenodo.org/records/10720917/files/tiny-imagenet-200.zip?download=1"),
        "tiny-imagenet-200.zip", "zip", "tiny-imagenet-200", size=248_100_043, checksums=(
            Checksum("md5", "90528d7ca1a48142e341f4ef8d21d0de", "third-party",
                     "the md5 every TinyImageNet loader pins (e.g. avalanche); Stanford publishes none"),
            Checksum("sha256", "6198c8ae015e2b3e007c7841da39ec069199b9aa3bfa943a462022fe5e43c821", "third-party",
                     "Git-LFS pointer of a Hugging Face mirror (cnak47/cv-datasets)"))),),
        note="Mirrors (same md5): https, and Zenodo record 10720917. The authors read an ImageFolder copy "
             "(TinyImageNet/train, val regrouped by wnid); we read the archive's own layout, labels by sorted wnid "
             "in both.",
        datasets=("tinyimagenet",)),
    Item("cifar10-c", "CIFAR-10-C, 19 corruptions x 5 severities (Hendrycks & Dietterich 2019)", (RemoteFile(
        ("https://zenodo.org/records/2535967/files/CIFAR-10-C.tar?download=1",),
        "CIFAR-10-C.tar", "tar", "CIFAR-10-C", size=2_918_471_680, checksums=(
            Checksum("md5", "56bf5dcef84df0e2308c6dcbcbbd8499", "official", "Zenodo record 2535967"),
            Checksum("sha256", "c72763e101c723b7c507b96205f7e938912a5d587376173b825850cf3cb876a7", "third-party",
                     "tensorflow/datasets url_checksums/cifar10_corrupted.txt"))),),
        datasets=("cifar10",)),
    Item("cifar100-c", "CIFAR-100-C, 19 corruptions x 5 severities", (RemoteFile(
        ("https://zenodo.org/records/3555552/files/CIFAR-100-C.tar?download=1",),
        "CIFAR-100-C.tar", "tar", "CIFAR-100-C", size=2_918_473_216, checksums=(
            Checksum("md5", "11f0ed0f1191edbf9fa23466ae6021d3", "official", "Zenodo record 3555552"),
            Checksum("sha256", "30ee6543a1bfd049fa33834b7c1ada301e7064b7fbe8fc38340eb8b62ced4b33", "third-party",
                     "tensorflow/datasets url_checksums/cifar100_corrupted.txt"))),),
        datasets=("cifar100",)),
    Item("tinyimagenet-c", "Tiny-ImageNet-C, fixed copy: 15 corruptions + the 4 extra ones (19 in all)", (
        RemoteFile((_TINY_C_URL,), "Tiny-ImageNet-C.tar", "tar", "Tiny-ImageNet-C", size=1_794_775_040,
                   checksums=(Checksum("md5", "f9c9a9dbdc11469f0b850190f7ad8be1", "third-party",
                                       "ENSTA-U2IS-AI/torch-uncertainty tiny_imagenet_c.py"),),
                   checksum_api=_TINY_C_API),
        RemoteFile((_TINY_C_EXTRA_URL,), "Tiny-ImageNet-C-extra.tar", "tar", "Tiny-ImageNet-C/speckle_noise",
                   checksums=(Checksum("md5", "0db0588d243cf403ef93449ec52b70eb", "third-party",
                                       "ENSTA-U2IS-AI/torch-uncertainty tiny_imagenet_c.py"),),
                   checksum_api=_TINY_C_EXTRA_API, merge_into="Tiny-ImageNet-C")),
        note="From Zenodo 8206060, 'Tiny ImageNet-C (Fixed)', not the official record 2536630: the official copy's "
             "frost/ holds 1000 class folders instead of 200 (hendrycks/robustness issue #60, open), which "
             "load_tinyimagenet_c rejects; the fixed copy was announced in that issue and is what torch-uncertainty "
             "uses. Its -extra archive adds speckle_noise, gaussian_blur, spatter and saturate, which the authors "
             "report (19 corruptions); it is merged into Tiny-ImageNet-C/. The official record is "
             "https://zenodo.org/records/2536630 if you prefer it (then keep only the 200 wnids of frost/).",
        datasets=("tinyimagenet",)),
    Item("cifar10-c-bar", "CIFAR-10-C-bar, 10 corruptions x 5 severities (Mintun et al. 2021)",
         generate=f"{_C_BAR_WHY}. Generate it with augmentation-corruption's imagenet_c_bar/make_cifar10_c_bar.py "
                  "--cifar_dir DATA_ROOT --out_dir DATA_ROOT (writes CIFAR-10-C-Bar/<corruption>.npy, labels.npy; "
                  "not bit-reproducible: its --seed is unused)",
         generated_into="CIFAR-10-C-Bar", datasets=("cifar10",)),
    Item("cifar100-c-bar", "CIFAR-100-C-bar",
         generate=f"{_C_BAR_WHY}. Generate it with make_cifar10_c_bar.py with CIFAR10 swapped for CIFAR100, as the "
                  "authors did (no official CIFAR-100 script exists)",
         generated_into="CIFAR-100-C-Bar", datasets=("cifar100",)),
    Item("tinyimagenet-c-bar", "TinyImageNet-C-bar (ImageNet-C-bar corruptions at 64 px)",
         generate=f"{_C_BAR_WHY} (augmentation-corruption issue #5 asked for one; none was given). The authors "
                  "generated theirs from imagenet_c_bar.csv",
         generated_into="Tiny-ImageNet-C-Bar", datasets=("tinyimagenet",)),
    Item("adain-vgg", "AdaIN encoder: normalised VGG-19 (pytorch-AdaIN release v0.0.0)", (RemoteFile(
        (f"{_ADAIN_RELEASE}/vgg_normalised.pth",), "vgg_normalised.pth", "file", "adain/vgg_normalised.pth",
        size=80_102_481, checksums=(
            Checksum("sha256", "804ca2835ecf7539f0cd2a7ac3c18ce81e6f8468969ae7117ac0c148d286bb4a", "third-party",
                     "pinned by at least six projects that fetch this release asset"),
            Checksum("git-blob-sha1", "18a783877329319e5a640ae20f7b98c64e5f5572", "cross-check",
                     f"the authors' committed copy, {_AUTHORS}:experiments/adaIN/vgg_normalised.pth"))),),
        note="The README's old Google Drive links are dead (pytorch-AdaIN issues #34, #45); its 'vgg_normalized' "
             "is a typo for the asset's name. GitHub publishes no checksum for release assets.",
        datasets=("cifar10", "cifar100", "tinyimagenet", "imagefolder")),
    Item("adain-decoder", "AdaIN decoder (pytorch-AdaIN release v0.0.0)", (RemoteFile(
        (f"{_ADAIN_RELEASE}/decoder.pth",), "decoder.pth", "file", "adain/decoder.pth",
        approx_size=14_030_000, checksums=(
            Checksum("sha256", "379ca41d59f3a37eed3599bbbc2560c19da5c458870a5ffd3a9dd41aa88f9472", "third-party",
                     "pinned by at least four projects that fetch this release asset"),
            Checksum("git-blob-sha1", "ccd7832185528ee899f752d532c3a5f08627196a", "cross-check",
                     f"the authors' committed copy, {_AUTHORS}:experiments/adaIN/decoder.pth"))),),
        note="Size not published: 3,505,219 float32 parameters plus the pickle.",
        datasets=("cifar10", "cifar100", "tinyimagenet", "imagefolder")),
    Item("edm-cifar10", "EDM-generated CIFAR-10, 1M images", (RemoteFile(
        (_EDM_CIFAR10_URL,), "cifar10_edm_1m.npz", "file", "synthetic/cifar10_edm_1m.npz",
        approx_size=3_080_000_000, checksum_api=_EDM_CIFAR10_API, also_accepted=("CIFAR10-add-1m-dm.npz",)),),
        note=_edm_note("CIFAR10"), datasets=("cifar10",)),
    Item("edm-cifar100", "EDM-generated CIFAR-100, 1M images", (RemoteFile(
        (_EDM_CIFAR100_URL,), "cifar100_edm_1m.npz", "file", "synthetic/cifar100_edm_1m.npz",
        approx_size=3_080_000_000, checksum_api=_EDM_CIFAR100_API, also_accepted=("CIFAR100-add-1m-dm.npz",)),),
        note=_edm_note("CIFAR100"), datasets=("cifar100",)),
    Item("edm-tinyimagenet", "EDM-generated TinyImageNet (ImageNet EDM, 64 px), 1M images", (RemoteFile(
        (_EDM_TINY_URL,), "tinyimagenet_edm_1m.npz", "file", "synthetic/tinyimagenet_edm_1m.npz",
        approx_size=12_300_000_000, checksum_api=_EDM_TINY_API, also_accepted=("TinyImageNet-add-1m-dm.npz",)),),
        note=_edm_note("TinyImageNet") + " Its label -> wnid order is undocumented (the authors' FID script uses "
             "this file as their TinyImageNet set); check it before trusting TinyImageNet numbers.",
        datasets=("tinyimagenet",)),
    Item("style-feats", "The authors' 1000 Painter-by-Numbers style features (relu4_1 maps)", (RemoteFile(
        (_STYLE_FEATS_URL,), "style_feats_adain_1000.npy", "file", "style_feats_adain_1000.npy",
        approx_size=1_605_632_128, checksum_api=_STYLE_FEATS_API,
        also_accepted=("style_feats_adain_1000.bank.pt",)),),  # the converted bank, if the .npy was deleted
        note="Zenodo record 16279015 (the authors' README); the file URL follows Zenodo's pattern. Raw VGG relu4_1 "
             "maps, (1000, 512, h, w), not statistics: the first run converts them once into a StyleBank beside "
             "them (style_feats_adain_1000.bank.pt; unbiased variance, eps 1e-5, as the op). Size estimated for "
             "float32 28x28 maps; Zenodo's API gives the real size and md5 at download time.",
        datasets=("cifar10", "cifar100", "tinyimagenet", "imagefolder")),
    Item("frost", "Frost textures of the corruption benchmark (frost1..5)", tuple(
        RemoteFile((f"https://raw.githubusercontent.com/hendrycks/robustness/{_HENDRYCKS_COMMIT}/ImageNet-C/create_c/"
                    f"{name}",), name, "file", f"frost/{name}", size=size, checksums=(
            Checksum("git-blob-sha1", blob, "official", f"hendrycks/robustness@{_HENDRYCKS_COMMIT[:7]} tree"),
            Checksum("sha256", sha256, "third-party", "computed from that blob")))
        for name, size, sha256, blob in _FROST),
        note="Only generated corruptions use them (the official -C files have frost baked in); the evaluation "
             "reads them from DATA_ROOT/frost (FASTNST_FROST_DIR or train.evaluate --frost-dir name another "
             "folder); without them Frost uses a labelled stand-in.",
        datasets=("cifar10", "cifar100", "tinyimagenet", "imagefolder")),
)

ITEMS: dict[str, Item] = {item.name: item for item in ITEMS_LIST}


def items_for(dataset: str) -> list[Item]:
    """Everything a ``--dataset`` run of the paper's recipe reads (downloadable or not)."""
    return [item for item in ITEMS.values() if dataset in item.datasets]


def remote_file(item_name: str, index: int = 0) -> RemoteFile:
    return ITEMS[item_name].files[index]


def primary_url(item_name: str) -> str:
    return remote_file(item_name).urls[0]


def candidate_paths(item_name: str, data_root: str | Path) -> list[Path]:
    """Where an item's (first) file may sit under ``data_root``: our target, then the accepted other names."""
    entry = remote_file(item_name)
    return [Path(data_root) / path for path in (entry.target, *entry.also_accepted)]


def find(item_name: str, data_root: str | Path) -> Path | None:
    """The first existing candidate path of the item under ``data_root``, or None."""
    return next((path for path in candidate_paths(item_name, data_root) if path.exists()), None)


def download_command(*item_names: str, data_root: str | Path = "data") -> str:
    """The one command line that fetches these items into ``data_root``, for error messages."""
    return shlex.join(["python", "-m", "train.data.download", *item_names, "--data-root", str(data_root)])


def download_for_command(dataset: str, data_root: str | Path = "data") -> str:
    """The one command line that fetches everything a ``--dataset`` run reads, for error messages."""
    return shlex.join(["python", "-m", "train.data.download", "--for", dataset, "--data-root", str(data_root)])
