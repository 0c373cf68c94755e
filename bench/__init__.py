"""``pytest bench``: throughput and overhead benchmarks, saved baselines, and the tools to compare and plot them.

See ``bench/README.md``.
"""
