"""Plain, slow reference versions of the library's fast paths.

Each is written the obvious way (a Python loop, one numpy pass per query, sorting whole rows),
so the vectorised code in ``reid/`` can be checked against it (tests/) and timed against it
(bench/). Nothing in the library's own path calls them.

    evaluation    per-query Rank-k, CMC, mAP and mINP (checks reid.metrics)
    rerank        per-probe k-reciprocal re-ranking, as its authors wrote it (checks reid.rerank)
"""
