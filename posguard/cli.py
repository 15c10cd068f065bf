"""The `posguard` command line: argument parsing, settings, exit codes (0 ok, 2 bad input, 1 other)."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Callable, Sequence

import pandas as pd

from app.cli import add_parsers
from etl.adversary import generate_adversarial
from etl.generate import generate
from etl.lock import LockedError
from graph.catalog import read_staged
from graph.db import Database, DatabaseError, lost_connection
from graph.detector_config import load_config
from graph.detectors import DETECTORS
from graph.server import LocalServer, ServerError, connect
from graph.settings import Settings, SettingsError
from posguard.bench import run_bench
from posguard.bench_quality import curve_markdown, quality_markdown, run_quality
from posguard.jobs import NothingLoaded, etl_job, score_job

__all__ = ["main", "build_parser"]

log = logging.getLogger("posguard")

EXIT_OK, EXIT_FAILURE, EXIT_BAD_INPUT = 0, 1, 2


class UsageError(Exception):
    """Bad arguments or bad input (exit status 2)."""


# Commands that never tokenize, and the explorer, which tokenizes only a PAN typed into its search box.
_NO_KEY_NEEDED = ("generate", "neo4j", "users")
_KEY_OPTIONAL = ("app",)


def _settings(args: argparse.Namespace) -> Settings:
    """Settings from the environment; the commands that tokenize (etl, score, run, bench) need the key."""
    settings = Settings.from_env(insecure_dev_key=getattr(args, "insecure_dev_key", False),
                                 quiet=getattr(args, "quiet", False))
    if args.command in _NO_KEY_NEEDED or (args.command in _KEY_OPTIONAL and not settings.insecure_dev_key):
        return settings
    if settings.token_key is None and settings.insecure_dev_key:
        log.warning("WARNING: POSGUARD_TOKEN_KEY is unset; tokenizing with the public INSECURE development key "
                    "(--insecure-dev-key). Tokens made this way protect nothing.")
    return settings.require_token_key()


# ------------------------------------------------------------------ neo4j
def cmd_neo4j(args: argparse.Namespace) -> int:
    settings = _settings(args)
    if settings.external and args.action in ("start", "stop"):
        raise UsageError(f"NEO4J_URI is set ({settings.neo4j_uri}): posguard uses that server and does not "
                         f"{args.action} its own; unset NEO4J_URI to manage the local server")
    if settings.external:
        return _external_status(settings, args.json)
    server = LocalServer(settings)
    if args.action == "start":
        was_running = server.status().running
        status = server.start()
        log.info("Neo4j %s %s at %s (pid %s)", status.version, "already running" if was_running else "started",
                 status.bolt_uri, status.pid)
        print(status.bolt_uri)
        return EXIT_OK
    if args.action == "stop":
        stopped = server.stop()
        log.info("Neo4j stopped" if stopped else "Neo4j was not running")
        return EXIT_OK
    status = server.status()
    if status.running:  # ask the server itself for its version

        with Database(status.bolt_uri, (server.user, server.password())) as db:
            status = type(status)(**{**status.as_dict(), "version": db.server_info().get("version",
                                                                                            status.version)})
    if args.json:
        print(json.dumps(status.as_dict(), indent=2))
    else:
        state = "running" if status.running else "stopped"
        print(f"Neo4j {status.version} {state}\n  bolt: {status.bolt_uri}\n  http: {status.http_uri}\n"
              f"  user: {status.user} (password in {status.password_file})\n  pid: {status.pid}")
    return EXIT_OK if status.running else EXIT_FAILURE


def _external_status(settings: Settings, as_json: bool) -> int:
    with connect(settings) as db:
        info = db.server_info()
    status = {"running": True, "version": info.get("version"), "bolt_uri": settings.neo4j_uri, "http_uri": None,
              "user": settings.neo4j_user, "password_file": None, "pid": None, "external": True}
    print(json.dumps(status, indent=2) if as_json else
          f"external Neo4j {status['version']} at {settings.neo4j_uri} (user {settings.neo4j_user})")
    return EXIT_OK


# ------------------------------------------------------------------ generate
_ADV_TXNS = {"small": 250_000, "medium": 1_000_000, "large": 10_000_000}  # adversarial: at least 20k


def cmd_generate(args: argparse.Namespace) -> int:
    try:
        if args.generator == "adversarial":
            result = generate_adversarial(args.out, seed=args.seed, txns=args.txns or _ADV_TXNS[args.scale],
                                          plant=not args.clean, fmt=args.format, txn_labels=args.txn_labels)
        elif args.txn_labels:
            raise ValueError("--txn-labels needs --generator adversarial")
        else:
            result = generate(args.out, seed=args.seed, scale=args.scale, txns=args.txns, plant=not args.clean,
                              fmt=args.format)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    log.info("generated %s", ", ".join(f"{n:,} {k}" for k, n in result.counts.items()))
    print(result.out_dir)
    return EXIT_OK


# ------------------------------------------------------------------ etl, score, run
def _engine_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--engine", choices=["local", "spark"], default="local",
                        help="local: pandas/pyarrow/numba in this process (default); spark: Apache Spark at "
                             "POSGUARD_SPARK_MASTER (default local[*]) or under spark-submit")


def _config_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", default=None, metavar="FILE.toml",
                        help="detector parameters, one table per detector (README: Detector parameters)")


def _etl(settings: Settings, drop_dir: str, *, bulk: bool = False, engine: str = "local") -> list:
    if bulk and engine != "local":
        raise UsageError("--bulk imports with neo4j-admin on this machine; it does not combine with --engine spark")
    return etl_job(settings, drop_dir, bulk=bulk, engine=engine)


def cmd_etl(args: argparse.Namespace) -> int:
    results = _etl(_settings(args), args.drop_dir, bulk=args.bulk, engine=args.engine)
    for result in results:
        print(result.run_path)
    return EXIT_OK


def _detector_params(args: argparse.Namespace) -> dict | None:
    """Per-detector parameters from ``--config FILE.toml`` (validated before anything runs), or None."""
    return load_config(args.config, DETECTORS) if args.config else None


def _score(settings: Settings, out_dir: str, engine: str = "local", params: dict | None = None) -> None:
    try:
        _, written = score_job(settings, out_dir, engine=engine, params=params)
    except NothingLoaded as exc:
        raise UsageError(str(exc)) from None
    for path in written.values():
        print(path)


def cmd_score(args: argparse.Namespace) -> int:
    params = _detector_params(args)
    _score(_settings(args), args.out, args.engine, params)
    return EXIT_OK


def cmd_run(args: argparse.Namespace) -> int:
    params = _detector_params(args)  # a bad configuration stops the run before the ETL
    settings = _settings(args)
    _etl(settings, args.drop_dir, engine=args.engine)
    _score(settings, args.out, args.engine, params)
    return EXIT_OK


# ------------------------------------------------------------------ bench
# ------------------------------------------------------------------ export
EXPOSED_CSV_COLUMNS = ["card_token", "pan_last4", "terminal_id", "merchant_id", "mode", "first_exposed_at",
                       "p_compromised", "reported", "recommended_action", "window_start", "window_end"]


def cmd_export(args: argparse.Namespace) -> int:
    """``posguard export exposed``: the exposed cards of the last scoring as CSV for a card-management system
    (card tokens and last four digits only; a PAN never leaves the store)."""
    settings = Settings.from_env(quiet=args.quiet)  # nothing is tokenized: no key needed
    scores = Path(args.scores) if args.scores else settings.home / "out"
    source = scores / "exposed_cards.parquet"
    if not source.is_file():
        raise UsageError(f"{source}: no exposed_cards output; run `posguard score --out {scores}` first "
                         "(or name the scores directory with --scores)")
    if not 0.0 <= args.min_p <= 1.0:
        raise UsageError(f"--min-p must be within [0, 1], not {args.min_p}")
    exposed = pd.read_parquet(source)
    if args.point:
        exposed = exposed[exposed["terminal_id"] == args.point]
    exposed = exposed[exposed["p_compromised"] >= args.min_p]
    if "pan_last4" not in exposed.columns:
        last4 = read_staged(settings.home, "transactions", ["card_token", "pan_last4"]).to_pandas()
        last4 = last4[last4["card_token"].isin(set(exposed["card_token"]))].drop_duplicates("card_token")
        exposed = exposed.merge(last4[["card_token", "pan_last4"]], on="card_token", how="left")
    for column in EXPOSED_CSV_COLUMNS:
        if column not in exposed.columns:
            exposed[column] = None
    exposed = exposed.sort_values(["p_compromised", "card_token", "terminal_id"], ascending=[False, True, True],
                                  kind="stable")[EXPOSED_CSV_COLUMNS]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    exposed.to_csv(tmp, index=False, date_format="%Y-%m-%dT%H:%M:%SZ")
    tmp.replace(out)
    log.info("%s exposed card rows (%s to reissue) written to %s", f"{len(exposed):,}",
             f"{int((exposed['recommended_action'] == 'reissue').sum()):,}", out)
    print(out)
    return EXIT_OK


def cmd_bench(args: argparse.Namespace) -> int:
    if args.quality:
        return _bench_quality(args)

    results = run_bench(_settings(args), txns=args.txns, load_txns=not args.no_load, out=args.json,
                        app_alerts=args.alerts, engines=args.engines)
    print(json.dumps(results, indent=2))
    return EXIT_OK


def _bench_quality(args: argparse.Namespace) -> int:
    params = _detector_params(args)
    settings = _settings(args)
    try:
        seeds = tuple(int(s) for s in args.seeds.split(","))
    except ValueError:
        raise UsageError(f"--seeds takes comma-separated integers, not {args.seeds!r}") from None
    rows, curve = run_quality(settings.token_key, generators=tuple(args.generators.split(",")), seeds=seeds,
                              txns=args.txns if args.txns != 1_000_000 else 250_000, clean_txns=args.clean_txns,
                              params=params)
    if args.json:
        args.json.write_text(json.dumps({"drops": rows, "reporting_rate_curve": curve}, indent=2, default=str),
                             encoding="utf-8")
    print(quality_markdown(rows))
    print(curve_markdown(curve))
    return EXIT_OK


# ------------------------------------------------------------------ parser
def build_parser() -> argparse.ArgumentParser:
    """Build the argument parser of every subcommand."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--quiet", action="store_true", help="silence progress output on stderr")
    common.add_argument("--insecure-dev-key", action="store_true",
                        help="tokenize with a fixed, public development key when POSGUARD_TOKEN_KEY is unset")
    parser = argparse.ArgumentParser(prog="posguard", parents=[common],
                                     description="Fraud analytics for card-present POS networks.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("neo4j", parents=[common], help="manage the local Neo4j server")
    p.add_argument("action", choices=["start", "stop", "status"])
    p.add_argument("--json", action="store_true", help="status as a JSON object")
    p.set_defaults(func=cmd_neo4j)

    p = sub.add_parser("generate", parents=[common], help="write a synthetic drop with planted cases")
    p.add_argument("--out", required=True, help="directory to write the drop into (truth/ inside)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--scale", choices=["small", "medium", "large"], default="small",
                   help="about 20k, 1M or 10M transactions")
    p.add_argument("--txns", type=int, default=None, help="approximate number of transactions")
    p.add_argument("--format", choices=["csv", "parquet"], default=None,
                   help="file format (default: CSV up to 100k transactions, else Parquet)")
    p.add_argument("--clean", action="store_true", help="plant nothing (a scenario with no fraud cases)")
    p.add_argument("--generator", choices=["standard", "adversarial"], default="standard",
                   help="standard (etl.generate) or adversarial (etl.adversary: Europe, genuine noise, other "
                        "fraud shapes; small = 250k transactions)")
    p.add_argument("--txn-labels", action="store_true",
                   help="adversarial: one fraud report row per fraudulent transaction, with txn_id")
    p.set_defaults(func=cmd_generate)

    p = sub.add_parser("etl", parents=[common], help="validate, tokenize, stage and load a drop (or every "
                                                     "drop under a folder not yet loaded)")
    p.add_argument("drop_dir")
    p.add_argument("--bulk", action="store_true",
                   help="into an empty local database, import transactions with neo4j-admin (server restarts)")
    _engine_option(p)
    p.set_defaults(func=cmd_etl)

    p = sub.add_parser("score", parents=[common], help="run every detector; write Parquet outputs and Neo4j")
    p.add_argument("--out", required=True, help="directory for the Parquet outputs")
    _config_option(p)
    _engine_option(p)
    p.set_defaults(func=cmd_score)

    p = sub.add_parser("run", parents=[common], help="etl, then score")
    p.add_argument("drop_dir")
    p.add_argument("--out", required=True, help="directory for the Parquet outputs")
    _config_option(p)
    _engine_option(p)
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("export", parents=[common], help="export a scoring output for other systems")
    p.add_argument("what", choices=["exposed"], help="exposed: the cards exposed at points of compromise")
    p.add_argument("--out", required=True, help="the CSV file to write")
    p.add_argument("--point", default=None, help="only the cards exposed at this terminal_id")
    p.add_argument("--min-p", type=float, default=0.0, help="only cards with p_compromised >= this (default 0)")
    p.add_argument("--scores", default=None,
                   help="the directory `posguard score --out` wrote (default $POSGUARD_HOME/out)")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("bench", parents=[common], help="measure ETL, Neo4j load and scoring throughput")
    p.add_argument("--txns", type=int, default=1_000_000, help="transactions to generate (default 1M)")
    p.add_argument("--no-load", action="store_true", help="skip the Neo4j load (the slowest part) and the explorer")
    p.add_argument("--alerts", type=int, default=100_000,
                   help="alert queue size for the explorer's measurements (synthetic alerts added; 0: skip)")
    p.add_argument("--json", type=Path, default=None, help="also write the results to this file")
    p.add_argument("--engines", action="store_true",
                   help="compare the local and the Spark engine (ETL without load, scoring) instead")
    p.add_argument("--quality", action="store_true",
                   help="detection quality instead: generate planted drops (--txns, default 250k here) of each "
                        "generator for each seed and one clean drop each (--clean-txns), score, compare with truth")
    p.add_argument("--generators", default="standard,adversarial", help="with --quality: generators to run")
    p.add_argument("--seeds", default="21,22,23", help="with --quality: seeds of the planted drops")
    p.add_argument("--clean-txns", type=int, default=1_000_000,
                   help="with --quality: transactions of the clean drop per generator (0: none)")
    _config_option(p)
    p.set_defaults(func=cmd_bench)

    add_parsers(sub, common)
    return parser


def _configure_logging(quiet: bool) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("posguard: %(message)s"))
    root = logging.getLogger("posguard")
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING if quiet else logging.INFO)
    root.propagate = False


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `posguard` console script; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    _configure_logging(args.quiet)
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        if getattr(args, "needs_settings", False):
            return func(args, _settings(args))
        return func(args)
    except (UsageError, SettingsError) as exc:
        print(f"posguard: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("posguard: interrupted", file=sys.stderr)
        return EXIT_FAILURE
    except Exception as exc:  # the last line of defence: a clear message, exit 1

        if isinstance(exc, (ServerError, DatabaseError, LockedError)) or lost_connection(exc):
            print(f"posguard: error: {exc}", file=sys.stderr)
            return EXIT_FAILURE
        if getattr(exc, "exit_code", None) == EXIT_BAD_INPUT:
            print(f"posguard: error: {exc}", file=sys.stderr)
            return EXIT_BAD_INPUT
        raise


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
