"""A second synthetic drop generator, built to break the first one's assumptions (:mod:`etl.generate`).

Detectors tuned on ``posguard generate`` drops are evaluated here on data they were not tuned on. The drop
follows docs/CONTRACT.md exactly (raw PANs; tokens are the ETL's job); ``truth/`` has the first generator's
four tables (skimmers, cloned_cards, rings, terminal_cases) in the same schemas, plus ``compromise_points``
(terminal_id, merchant_id, mode skimming|at_terminal, window_start, window_end), ``fraud_txns``
(txn_id, pan, kind clone|at_terminal|ring) for every fraudulent transaction, and ``compromised_cards`` (pan,
terminal_id, mode, compromised_at, first_fraud_at): every card compromised at a planted point, including
skimmed cards whose clones fall after the period (first_fraud_at null), for exposed-card measurements.

Assumptions that differ on purpose
----------------------------------
Region and time
    Twelve European cities in three time zones (UTC+0, +1, +2) with EU daylight saving; the 90-day period
    (from Monday 2026-02-16) crosses the 29 March switch. CSV timestamps carry the local offset of the
    terminal's (transactions), card's (reports) or merchant's city; events and firmware approvals are UTC
    (``Z``). Currency EUR; ids are ``MID``/``TID``/``E`` + non-sequential digits; PANs of Visa/Mastercard BINs.
Traffic
    A European MCC mix (grocery, convenience, fast food, bars, transit, parking, ...), with four hour-of-day
    profiles (retail, food with late dinner, night life until 3 am, commute peaks) in local time, Sunday
    quieter; merchant popularity Pareto(1.0) and 1-24 lanes per merchant, so a few terminals (stations,
    supermarkets) are very busy; 55% of a card's purchases at its six habitual merchants.
Genuine noise
    5% of cards fly to another city for 2-6 days (780 km/h block speed, no purchase 1.5 h before take-off or 45 min
    after landing: never faster than ``PLANE_KMH`` = 900 km/h between two purchases); fallback or magstripe on chip
    cards ~2% overall (6% of terminals have a worn reader: 10-20% there); contactless up to 50 EUR; offline
    transit/parking terminals upload 35% of their transactions 20 min-8 h late (ATC out of order in ``ts`` order);
    ATC jumps of 2-6 in 8% of steps (ATM/online use outside the drop); STAN spent by the daily batch close on two
    models (a genuine gap per day); pay-at-pump preauth 150.00 + completion, voids, refunds, declines; 20% of
    restaurant, bar and taxi bills rounded up to 5 EUR (tips); terminals installed long before the approval of the
    firmware they run today, 35% update during the period (``firmware_update`` with the new hash after its approval,
    then a boot); maintenance reboots at 02:00-04:00 local (one model nightly, one weekly); 0.6% of terminals raise
    a genuine ``tamper`` alarm when opened for service (then boot); cellular terminals (20%) change ip often; 1% of
    merchants move 1-4 km with all their terminals, recorded (a boot with the new position and ip; the terminals and
    merchants tables show the new place); legitimate chains share owner, phone and bank account; 0.3% of cards carry
    a card-not-present or account-takeover report with nothing at a POS; 10% of reports lack ``first_fraud_at``; a
    reported card stops being used a day after its report.
Fraud (``plant=True``)
    Skimmers on busy terminals (90-99.5th volume percentile) for 3-6 weeks; 70% of the cards inserted or swiped
    there (not tapped) are cloned 1-8 weeks later, 1-6 magstripe/fallback purchases in one of the gang's two cities
    (30%: the skimmer's own), never at a planted terminal; 25% of victims never reported and a report that would
    fall after the period is not in the drop; lags of days to weeks (median 9 d); attempts after the report are
    declined. At-terminal compromises (7-21 days): tampered terminals charging 60% of customers a second time
    minutes later, or colluding merchants keying bought card data of other cities' cards at night; victims 85%
    reported; a ``tamper`` event, or an odd-hour boot with a new ip, before two of every three windows. Cash-out
    rings of 4-10 small merchants x 15-60 cards of one city, with camouflage (ring cards shop normally, ring
    merchants keep their customers), round amounts (100-3000 EUR), 70% at 23:00-04:00, a random 40% of the merchants
    sharing a phone and another 40% a bank account (identities link only part of a ring); 15% reported as cash_out.
    Tampered terminals (``terminal_cases``): ``relocation`` (taken to another city for 5-15 days with no record),
    ``trace_gap`` (2-4 runs of 3-12 deleted messages), ``unapproved_firmware`` (a hash not on the allow-list, or the
    next version days before its approval, seen only in the events).
"""

from etl.adversary.core import ADV_TRUTH_SCHEMAS, generate_adversarial

__all__ = ["generate_adversarial", "ADV_TRUTH_SCHEMAS"]
