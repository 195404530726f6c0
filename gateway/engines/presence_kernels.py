"""Compiled loops of the presence engine's step (numba): the passes numpy cannot fuse.

Each kernel computes the same floats as the numpy code it replaced, in the same order (no fast-math,
no fused multiply-add), so the engine's decisions do not depend on which one ran; they only cost
less (docs/presence.md, "Compiled loops"). Compiled on first use and cached beside the module, or
in NUMBA_CACHE_DIR (the gateway's systemd unit sets it)."""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, nogil=True, boundscheck=False)
def level_products(
    out: np.ndarray,
    starts: np.ndarray,
    nodes: np.ndarray,
    values: np.ndarray,
    mu: np.ndarray,
    c: np.ndarray,
    s: np.ndarray,
) -> None:
    """out[i, u] = the product over row i's readings r of s[n, u] + c[n, u] (values[r] - mu[n, u])^2,
    n = nodes[r], for the readings starts[i]:starts[i + 1] (in the order given); 1 for a row without.
    One pass over each row, where numpy scattered a product per node into every row."""
    for i in range(out.shape[0]):
        row = out[i]
        row[:] = 1.0
        for r in range(starts[i], starts[i + 1]):
            n, v = nodes[r], values[r]
            mu_n, c_n, s_n = mu[n], c[n], s[n]
            for u in range(row.shape[0]):
                d = v - mu_n[u]
                d = d * d
                d = d * c_n[u]
                row[u] *= d + s_n[u]


@njit(cache=True, nogil=True, boundscheck=False)
def predict_blocks(
    belief_t: np.ndarray,
    indptr: np.ndarray,
    sources: np.ndarray,
    weights: np.ndarray,
    mix: np.ndarray,
    unmixed: np.ndarray,
    out_t: np.ndarray,
) -> None:
    """One step's prediction, transition and offset drift in one pass, on identity-minor arrays
    (belief_t, out_t: (offsets x cells, identities), the transposed views of Fortran-order beliefs).

    The transition is one cell-to-cell matrix repeated for every offset block (CSC: for cell c,
    sources[indptr[c]:indptr[c + 1]] ascending with their weights); `mix` (offsets, offsets) the
    population's drift between neighbouring offsets, applied to every identity but those `unmixed`
    (indices), which are left to the caller. Summed in the order of scipy's sparse products, so the same floats."""
    n_off, n_i = mix.shape[0], belief_t.shape[1]
    n_cells = belief_t.shape[0] // n_off
    acc = np.empty((n_off, n_i), dtype=belief_t.dtype)
    for c in range(n_cells):
        acc[:] = 0.0
        for o in range(n_off):
            a = acc[o]
            for p in range(indptr[c], indptr[c + 1]):
                w, src = weights[p], belief_t[o * n_cells + sources[p]]
                for i in range(n_i):
                    a[i] += w * src[i]
        for o in range(n_off):
            dest = out_t[o * n_cells + c]
            lo, hi = max(o - 1, 0), min(o + 2, n_off)
            for i in range(n_i):
                dest[i] = mix[lo, o] * acc[lo, i]
            for q in range(lo + 1, hi):
                m = mix[q, o]
                for i in range(n_i):
                    dest[i] += m * acc[q, i]
            for i in unmixed:
                dest[i] = acc[o, i]


@njit(cache=True, nogil=True, boundscheck=False)
def weigh_and_sum(post_t: np.ndarray, lik_t: np.ndarray, emit: np.ndarray, sums: np.ndarray) -> None:
    """post_t[s] *= lik_t[emit[s]] for every state s, in place, and sums[i] = identity i's total after
    it (post_t, lik_t: identity-minor): the weighting and the row sums in one pass over the belief."""
    sums[:] = 0.0
    for s in range(post_t.shape[0]):
        p, lik = post_t[s], lik_t[emit[s]]
        for i in range(p.shape[0]):
            x = p[i] * lik[i]
            p[i] = x
            sums[i] += x


@njit(cache=True, nogil=True, boundscheck=False)
def scale_and_sum_zones(
    post_t: np.ndarray,
    scale: np.ndarray,
    door: np.ndarray,
    door_add: float,
    zone: np.ndarray,
    zones_t: np.ndarray,
) -> None:
    """post_t[s] *= scale (per identity), plus door_add in the states `door` (added in double precision,
    as numpy added it), in place, and zones_t[z, i] = identity i's total over the states of zone z after
    it (post_t: identity-minor; zone[s]: the zone of state s): the renormalisation and the zone sums in
    one pass over the belief."""
    zones_t[:] = 0.0
    for s in range(post_t.shape[0]):
        p, z = post_t[s], zones_t[zone[s]]
        for i in range(p.shape[0]):
            p[i] *= scale[i]
        if door[s]:
            for i in range(p.shape[0]):
                p[i] = p[i] + door_add
        for i in range(p.shape[0]):
            z[i] += p[i]
