"""Benchmarks, run from the repository root as modules: ``python -m bench.run_all`` (``make bench``),
``python -m bench.bench_train``, ``python -m bench.bench_eval``, ``python -m bench.bench_val DATA``,
``python -m bench.time_to_accuracy DATA ...``, ``python -m bench.baselines DATA``.

Each prints ratios of things measured side by side in one run; ``run_all`` writes BENCHMARKS.md.
"""
