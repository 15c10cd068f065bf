"""The `posguard` command line as a user meets it: exit codes, the key rule, generate, etl on bad input."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from etl.pipeline import run_drop
from graph.catalog import write_outputs
from graph.projection import Projection
from graph.scoring import run_detectors
from graph.settings import Settings
from tests.graph.detectors.compromise_drop import compromise_drop
from tests.helpers import posguard, server_env


def test_commands_that_tokenize_need_the_token_key_and_the_others_do_not(tmp_path):
    env = server_env(tmp_path)
    del env["POSGUARD_TOKEN_KEY"]
    for command in (("etl", str(tmp_path)), ("score", "--out", str(tmp_path / "out")), ("run", str(tmp_path), "--out",
                                                                                          str(tmp_path / "o"))):
        refused = posguard(*command, env=env)
        assert refused.returncode == 2 and "POSGUARD_TOKEN_KEY is not set" in refused.stderr, command
    # The server's own commands never tokenize: stopping or asking after it works without the key.
    for command in (("neo4j", "status"), ("neo4j", "stop")):
        result = posguard(*command, env=env)
        assert "POSGUARD_TOKEN_KEY" not in result.stderr and result.returncode in (0, 1), (command, result.stderr)
    generated = posguard("generate", "--out", str(tmp_path / "d"), "--txns", "2000", env=env)
    assert generated.returncode == 0, generated.stderr
    insecure = posguard("etl", str(tmp_path / "nowhere"), "--insecure-dev-key", env=env)
    assert "INSECURE development key" in insecure.stderr and insecure.returncode == 2


def test_generate_writes_a_drop_and_its_truth(tmp_path):
    out = tmp_path / "drop"
    result = posguard("generate", "--out", str(out), "--seed", "5", "--txns", "3000", env=server_env(tmp_path))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(out)
    names = {p.name.split("-")[0].split(".")[0] for p in out.iterdir() if p.is_file()}
    assert names == {"transactions", "terminals", "merchants", "fraud_reports", "approved_firmware",
                     "terminal_events"}
    assert {p.name for p in (out / "truth").iterdir()} == {"skimmers.parquet", "cloned_cards.parquet",
                                                           "rings.parquet", "terminal_cases.parquet"}


def test_bad_arguments_and_unreadable_drops_exit_2_naming_file_line_column(tmp_path):
    env = server_env(tmp_path / "home")
    assert posguard("generate", "--out", str(tmp_path), "--scale", "huge", env=env).returncode == 2
    drop = tmp_path / "drop"
    drop.mkdir()
    # (entry_mode became optional with issue 12: amount is the required column left out here)
    (drop / "transactions.csv").write_text("txn_id,ts,pan,terminal_id,merchant_id,entry_mode\n")
    result = posguard("etl", str(drop), env=env)
    assert result.returncode == 2
    assert "transactions.csv, line 1, column 'amount': required column 'amount' is missing" in result.stderr
    missing = posguard("etl", str(tmp_path / "nowhere"), env=env)
    assert missing.returncode == 2 and "nowhere" in missing.stderr


def test_neo4j_status_json_of_a_stopped_server(tmp_path):
    result = posguard("neo4j", "status", "--json", env=server_env(tmp_path))
    assert result.returncode == 1
    info = json.loads(result.stdout)
    assert info["running"] is False and info["pid"] is None and info["version"].startswith("5.26.")


def _compromise_drop_files(drop, labels="txn"):
    """The compromise test drop as CSV input files with PANs (tests/graph/detectors/compromise_drop.py)."""
    tx, terms, rep, truth, pans = compromise_drop(0, labels, skim_reported=0.5)
    pan_of = {f"card{i:05d}": p for i, p in enumerate(pans)}
    drop.mkdir(parents=True)
    tx.assign(pan=tx["card_token"].map(pan_of)).drop(columns="card_token").to_csv(drop / "transactions.csv", index=False)
    rep.assign(pan=rep["card_token"].map(pan_of)).drop(columns="card_token").to_csv(drop / "fraud_reports.csv",
                                                                                    index=False)
    terms.to_csv(drop / "terminals.csv", index=False)
    pd.DataFrame({"merchant_id": np.unique(terms["merchant_id"])}).to_csv(drop / "merchants.csv", index=False)
    return truth, pans


def test_export_exposed_writes_tokens_and_last_four_never_a_pan(tmp_path):
    """Stage a drop, score it, export the exposed cards: a CSV with tokens and last four digits, filtered by
    point and p; no PAN of the drop anywhere in the file; a missing output or a bad --min-p exits 2."""
    env = server_env(tmp_path / "home")
    truth, pans = _compromise_drop_files(tmp_path / "drop")
    missing = posguard("export", "exposed", "--out", str(tmp_path / "x.csv"), env=env)
    assert missing.returncode == 2 and "exposed_cards" in missing.stderr
    run_drop(tmp_path / "drop", Settings.from_env(env))
    result = run_detectors(Projection.from_staging(tmp_path / "home"))
    write_outputs(result.frames, tmp_path / "home" / "out")
    exposed = result.frames["exposed_cards"]
    assert len(exposed) > 0 and (~exposed["reported"]).sum() > 0

    out = tmp_path / "cms" / "exposed.csv"
    done = posguard("export", "exposed", "--out", str(out), env=env)
    assert done.returncode == 0, done.stderr
    text = out.read_text()
    assert not [p for p in pans if p in text]  # not one PAN of the drop, not even inside another value
    csv = pd.read_csv(out, dtype={"pan_last4": str})
    assert len(csv) == len(exposed) and set(csv["card_token"]) == set(exposed["card_token"])
    assert csv["pan_last4"].str.fullmatch(r"\d{4}").all()
    assert csv["p_compromised"].is_monotonic_decreasing
    assert set(csv["recommended_action"]) <= {"reissue", "watch"}

    point = exposed.loc[~exposed["reported"], "terminal_id"].iloc[0]
    narrow = tmp_path / "one.csv"
    done = posguard("export", "exposed", "--point", point, "--min-p", "0.5", "--out", str(narrow), env=env)
    assert done.returncode == 0, done.stderr
    one = pd.read_csv(narrow)
    want = exposed[(exposed["terminal_id"] == point) & (exposed["p_compromised"] >= 0.5)]
    assert len(one) == len(want) > 0 and (one["terminal_id"] == point).all() and (one["p_compromised"] >= 0.5).all()
    bad = posguard("export", "exposed", "--min-p", "2", "--out", str(narrow), env=env)
    assert bad.returncode == 2 and "--min-p" in bad.stderr
