"""Plain-language explanations of alerts, written at scoring time from the detectors' outputs.

Each explanation says what was seen (the evidence), how it compares with normal (the null the detector fitted
to this run) and how strong it is (the q-value in words), and ends with a stamp naming the detector and its
version. ``graph.queue.build_alerts`` adds them to the alerts as ``explanation`` (the words and the
stamp) and ``explanation_key`` (a hash of the words without the stamp); ``graph.writeback`` keeps an alert's
explanation unchanged while its key stays the same, so a re-run on the same evidence (even by a newer version
of the code) never rewrites it, and new evidence replaces it.
"""

from __future__ import annotations

import hashlib
import math
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd

from graph.settings import posguard_version

__all__ = ["q_in_words", "detector_version", "stamp", "explanation_key", "skimming", "cloned", "rings",
           "findings", "REASON_WORDS", "DETECTOR_OF_KIND", "code_files"]

_GRAPH = Path(__file__).resolve().parent
# alert kind -> (detector name, its families: every graph/detectors/ and graph/kernels/ module <family>.py and
# <family>_<part>.py is code that decides it)
DETECTOR_OF_KIND = {"skimming_point": ("skimming", ("skimming", "compromise")),
                    "compromised_terminal": ("skimming", ("skimming", "compromise")),
                    "cloned_card": ("cloned", ("cloned",)),
                    "cash_out": ("rings", ("rings",)),
                    "merchant_network": ("networks", ("networks",))}
_INTEGRITY = ("integrity", ("integrity",))
# A cloned-card reason in words: (what one event is, what normal is)
REASON_WORDS = {
    "impossible_travel": ("impossible travel (two uses farther apart than any plane could fly in the time "
                          "between them)", "pairs of consecutive uses"),
    "atc_replay": ("ATC replay (an application transaction counter the card had already used: a copy of the "
                   "chip data)", "chip transactions"),
    "atc_regression": ("ATC regression (the counter went back, not explained by a late offline upload)",
                       "chip transactions"),
    "fallback_after_chip": ("magnetic-stripe fallback right after chip use", "cards"),
    "parallel_use": ("parallel use (the card switching back and forth between distant places within days)",
                     "pairs of consecutive uses"),
    "fallback_far": ("magnetic-stripe or fallback use far from the card's latest chip use",
                     "located transactions"),
    "fallback_burst": ("a burst of magnetic-stripe uses", "uses"),
    "fallback_amount": ("magnetic-stripe uses among the card's largest amounts", "uses"),
    "fallback_new_merchant": ("magnetic-stripe uses near home at shops where the card is never used with its chip",
                              "uses near home"),
    "reported_counterfeit": ("a counterfeit fraud report not explained by fraud at one terminal", "reports"),
}
_STRENGTH = {"strong": "fewer than 1 in 1,000", "medium": "fewer than 1 in 20", "weak": "more than 1 in 20"}
_FINDING_WORDS = {"trace_gap": "sequence numbers (STAN) missing: messages hidden from the acquirer",
                  "mcc_mismatch": "transactions sent under another merchant category code than registered",
                  "relocation": "the terminal used far from its registered position",
                  "unapproved_firmware": "firmware that is not on the allow-list for its model",
                  "void_spike": "a burst of voids and refunds", "clock_skew": "the terminal's clock going back",
                  "new_ip": "the terminal moving to a network address it never used"}


def q_in_words(q: float) -> str:
    """The strength of an alert: its Benjamini-Hochberg q-value as the share of such alerts expected false.

    Example
    -------
    >>> q_in_words(1.5e-10)
    'fewer than 1 in 1,000,000 such alerts is expected to be false (q = 1.5e-10)'
    >>> q_in_words(0.03)
    'fewer than 1 in 20 such alerts is expected to be false (q = 0.03)'
    """
    q = float(q)
    if not math.isfinite(q) or q > 0.05:
        return f"more than 1 in 20 such alerts may be false (q = {q:.2g})"
    if q > 0.01:
        n = 20
    else:
        n = 10 ** min(6, int(math.floor(-math.log10(max(q, 1e-300)) + 1e-9)))
    return f"fewer than 1 in {n:,} such alerts is expected to be false (q = {q:.2g})"


