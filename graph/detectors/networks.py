"""Merchant networks: shell merchants joined by a shared owner, phone, bank account or a terminal moved between
them, reported only when more tightly linked than identifiers shared by chance would make them."""

from __future__ import annotations

import hashlib
import logging
import math

import networkx as nx
import numpy as np
import pandas as pd

from graph.detectors.base import BaseDetector
from graph.detectors.significance import REPORT_Q, bh_qvalues
from graph.projection import Projection, to_epoch_seconds

__all__ = ["MerchantNetworkDetector", "IDENTIFIERS", "RISKY_MCC", "NETWORK_COLUMNS", "holders", "network_groups",
           "CollisionRates"]

log = logging.getLogger("posguard.networks")

# staging column -> the name of the shared identifier in reasons
IDENTIFIERS = {"owner_token": "owner", "phone_token": "phone", "bank_account_token": "bank_account"}
RISKY_MCC = frozenset({"5999", "6051", "6011", "5732", "5944", "7995", "4829"})
NETWORK_COLUMNS = ["ring_id", "kind", "score", "member_type", "member_id", "p_value", "q_value", "size", "shared",
                   "links", "agent_share", "onboarded_span_days", "risky_mcc_share"]


def _ring_id(members) -> str:
    digest = hashlib.sha256("|".join(sorted(members)).encode("utf-8")).hexdigest()
    return f"merchant_network-{digest[:12]}"


def holders(merchants: pd.DataFrame, moved: pd.DataFrame) -> pd.DataFrame:
    """Who holds which identifier: merchant, kind (owner, phone, bank_account, terminal), value; one row per
    distinct triple, sorted. A moved terminal is held by its registered merchant and by those it moved to."""
    parts = []
    for column, name in IDENTIFIERS.items():
        if column in merchants.columns:
            m = merchants[["merchant_id", column]].dropna()
            m = m[m[column].astype(str).str.len() > 0]
            parts.append(pd.DataFrame({"merchant": m["merchant_id"].astype(str), "kind": name,
                                       "value": m[column].astype(str)}))
    if len(moved):
        parts.append(pd.DataFrame({"merchant": pd.concat([moved["a"], moved["b"]]).astype(str).to_numpy(),
                                   "kind": "terminal", "value": pd.concat([moved["t"], moved["t"]]).astype(str)
                                   .to_numpy()}))
    if not parts:
        return pd.DataFrame({c: pd.Series([], dtype=object) for c in ("merchant", "kind", "value")})
    out = pd.concat(parts, ignore_index=True).drop_duplicates()
    return out.sort_values(["kind", "value", "merchant"], kind="stable").reset_index(drop=True)


def _log_falling(n, h):
    """log of n (n - 1) ... (n - h + 1), elementwise."""
    n = np.asarray(n, dtype=np.float64)
    return np.vectorize(math.lgamma, otypes=[np.float64])(n + 1) - np.vectorize(math.lgamma, otypes=[np.float64])(
        n - h + 1)


class CollisionRates:
    """Chance that ``h`` given merchants hold one same value of a kind if the values were spread at random
    over the merchants holding that kind, with this run's value frequencies (generic values included):
    ``c_k(h) = sum_v n_v (n_v - 1) ... (n_v - h + 1) / (N_k (N_k - 1) ... (N_k - h + 1))``."""

    def __init__(self, held: pd.DataFrame, n_kind: dict):
        self.counts = {k: g.groupby("value", sort=False).size().to_numpy(np.float64)
                       for k, g in held.groupby("kind", sort=True)}
        self.n_kind = n_kind
        self._cache: dict = {}

    def log_rate(self, kind: str, h: int) -> float:
        """``log c_kind(h)`` (-inf when no value has ``h`` holders)."""
        key = (kind, int(h))
        if key not in self._cache:
            n = self.counts.get(kind, np.zeros(0))
            n = n[n >= h]
            total = float(max(self.n_kind.get(kind, 0), h, 2))
            if not len(n):
                self._cache[key] = -math.inf
            else:
                logs = _log_falling(n, h) - float(_log_falling(total, h))
                top = float(logs.max())
                self._cache[key] = min(0.0, top + math.log(float(np.exp(logs - top).sum())))
        return self._cache[key]


