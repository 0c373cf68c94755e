"""bench/cost_model.py: arithmetic counted on the meta device equals a real run's; floors; the table."""
from __future__ import annotations

import json

import torch
from torch.utils.flop_counter import FlopCounterMode

from bench import cost_model
from fastnst.networks import Decoder, VGGEncoder


def test_meta_device_count_equals_a_real_forward():
    """The table's numbers come from meta tensors: the same count as running the networks on the CPU."""
    encoder, decoder = VGGEncoder().eval(), Decoder().eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        decoder(encoder(torch.rand(2, 3, 32, 32)))
    assert abs(sum(cost_model.network_gflop(32)) - counter.get_total_flops() / 2e9) < 1e-9
    # Convolutions scale with the pixel count: 224 px is 49x 32 px.
    assert abs(cost_model.stylize_gflop(32, 224) / cost_model.stylize_gflop(32, None) - 49) < 0.5


def test_cache_build_encodes_once_per_image():
    encoder, decoder = cost_model.network_gflop(224)
    assert abs(cost_model.cache_build_gflop(224, 32, variants=1) - (encoder + decoder)) < 1e-9
    assert abs(cost_model.cache_build_gflop(224, 32, variants=4) - (encoder / 4 + decoder)) < 1e-9


def test_floor_and_share():
    config = {"synthetic_ratio": 0.5, "prob_synthetic": 0.5, "prob_real": 0.1, "nst_probability": 0.95}
    assert abs(cost_model.stylized_share(config) - (0.25 + 0.05) * 0.95) < 1e-12
    workload = cost_model.Workload("x", "wrn10_1", 32, 10, 0.25)
    expected = 1 + 0.25 * cost_model.stylize_gflop(32, 112) / workload.step_gflop
    assert abs(workload.floor(112) - expected) < 1e-12


def test_table_reads_measurements_and_marks_missing_gpu(tmp_path, monkeypatch):
    baseline = tmp_path / "cpu.json"
    baseline.write_text(json.dumps({"benchmarks": [
        {"fullname": "bench/test_train_step_bench.py::test_train_step[native]",
         "extra_info": {"device": "cpu (2 cores)", "stylized_over_plain": 2.5}},
        {"fullname": "bench/test_train_step_bench.py::test_train_step[cache]",
         "extra_info": {"device": "cpu (2 cores)", "stylized_over_plain": 1.01}},
        {"fullname": "bench/test_stylize_dataset_bench.py::test_stylize_dataset_throughput[224px]",
         "extra_info": {"images_per_second": 0.75}}]}))
    monkeypatch.setattr(cost_model, "BASELINES", tmp_path / "none")  # no GPU baseline files
    table = cost_model.table(baseline)
    rows = [line for line in table.splitlines() if line.startswith("| ")][2:]
    assert len(rows) == 5
    native, cache = rows[0], rows[-1]
    assert "| 2.50 |" in native and "| 1.01 |" in cache and "0.75 img/s on the CPU" in cache
    assert all("not measured (no GPU lent)" in row for row in rows)
    assert "| not measured |" in rows[1]  # res64: no figure in this baseline


def test_markers_are_replaced_and_kept(tmp_path):
    text = f"intro\n{cost_model.BEGIN}\nold\n{cost_model.END}\noutro\n"
    replaced = cost_model.replace_between_markers(text, "new table", tmp_path)
    assert replaced == f"intro\n{cost_model.BEGIN}\nnew table\n{cost_model.END}\noutro\n"
    assert cost_model.replace_between_markers(replaced, "new table", tmp_path) == replaced


def test_expected_uses_match_the_loaders_epochs():
    """Count draws per image over the training loader's own epochs (tiny sizes): the formula's means."""
    import numpy as np

    from fastnst.train.data.sampler import MixedSampler

    num_real, pool, epochs = 100, 300, 12
    config = {"synthetic_ratio": 0.6, "epochs": epochs, "prob_real": 0.2, "prob_synthetic": 0.5,
              "nst_probability": 0.95}
    sampler = MixedSampler(num_real, pool, 16, 0.6, seed=0)
    real, synthetic = np.zeros(num_real), np.zeros(pool)
    for epoch in range(epochs):
        for plan in sampler.epoch(epoch):
            np.add.at(synthetic, plan.indices[plan.is_synthetic], 1)
            np.add.at(real, plan.indices[~plan.is_synthetic], 1)
    uses = cost_model.expected_uses(config, num_real, pool)
    assert abs(real.mean() - uses["real_draws"]) < 1e-9
    assert abs(synthetic.mean() - uses["synthetic_draws"]) < 0.05 * uses["synthetic_draws"]  # a few drawn, unserved
    assert abs(uses["real"] - uses["real_draws"] * 0.2 * 0.95) < 1e-12


def test_cache_scaling_divides_the_work_by_the_gpus_and_is_the_readmes():
    """N GPUs share the chunks: W / N each. The README shows the table --write made, labelled as a model."""
    pflop = cost_model.cache_build_pflop(1_000_000, variants=4)
    assert abs(pflop - 4e6 * cost_model.cache_build_gflop(224, 32, 4) / 1e6) < 1e-9
    table = cost_model.cache_scaling_table(tflops=100.0)
    row = next(line for line in table.splitlines() if line.startswith("| EDM synthetic pool"))
    seconds = [float(cell.strip().removesuffix(" s")) for cell in row.strip("|").split("|")[3:]]
    assert all(abs(seconds[0] / n - s) <= 1 for n, s in zip(cost_model.GPU_COUNTS, seconds))  # shown in whole s
    assert abs(seconds[0] - pflop * 1e3 / 100.0) < 0.5 and "A MODEL, not a measurement" in table
    readme = cost_model.README.read_text()
    shown = readme.split(cost_model.SCALING_BEGIN)[1].split(cost_model.SCALING_END)[0].strip()
    assert shown == cost_model.cache_scaling_table(), "README out of date: run python -m bench.cost_model --write"
