"""The local Neo4j 5.26 server that posguard runs when NEO4J_URI is unset."""

from graph.server.errors import ServerError
from graph.server.local import LocalServer, ServerStatus, free_port, port_is_free
from graph.server.resolve import find_java, neo4j_version, resolve_classpath

__all__ = ["LocalServer", "ServerError", "ServerStatus", "find_java", "free_port", "neo4j_version",
           "port_is_free", "resolve_classpath"]
