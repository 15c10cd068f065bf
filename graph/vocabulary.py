"""posguard's words, each stated once: input enums, their integer codes in the projection, alert kinds,
modes, severities, statuses and decisions. Every other module imports them from here."""

from __future__ import annotations

__all__ = ["ENTRY_MODES", "ENTRY_CODES", "ENTRY_CHIP", "ENTRY_CONTACTLESS", "ENTRY_MAGSTRIPE", "ENTRY_FALLBACK",
           "ENTRY_MANUAL", "ENTRY_UNKNOWN", "TXN_TYPES", "TYPE_CODES", "TYPE_PURCHASE", "TYPE_REFUND", "TYPE_VOID",
           "TYPE_PREAUTH", "TYPE_COMPLETION", "FRAUD_TYPES", "EVENTS", "MODES", "MODE_SKIMMING",
           "MODE_AT_TERMINAL", "ALERT_KINDS", "POINT_KIND_OF_MODE", "RING_KINDS", "FINDING_KINDS",
           "SEVERITIES", "STATUSES", "OPEN_STATUSES", "CARD_DECISIONS", "RECOMMENDED_ACTIONS"]

# --- inputs (docs/CONTRACT.md) ---------------------------------------------------------------------------
# entry_mode, in the order of its int8 codes in the projection (the generators draw codes 0-4)
ENTRY_MODES = ("chip", "contactless", "magstripe", "fallback", "manual", "unknown")
ENTRY_CODES = {mode: code for code, mode in enumerate(ENTRY_MODES)}
ENTRY_CHIP, ENTRY_CONTACTLESS, ENTRY_MAGSTRIPE, ENTRY_FALLBACK, ENTRY_MANUAL, ENTRY_UNKNOWN = range(len(ENTRY_MODES))
TXN_TYPES = ("purchase", "refund", "void", "preauth", "completion")
TYPE_CODES = {t: code for code, t in enumerate(TXN_TYPES)}
TYPE_PURCHASE, TYPE_REFUND, TYPE_VOID, TYPE_PREAUTH, TYPE_COMPLETION = range(len(TXN_TYPES))
FRAUD_TYPES = ("counterfeit", "lost_stolen", "card_not_present", "account_takeover", "cash_out", "other")
EVENTS = ("heartbeat", "boot", "firmware_update", "tamper")

# --- findings and alerts (docs/CONTRACT.md, outputs) ------------------------------------------------------
# where card data was compromised: taken at the terminal for fraud elsewhere, or fraud at the terminal itself
MODE_SKIMMING, MODE_AT_TERMINAL = MODES = ("skimming", "at_terminal")
POINT_KIND_OF_MODE = {MODE_SKIMMING: "skimming_point", MODE_AT_TERMINAL: "compromised_terminal"}
RING_KINDS = ("cash_out", "merchant_network")
FINDING_KINDS = ("trace_gap", "unapproved_firmware", "relocation", "mcc_mismatch", "void_spike", "clock_skew",
                 "tamper_event", "odd_hour_boot", "new_ip")
ALERT_KINDS = (*POINT_KIND_OF_MODE.values(), "cloned_card", *RING_KINDS, *FINDING_KINDS)
# most severe first: the q-value levels of graph.detectors.significance.SEVERITY_Q
SEVERITIES = ("critical", "high", "medium")
RECOMMENDED_ACTIONS = ("reissue", "watch")

# --- investigators (the explorer) ---------------------------------------------------------------------------
STATUSES = ("open", "in_progress", "confirmed", "dismissed")
OPEN_STATUSES = STATUSES[:2]  # still to be worked: the queue summary counts these
# what an investigator decides for a card exposed at a point of compromise (recorded in the audit trail)
CARD_DECISIONS = ("reissue", "watch", "dismiss")
