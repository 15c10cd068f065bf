"""Finding the database: the local Neo4j 5.26 server that posguard runs when NEO4J_URI is unset, or NEO4J_URI."""

from graph.errors import ServerError
from graph.server.connect import connect, credentials
from graph.server.local import LocalServer, ServerStatus, free_port, port_is_free
from graph.server.resolve import find_java, neo4j_version, resolve_classpath

__all__ = ["connect", "credentials", "LocalServer", "ServerError", "ServerStatus", "find_java", "free_port",
           "neo4j_version", "port_is_free", "resolve_classpath"]
