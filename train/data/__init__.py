"""Data sets and the training pipeline: readers of the real on-disk formats, the DALI loader, the demo set.

The trainer and evaluator use only what is exported here; none of it requires importing DALI.

Expected layout under ``data_root`` (each folder as its official archive extracts;
``python -m train.data.download`` / ``download_dataset(name, data_root)`` fetch them, every external
file with its URL, checksum and target is listed in ``train/data/manifest.py``):

    cifar-10-batches-py/     data_batch_1..5, test_batch          (cifar10)
    cifar-100-python/        train, test                          (cifar100)
    tiny-imagenet-200/       wnids.txt, train/<wnid>/images/*.JPEG, val/images, val/val_annotations.txt
    CIFAR-10-C/, CIFAR-100-C/   <corruption>.npy, labels.npy
    Tiny-ImageNet-C/         <corruption>/<severity>/<wnid>/*.JPEG
    demo/                    written by make_demo_dataset(data_root): cifar-10-batches-py/, synthetic.npz
    train/, val/, val-c/     --dataset imagefolder: <class>/<image> folders (imagefolder.py); val-c/ its -C set,
                             <corruption>/<severity>/<class>/<image> (python -m train.corruptions.generate)

    synthetic/<dataset>_edm_1m.npz   EDM synthetic sets (``image`` uint8 NHWC, ``label``); any path works with --synthetic
    adain/, style_feats_adain_1000.npy, frost/   AdaIN weights, the authors' style features, frost textures
"""
from fastnst.train.data.corrupted import corrupted_root, has_official_corruptions, load_cifar_c, load_tinyimagenet_c
from fastnst.train.data.demo import make_demo_dataset
from fastnst.train.data.download import download_dataset
from fastnst.train.data.errors import BadImageError, DataFormatError, MissingDataError
from fastnst.train.data.eval_loader import EvalLoader, create_eval_loader, normalize
from fastnst.train.data.train_loader import TrainLoader, create_train_loader
from fastnst.train.data.sources import default_synthetic_path, load_test_set
from fastnst.train.data.stats import DATASETS, DatasetInfo, dataset_info

__all__ = [
    "BadImageError", "DATASETS", "DataFormatError", "DatasetInfo", "EvalLoader", "MissingDataError", "TrainLoader",
    "corrupted_root", "create_eval_loader", "download_dataset", "create_train_loader", "dataset_info", "default_synthetic_path",
    "has_official_corruptions", "load_cifar_c", "load_test_set", "load_tinyimagenet_c", "make_demo_dataset",
    "normalize",
]