@lru_cache(maxsize=None)
def _code_hash(families: tuple[str, ...]) -> str:
    digest = hashlib.sha256()
    for path in code_files(families):
        digest.update(path.relative_to(_GRAPH).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:10]


def code_files(families: tuple[str, ...]) -> list[Path]:
    """The modules whose code decides a detector's alerts: its families' detector and kernel modules (the family
    and its ``<family>_<part>.py`` parts) and the shared false-discovery rule."""
    files = {_GRAPH / "detectors" / "significance.py"}
    for folder in ("detectors", "kernels"):
        for family in families:
            files.update((_GRAPH / folder).glob(f"{family}.py"), (_GRAPH / folder).glob(f"{family}_*.py"))
    return sorted(files)


def detector_version(kind: str) -> str:
    """The detector that raises alerts of ``kind`` and its version: posguard's version and a hash of the
    detector's code (``code_files``: its families' detector and kernel modules and the shared false-discovery
    rule), e.g. ``cloned 0.1.0+3f2a9c01de``."""
    name, files = DETECTOR_OF_KIND.get(kind, _INTEGRITY)
    return f"{name} {posguard_version()}+{_code_hash(files)}"


def stamp(kind: str) -> str:
    """The last line of an explanation: who wrote it."""
    return f"Written at scoring time by detector {detector_version(kind)}."


def explanation_key(body: str) -> str:
    """A hash of an explanation's words without its stamp: equal keys, same evidence."""
    return hashlib.sha256(body.encode("utf-8")).hexdigest()[:16]


def _day(ts) -> str:
    return "an unknown date" if ts is None or pd.isna(ts) else f"{pd.Timestamp(ts):%Y-%m-%d}"


def _minute(ts) -> str:
    return "an unknown time" if ts is None or pd.isna(ts) else f"{pd.Timestamp(ts):%Y-%m-%d %H:%M} UTC"


def _get(frame: pd.DataFrame, column: str, default=None) -> list:
    return frame[column].tolist() if column in frame.columns else [default] * len(frame)


def skimming(points: pd.DataFrame, q: np.ndarray) -> list[str]:
    """Explanations of points of compromise (shared skimming points and compromised terminals)."""
    out = []
    for row, qq, events, marginal, mode in zip(points.itertuples(index=False), q, _get(points, "terminal_events", []),
                                               _get(points, "p_value_marginal"), _get(points, "mode", "skimming")):
        k, seen = int(row.compromised_cards), int(row.cards_seen)
        share = f" ({k / seen:.0%})" if seen else ""
        window = f"between {_day(row.window_start)} and {_day(row.window_end)}"
        if mode == "at_terminal":
            text = (f"Terminal {row.terminal_id} (merchant {row.merchant_id}) looks compromised: the fraud of {k} "
                    f"reported cards was committed at it {window}, among the {seen:,} cards it served then{share}.")
        else:
            text = (f"Terminal {row.terminal_id} (merchant {row.merchant_id}) looks like a shared skimming point: "
                    f"{k} cards later reported for counterfeit fraud had used it {window}, before their fraud "
                    f"began, among the {seen:,} cards it served in that window{share}. The other cards it served "
                    f"then are exposed: their data may have been taken too.")
        text += (f" Compared with normal: at a terminal this busy, cards matched by time would bring {k} or more "
                 f"such victims by chance with probability {row.p_value:.2g}")
        if marginal is not None and not pd.isna(marginal) and not math.isclose(marginal, row.p_value):
            text += f" ({marginal:.2g} before the victims explained by higher-ranked points were set aside)"
        text += f". It ranks #{int(row.rank)} among this run's points of compromise."
        events = list(events) if events is not None and not isinstance(events, str) else []
        if events:
            text += " Terminal events shortly before the window: " + ", ".join(
                str(e).replace("_", " ").replace("@", " at ")[:30] for e in events[:5]) + "."
        text += f" Strength: {q_in_words(qq)}."
        out.append(text)
    return out


