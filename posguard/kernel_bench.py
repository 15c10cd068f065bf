"""Each numba kernel against its plain-Python reference on the same projection, as a throughput ratio."""

from __future__ import annotations

import time

import numpy as np

from graph.detectors.cloned import ClonedCardDetector
from graph.detectors.integrity import IntegrityDetector
from graph.kernels.cloned import cloned_card_evidence
from graph.kernels.integrity import terminal_stats
from graph.kernels.rings import fraudar_blocks
from graph.references import cloned as cloned_reference, integrity as integrity_reference
from graph.references.rings import fraudar_python

__all__ = ["kernel_ratios", "fraudar_speed"]


def _prefix(indptr: np.ndarray, budget: int) -> int:
    """Number of leading groups of a CSR ``indptr`` holding at most ``budget`` rows (at least one group)."""
    return max(1, int(np.searchsorted(indptr, budget, side="right")) - 1)


def _ratio(name, kernel, reference, indptr, args, budget) -> dict:
    kernel(*args)  # compile or load the cache outside the timing
    started = time.perf_counter()
    kernel(*args)
    k_s = time.perf_counter() - started
    k_rows = int(indptr[-1])
    groups = _prefix(indptr, budget)
    small = (indptr[:groups + 1],) + tuple(args[1:])
    started = time.perf_counter()
    reference(*small)
    r_s = time.perf_counter() - started
    r_rows = int(indptr[groups])
    k_rate, r_rate = k_rows / max(k_s, 1e-9), r_rows / max(r_s, 1e-9)
    return {"kernel": name, "kernel_rows": k_rows, "kernel_s": round(k_s, 3), "kernel_rows_per_s": round(k_rate),
            "reference_rows": r_rows, "reference_s": round(r_s, 3), "reference_rows_per_s": round(r_rate),
            "ratio": round(k_rate / max(r_rate, 1e-9), 1)}


def kernel_ratios(projection, reference_budget: int = 200_000) -> list[dict]:
    """Throughput (transactions per second) of each kernel on the whole projection and of its reference.

    The reference runs on the leading cards or terminals holding about ``reference_budget`` transactions
    (pure Python would take hours on all of them); both rates are measured in this one run, so their
    ratio is what the kernel gains on this machine.

    Parameters
    ----------
    projection : graph.projection.Projection
    reference_budget : int
        Transactions the reference implementations process.

    Returns
    -------
    list of dict
        One per kernel: rows, seconds and rows/s of kernel and reference, and their ratio.

    Example
    -------
    >>> kernel_ratios(projection, reference_budget=50_000)[0]["ratio"]  # doctest: +SKIP
    """
    p = projection
    out = []
    cloned_args = ClonedCardDetector().kernel_args(p)
    out.append(_ratio("cloned_card_evidence", cloned_card_evidence,
                      cloned_reference.cloned_card_evidence, p.card_indptr, cloned_args,
                      reference_budget))
    term_args = IntegrityDetector().kernel_args(p)
    out.append(_ratio("terminal_stats", terminal_stats, integrity_reference.terminal_stats,
                      p.term_indptr, term_args, reference_budget))
    return out


def fraudar_speed(n_edges: int = 1_000_000, n_blocks: int = 3, seed: int = 0) -> dict:
    """Edges per second of the FRAUDAR kernel and of its plain-Python (heapq) twin on one random bipartite
    graph of ``n_edges`` distinct edges (rows:columns 10:1, a planted 200 x 20 block), and whether both
    found the same blocks.

    Example
    -------
    >>> fraudar_speed(50_000)["same_blocks"]  # doctest: +SKIP
    True
    """
    rng = np.random.default_rng(seed)
    n_cols = max(20, n_edges // 100)
    n_rows = 10 * n_cols
    rows = rng.integers(0, n_rows, n_edges)
    cols = rng.integers(0, n_cols, n_edges)
    block = np.stack(np.meshgrid(np.arange(200), np.arange(20)), axis=-1).reshape(-1, 2)
    pairs = np.unique(np.concatenate([np.stack([rows, cols], axis=1), block]), axis=0)
    weights = np.ones(len(pairs))
    fraudar_blocks(pairs[:50, 0], pairs[:50, 1], weights[:50], n_rows, n_cols, n_blocks=1)  # compile
    started = time.perf_counter()
    fast = fraudar_blocks(pairs[:, 0], pairs[:, 1], weights, n_rows, n_cols, n_blocks=n_blocks)
    k_s = time.perf_counter() - started
    started = time.perf_counter()
    slow = fraudar_python(pairs[:, 0], pairs[:, 1], weights, n_rows, n_cols, n_blocks=n_blocks)
    r_s = time.perf_counter() - started
    same = all(np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1]) for a, b in zip(fast, slow)) \
        and len(fast) == len(slow)
    edges = len(pairs) * n_blocks  # each round peels the whole (remaining) graph
    return {"kernel": "fraudar_blocks", "edges": int(len(pairs)), "blocks": n_blocks, "kernel_s": round(k_s, 3),
            "kernel_edges_per_s": round(edges / k_s), "reference_s": round(r_s, 3),
            "reference_edges_per_s": round(edges / r_s), "ratio": round(r_s / k_s, 1),
            "vs_published_250k_edges_per_s": round(edges / k_s / 250_000, 1), "same_blocks": bool(same),
            "top_block": [int(len(fast[0][0])), int(len(fast[0][1]))] if fast else None}
