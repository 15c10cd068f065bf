"""Merchant networks: shell merchants joined by a shared owner, phone, bank account or a terminal moved between them."""

from __future__ import annotations

import hashlib

import networkx as nx
import numpy as np
import pandas as pd

from graph.detectors.base import BaseDetector
from graph.projection import Projection, to_epoch_seconds

__all__ = ["MerchantNetworkDetector", "IDENTIFIERS", "RISKY_MCC", "NETWORK_COLUMNS"]

# staging column -> the name of the shared identifier in reasons
IDENTIFIERS = {"owner_token": "owner", "phone_token": "phone", "bank_account_token": "bank_account"}
RISKY_MCC = frozenset({"5999", "6051", "6011", "5732", "5944", "7995", "4829"})
NETWORK_COLUMNS = ["ring_id", "kind", "score", "member_type", "member_id", "size", "shared", "links", "agent_share",
                   "onboarded_span_days", "risky_mcc_share"]


def _ring_id(members) -> str:
    digest = hashlib.sha256("|".join(sorted(members)).encode("utf-8")).hexdigest()
    return f"merchant_network-{digest[:12]}"


class MerchantNetworkDetector(BaseDetector):
    """Groups of merchants linked by identifiers that independent merchants do not share.

    A link joins two merchants that share an owner, phone or bank account token, or a terminal registered
    to one that transacted under the other (a moved terminal). Groups are the connected components of these
    links; a component larger than ``max_size`` (a legitimate chain under one owner, say) is split into
    Louvain communities. Each group of at least ``min_size`` merchants is scored in 0..1 from its evidence:

    ``score = 1 - exp(-(links_per_member + identifier_kinds / 2 + agent_share + risky_mcc_share
    + onboarded_together) / 3)``

    where ``links_per_member`` is the number of distinct shared identifiers over members (capped at 2),
    ``identifier_kinds`` the number of kinds of identifier used (owner, phone, bank_account, terminal),
    ``agent_share`` the share of members signed by the group's commonest acquiring agent,
    ``risky_mcc_share`` the share under high-risk MCCs, and ``onboarded_together`` is 1 when all were
    onboarded within ``onboard_days`` of each other.

    Attributes
    ----------
    rings_ : DataFrame
        ``NETWORK_COLUMNS``: one row per member (kind ``merchant_network``), by descending score.
    links_ : DataFrame
        merchant_a, merchant_b, via (identifier kind): the evidence.

    Example
    -------
    >>> MerchantNetworkDetector(min_size=3).fit(projection).rings_.head()  # doctest: +SKIP
    """

    def __init__(self, min_size: int = 2, max_size: int = 30, onboard_days: float = 60.0, moved_min_txns: int = 3,
                 seed: int = 0):
        self.min_size = min_size
        self.max_size = max_size
        self.onboard_days = onboard_days
        self.moved_min_txns = moved_min_txns
        self.seed = seed

    def fit(self, projection: Projection) -> "MerchantNetworkDetector":
        """Link merchants through shared identifiers and moved terminals, group and score them."""
        merchants = projection.merchants
        links = pd.concat([self._shared_identifier_links(merchants), self._moved_terminal_links(projection)],
                          ignore_index=True)
        self.links_ = links
        graph = nx.Graph()
        for a, b, via in links.itertuples(index=False):
            if graph.has_edge(a, b):
                graph[a][b]["via"].add(via)
            else:
                graph.add_edge(a, b, via={via})
        rows = []
        for group in self._groups(graph):
            if len(group) >= self.min_size:
                rows.append(self._score(graph.subgraph(group), merchants))
        self.rings_ = self._shape(rows)
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

    def _moved_terminal_links(self, p: Projection) -> pd.DataFrame:
        reg = p.terminal_merchant[np.maximum(p.txn_terminal, 0)]
        moved = (p.txn_terminal >= 0) & (reg >= 0) & (p.txn_merchant >= 0) & (p.txn_merchant != reg)
        if not moved.any():
            return pd.DataFrame(columns=["a", "b", "via"])
        pairs = pd.DataFrame({"t": p.txn_terminal[moved], "m1": reg[moved], "m2": p.txn_merchant[moved]})
        counts = pairs.value_counts().reset_index(name="n")
        counts = counts[counts["n"] >= self.moved_min_txns]
        a = p.merchant_ids[np.minimum(counts["m1"], counts["m2"])]
        b = p.merchant_ids[np.maximum(counts["m1"], counts["m2"])]
        return pd.DataFrame({"a": a, "b": b, "via": "terminal:" + p.terminal_ids[counts["t"]].astype(str)})

    def _groups(self, graph: nx.Graph):
        for component in sorted(nx.connected_components(graph), key=lambda c: sorted(c)[0]):
            if len(component) <= self.max_size:
                yield component
                continue
            sub = graph.subgraph(component)
            yield from nx.community.louvain_communities(sub, seed=self.seed)

    def _score(self, sub: nx.Graph, merchants: pd.DataFrame) -> dict:
        members = sorted(sub.nodes)
        identifiers = set().union(*(d["via"] for _, _, d in sub.edges(data=True)))
        kinds = sorted({v.split(":", 1)[0] for v in identifiers})
        info = merchants[merchants["merchant_id"].isin(members)]
        agent_share = 0.0
        if "agent_id" in info.columns and info["agent_id"].notna().any():
            agent_share = float(info["agent_id"].value_counts().iloc[0]) / len(members)
        span = np.nan
        if "onboarded_at" in info.columns:
            at = to_epoch_seconds(info["onboarded_at"])
            at = at[at >= 0]
            span = (at.max() - at.min()) / 86_400 if len(at) == len(members) else np.nan
        risky = float(info["mcc"].astype(str).isin(RISKY_MCC).mean()) if "mcc" in info.columns and len(info) else 0.0
        together = 1.0 if np.isfinite(span) and span <= self.onboard_days else 0.0
        evidence = min(2.0, len(identifiers) / len(members)) + len(kinds) / 2 + agent_share + risky + together
        return {"members": members, "score": float(1.0 - np.exp(-evidence / 3.0)), "shared": ",".join(kinds),
                "links": len(identifiers), "agent_share": agent_share, "span": span, "risky": risky}

    @staticmethod
    def _shape(rows: list[dict]) -> pd.DataFrame:
        out = [pd.DataFrame({"ring_id": _ring_id(r["members"]), "kind": "merchant_network", "score": round(r["score"], 6),
                             "member_type": "merchant", "member_id": r["members"], "size": len(r["members"]),
                             "shared": r["shared"], "links": r["links"], "agent_share": r["agent_share"],
                             "onboarded_span_days": r["span"], "risky_mcc_share": r["risky"]}) for r in rows]
        if not out:
            return pd.DataFrame({c: pd.Series([], dtype=float if c in ("score", "agent_share", "onboarded_span_days",
                                                                       "risky_mcc_share")
                                              else np.int64 if c in ("size", "links") else object)
                                 for c in NETWORK_COLUMNS})
        frame = pd.concat(out, ignore_index=True)
        return frame.sort_values(["score", "ring_id", "member_id"], ascending=[False, True, True],
                                 kind="stable").reset_index(drop=True)
