"""The `posguard` command line as a user meets it: exit codes, the key rule, generate, etl on bad input."""

from __future__ import annotations

import json

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
    (drop / "transactions.csv").write_text("txn_id,ts,pan,terminal_id,merchant_id,amount\n")
    result = posguard("etl", str(drop), env=env)
    assert result.returncode == 2
    assert "transactions.csv, line 1, column 'entry_mode': required column 'entry_mode' is missing" in result.stderr
    missing = posguard("etl", str(tmp_path / "nowhere"), env=env)
    assert missing.returncode == 2 and "nowhere" in missing.stderr


def test_neo4j_status_json_of_a_stopped_server(tmp_path):
    result = posguard("neo4j", "status", "--json", env=server_env(tmp_path))
    assert result.returncode == 1
    info = json.loads(result.stdout)
    assert info["running"] is False and info["pid"] is None and info["version"].startswith("5.26.")
