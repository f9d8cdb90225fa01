"""The guard of the analysts' SQL door (``POST /sql``): what it lets through only reads.

``readonly=1`` alone is not read-only in the embedded engine. It stops writes, SETTINGS
changes and most table functions, but the engine is its own client, so ``INTO OUTFILE``
still writes a file on the sink's machine; the ``file()`` *function* still reads any file
the process can read; and every database of the engine stays readable. So each statement
is checked on the engine's own parse tree before it runs (``parseQueryToJSON``: no second
parser that could read the text differently from ClickHouse), against an allowlist:

* one SELECT (with WITH, UNION, INTERSECT, EXCEPT, subqueries, joins); no other statement;
* no ``INTO OUTFILE``; no ``SETTINGS`` clause anywhere (the limits are the API's, and a
  setting may lift one); no ``FORMAT`` clause on ``/sql`` (it answers JSON), and on the
  ClickHouse-compatible door only a top-level one naming a format of :data:`CLIENT_FORMATS`
  (:class:`DoorPolicy` holds what differs between the doors);
* tables only from the configured database, the statement's own CTEs and
  :data:`SYSTEM_TABLES`; an unqualified name that is no CTE is refused (it would resolve
  in the engine's ``default`` database);
* table functions only the generators of :data:`TABLE_FUNCTIONS`;
* no function, anywhere, that reaches files, the network, processes, dictionaries or
  other tables, or reveals the machine (:data:`REFUSED_FUNCTIONS`,
  :data:`REFUSED_PREFIXES`, plus what the engine itself files under
  :data:`REFUSED_CATEGORIES` and every user-defined function, whose body is not visible
  here);
* no ``Identifier`` query parameters: they would name a table after the check.

What runs is the engine's own rendering of the statement (``formatQuerySingleLine``), and
what is checked is the parse tree of that very text: comments, spacing and quoting cannot
make the checked statement and the executed one differ. Parameters must be ``{name:Type}``
placeholders, which the engine binds: the client library would otherwise splice values
into the text (its ``%(name)s`` style) after the check.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import re2

from ground.errors import SinkError
from sinks.clickhouse import Database
from sinks.errors import ReportError

__all__ = [
    "CLIENT_DOOR",
    "CLIENT_FORMATS",
    "MAX_SQL_CHARS",
    "REFUSED_CATEGORIES",
    "REFUSED_FUNCTIONS",
    "REFUSED_PREFIXES",
    "SQL_DOOR",
    "SYSTEM_TABLES",
    "TABLE_FUNCTIONS",
    "DoorPolicy",
    "SqlRefused",
    "check_tree",
    "guard_client_select",
    "guard_select",
]

#: Longer statements are refused before the engine parses them.
MAX_SQL_CHARS = 100_000

#: ``system`` tables a client needs to find its way (which databases, tables, columns and
#: functions exist) plus the two row generators. Everything else in ``system`` (settings,
#: processes, server paths, users, logs...) describes the machine, not the data.
SYSTEM_TABLES = frozenset({"one", "numbers", "databases", "tables", "columns", "functions"})

#: Output formats the ClickHouse-compatible door answers in (``FORMAT`` or ``default_format``):
#: formats that only render rows. Formats that read a file on the server (``Template``,
#: ``CustomSeparated`` with templates, schema-based ``Protobuf``/``CapnProto``) are not here.
CLIENT_FORMATS = frozenset({
    "Native", "RowBinary", "RowBinaryWithNames", "RowBinaryWithNamesAndTypes",
    "JSON", "JSONStrings", "JSONCompact", "JSONCompactStrings", "JSONEachRow", "JSONStringsEachRow",
    "JSONCompactEachRow", "JSONCompactEachRowWithNames", "JSONCompactEachRowWithNamesAndTypes",
    "TabSeparated", "TSV", "TabSeparatedRaw", "TSVRaw", "TabSeparatedWithNames", "TSVWithNames",
    "TabSeparatedWithNamesAndTypes", "TSVWithNamesAndTypes", "CSV", "CSVWithNames", "CSVWithNamesAndTypes",
    "Values", "Vertical", "Pretty", "PrettyCompact", "PrettyCompactMonoBlock", "PrettySpace", "Markdown",
    "XML", "Arrow", "ArrowStream", "Parquet", "ORC", "Null",
})


@dataclass(frozen=True)
class DoorPolicy:
    """What one analyst door lets through beyond the common rules.

    ``/sql`` answers JSON itself, so a ``FORMAT`` clause is refused there; the
    ClickHouse-compatible door answers in the format the client asks for, and its clients
    read ``system.settings`` at connect time to learn which settings exist (query-level
    settings only: nothing about the machine is in it).
    """

    name: str
    formats: frozenset[str] = frozenset()
    system_tables: frozenset[str] = SYSTEM_TABLES


#: Table functions that generate rows from their arguments alone (no file, network,
#: process, dictionary or other table behind them). Exact, case-sensitive names.
TABLE_FUNCTIONS = frozenset({"numbers", "numbers_mt", "generate_series", "generateSeries", "values"})

#: Functions refused anywhere (lower case; the engine is case-insensitive for some names).
REFUSED_FUNCTIONS = frozenset({
    # files, the network, processes, other engines (table functions and their scalar twins)
    "file", "url", "urlcluster", "input", "executable", "remote", "remotesecure", "cluster",
    "clusterallreplicas", "s3", "s3cluster", "gcs", "cosn", "oss", "hdfs", "hdfscluster", "azureblobstorage",
    "azureblobstoragecluster", "mysql", "postgresql", "mongodb", "redis", "sqlite", "odbc", "jdbc", "bigquery",
    "ytsaurus", "python", "arrowflight", "arrowstream", "prometheusquery", "prometheusqueryrange", "eval",
    # other tables and dictionaries, named by a string the table check cannot see
    "merge", "view", "viewexplain", "viewifpermitted", "loop", "dictionary", "hascolumnintable",
    "naivebayesclassifier", "naivebayesclassifierwithprob", "naivebayesclassifierwithallprobs",
    # language models behind a provider (network)
    "aiclassify", "aiembed", "aiextract", "aifilter", "aigenerate", "airedact", "aisimilarity", "aitranslate",
    # the machine: paths, host, certificates, server configuration; and writes to the server log
    "getserversetting", "getmacro", "getclienthttpheader", "showcertificate", "fqdn", "fullhostname", "hostname",
    "getoskernelversion", "globalvariable", "logtrace", "addresstoline", "addresstolinewithinlines",
    "addresstosymbol", "demangle",
})

#: Families refused by their prefix (lower case): every variant of a storage reaching out.
REFUSED_PREFIXES = ("file", "dict", "joinget", "iceberg", "deltalake", "hudi", "paimon", "s3", "azureblob",
                    "hdfs", "remote", "cluster", "mergetree", "region")

#: Function categories of ``system.functions`` refused as a whole (new members included).
REFUSED_CATEGORIES = ("AI", "Dictionary", "Embedded Dictionary", "Introspection")

#: ``x IN table``: the right-hand identifier of these operators names a table.
_IN_OPERATORS = frozenset({
    f"{scope}{kind}{suffix}"
    for scope in ("", "global") for kind in ("in", "notin", "nullin", "notnullin") for suffix in ("", "ignoreset")
})
_NAME = re2.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

# One round trip: the canonical text, its tree, and the names the engine itself says to refuse.
_PARSE_SQL = """
SELECT formatQuerySingleLine({sql:String}) AS statement, parseQueryToJSON(statement) AS tree,
       (SELECT groupArray(lower(name)) FROM system.functions
         WHERE origin != 'System' OR categories IN {categories:Array(String)}
            OR lower(alias_to) IN {names:Array(String)}
            OR arrayExists(p -> startsWith(lower(alias_to), p), {prefixes:Array(String)})
            OR alias_to IN (SELECT name FROM system.functions WHERE categories IN {categories:Array(String)})
       ) AS refused
