"""The analysts' Python API: one store over the graph, its projection, the detectors, Cypher and tokens.

Notebooks and scripts use this module and nothing deeper; everything here is also what the command
line and the explorer run.

Example
-------
>>> from posguard.api import open_store
>>> with open_store() as store:                                      # doctest: +SKIP
...     store.cypher("MATCH (a:Alert) RETURN a.kind AS kind, count(*) AS n")
...     points = store.detect("skimming", min_compromised=3)
...     g = store.neighbourhood("terminal", points.terminal_id[0])
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

import networkx as nx
import pandas as pd

from etl.generate import generate
from graph.detectors import DETECTORS
from graph.evaluation import load_truth
from graph.projection import Projection
from graph.schema import BROWSABLE_KEYS as _WALKABLE, ENTITY_KEYS
from graph.scoring import fit_detector
from graph.server import connect
from graph.settings import Settings
from graph.tokens import token
from posguard.jobs import etl_job, score_job

__all__ = ["Store", "open_store", "DETECTOR_NAMES"]

log = logging.getLogger("posguard.api")

DETECTOR_NAMES = tuple(DETECTORS)

_FIRST_NODE = "MATCH (n:{label} {{{key}: $id}}) RETURN elementId(n) AS eid, labels(n) AS labels, properties(n) AS props"
_EXPAND = """
UNWIND $eids AS eid
MATCH (n) WHERE elementId(n) = eid
CALL (n) {
  MATCH (n)-[r]-(m) WHERE NOT m:User AND NOT m:Session AND NOT m:CaseEvent
  RETURN r, m LIMIT $per_node
}
RETURN elementId(n) AS src, elementId(m) AS dst, elementId(r) AS rid, type(r) AS type, startNode(r) = n AS outgoing,
       properties(r) AS rprops, labels(m) AS labels, properties(m) AS props
"""
_HIDDEN_PROPS = {"pw_hash"}
_EXPOSED = """
MATCH (c:Card)-[e:EXPOSED_AT]->(t:Terminal)
WHERE ($point IS NULL OR t.terminal_id = $point) AND e.p_compromised >= $min_p
RETURN c.token AS card_token, c.pan_last4 AS pan_last4, t.terminal_id AS terminal_id, e.mode AS mode,
       e.first_exposed_at AS first_exposed_at, e.p_compromised AS p_compromised, e.reported AS reported,
       e.recommended_action AS recommended_action, e.point_rank AS point_rank, e.window_start AS window_start,
       e.window_end AS window_end
