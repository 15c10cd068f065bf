"""Render the local server's neo4j.conf: loopback only, auth on, small memory, state under POSGUARD_HOME."""

from __future__ import annotations

from pathlib import Path

__all__ = ["render_config", "JVM_FLAGS"]

# The flags Neo4j's own launcher adds (server.jvm.additional in the stock neo4j.conf).
JVM_FLAGS = (
    "-XX:+UseG1GC",
    "-XX:-OmitStackTraceInFastThrow",
    "-XX:+AlwaysPreTouch",
    "-XX:+UnlockExperimentalVMOptions",
    "-XX:+TrustFinalNonStaticFields",
    "-XX:+DisableExplicitGC",
    "-XX:+ExitOnOutOfMemoryError",
    "-Djdk.nio.maxCachedBufferSize=1024",
    "-Dio.netty.tryReflectionSetAccessible=true",
    "-Djdk.tls.ephemeralDHKeySize=2048",
    "-Djdk.tls.rejectClientInitiatedRenegotiation=true",
    "-Dfile.encoding=UTF-8",
    "--add-opens=java.base/java.nio=ALL-UNNAMED",
    "--add-opens=java.base/java.io=ALL-UNNAMED",
    "--add-opens=java.base/sun.nio.ch=ALL-UNNAMED",
    "--add-opens=java.base/java.lang=ALL-UNNAMED",
    "--enable-native-access=ALL-UNNAMED",
)


def render_config(*, data_dir: Path, logs_dir: Path, import_dir: Path, bolt_port: int, http_port: int,
                  pagecache: str, heap: str) -> str:
    """Return the text of a neo4j.conf for the local server.

    Parameters
    ----------
    data_dir, logs_dir, import_dir : Path
        Directories under POSGUARD_HOME.
    bolt_port, http_port : int
        Ports on 127.0.0.1.
    pagecache, heap : str
        Memory sizes such as ``"512m"``.

    Returns
    -------
    str
        The configuration file's text.

    Example
    -------
    >>> "127.0.0.1:7687" in render_config(data_dir=Path("d"), logs_dir=Path("l"), import_dir=Path("i"),
    ...     bolt_port=7687, http_port=7474, pagecache="64m", heap="256m")
    True
    """
    lines = {
        "server.default_listen_address": "127.0.0.1",
        "server.default_advertised_address": "127.0.0.1",
        "server.bolt.enabled": "true",
        "server.bolt.listen_address": f"127.0.0.1:{bolt_port}",
        "server.bolt.advertised_address": f"127.0.0.1:{bolt_port}",
        "server.http.enabled": "true",
        "server.http.listen_address": f"127.0.0.1:{http_port}",
        "server.http.advertised_address": f"127.0.0.1:{http_port}",
        "server.https.enabled": "false",
        "server.directories.data": str(data_dir),
        "server.directories.logs": str(logs_dir),
        "server.directories.import": str(import_dir),
        "server.memory.heap.initial_size": heap,
        "server.memory.heap.max_size": heap,
        "server.memory.pagecache.size": pagecache,
        "dbms.security.auth_enabled": "true",
        "dbms.usage_report.enabled": "false",
        "db.tx_log.rotation.retention_policy": "256M size",
        "db.logs.query.enabled": "OFF",
    }
    header = "# Written by posguard at every start; edit settings through POSGUARD_* variables instead.\n"
    return header + "".join(f"{k}={v}\n" for k, v in lines.items())