def _log_comb(n: int, k: int) -> float:
    return math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)


def _log_layouts(size: int, holders_per_value: np.ndarray) -> float:
    """log of how many ways the values could sit on ``size`` labelled merchants and hold them together.

    ``prod C(size, h_v)`` in general; when every value joins a pair, the connected layouts only: a spanning
    tree (``size^(size-2)`` shapes, its ``size - 1`` values chosen and ordered) and any pair for the rest.
    """
    h = np.asarray(holders_per_value, dtype=np.int64)
    if len(h) and (h == 2).all() and len(h) >= size - 1:
        extra = len(h) - size + 1
        return (_log_comb(len(h), size - 1) + (size - 2) * math.log(size) + math.lgamma(size)
                + extra * math.log(size * (size - 1) / 2))
    return float(sum(_log_comb(size, int(k)) for k in h))


def network_groups(held: pd.DataFrame, n_kind: dict, n_merchants: int, cap: int, min_size: int,
                   seed: int) -> list[dict]:
    """Groups of merchants linked by shared identifiers, each with its p-value.

    Values held by more than ``cap`` merchants link nothing (a network may not hold them all; they still
    count in their kind's base rates). Groups are the connected components of the links, a component over
    ``cap`` being split into Louvain communities (links weighted ``-log c_k(2)``). A group of ``s`` of the
    run's ``N`` merchants, held together by values each held by ``h_v`` of its members, is scored by the
    union bound on the number of groups that chance would hold together as tightly:

    ``p = min(1, C(N, s) * layouts * prod over values of c_k(h_v))``

    (``CollisionRates``; ``_log_layouts``: ``prod C(s, h_v)``, or the connected layouts when every value
    joins a pair). Only values that join merchants not yet joined count, the most specific first (an
    owner's businesses sharing its bank account and phone too are one connection, not three). A value shared by the
    merchants holding it is, alone, never significant: it is exactly as common as the run's frequencies
    say (a switchboard number shared by hundreds is no evidence); several connections joining the same
    few merchants are.
    """
    if not len(held):
        return []
    rates = CollisionRates(held, n_kind)
    n = held.groupby(["kind", "value"], sort=False)["merchant"].transform("size").to_numpy()
    big = n > cap
    if big.any():
        log.info("%d identifier values held by more than %d merchants link nothing",
                 held[big][["kind", "value"]].drop_duplicates().shape[0], cap)
    linking = held[(n >= 2) & ~big]
    graph = nx.Graph()
    for (kind, _), g in linking.groupby(["kind", "value"], sort=True):
        members = sorted(g["merchant"])
        w = max(-rates.log_rate(kind, 2), 1e-9)
        for a in members[1:]:
            graph.add_edge(members[0], a, weight=graph[members[0]][a]["weight"] + w if graph.has_edge(members[0], a)
                           else w)
    groups = []
    for component in sorted(nx.connected_components(graph), key=lambda c: min(c)):
        if len(component) > cap:
            sub = graph.subgraph(sorted(component))
            groups.extend(sorted(c) for c in nx.community.louvain_communities(sub, weight="weight", seed=seed))
        else:
            groups.append(sorted(component))
    out = []
    big_n = max(int(n_merchants), 2)
    for members in groups:
        size = len(members)
        if size < max(min_size, 2):
            continue
        inside = linking[linking["merchant"].isin(members)]
        # only the values that join merchants not yet joined count, the most specific first (Kruskal): an
        # owner's businesses sharing its bank account or phone as well are one connection, not several
        values = sorted(((rates.log_rate(kind, len(g)), kind, value, sorted(g["merchant"]))
                         for (kind, value), g in inside.groupby(["kind", "value"], sort=True) if len(g) >= 2),
                        key=lambda t: (t[0], t[1], t[2]))
        parent = {m: m for m in members}

        def root(x):
            while parent[x] != x:
                parent[x] = parent[parent[x]]
                x = parent[x]
            return x

        best: dict = {}
        for rate, kind, value, holders_of in values:
            roots = {root(x) for x in holders_of}
            if len(roots) < 2:
                continue
            first, *rest = sorted(roots)
            for other in rest:
                parent[other] = first
            best[(kind, value)] = (kind, rate, len(holders_of))
        sizes = np.array([h for _, _, h in best.values()], dtype=np.int64)
        if int((sizes - 1).sum()) < size - 1:  # a Louvain community may not be held by its own links
            continue
        kinds = sorted({k for k, _, _ in best.values()})
        log_p = (_log_comb(max(big_n, size), size) + _log_layouts(size, sizes)
                 + sum(rate for _, rate, _ in best.values()))
        out.append({"members": members, "p_value": float(math.exp(min(0.0, log_p))), "kinds": kinds,
                    "links": len(best)})
    return out


