"""Merchant networks: links through shared identifiers and moved terminals, grouping, scores, quality."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from etl.generate import generate
from graph.catalog import OUTPUT_SCHEMAS
from graph.detectors.networks import MerchantNetworkDetector, NETWORK_COLUMNS
from graph.evaluation import projection_from_drop
from graph.projection import Projection
from tests.graph.conftest import T0, make_txns

KEY = "posguard-test-key-not-a-secret"


def _merchants(rows, background: int = 0):
    """Merchant rows, plus ``background`` merchants whose identifiers are all their own (most merchants)."""
    base = {"owner_token": None, "phone_token": None, "bank_account_token": None, "agent_id": "A0", "mcc": "5411",
            "onboarded_at": T0}
    rows = list(rows) + [{"merchant_id": f"Z{i:04d}", "owner_token": f"zo{i}", "phone_token": f"zp{i}",
                          "bank_account_token": f"zb{i}"} for i in range(background)]
    return pd.DataFrame([{**base, **r} for r in rows])


def _fit(merchants, txns=None, terminals=None, **params):
    txns = make_txns(txns or [{"hours": 0, "merchant_id": merchants["merchant_id"].iloc[0]}])
    return MerchantNetworkDetector(**params).fit(Projection.from_frames(txns, terminals, merchants))


def _groups(rings):
    return sorted(sorted(g) for g in rings.groupby("ring_id")["member_id"].apply(list))


def _tested(found):
    return sorted(g["members"] for g in found.groups_)


def _union_find_groups(links, min_size):
    parent = {}

    def find(x):
        parent.setdefault(x, x)
        while parent[x] != x:
            x = parent[x]
        return x

    for a, b in links:
        parent[find(a)] = find(b)
    groups = {}
    for x in list(parent):
        groups.setdefault(find(x), []).append(x)
    return sorted(sorted(g) for g in groups.values() if len(g) >= min_size)


def test_chain_of_shared_identifiers_is_one_network_and_strangers_are_not():
    m = _merchants([{"merchant_id": "M1", "owner_token": "o1"}, {"merchant_id": "M2", "owner_token": "o1",
                                                                 "phone_token": "p1"},
                    {"merchant_id": "M3", "phone_token": "p1", "bank_account_token": "b1"},
                    {"merchant_id": "M4", "owner_token": "o4", "phone_token": "p4", "bank_account_token": "b4"},
                    {"merchant_id": "M5", "owner_token": "o5", "phone_token": "p5", "bank_account_token": "b5"}],
                   background=500)
    found = _fit(m)
    assert _groups(found.result_) == [["M1", "M2", "M3"]]
    assert found.result_["shared"].iloc[0] == "owner,phone"
    assert set(found.links_["via"].str.split(":").str[0]) == {"owner", "phone"}
    assert (found.result_["q_value"] <= 0.05).all() and (found.result_["p_value"] <= found.result_["q_value"]).all()


def test_the_same_chain_among_few_merchants_is_not_significant():
    """Among five merchants, two shared identifiers are what chance gives: no network is reported."""
    m = _merchants([{"merchant_id": "M1", "owner_token": "o1"}, {"merchant_id": "M2", "owner_token": "o1",
                                                                 "phone_token": "p1"},
                    {"merchant_id": "M3", "phone_token": "p1"}, {"merchant_id": "M4", "owner_token": "o4"},
                    {"merchant_id": "M5", "phone_token": "p5"}])
    found = _fit(m)
    assert _tested(found) == [["M1", "M2", "M3"]] and len(found.result_) == 0


def test_one_shared_value_is_no_network_however_many_share_it():
    """A switchboard phone of 300 merchants (over the cap) links nothing; a phone shared by eight (within the
    cap) is no more than its own frequency; a pair sharing one owner is as common as owners shared, and so
    is the pair sharing its bank account too (an owner's businesses: one connection, not two)."""
    rows = [{"merchant_id": f"S{i:03d}", "phone_token": "switchboard"} for i in range(300)]
    rows += [{"merchant_id": f"E{i}", "phone_token": "eight"} for i in range(8)]
    rows += [{"merchant_id": "P1", "owner_token": "pair", "bank_account_token": "b"},
             {"merchant_id": "P2", "owner_token": "pair", "bank_account_token": "b"}]
    found = _fit(_merchants(rows, background=600))
    assert len(found.result_) == 0
    assert sorted(map(len, _tested(found))) == [2, 8]
    # a third merchant joined to the pair through another bank account is a network
    rows[-2]["bank_account_token"], rows[-1]["bank_account_token"] = None, "b2"
    found = _fit(_merchants(rows + [{"merchant_id": "P3", "bank_account_token": "b2"}], background=600))
    assert _groups(found.result_) == [["P1", "P2", "P3"]]
    # but not through a phone: in this run, where phones are commonly shared, a phone link is weak
    found = _fit(_merchants(rows + [{"merchant_id": "P3", "phone_token": "eight"}], background=600))
    assert len(found.result_) == 0


def test_terminals_moved_between_merchants_link_them():
    m = _merchants([{"merchant_id": "M1"}, {"merchant_id": "M2"}, {"merchant_id": "M3"}], background=500)
    terminals = pd.DataFrame({"terminal_id": ["T1", "T2", "T3"], "merchant_id": ["M1", "M2", "M3"]})
    txns = [{"hours": h, "terminal_id": "T1", "merchant_id": "M2"} for h in range(3)]
    txns += [{"hours": h, "terminal_id": "T2", "merchant_id": "M3"} for h in range(3)]
    txns += [{"hours": 5, "terminal_id": "T3", "merchant_id": "Z0001"}]  # once: a typo, not a move
    found = _fit(m, txns, terminals)
    assert _groups(found.result_) == [["M1", "M2", "M3"]]
    assert found.result_["shared"].iloc[0] == "terminal"


def test_more_connections_score_higher():
    loose = [{"merchant_id": f"A{i}", "phone_token": f"p{i}", "owner_token": f"o{i}", "bank_account_token": f"b{i}"}
             for i in range(4)]
    loose[1]["phone_token"] = loose[0]["phone_token"]
    loose[2]["owner_token"] = loose[1]["owner_token"]
    tight = [dict(r, merchant_id=r["merchant_id"].replace("A", "B"), phone_token=r["phone_token"] + "b",
                  owner_token=r["owner_token"] + "b", bank_account_token=r["bank_account_token"] + "b")
             for r in loose]
    tight[3]["bank_account_token"] = tight[2]["bank_account_token"]
    found = _fit(_merchants(loose + tight, background=500)).result_
    scores = found.groupby("member_id")["score"].first()
    assert scores["B1"] > scores["A1"] > 0 and "A3" not in scores and "B3" in scores


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_components_equal_a_union_find_reference(seed):
    rng = np.random.default_rng(seed)
    n = 60
    rows = [{"merchant_id": f"M{i:02d}", "owner_token": f"o{rng.integers(0, 45)}",
             "phone_token": f"p{rng.integers(0, 50)}" if rng.random() < 0.7 else None} for i in range(n)]
    m = _merchants(rows)
    found = _fit(m, max_size=n + 1)
    links = [(a, b) for a, b, _ in found.links_.itertuples(index=False)]
    assert _tested(found) == _union_find_groups(links, 2)


def test_a_giant_component_is_split_into_communities():
    rows = [{"merchant_id": f"M{i:02d}", "owner_token": "left" if i < 8 else "right"} for i in range(16)]
    rows[7]["phone_token"] = rows[8]["phone_token"] = "bridge"
    m = _merchants(rows)
    assert len(_tested(_fit(m, max_size=100))) == 1
    split = _tested(_fit(m, max_size=10))
    assert [len(g) for g in split] == [8, 8] and "M00" in split[0] and "M15" in split[1]


def test_output_columns_follow_the_contract():
    empty = _fit(_merchants([{"merchant_id": "M1"}])).result_
    assert list(empty.columns) == NETWORK_COLUMNS and len(empty) == 0
    for col in ("score", "p_value", "q_value", "agent_share", "onboarded_span_days", "risky_mcc_share"):
        assert empty[col].dtype == np.float64, col
    assert NETWORK_COLUMNS[:5] == OUTPUT_SCHEMAS["rings"].names


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_planted_networks_found_with_jaccard_over_0_7(seed, tmp_path):
    # 100k transactions (about 2,000 merchants): in the small drops' 416 merchants, a planted chain of three
    # merchants through two shared values is borderline by the union bound (p about 0.06)
    generate(tmp_path, seed=seed, txns=100_000)
    rings = MerchantNetworkDetector().fit(projection_from_drop(tmp_path, KEY)).result_
    truth = pd.read_parquet(tmp_path / "truth" / "rings.parquet")
    truth = truth[truth["kind"] == "merchant_network"]
    assert truth["ring_id"].nunique() >= 2
    found = [set(g) for g in rings.groupby("ring_id")["member_id"].apply(list)]
    for ring_id, members in truth.groupby("ring_id")["member_id"]:
        best = max(len(set(members) & f) / len(set(members) | f) for f in found)
        assert best >= 0.7, ring_id
    assert len(found) <= truth["ring_id"].nunique() + 1
    assert (rings["q_value"] <= 0.05).all() and rings["size"].max() <= 30


def test_nothing_planted_gives_no_network(tmp_path):
    generate(tmp_path, seed=4, scale="small", plant=False)
    assert len(MerchantNetworkDetector().fit(projection_from_drop(tmp_path, KEY)).result_) == 0
