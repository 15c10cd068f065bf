"""Find Java 17+ and resolve the Neo4j server's jars from Maven Central with Maven."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

from graph.errors import ServerError

__all__ = ["Java", "find_java", "neo4j_version", "resolve_classpath", "POM", "cache_dir"]

POM = Path(__file__).with_name("pom.xml")
MIN_JAVA = 17


@dataclass(frozen=True)
class Java:
    """A Java runtime: the ``java`` executable and its feature version."""

    executable: str
    version: int


def _java_candidates() -> list[str]:
    if os.environ.get("POSGUARD_JAVA"):  # an explicit choice: that runtime or nothing
        return [os.environ["POSGUARD_JAVA"]]
    found = []
    if os.environ.get("JAVA_HOME"):
        found.append(str(Path(os.environ["JAVA_HOME"]) / "bin" / "java"))
    on_path = shutil.which("java")
    if on_path:
        found.append(on_path)
    for jvm in sorted(Path("/usr/lib/jvm").glob("*17*")) + sorted(Path("/usr/lib/jvm").glob("*21*")):
        found.append(str(jvm / "bin" / "java"))
    return [c for c in dict.fromkeys(found) if Path(c).exists()]


def _java_version(executable: str) -> int | None:
    try:
        out = subprocess.run([executable, "-version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = re.search(r'version "(\d+)(?:\.(\d+))?', out.stderr + out.stdout)
    if not match:
        return None
    major = int(match.group(1))
    return int(match.group(2)) if major == 1 and match.group(2) else major


def find_java() -> Java:
    """Return the first Java 17 or 21 runtime (POSGUARD_JAVA, else JAVA_HOME, PATH, /usr/lib/jvm).

    Neo4j 5.26 supports Java 17 and 21; a newer runtime is used only when neither is present.

    Raises
    ------
    ServerError
        When no Java 17+ runtime is found.
    """
    usable = []
    for candidate in _java_candidates():
        version = _java_version(candidate)
        if version is not None and version >= MIN_JAVA:
            usable.append(Java(candidate, version))
    preferred = [j for j in usable if j.version in (17, 21)]
    if preferred or usable:
        return (preferred or usable)[0]
    raise ServerError(
        f"no Java {MIN_JAVA}+ runtime found (looked at {', '.join(_java_candidates()) or 'JAVA_HOME, PATH, /usr/lib/jvm'}); "
        "install one, e.g. `apt-get install openjdk-17-jre-headless`, or set JAVA_HOME"
    )


def neo4j_version(pom: Path = POM) -> str:
    """The Neo4j version pinned in the project's pom.xml."""
    ns = {"m": "http://maven.apache.org/POM/4.0.0"}
    node = ET.parse(pom).getroot().find("m:properties/m:neo4j.version", ns)
    if node is None or not node.text:
        raise ServerError(f"{pom}: no <neo4j.version> property")
    return node.text.strip()


def cache_dir() -> Path:
    """Where resolved classpaths are remembered (``$XDG_CACHE_HOME/posguard``, default ``~/.cache``)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "posguard"


def resolve_classpath(pom: Path = POM, *, quiet: bool = True) -> list[Path]:
    """Resolve the server's jars with Maven (downloaded once into ``~/.m2``) and return them.

    The classpath is remembered in the cache directory; it is resolved again if any jar is gone.

    Raises
    ------
    ServerError
        When Maven is missing or cannot resolve the artifacts.
    """
    version = neo4j_version(pom)
    remembered = cache_dir() / f"neo4j-{version}.classpath"
    if remembered.exists():
        jars = [Path(p) for p in remembered.read_text().split(os.pathsep) if p]
        if jars and all(j.exists() for j in jars):
            return jars
    mvn = shutil.which("mvn")
    if mvn is None:
        raise ServerError("Maven (`mvn`) is not installed; it resolves the Neo4j server from Maven Central "
                          "(`apt-get install maven`)")
    remembered.parent.mkdir(parents=True, exist_ok=True)
    tmp = remembered.with_suffix(".tmp")
    cmd = [mvn, "-B", "-f", str(pom), "dependency:build-classpath", "-DincludeScope=runtime",
           f"-Dmdep.outputFile={tmp}"]
    if quiet:
        cmd.insert(2, "-q")
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0 or not tmp.exists():
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-15:])
        raise ServerError(f"could not resolve org.neo4j:neo4j:{version} from Maven Central:\n{tail}")
    tmp.replace(remembered)
    return [Path(p) for p in remembered.read_text().split(os.pathsep) if p]
