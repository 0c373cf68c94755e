"""The classifier side of fastnst: data, models, trainer, corruption benchmark and evaluation."""