"""
_STATEMENT_KINDS = {
    "InsertQuery": "INSERT", "CreateQuery": "CREATE", "DropQuery": "DROP", "AlterQuery": "ALTER",
    "RenameQuery": "RENAME", "SystemQuery": "SYSTEM", "KillQueryQuery": "KILL", "SetQuery": "SET",
    "UseQuery": "USE", "OptimizeQuery": "OPTIMIZE", "ExplainQuery": "EXPLAIN", "DeleteQuery": "DELETE",
    "UndropQuery": "UNDROP", "CheckQuery": "CHECK", "WatchQuery": "WATCH", "BackupQuery": "BACKUP",
}


#: ``POST /sql``: JSON answers, no FORMAT clause.
SQL_DOOR = DoorPolicy("/sql")
#: The ClickHouse-compatible endpoint: a FORMAT of :data:`CLIENT_FORMATS`, and ``system.settings``.
CLIENT_DOOR = DoorPolicy("the ClickHouse-compatible endpoint", CLIENT_FORMATS, SYSTEM_TABLES | {"settings"})


class SqlRefused(ReportError):
    """A ``/sql`` statement the guard does not run; the message names what was refused."""


def guard_select(db: Database, sql: str, parameters: Mapping[str, Any]) -> str:
    """The statement to run for ``sql`` on ``/sql``: the engine's rendering of it, once its tree passed.

    Raises :class:`SqlRefused` naming the first thing refused.
    """
    return _guard(db, sql, parameters, SQL_DOOR)[0]


def guard_client_select(db: Database, sql: str, parameters: Mapping[str, Any]) -> tuple[str, str | None]:
    """(statement without its FORMAT, that FORMAT or None) for the ClickHouse-compatible door.

    The caller appends the limits as a SETTINGS clause and then the format. A trailing
    SETTINGS clause of a UNION binds its last member only (the engine applies the time and
    memory limits to the whole query, but the result-row limit to that member), so a
    UNION is wrapped as ``SELECT * FROM (...)``: the limits then hold for all of it.
    """
    statement, fmt = _guard(db, sql, parameters, CLIENT_DOOR)
    if fmt is not None:
        suffix = f" FORMAT {fmt}"
        if not statement.endswith(suffix):  # the engine's rendering puts FORMAT last; anything else is refused
            raise SqlRefused("the FORMAT clause must end the statement")
        statement = statement[: -len(suffix)]
    if " UNION " in statement or " EXCEPT " in statement or " INTERSECT " in statement:
        statement = f"SELECT * FROM ({statement})"
    return statement, fmt


def _guard(db: Database, sql: str, parameters: Mapping[str, Any], door: DoorPolicy) -> tuple[str, str | None]:
    if len(sql) > MAX_SQL_CHARS:
        raise SqlRefused(f"the statement is longer than {MAX_SQL_CHARS:,} characters")
    for name in parameters:
        if not _NAME.match(name):
            raise SqlRefused(f"parameter name {name!r} is not a plain identifier (letters, digits, _)")
    try:
        _, rows = db.query(_PARSE_SQL, {"sql": sql, "categories": list(REFUSED_CATEGORIES),
                                        "names": sorted(REFUSED_FUNCTIONS), "prefixes": list(REFUSED_PREFIXES)},
                           {"readonly": 1, "max_execution_time": 10})
    except SinkError:  # no connection free (the analyst pool) is no verdict on the statement
        raise
    except Exception as exc:  # the engine's message says where the statement does not parse
        raise SqlRefused(_parse_failure(str(exc))) from exc
    statement, tree_json, engine_refused = rows[0]
    try:
        tree = json.loads(tree_json)
    except RecursionError as exc:
        raise SqlRefused("the statement is nested too deeply to be checked") from exc
    fmt = _output_format(tree, door)
    placeholders = check_tree(tree, database=db.database,
                              refused=REFUSED_FUNCTIONS | frozenset(engine_refused), door=door)
    if parameters and not placeholders:
        raise SqlRefused("parameters were given but the statement has no {name:Type} placeholder to bind them to")
    return str(statement), fmt


def _output_format(tree: Any, door: DoorPolicy) -> str | None:
    """The statement's own top-level FORMAT, when the door answers in formats; else None."""
    if not door.formats or not isinstance(tree, dict) or not isinstance(tree.get("format_ast"), dict):
        return None
    name = str(tree["format_ast"].get("name", ""))
    if name not in door.formats:
        raise SqlRefused(f"FORMAT {name} is refused: {door.name} answers in {', '.join(sorted(door.formats))}")
    return name