class MerchantNetworkDetector(BaseDetector):
    """Groups of merchants linked by identifiers more tightly than chance, with their significance.

    A merchant holds identifiers: its owner, phone and bank account tokens, and any terminal moved between
    it and another merchant (a terminal registered to one that carried at least ``moved_min_txns``
    transactions of the other). Merchants sharing a value are linked; groups are the connected components
    (a component over the cap split into Louvain communities), and each group's ``p_value`` is the union
    bound of ``network_groups``: how many groups this tight chance sharing would make, given how often
    merchants share each kind of identifier in this run (``CollisionRates``; a run where phones are
    commonly shared, a switchboard number say, makes phone links weak). ``q_value`` is Benjamini-Hochberg
    over all groups tested; groups with q above ``REPORT_Q`` are not reported; ``score = min(1,
    -log10(q) / 10)``. The cap is ``max_size``, by default ``max(min_cap, max_share x merchants)``: a value
    held by more merchants links nothing (logged), a group is never larger.

    Parameters
    ----------
    min_size : int
        Smallest group of merchants tested as a network.
    max_size : int, optional
        Cap of a group and of the merchants one identifier value may link (default ``max(min_cap, max_share x
        merchants)``).
    max_share : float
        Share of the run's merchants that makes the default cap.
    min_cap : int
        Smallest default cap, for small runs.
    moved_min_txns : int
        Transactions of another merchant on a terminal that make it a moved terminal linking the two.
    seed : int
        Seed of the Louvain split of a component over the cap.

    Attributes
    ----------
    result_ : DataFrame
        ``NETWORK_COLUMNS``: one row per member (kind ``merchant_network``), by descending score.
    groups_ : list of dict
        Every group tested: members, p_value, q_value, kinds, links.
    links_ : DataFrame
        merchant_a, merchant_b, via (identifier kind): the evidence.

    Example
    -------
    >>> MerchantNetworkDetector(min_size=3).fit(projection).result_.head()  # doctest: +SKIP
    """

    name = "networks"
    output = "rings"

    def __init__(self, min_size: int = 2, max_size: int | None = None, max_share: float = 0.01, min_cap: int = 10,
                 moved_min_txns: int = 3, seed: int = 0):
        self.min_size = min_size
        self.max_size = max_size
        self.max_share = max_share
        self.min_cap = min_cap
        self.moved_min_txns = moved_min_txns
        self.seed = seed

    def fit(self, projection: Projection) -> "MerchantNetworkDetector":
        """Link merchants through shared identifiers and moved terminals, group them and test each group."""
        merchants = projection.merchants
        moved = self._moved_terminals(projection)
        self.links_ = pd.concat([self._shared_identifier_links(merchants),
                                 pd.DataFrame({"a": moved["a"], "b": moved["b"], "via": "terminal:" + moved["t"]})],
                                ignore_index=True)
        held = holders(merchants, moved)
        n_all = len(merchants) if len(merchants) else projection.n_merchants
        n_kind = held.groupby("kind")["merchant"].nunique().to_dict()
        n_kind["terminal"] = max(n_all, n_kind.get("terminal", 0))
        cap = int(self.max_size) if self.max_size is not None else max(int(self.min_cap),
                                                                        math.ceil(self.max_share * n_all))
        groups = network_groups(held, n_kind, n_all, cap, int(self.min_size), int(self.seed))
        qv = bh_qvalues([g["p_value"] for g in groups], m=len(groups)) if groups else []
        for g, q in zip(groups, qv):
            g["q_value"] = float(q)
        self.groups_ = groups
        rows = [self._describe(g, merchants) for g in groups if g["q_value"] <= REPORT_Q]
        self.result_ = self._shape(rows)
        return self

    @staticmethod
    def _shared_identifier_links(merchants: pd.DataFrame) -> pd.DataFrame:
        parts = []
        for column, name in IDENTIFIERS.items():
            if column not in merchants.columns:
                continue
            m = merchants[["merchant_id", column]].dropna()
            m = m[m[column].astype(str).str.len() > 0]
            pairs = m.merge(m, on=column, suffixes=("_a", "_b"))
            pairs = pairs[pairs["merchant_id_a"] < pairs["merchant_id_b"]]
            parts.append(pd.DataFrame({"a": pairs["merchant_id_a"], "b": pairs["merchant_id_b"],
                                       "via": name + ":" + pairs[column].astype(str)}))
        return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=["a", "b", "via"])

    def _moved_terminals(self, p: Projection) -> pd.DataFrame:
        """a (registered merchant), b (merchant it carried transactions of), t (terminal id)."""
        reg = p.terminal_merchant[np.maximum(p.txn_terminal, 0)] if p.n_txns else np.zeros(0, np.int64)
        moved = (p.txn_terminal >= 0) & (reg >= 0) & (p.txn_merchant >= 0) & (p.txn_merchant != reg)
        if not moved.any():
            return pd.DataFrame({c: pd.Series([], dtype=object) for c in ("a", "b", "t")})
        pairs = pd.DataFrame({"t": p.txn_terminal[moved], "m1": reg[moved], "m2": p.txn_merchant[moved]})
        counts = pairs.value_counts().reset_index(name="n")
        counts = counts[counts["n"] >= self.moved_min_txns].sort_values(["t", "m1", "m2"])
        return pd.DataFrame({"a": p.merchant_ids[counts["m1"]], "b": p.merchant_ids[counts["m2"]],
                             "t": p.terminal_ids[counts["t"]].astype(str)})

    def _describe(self, g: dict, merchants: pd.DataFrame) -> dict:
        members = g["members"]
        info = merchants[merchants["merchant_id"].isin(members)] if "merchant_id" in merchants.columns else merchants
        agent_share = 0.0
        if "agent_id" in info.columns and info["agent_id"].notna().any():
            agent_share = float(info["agent_id"].value_counts().iloc[0]) / len(members)
        span = np.nan
        if "onboarded_at" in info.columns and len(info):
            at = to_epoch_seconds(info["onboarded_at"])
            at = at[at >= 0]
            span = (at.max() - at.min()) / 86_400 if len(at) == len(members) else np.nan
        risky = float(info["mcc"].astype(str).isin(RISKY_MCC).mean()) if "mcc" in info.columns and len(info) else 0.0
        score = min(1.0, -math.log10(max(g["q_value"], 1e-300)) / 10.0)
        return {"members": members, "score": score, "p": g["p_value"], "q": g["q_value"],
                "shared": ",".join(g["kinds"]), "links": g["links"], "agent_share": agent_share, "span": span,
                "risky": risky}

    @staticmethod
    def _shape(rows: list[dict]) -> pd.DataFrame:
        out = [pd.DataFrame({"ring_id": _ring_id(r["members"]), "kind": "merchant_network",
                             "score": round(r["score"], 6),
                             "member_type": "merchant", "member_id": r["members"], "p_value": r["p"],
                             "q_value": r["q"], "size": len(r["members"]), "shared": r["shared"],
                             "links": r["links"], "agent_share": r["agent_share"],
                             "onboarded_span_days": r["span"], "risky_mcc_share": r["risky"]}) for r in rows]
        if not out:
            floats = ("score", "p_value", "q_value", "agent_share", "onboarded_span_days", "risky_mcc_share")
            return pd.DataFrame({c: pd.Series([], dtype=float if c in floats
                                              else np.int64 if c in ("size", "links") else object)
                                 for c in NETWORK_COLUMNS})
        frame = pd.concat(out, ignore_index=True)
        return frame.sort_values(["score", "q_value", "ring_id", "member_id"], ascending=[False, True, True, True],
                                 kind="stable").reset_index(drop=True)[NETWORK_COLUMNS]
