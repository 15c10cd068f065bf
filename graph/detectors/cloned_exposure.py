"""The second look of the cloned-card detector: the cards exposed at an accepted skimming point, as a family.

A card that used an accepted skimming point inside its window had its data taken there: among such cards
clones are far more common than among the run's others, and one weak sign of a copy (a single swipe near home
at a shop new to the card) means more. ``ClonedCardDetector.decide`` tests them a second time as a family of
their own (stratified false-discovery control, Sun et al. 2006), with the false-discovery budget split between
the two looks (Bonferroni):

- the family (``exposed_at``, ``exposed_family_size``) is fixed by the skimming points, i.e. by the visits of
  reported cards, before any card's own evidence is weighed; points of the ``at_terminal`` mode expose no one
  (their fraud happened at the terminal, no copy of the card is in use);
- each exposed card's p-value is checked against the unexposed cards of its activity band (``against_band``,
  ``activity_band``): genuine cards that shop a lot show the weak reasons more often than each reason's null
  allows, which matters in a small family reported down to p-values of about a percent;
- Benjamini-Hochberg over the family, its q-values shrunk by Storey's estimate of the share of true nulls
  (``null_share``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from graph.detectors.significance import bh_qvalues

__all__ = ["ExposedLook", "activity_band", "exposed_at", "exposed_family_size", "null_share", "against_band"]


def activity_band(located_uses: np.ndarray) -> np.ndarray:
    """A card's activity band: ``floor(log2(located uses))`` (0 for none or one): cards of one band had about as
    many chances to show every reason."""
    return np.floor(np.log2(np.maximum(np.asarray(located_uses, dtype=np.float64), 1.0))).astype(np.int64)


class ExposedLook:
    """The exposed family of one decision: who is in it, its size, and its q-values for given p-values.

    Parameters
    ----------
    cards : DataFrame
        The evidence rows of the cards (card_token, band), in the decision's order.
    evidence : DataFrame
        The whole evidence table (its summary rows give the quiet cards per band).
    exposed : DataFrame or None
        ``SkimmingDetector.exposed_`` (None or empty: no second look).

    Attributes
    ----------
    point : ndarray of object
        Per card, the terminal of the skimming point it was first exposed at (None if none).
    family : ndarray of bool
        Per card, in the exposed family.
    size : int
        Cards in the family (with a row or not): the family of Benjamini-Hochberg.
    """

    def __init__(self, cards: pd.DataFrame, evidence: pd.DataFrame, exposed: pd.DataFrame | None):
        self.point = exposed_at(cards["card_token"], exposed)
        self.family = self.point != None  # noqa: E711 (elementwise)
        self.size = exposed_family_size(exposed)
        self.band = cards["band"].to_numpy(np.int64)
        summary = evidence["card_token"].isna() & evidence["terminal_id"].isna()  # the quiet cards, per band
        self.quiet = evidence[summary].groupby("band")["cards"].sum()
        self.quiet_exposed = max(self.size - int(self.family.sum()), 0)  # exposed cards without a row: band unknown

    def bound(self, budget: float) -> float:
        """The largest p-value Benjamini-Hochberg at level ``budget`` can report in the family."""
        return budget * int(self.family.sum()) / max(self.size, 1)

    def q_values(self, p: np.ndarray, out: np.ndarray, budget: float, prior: float) -> np.ndarray:
        """Per card its q-value in the family (1 outside it): p-values checked against the unexposed cards of
        the band (leaving out ``out``, the cards reported in earlier rounds), Benjamini-Hochberg over ``size``
        cards, shrunk by the family's share of true nulls."""
        checked = against_band(p, self.band, ~self.family & ~out, self.quiet, self.quiet_exposed, prior)
        q = np.ones(len(p))
        q[self.family] = bh_qvalues(checked[self.family], m=self.size) * null_share(
            checked[self.family], self.size, self.bound(budget))
        return q


def exposed_at(tokens: pd.Series, exposed: pd.DataFrame | None) -> np.ndarray:
    """Per card, the terminal of the accepted skimming point it was first exposed at (None if none): a row of
    ``exposed`` with mode ``skimming``, the earliest exposure."""
    names = tokens.to_numpy(dtype=object)
    if exposed is None or exposed.empty:
        return np.full(len(names), None, dtype=object)
    skim = exposed[exposed["mode"] == "skimming"].sort_values(["first_exposed_at", "terminal_id"], kind="stable")
    at = skim.drop_duplicates("card_token").set_index("card_token")["terminal_id"].reindex(names).to_numpy(dtype=object)
    return np.where(pd.isna(at), None, at)


def exposed_family_size(exposed: pd.DataFrame | None) -> int:
    """Cards exposed at an accepted skimming point: the size of the exposed family."""
    if exposed is None or exposed.empty:
        return 0
    return int(exposed.loc[exposed["mode"] == "skimming", "card_token"].nunique())


def null_share(p: np.ndarray, m: int, lam: float) -> float:
    """Storey's estimate of the share of true nulls in a family of ``m`` hypotheses (those without a p-value
    have p = 1): ``(m - #{p <= lam} + 1) / (m (1 - lam))``, at most 1 (Storey, Taylor and Siegmund 2004: with it
    Benjamini-Hochberg keeps its false-discovery rate under independence). Among the exposed cards, where clones
    are common, their q-values shrink by it; ``lam`` is the largest p-value ``decide`` computes exactly (larger
    ones count as above ``lam``: the estimate can only grow)."""
    if m <= 0 or not 0.0 < lam < 1.0:
        return 1.0
    return float(min(1.0, (m - int((p <= lam).sum()) + 1) / (m * (1.0 - lam))))


def against_band(p: np.ndarray, band: np.ndarray, reference: np.ndarray, quiet: pd.Series, quiet_exposed: int,
                  prior: float) -> np.ndarray:
    """Each card's p-value checked against the ``reference`` cards of its activity band: the larger of its
    p-value and the share of those cards (the cards without a row in the band, ``quiet``, have p-value 1; less
    ``quiet_exposed``, the exposed cards without a row, whose band is not known: fewer cards, a larger share)
    whose p-value is as small, ``(cards + prior) / (band cards + 2 prior)``.

    Genuine cards that shop a lot show the weak reasons more often than each reason's null allows (a share of
    cards, a card's own uses); in a small family (the exposed cards, reported down to p-values of about a
    percent) that would report them, so there the unexposed cards as active as the card are the judge."""
    checked = np.ones(len(p))
    for b in np.unique(band):
        mine = np.flatnonzero(band == b)
        ranked = np.sort(p[mine[reference[mine]]])
        at_most = np.searchsorted(ranked, p[mine], side="right")
        n = len(ranked) + max(int(quiet.get(b, 0)) - quiet_exposed, 0)
        checked[mine] = np.maximum(p[mine], np.minimum(1.0, (at_most + prior) / (n + 2.0 * prior)))
    return checked