def check_tree(tree: Any, *, database: str, refused: frozenset[str] = REFUSED_FUNCTIONS,
               door: DoorPolicy = SQL_DOOR) -> set[str]:
    """Check a ``parseQueryToJSON`` tree; returns the names of its ``{name:Type}`` placeholders.

    Walks every node (iteratively: a deep tree cannot exhaust the stack) with the CTE
    names visible at that point, and raises :class:`SqlRefused` at the first refusal.
    A FORMAT clause passes only at the top, on a door that answers in formats (the
    format itself is checked by :func:`_output_format`).
    """
    if not isinstance(tree, dict) or tree.get("type") != "SelectWithUnionQuery":
        raise SqlRefused(f"only SELECT statements are accepted, not {_statement_kind(tree)}")
    placeholders: set[str] = set()
    stack: list[tuple[Any, frozenset[str]]] = [(tree, frozenset())]
    while stack:
        node, scope = stack.pop()
        if isinstance(node, list):
            stack.extend((item, scope) for item in node)
            continue
        if not isinstance(node, dict):
            continue
        _check_clauses(node, format_allowed=node is tree and bool(door.formats))
        kind = node.get("type")
        if kind == "SelectWithUnionQuery":
            selects = node.get("list_of_selects", {}).get("children", [])
            # the engine applies the first SELECT's WITH to every member of the union
            shared = _cte_names(selects[0]) if selects else frozenset()
            stack.extend((child, scope | shared) for child in _children(node))
            continue
        if kind == "SelectQuery":
            scope = scope | _cte_names(node)
        elif kind == "TableIdentifier":
            _check_table(node, scope, database, door.system_tables)
        elif kind == "TableExpression" and isinstance(node.get("table_function"), dict):
            _check_table_function(node["table_function"])
        elif kind == "Function":
            _check_function(node, scope, database, refused, door.system_tables)
        elif kind == "QueryParameter":
            placeholders.add(_check_placeholder(node))
        stack.extend((child, scope) for child in _children(node))
    return placeholders


