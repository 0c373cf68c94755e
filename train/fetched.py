"""Defaults from what ``python -m train.data.download`` put under ``--data-root``.

After ``python -m train.data.download --for cifar10 --data-root data`` (or ``--all``),
``python -m train.run --dataset cifar10 --data-root data`` needs no other flag: the options a
user did not give are filled from the manifest's targets (train/data/manifest.py):

    --synthetic  DATA_ROOT/synthetic/<dataset>_edm_1m.npz, or the authors' DATA_ROOT/<DATASET>-add-1m-dm.npz
    --vgg        DATA_ROOT/adain/vgg_normalised.pth
    --decoder    DATA_ROOT/adain/decoder.pth
    --styles     DATA_ROOT/style_feats_adain_1000.npy (the authors' relu4_1 maps; StyleBank.load converts
                 them once and caches DATA_ROOT/style_feats_adain_1000.bank.pt)

What is needed and not found stops the run before anything starts, in one error naming all of it, the
data set too, and the download command that fetches it (``--download`` instead points the options at where
the download will put the files).
The built-in demo generates its own inputs and is left alone.
"""
from __future__ import annotations

from pathlib import Path

from fastnst.train.data import imagefolder, manifest
from fastnst.train.data.stats import IMAGEFOLDER
from fastnst.train.data.synthetic import synthetic_item

DEFAULT_DATA_ROOT = "data"
# option -> manifest item whose file it defaults to, for stylization
STYLIZATION_ITEMS = {"styles": "style-feats", "vgg": "adain-vgg", "decoder": "adain-decoder"}


def _config_error(message: str) -> Exception:
    from fastnst.train.config import ConfigError  # config imports this module

    return ConfigError(message)


def resolve_fetched_paths(config: dict, *, required: bool = True) -> dict[str, str]:
    """Fill ``synthetic``, ``styles``, ``vgg`` and ``decoder`` (where not given) from the data root, in place.

    Raises one ConfigError that names every missing file and the command that fetches them all; with
    ``required=False`` (``--print-config`` before a download) returns {option: how to get it} instead.
    """
    if config["dataset"] == "demo":
        return {}
    dataset = config["dataset"]
    data_root = Path(config["data_root"] or DEFAULT_DATA_ROOT)
    wanted = {}  # option -> manifest item
    if config["synthetic"] is None and config["synthetic_ratio"] > 0:
        wanted["synthetic"] = synthetic_item(dataset)
    if config["stylize"] and not config.get("stylize_cache"):  # a cache replaces the networks and the bank
        wanted.update({option: item for option, item in STYLIZATION_ITEMS.items() if config[option] is None})
    # The data set itself: named with the rest (its own loader's error comes later, and alone, otherwise).
    dataset_missing = missing_data_set(dataset, data_root, config["download"])
    missing = {}
    for option, item in wanted.items():
        if item not in manifest.ITEMS:  # no published file for this data set
            missing[option] = item
            continue
        candidates = manifest.candidate_paths(item, data_root)
        found = next((path for path in candidates if path.is_file()), None)
        if found is not None:
            config[option] = str(found)
        elif config["download"]:  # train.run fetches it into the first candidate before it is read
            config[option] = str(candidates[0])
        else:
            missing[option] = item
    fetch_all = manifest.download_for_command(dataset, data_root)
    yours = f"your images go in {imagefolder.LAYOUT.replace('DIR', str(data_root))}"
    if not required:
        get_it = yours if dataset == IMAGEFOLDER else f"fetch it and all this run reads with `{fetch_all}`"
        return {**({"dataset": get_it} if dataset_missing else {}),
                **{option: (f"fetch with `{manifest.download_command(item, data_root=data_root)}`"
                            if item in manifest.ITEMS else f"no published file ({item})")
                   for option, item in missing.items()}}
    if not missing:
        return {}
    needs = ["its data set"] if dataset_missing else []
    if "synthetic" in missing:
        needs.append("--synthetic FILE")
    if set(missing) - {"synthetic"}:
        needs.append(", ".join(f"--{option}" for option in STYLIZATION_ITEMS if option in missing))
    looked = ([dataset_missing] if dataset_missing else []) + [
        " or ".join(str(path.relative_to(data_root)) for path in manifest.candidate_paths(item, data_root))
        for item in missing.values() if item in manifest.ITEMS]
    fetchable = [item for item in missing.values() if item in manifest.ITEMS]
    fetch = (f"Fetch the rest with `{fetch_all}` ({yours}), or pass the flags" if dataset_missing and
             dataset == IMAGEFOLDER else
             f"Fetch them all with `{fetch_all}`, or pass the flags" if dataset_missing else
             f"Fetch them with `{manifest.download_command(*fetchable, data_root=data_root)}` "
             f"(`--for {dataset}` fetches everything this run reads), or pass the flags" if fetchable else
             "Pass the flags")
    raise _config_error(
        f"--dataset {dataset} needs {', '.join(needs[:-1]) + ' and ' if len(needs) > 1 else ''}{needs[-1]}: none "
        f"given, and {data_root} holds no {'; '.join(looked) or 'such file'}. {fetch}; --synthetic-ratio 0 / "
        "--no-stylize train without them")


def missing_data_set(dataset: str, data_root: Path, download: bool = False) -> str | None:
    """What the error names when the data set is not under ``data_root`` (the places looked at); None when it
    is there or the download will fetch it. An image folder's is its class folders, never downloaded."""
    if dataset == IMAGEFOLDER:
        return None if (data_root / "train").is_dir() else "train/<class>/<image>"
    if dataset not in manifest.ITEMS or download or manifest.find(dataset, data_root) is not None:
        return None
    return " or ".join(str(path.relative_to(data_root)) for path in manifest.candidate_paths(dataset, data_root))


def items_to_download(config: dict) -> list[str]:
    """Manifest items ``train.run --download`` fetches: the data set, its -C set, and every file the
    options point at that the manifest provides (as ``resolve_fetched_paths`` set them)."""
    dataset, data_root = config["dataset"], Path(config["data_root"] or DEFAULT_DATA_ROOT)
    names = [name for name in (dataset, f"{dataset}-c") if name in manifest.ITEMS]
    wanted = {Path(config[option]) for option in ("synthetic", *STYLIZATION_ITEMS) if config.get(option)}
    for name in (synthetic_item(dataset), *STYLIZATION_ITEMS.values()):
        if name in manifest.ITEMS and set(manifest.candidate_paths(name, data_root)) & wanted:
            names.append(name)
    return names