ORDER BY p_compromised DESC, card_token, terminal_id, mode
"""


def _plain(value):
    """Neo4j temporal values as pandas Timestamps (UTC), everything else unchanged."""
    if hasattr(value, "to_native"):
        native = value.to_native()
        return pd.Timestamp(native) if hasattr(native, "year") else native
    return value


def _node_attrs(labels: list[str], props: Mapping) -> dict:
    label = next((lab for lab in labels if lab in _WALKABLE), labels[0] if labels else "")
    attrs = {k: _plain(v) for k, v in props.items() if k not in _HIDDEN_PROPS}
    return {**attrs, "label": label, "key": props.get(_WALKABLE.get(label, ""), None)}


class Store:
    """The graph in Neo4j, the staged data under ``POSGUARD_HOME``, and the detectors over them.

    Open one with :func:`open_store`; close it (or use ``with``) when done.

    Parameters
    ----------
    settings : graph.settings.Settings
        Where the database and the staged data are, and the tokenization key.
    start : bool
        Start the project's local Neo4j server when it is not running (ignored with ``NEO4J_URI``).

    Example
    -------
    >>> store = Store(Settings.from_env())                            # doctest: +SKIP
    >>> store.cypher("MATCH (c:Card) RETURN count(c) AS cards")       # doctest: +SKIP
    """

    def __init__(self, settings: Settings, *, start: bool = True):
        self.settings = settings
        self.db = connect(settings, start=start)
        self._projection = None

    # ------------------------------------------------------------ lifecycle
    def close(self) -> None:
        """Close the connection to Neo4j."""
        self.db.close()

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ------------------------------------------------------------ data in
    def load_drop(self, drop: str | Path, *, bulk: bool = False) -> list:
        """Validate, tokenize, stage and load a drop (skipped when already loaded); returns the run results.

        Example
        -------
        >>> [r.summary() for r in store.load_drop("var/drops/sample")]  # doctest: +SKIP
        """
        self._projection = None
        return etl_job(self.settings.require_token_key(), str(drop), bulk=bulk)

    def load_sample(self, *, seed: int = 1, scale: str = "small", out: str | Path | None = None,
                    score: bool = True) -> Path:
        """Generate a sample drop (once), load it and score it unless the graph already has alerts.

        Parameters
        ----------
        seed, scale : as ``posguard generate``; the drop goes to ``$POSGUARD_HOME/drops/sample-<scale>-<seed>``
        out : directory of the Parquet outputs (default ``$POSGUARD_HOME/out``)
        score : run the detectors and write the alert queue when Neo4j holds no alert yet

        Returns
        -------
        Path of the drop (its planted truth is in ``truth/``).

        Example
        -------
        >>> drop = store.load_sample(seed=1)                          # doctest: +SKIP
        """
        drop = self.settings.home / "drops" / f"sample-{scale}-{seed}"
        if not (drop / "truth").is_dir():
            generate(drop, seed=seed, scale=scale)
        self.load_drop(drop)
        if score and not self.db.read("MATCH (a:Alert) RETURN a LIMIT 1"):
            self.score(out)
        return drop

    def score(self, out: str | Path | None = None, *, params: dict | None = None):
        """Run every detector, write the Parquet outputs and the alert queue; returns a ScoreResult.

        Parameters
        ----------
        out : directory of the outputs (default ``$POSGUARD_HOME/out``)
        params : per-detector parameters, e.g. ``{"skimming": {"exposure_days": 30}}``

        Example
        -------
        >>> store.score().frames["alerts"].head()                    # doctest: +SKIP
        """
        result, _ = score_job(self.settings.require_token_key(), out or self.settings.home / "out", params=params)
        return result

    def truth(self, drop: str | Path) -> dict[str, pd.DataFrame]:
        """The planted truth of a generated drop, card PANs replaced by their tokens (see ``load_truth``).

        Example
        -------
        >>> store.truth(drop)["skimmers"]                               # doctest: +SKIP
        """
        return load_truth(drop, self.settings.require_token_key().token_key)

    # ------------------------------------------------------------ projection and detectors
    def projection(self, *, refresh: bool = False):
        """The integer-indexed projection of the staged data (built once per store, numpy arrays).

        Example
        -------
        >>> p = store.projection(); p.n_txns, p.n_cards              # doctest: +SKIP
        """
        if self._projection is None or refresh:
            self._projection = Projection.from_staging(self.settings.home)
        return self._projection

    def detector(self, name: str, **params):
        """A detector fitted on the projection with custom parameters (its fitted attributes end in ``_``).

        Parameters
        ----------
        name : one of ``DETECTOR_NAMES``: skimming, cloned, rings, networks, integrity
        **params : the detector's constructor parameters

        Example
        -------
        >>> store.detector("rings", min_cards=6).result_          # doctest: +SKIP
        """
        return fit_detector(name, self.projection(), **params)

    def detect(self, name: str, **params) -> pd.DataFrame:
        """Run one detector with custom parameters and return its result table (as in the Parquet outputs).

        Example
        -------
        >>> store.detect("skimming", exposure_days=30).head()             # doctest: +SKIP
        """
        return self.detector(name, **params).result_

    def exposed_cards(self, point: str | None = None, min_p: float = 0.0) -> pd.DataFrame:
        """The cards exposed at the points of compromise of the last scoring (its ``EXPOSED_AT`` relationships).

        Parameters
        ----------
        point : terminal_id of one point (default: every point)
        min_p : only cards with ``p_compromised`` at least this

        Returns
        -------
        DataFrame: card_token, pan_last4, terminal_id, mode, first_exposed_at, p_compromised, reported,
        recommended_action (reissue / watch), point_rank, window_start, window_end; by p_compromised,
        highest first. Tokens and last four digits only.

        Example
        -------
        >>> store.exposed_cards(min_p=0.5).recommended_action.value_counts()   # doctest: +SKIP
        """
        return self.cypher(_EXPOSED, point=point, min_p=float(min_p))

    # ------------------------------------------------------------ the graph
    def cypher(self, query: str, **params) -> pd.DataFrame:
        """Run a parameterised read query and return a DataFrame (temporal values as UTC Timestamps).

        Example
        -------
        >>> store.cypher("MATCH (t:Terminal {terminal_id: $id})<-[r:TXN]-() RETURN r.ts AS ts, r.amount AS amount",
        ...              id="T0000001")                                  # doctest: +SKIP
        """
        frame = self.db.frame(query, params)
        for column in frame.columns:
            if len(frame) and frame[column].map(lambda v: hasattr(v, "to_native")).any():
                frame[column] = pd.to_datetime(frame[column].map(_plain), utc=True)
        return frame

    def neighbourhood(self, entity_type: str, entity_id: str, *, hops: int = 1,
                      per_node: int = 200) -> nx.MultiDiGraph:
        """The entity's neighbourhood as a networkx graph (directed, one edge per relationship).

        Parameters
        ----------
        entity_type : card, terminal, merchant or ring (or any node label, e.g. Owner)
        entity_id : its key (card token, terminal_id, merchant_id, ring_id, ...)
        hops : how far to walk
        per_node : at most this many relationships followed from each node

        Returns
        -------
        networkx.MultiDiGraph with node attributes ``label``, ``key`` and the node's properties, edge
        attributes ``type`` and the relationship's properties (a TXN edge: amount, ts, ...). Node ids
        are Neo4j element ids; ``g.graph["root"]`` is the entity's.

        Example
        -------
        >>> g = store.neighbourhood("terminal", "T0000001", hops=2)     # doctest: +SKIP
        >>> sum(1 for _, d in g.nodes(data=True) if d["label"] == "Card")  # doctest: +SKIP
        """
        label, key = ENTITY_KEYS.get(entity_type, (entity_type, _WALKABLE.get(entity_type)))
        if label not in _WALKABLE:
            raise ValueError(f"no neighbourhood for {entity_type!r}: choose card, terminal, merchant, ring "
                             f"or one of {', '.join(sorted(_WALKABLE))}")
        first = self.db.read(_FIRST_NODE.format(label=label, key=key), id=entity_id)
        if not first:
            raise KeyError(f"no {label} with {key} = {entity_id!r}")
        g = nx.MultiDiGraph(root=first[0]["eid"])
        g.add_node(first[0]["eid"], **_node_attrs(first[0]["labels"], first[0]["props"]))
        frontier, seen = [first[0]["eid"]], {first[0]["eid"]}
        for _ in range(hops):
            if not frontier:
                break
            rows = self.db.read(_EXPAND, eids=frontier, per_node=int(per_node))
            frontier = []
            for row in rows:
                if row["dst"] not in seen:
                    seen.add(row["dst"])
                    frontier.append(row["dst"])
                    g.add_node(row["dst"], **_node_attrs(row["labels"], row["props"]))
                src, dst = (row["src"], row["dst"]) if row["outgoing"] else (row["dst"], row["src"])
                if not g.has_edge(src, dst, key=row["rid"]):
                    g.add_edge(src, dst, key=row["rid"], type=row["type"],
                               **{k: _plain(v) for k, v in row["rprops"].items()})
        return g

    # ------------------------------------------------------------ tokens
    def tokenize_pan(self, pan: str) -> str:
        """The card token of a PAN (spaces and dashes ignored), to look a card up; the PAN is not kept.

        Example
        -------
        >>> store.cypher("MATCH (c:Card {token: $t}) RETURN c.pan_last4 AS last4",
        ...              t=store.tokenize_pan("4000 1234 5678 9010"))     # doctest: +SKIP
        """
        digits = "".join(ch for ch in str(pan) if ch.isdigit())
        if not 12 <= len(digits) <= 19:
            raise ValueError("a PAN has 12 to 19 digits")
        return token(digits, "pan", self.settings.require_token_key().token_key)


def open_store(environ: Mapping[str, str] | None = None, *, start: bool = True, **overrides) -> Store:
    """Open the store from the environment (``POSGUARD_HOME``, ``NEO4J_URI``, ``POSGUARD_TOKEN_KEY``, ...).

    Parameters
    ----------
    environ : mapping, optional
        Instead of ``os.environ``.
    start : bool
        Start the local Neo4j server when needed (never with ``NEO4J_URI``).
    **overrides : Settings fields, e.g. ``insecure_dev_key=True`` for the demo's public key.

    Example
    -------
    >>> with open_store() as store:                                    # doctest: +SKIP
    ...     print(store.cypher("MATCH (a:Alert) RETURN count(a) AS alerts"))
    """
    return Store(Settings.from_env(environ, **overrides), start=start)