def _statement_kind(tree: Any) -> str:
    """The statement's keyword as the analyst wrote it (ATTACH and TRUNCATE share a node type)."""
    if not isinstance(tree, dict):
        return "this statement"
    kind = str(tree.get("type", "?"))
    if kind == "CreateQuery" and tree.get("attach"):
        return "ATTACH"
    if kind == "DropQuery" and isinstance(tree.get("kind"), str):
        return str(tree["kind"]).upper()
    return _STATEMENT_KINDS.get(kind, kind)


def _children(node: dict[str, Any]) -> Iterator[Any]:
    return (value for value in node.values() if isinstance(value, dict | list))


def _check_clauses(node: dict[str, Any], *, format_allowed: bool) -> None:
    if "out_file" in node or node.get("is_into_outfile_with_stdout"):
        raise SqlRefused("INTO OUTFILE is refused: the query API returns rows, it never writes files")
    if "settings_ast" in node or node.get("type") == "SetQuery":
        raise SqlRefused("SETTINGS clauses are refused: the query API's limits (readonly, rows, time, "
                         "memory) cannot be changed by a statement")
    if "format_ast" in node and not format_allowed:
        raise SqlRefused("FORMAT clauses are refused: the query API answers JSON (the ClickHouse-compatible "
                         "endpoint, /, answers in the format asked for)")


