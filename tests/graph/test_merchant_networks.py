"""Merchant networks: links through shared identifiers and moved terminals, grouping, scores, quality."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from etl.generate import generate
from graph.detectors.merchant_networks import NETWORK_COLUMNS, MerchantNetworkDetector
from graph.evaluation import projection_from_drop
from graph.projection import Projection
from tests.graph.conftest import T0, make_txns

KEY = "posguard-test-key-not-a-secret"


def _merchants(rows):
    base = {"owner_token": None, "phone_token": None, "bank_account_token": None, "agent_id": "A0", "mcc": "5411",
            "onboarded_at": T0}
    return pd.DataFrame([{**base, **r} for r in rows])


def _fit(merchants, txns=None, terminals=None, **params):
    txns = make_txns(txns or [{"hours": 0, "merchant_id": merchants["merchant_id"].iloc[0]}])
    return MerchantNetworkDetector(**params).fit(Projection.from_frames(txns, terminals, merchants))


def _groups(rings):
    return sorted(sorted(g) for g in rings.groupby("ring_id")["member_id"].apply(list))


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
                    {"merchant_id": "M5", "owner_token": "o5", "phone_token": "p5", "bank_account_token": "b5"}])
    found = _fit(m)
    assert _groups(found.rings_) == [["M1", "M2", "M3"]]
    assert found.rings_["shared"].iloc[0] == "owner,phone"
    assert set(found.links_["via"].str.split(":").str[0]) == {"owner", "phone"}


def test_terminal_moved_between_merchants_links_them():
    m = _merchants([{"merchant_id": "M1"}, {"merchant_id": "M2"}, {"merchant_id": "M3"}])
    terminals = pd.DataFrame({"terminal_id": ["T1", "T2"], "merchant_id": ["M1", "M3"]})
    txns = [{"hours": h, "terminal_id": "T1", "merchant_id": "M2"} for h in range(3)]
    txns += [{"hours": 5, "terminal_id": "T2", "merchant_id": "M1"}]  # once: a typo, not a move
    found = _fit(m, txns, terminals)
    assert _groups(found.rings_) == [["M1", "M2"]]
    assert found.rings_["shared"].iloc[0] == "terminal"


def test_more_kinds_of_shared_identifier_and_a_common_agent_score_higher():
    loose = _merchants([{"merchant_id": "A1", "phone_token": "p", "agent_id": "X1", "onboarded_at": T0},
                        {"merchant_id": "A2", "phone_token": "p", "agent_id": "X2",
                         "onboarded_at": T0 + pd.Timedelta(days=400)}])
    tight = _merchants([{"merchant_id": "B1", "owner_token": "o", "bank_account_token": "b", "mcc": "6051"},
                        {"merchant_id": "B2", "owner_token": "o", "bank_account_token": "b", "mcc": "5999"}])
    scores = _fit(pd.concat([loose, tight], ignore_index=True)).rings_.groupby("member_id")["score"].first()
    assert scores["B1"] > scores["A1"] > 0


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_components_equal_a_union_find_reference(seed):
    rng = np.random.default_rng(seed)
    n = 60
    rows = [{"merchant_id": f"M{i:02d}", "owner_token": f"o{rng.integers(0, 45)}",
             "phone_token": f"p{rng.integers(0, 50)}" if rng.random() < 0.7 else None} for i in range(n)]
    m = _merchants(rows)
    found = _fit(m, max_size=n + 1)
    links = [(a, b) for a, b, _ in found.links_.itertuples(index=False)]
    assert _groups(found.rings_) == _union_find_groups(links, 2)


def test_a_giant_component_is_split_into_communities():
    rows = [{"merchant_id": f"M{i:02d}", "owner_token": "left" if i < 8 else "right"} for i in range(16)]
    rows[7]["phone_token"] = rows[8]["phone_token"] = "bridge"
    m = _merchants(rows)
    assert len(_groups(_fit(m, max_size=100).rings_)) == 1
    split = _groups(_fit(m, max_size=10).rings_)
    assert [len(g) for g in split] == [8, 8] and "M00" in split[0] and "M15" in split[1]


def test_output_columns_follow_the_contract():
    from graph.scoring import OUTPUT_SCHEMAS

    empty = _fit(_merchants([{"merchant_id": "M1"}])).rings_
    assert list(empty.columns) == NETWORK_COLUMNS and len(empty) == 0
    assert NETWORK_COLUMNS[:5] == OUTPUT_SCHEMAS["rings"].names


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_planted_networks_found_with_jaccard_over_0_7(seed, tmp_path):
    generate(tmp_path, seed=seed, scale="small")
    rings = MerchantNetworkDetector().fit(projection_from_drop(tmp_path, KEY)).rings_
    truth = pd.read_parquet(tmp_path / "truth" / "rings.parquet")
    truth = truth[truth["kind"] == "merchant_network"]
    assert truth["ring_id"].nunique() >= 2
    found = [set(g) for g in rings.groupby("ring_id")["member_id"].apply(list)]
    for ring_id, members in truth.groupby("ring_id")["member_id"]:
        best = max(len(set(members) & f) / len(set(members) | f) for f in found)
        assert best >= 0.7, ring_id
    assert len(found) <= truth["ring_id"].nunique() + 1


def test_nothing_planted_gives_no_network(tmp_path):
    generate(tmp_path, seed=4, scale="small", plant=False)
    assert len(MerchantNetworkDetector().fit(projection_from_drop(tmp_path, KEY)).rings_) == 0