def _reasons(reasons: str, counts: dict) -> list[str]:
    parts = []
    for item in str(reasons or "").split(";"):
        code, _, strength = item.partition(":")
        if not code:
            continue
        what, per = REASON_WORDS.get(code, (code.replace("_", " "), "chances"))
        n = counts.get(code)
        times = f" {int(n)} time{'s' if n != 1 else ''}" if n is not None and not pd.isna(n) and n > 0 else ""
        parts.append(f"{what}{times}, {strength or 'weak'}: {_STRENGTH.get(strength, _STRENGTH['weak'])} of this "
                     f"run's cards with as many {per} show it that often")
    return parts


def cloned(cards: pd.DataFrame, q: np.ndarray) -> list[str]:
    """Explanations of cloned cards: each reason with its count and how rare it is among the run's cards."""
    out = []
    for i, (row, qq) in enumerate(zip(cards.itertuples(index=False), q)):
        counts = {r: cards[f"n_{r}"].iloc[i] for r in REASON_WORDS if f"n_{r}" in cards.columns}
        ids = row.evidence_txn_ids if row.evidence_txn_ids is not None else []
        text = (f"This card looks cloned: its own transactions show a second physical copy in use from "
                f"{_minute(row.first_evidence_at)}, in {len(ids)} evidence transactions. Evidence: "
                + "; ".join(_reasons(row.reasons, counts)) + ".")
        travel = getattr(row, "travel", None)
        if isinstance(travel, str) and travel:
            text += f" Worst impossible-travel pair: {travel}."
        point = getattr(row, "exposed_at", None)
        if isinstance(point, str) and point:
            text += (f" Its data was exposed at skimming point {point}: it is also judged among the cards exposed "
                     f"at the run's skimming points, against unexposed cards as active.")
        text += f" Strength: {q_in_words(qq)}."
        out.append(text)
    return out


def rings(groups: pd.DataFrame, first: pd.DataFrame) -> list[str]:
    """Explanations of rings: ``groups`` one row per ring (ring_id, kind, cards, merchants, terminals, q);
    ``first`` the detector's first row of each ring (its ring-level columns)."""
    facts = first.set_index("ring_id")
    out = []
    for row in groups.itertuples(index=False):
        f = facts.loc[row.ring_id] if row.ring_id in facts.index else pd.Series(dtype=object)
        if row.kind == "merchant_network":
            names = str(f.get("shared") or "identifiers").replace("_", " ").split(",")
            shared = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
            text = (f"{row.merchants} merchants are linked by a shared {shared}, more than unrelated merchants "
                    f"share by chance in this run")
            span, agent = f.get("onboarded_span_days"), f.get("agent_share")
            if span is not None and not pd.isna(span):
                text += f"; they were onboarded within {float(span):.0f} days"
            if agent is not None and not pd.isna(agent):
                text += f", {float(agent):.0%} of them by one agent"
            text += "."
        else:
            text = (f"{row.cards} cards trade with {row.merchants} merchants ({row.terminals} terminals) among "
                    f"themselves")
            txns, amount, density = f.get("txns"), f.get("amount"), f.get("density")
            if txns is not None and not pd.isna(txns):
                text += f" ({float(txns):,.0f} transactions"
                text += f" for {float(amount):,.0f})" if amount is not None and not pd.isna(amount) else ")"
            text += (" more densely" + (f" (density {float(density):.2g})" if density is not None
                                         and not pd.isna(density) else "")
                     + " than the densest group found in this run's graph randomised with every card's and "
                       "merchant's number of partners kept, and than its merchants' regular customers would be "
                       "(the unusual purchases given again to customers who keep coming back).")
        out.append(text + f" Strength: {q_in_words(row.q)}.")
    return out


def findings(frame: pd.DataFrame, q: np.ndarray) -> list[str]:
    """Explanations of terminal integrity findings (their details already compare with the model's terminals)."""
    out = []
    for row, qq in zip(frame.itertuples(index=False), q):
        what = _FINDING_WORDS.get(row.kind, str(row.kind).replace("_", " "))
        out.append(f"Terminal {row.terminal_id} (merchant {row.merchant_id}) shows {what}, from "
                   f"{_minute(row.first_seen)} to {_minute(row.last_seen)}: {row.details}. "
                   f"Strength: {q_in_words(qq)}.")
    return out