def _cte_names(select: Any) -> frozenset[str]:
    if not isinstance(select, dict):
        return frozenset()
    items = select.get("with", {}).get("children", [])
    return frozenset(i["name"] for i in items
                     if isinstance(i, dict) and i.get("type") == "WithElement" and isinstance(i.get("name"), str))


def _check_table(node: dict[str, Any], scope: frozenset[str], database: str,
                 system_tables: frozenset[str] = SYSTEM_TABLES) -> None:
    if node.get("children"):
        raise SqlRefused("a table named by a query parameter is refused: name tables in the statement itself")
    parts = node.get("name_parts") or [node.get("name", "")]
    if len(parts) == 1:
        name = str(parts[0])
        if name in scope:
            return
        raise SqlRefused(f"table {name!r} has no database: write {database}.{name} (only the {database} "
                         "database, the statement's own CTEs and a few system tables are served)")
    if len(parts) != 2:
        raise SqlRefused(f"table name {'.'.join(map(str, parts))!r} is not database.table")
    db, table = (str(p) for p in parts)
    if db == database:
        return
    if db == "system":
        if table in system_tables:
            return
        allowed = ", ".join(f"system.{t}" for t in sorted(system_tables))
        raise SqlRefused(f"system table system.{table} is refused: the query API serves {allowed}")
    raise SqlRefused(f"table {db}.{table} is outside the {database} database: only {database}.* is served")


def _check_table_function(function: dict[str, Any]) -> None:
    name = str(function.get("name", ""))
    if name not in TABLE_FUNCTIONS:
        allowed = ", ".join(f"{f}()" for f in sorted(TABLE_FUNCTIONS))
        raise SqlRefused(f"table function {name}() is refused: the query API serves only the generators {allowed}")


def _check_function(node: dict[str, Any], scope: frozenset[str], database: str, refused: frozenset[str],
                    system_tables: frozenset[str]) -> None:
    name = str(node.get("name", ""))
    lower = name.lower()
    if lower in refused or lower.startswith(REFUSED_PREFIXES):
        raise SqlRefused(f"function {name}() is refused: it reaches files, the network, processes, dictionaries, "
                         f"other tables or the machine itself")
    if lower in _IN_OPERATORS:
        arguments = node.get("arguments", {}).get("children", [])
        right = arguments[1] if len(arguments) > 1 else None
        if isinstance(right, dict) and right.get("type") == "Identifier":
            _check_table(right, scope, database, system_tables)  # `x IN db.table` reads that table


def _check_placeholder(node: dict[str, Any]) -> str:
    name = str(node.get("name", ""))
    if "identifier" in str(node.get("param_type", "")).lower():
        raise SqlRefused(f"query parameter {{{name}:Identifier}} is refused: name tables and columns in the "
                         "statement itself")
    if not _NAME.match(name):
        raise SqlRefused(f"query parameter name {name!r} is not a plain identifier (letters, digits, _)")
    return name


def _parse_failure(message: str) -> str:
    """The engine's reason, without its echo of the guard's own query."""
    first = message.splitlines()[0] if message else "unknown error"
    first = first.split(": In scope ", 1)[0]
    if "DB::Exception: " in first:
        first = first.split("DB::Exception: ", 1)[1]
    first = first.rstrip(". ")
    if first.startswith(("Function with name `parseQueryToJSON`", "Function with name `formatQuerySingleLine`")):
        return f"this engine cannot check statements, so /sql refuses them all (chdb >= 4.4 needed): {first[:300]}"
    if "does not support JSON serialization" in first:
        return f"only SELECT statements are accepted (this statement cannot be inspected: {first[:300]})"
    if "Multi-statements are not allowed" in first:
        return f"one statement only ({first[:300]})"
    return f"the statement does not parse: {first[:1000]}"
