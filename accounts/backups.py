"""Backups of the whole portal, and restoring them (`manage.py backup`, `manage.py restore`).

A backup is a folder ``portal-<UTC time>/``:

* ``database.dump``: one pg_dump (custom format) of the whole database, so every schema:
  ``public`` (enterprises, accounts, people, the ledger with its recording columns, device
  settings, calling rules, registries), the account template and each account's schema
  (campaigns, blacklists, contact lists, dial states). pg_dump reads them all in one
  snapshot, which this module exports first so that the list of schemas it expects comes
  from the same instant.
* ``media.tar``: the private files (recordings, uploads, voice messages) when storage is the
  local disk; on S3 they stay in the bucket, whose versioning keeps them.
* ``manifest.json``: what is inside, written last.

It is written as ``portal-<time>.partial/`` and renamed when complete, so a folder without
that suffix is always a whole backup. The PostgreSQL tools must have the server's major
version; they are looked for where Debian, RHEL and the embedded server (pgserver) put them.
"""

from __future__ import annotations

import glob
import importlib.util
import json
import os
import re
import shutil
import subprocess
import tarfile
import time
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import psycopg
from django.conf import settings
from django.core.files.storage import FileSystemStorage, storages
from django.db import connections
from django.utils import timezone
from psycopg import sql
from psycopg.conninfo import make_conninfo

from accounts.models import Account

FORMAT = 1
DUMP = "database.dump"
MEDIA = "media.tar"
MANIFEST = "manifest.json"
PREFIX = "portal-"
PARTIAL = ".partial"
# pg_dump waits this long for a table lock (a migration holding one) before it gives up.
LOCK_WAIT_MS = 120_000
# Keys of Django's OPTIONS that are not libpq connection parameters.
_DJANGO_OPTIONS = {"isolation_level", "server_side_binding", "assume_role", "pool"}
_VERSION = re.compile(r"\(PostgreSQL\) (\d+)")
# `pg_restore --list` lines: "id; tableoid oid SCHEMA - name owner", "... TABLE schema name owner".
_TOC_SCHEMA = re.compile(r"^\d+; \d+ \d+ (?:SCHEMA - |TABLE )(\S+) ")


class BackupError(Exception):
    """A backup or restore that cannot go on; the message says why and what to do."""


# --- where the database is ---------------------------------------------------------------


@dataclass(frozen=True)
class Database:
    """Connection parameters of the configured database (or another on the same server)."""

    name: str
    params: dict[str, str] = field(default_factory=dict)
    password: str = ""

    @classmethod
    def configured(cls, name: str | None = None) -> Database:
        config = connections["default"].settings_dict
        params = {
            "host": config.get("HOST") or "",
            "port": str(config.get("PORT") or ""),
            "user": config.get("USER") or "",
        }
        for key, value in (config.get("OPTIONS") or {}).items():
            if key not in _DJANGO_OPTIONS:
                params[key] = str(value)
        params = {key: value for key, value in params.items() if value}
        return cls(name or config["NAME"], params, config.get("PASSWORD") or "")

    def conninfo(self, dbname: str | None = None, *, settings: str = "") -> str:
        """A libpq connection string, without the password (it goes in PGPASSWORD);
        ``settings`` ("-c name=value ...") are added to the session's options."""
        params = dict(self.params)
        if settings:
            params["options"] = f"{params.get('options', '')} {settings}".strip()
        return make_conninfo(dbname=dbname or self.name, **params)

    def environ(self) -> dict[str, str]:
        env = dict(os.environ)
        if self.password:
            env["PGPASSWORD"] = self.password
        return env

    def connect(self, dbname: str | None = None, **kwargs) -> psycopg.Connection:
        return psycopg.connect(self.conninfo(dbname), password=self.password or None, **kwargs)


# --- the PostgreSQL tools of the server's version ----------------------------------------


def _tool_candidates(name: str) -> list[Path]:
    places = sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)
    places += sorted(glob.glob("/usr/pgsql-*/bin"), reverse=True)
    places += os.environ.get("PATH", "").split(os.pathsep)
    spec = importlib.util.find_spec("pgserver")  # the embedded server ships its own tools
    if spec and spec.origin:
        places.append(str(Path(spec.origin).parent / "pginstall" / "bin"))
    found, seen = [], set()
    for place in places:
        path = Path(place or ".") / name
        if path.is_file() and os.access(path, os.X_OK) and path.resolve() not in seen:
            seen.add(path.resolve())
            found.append(path)
    return found


def _tool_major(path: Path) -> int | None:
    try:
        out = subprocess.run([str(path), "--version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = _VERSION.search(out.stdout)
    return int(match.group(1)) if match else None


def pg_tool(name: str, major: int) -> Path:
    """``pg_dump`` or ``pg_restore`` of PostgreSQL ``major`` (the server's): another major
    version either refuses the server or writes an archive the server's tools cannot read."""
    others = []
    for path in _tool_candidates(name):
        version = _tool_major(path)
        if version == major:
            return path
        others.append(f"{version or '?'} ({path})")
    raise BackupError(
        f"No {name} of PostgreSQL {major} (the server's version) was found; "
        f"found: {', '.join(others) or 'none'}. Install PostgreSQL {major}'s client tools "
        f"(Debian: apt install postgresql-client-{major}) or put their bin directory on PATH."
    )


def _server_major(conn: psycopg.Connection) -> int:
    return conn.info.server_version // 10000


def _run(args: list[str], database: Database, what: str) -> str:
    result = subprocess.run(args, capture_output=True, text=True, env=database.environ())
    if result.returncode != 0:
        detail = result.stderr.strip() or result.stdout.strip()
        hint = ""
        if "max_locks_per_transaction" in detail or "out of shared memory" in detail:
            hint = (
                " pg_dump and pg_restore lock every table of every account at once: raise"
                " max_locks_per_transaction in postgresql.conf and restart PostgreSQL."
            )
        raise BackupError(f"{what} failed: {detail}{hint}")
    return result.stdout


# --- backup ----------------------------------------------------------------------------


@dataclass
class BackupReport:
    path: Path
    schemas: list[str]
    dump_bytes: int
    media: dict
    seconds: float
    removed: list[Path] = field(default_factory=list)


def _expected_schemas(conn: psycopg.Connection) -> list[str]:
    """public, the account template (if there is one) and every account's schema."""
    accounts = [
        row[0]
        for row in conn.execute(
            sql.SQL("SELECT schema_name FROM public.{}").format(
                sql.Identifier(Account._meta.db_table)
            )
        )
    ]
    template = conn.execute(
        "SELECT nspname FROM pg_namespace WHERE nspname = %s", [settings.TENANT_BASE_SCHEMA]
    ).fetchall()
    return sorted({"public", *accounts, *(row[0] for row in template)})


def _dumped_schemas(pg_restore: Path, dump: Path, database: Database) -> set[str]:
    """Schemas the archive creates or has tables in, from its table of contents."""
    listing = _run([str(pg_restore), "--list", str(dump)], database, "Reading the dump")
    schemas = set()
    for line in listing.splitlines():
        if match := _TOC_SCHEMA.match(line):
            schemas.add(match.group(1))
    return schemas


def local_media_root() -> Path | None:
    """The private files' directory, or None when storage is not the local disk (S3)."""
    storage = storages["default"]
    return Path(storage.location) if isinstance(storage, FileSystemStorage) else None


def _archive_media(root: Path, target: Path, skip: Path) -> dict:
    files = size = 0
    with tarfile.open(target, "w") as tar:
        for folder, dirs, names in os.walk(root):
            dirs.sort()
            if Path(folder).resolve().is_relative_to(skip.resolve()):
                dirs[:] = []  # a backup written inside MEDIA_ROOT does not archive itself
                continue
            for name in sorted(names):
                path = Path(folder) / name
                if path.is_symlink() or not path.is_file():
                    continue
                try:
                    info = tar.gettarinfo(path, arcname=path.relative_to(root).as_posix())
                    with open(path, "rb") as handle:
                        tar.addfile(info, handle)
                except FileNotFoundError:  # deleted since the walk (a recording deleted now)
                    continue
                files, size = files + 1, size + info.size
    return {"files": files, "bytes": size}


def _storage_name() -> str:
    return "local" if local_media_root() else type(storages["default"]).__name__


def create_backup(directory: Path, *, include_media: bool = True, keep: int = 0) -> BackupReport:
    """Writes ``directory/portal-<UTC time>/`` (see the module's docstring)."""
    started = time.monotonic()
    database = Database.configured()
    stamp = timezone.now().strftime("%Y%m%dT%H%M%SZ")
    final = directory / f"{PREFIX}{stamp}"
    partial = directory / f"{PREFIX}{stamp}{PARTIAL}"
    if final.exists():
        raise BackupError(f"{final} already exists; wait a second and run the backup again.")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True, mode=0o700)  # personal data: for the backup's owner only
    try:
        with database.connect() as conn:
            # The snapshot pg_dump reads, exported so that the schemas it must contain
            # are listed from the same instant.
            conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
            snapshot = conn.execute("SELECT pg_export_snapshot()").fetchone()[0]
            schemas = _expected_schemas(conn)
            major = _server_major(conn)
            server_version = conn.execute("SHOW server_version").fetchone()[0]
            pg_dump, pg_restore = pg_tool("pg_dump", major), pg_tool("pg_restore", major)
            dump = partial / DUMP
            _run(
                [str(pg_dump), "--format=custom", f"--file={dump}", f"--snapshot={snapshot}",
                 f"--lock-wait-timeout={LOCK_WAIT_MS}", f"--dbname={database.conninfo()}"],
                database, "pg_dump",
            )  # fmt: skip
            conn.rollback()
        missing = sorted(set(schemas) - _dumped_schemas(pg_restore, dump, database))
        if missing:
            raise BackupError(f"The dump lacks schemas {', '.join(missing)}; nothing was kept.")
        root = local_media_root()
        media: dict = {"included": False, "storage": _storage_name()}
        if include_media and root is not None:
            media.update(included=True, **_archive_media(root, partial / MEDIA, partial))
        manifest = {
            "format": FORMAT,
            "created_at": timezone.now().isoformat(),
            "database": database.name,
            "server_version": server_version,
            "pg_major": major,
            "schemas": schemas,
            "accounts": len(set(schemas) - {"public", settings.TENANT_BASE_SCHEMA}),
            "media": media,
        }
        (partial / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
        partial.rename(final)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    removed = _prune(directory, keep) if keep else []
    return BackupReport(
        final, schemas, (final / DUMP).stat().st_size, media, time.monotonic() - started, removed
    )


def _prune(directory: Path, keep: int) -> list[Path]:
    """Removes all but the ``keep`` newest whole backups in ``directory``."""
    whole = sorted(
        path for path in directory.glob(f"{PREFIX}*")
        if path.is_dir() and not path.name.endswith(PARTIAL) and (path / MANIFEST).exists()
    )  # fmt: skip
    old = whole[:-keep]
    for path in old:
        shutil.rmtree(path)
    return old


# --- restore ---------------------------------------------------------------------------


@dataclass
class RestoreReport:
    database: str
    created: bool
    emptied: list[str]
    schemas: list[str]
    media_files: int
    media_root: Path | None
    seconds: float


def read_manifest(folder: Path) -> dict:
    path = folder / MANIFEST
    if not path.is_file() or not (folder / DUMP).is_file():
        raise BackupError(
            f"{folder} is not a backup made by `manage.py backup` (it needs {MANIFEST} and {DUMP})."
        )
    manifest = json.loads(path.read_text())
    if manifest.get("format") != FORMAT:
        raise BackupError(f"{folder} has backup format {manifest.get('format')!r}, not {FORMAT}.")
    return manifest


def _connect_or_create(database: Database, create: bool) -> tuple[psycopg.Connection, bool]:
    try:
        return database.connect(autocommit=True), False
    except psycopg.OperationalError as exc:
        failure = exc
    if not create:
        raise BackupError(
            f"Cannot connect to database {database.name!r}: {str(failure).strip()}. If it does "
            "not exist, pass --create to create it."
        )
    admin = None
    for maintenance in ("postgres", "template1"):
        try:
            admin = database.connect(maintenance, autocommit=True)
            break
        except psycopg.OperationalError:
            continue
    if admin is None:
        raise BackupError(f"Cannot connect to database {database.name!r}: {failure}")
    with admin:
        exists = admin.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", [database.name]
        ).fetchone()
        if exists:  # it is there: the failure was something else (a password, a permission)
            raise BackupError(f"Cannot connect to database {database.name!r}: {failure}")
        try:
            admin.execute(
                sql.SQL("CREATE DATABASE {} TEMPLATE template0").format(
                    sql.Identifier(database.name)
                )
            )
        except psycopg.Error as exc:
            raise BackupError(f"Cannot create database {database.name!r}: {exc}") from None
    return database.connect(autocommit=True), True


def _contents(conn: psycopg.Connection) -> dict[str, int]:
    """Schemas a restore would collide with, and how many tables, views... each holds."""
    rows = conn.execute(
        "SELECT n.nspname, count(c.oid) FROM pg_namespace n"
        " LEFT JOIN pg_class c ON c.relnamespace = n.oid"
        " WHERE n.nspname <> 'information_schema' AND n.nspname NOT LIKE 'pg\\_%'"
        " GROUP BY n.nspname"
    ).fetchall()
    return {name: count for name, count in rows if name != "public" or count}


def _empty(conn: psycopg.Connection, schemas: list[str]) -> None:
    """Drops every schema, one transaction each (one for all would lock every table of
    every account at once), and gives back an empty public."""
    conn.execute("SET lock_timeout = '10s'")
    for schema in schemas:
        try:
            conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))
        except psycopg.errors.LockNotAvailable:
            raise BackupError(
                f"Another session holds locks in schema {schema!r}: stop the web server, "
                "workers, beat and call engines, then run the restore again."
            ) from None
    conn.execute("CREATE SCHEMA IF NOT EXISTS public")


def _media_members(folder: Path) -> list[tarfile.TarInfo]:
    """The archive's files, each a plain relative path (nothing outside the root)."""
    if not (folder / MEDIA).is_file():
        return []
    members = []
    with tarfile.open(folder / MEDIA) as tar:
        for member in tar:
            path = PurePosixPath(member.name)
            if not member.isfile():
                continue
            if path.is_absolute() or ".." in path.parts:
                raise BackupError(f"{MEDIA} holds an unsafe path {member.name!r}; not restored.")
            members.append(member)
    return members


def _extract_media(folder: Path, members: list[tarfile.TarInfo], root: Path) -> None:
    with tarfile.open(folder / MEDIA) as tar:
        for member in members:
            target = root.joinpath(*PurePosixPath(member.name).parts)
            target.parent.mkdir(parents=True, exist_ok=True)
            temporary = target.with_name(target.name + ".restoring")
            with tar.extractfile(member) as source, open(temporary, "wb") as out:
                shutil.copyfileobj(source, out)
            os.replace(temporary, target)


def restore_backup(
    folder: Path,
    *,
    dbname: str | None = None,
    create: bool = False,
    force: bool = False,
    include_media: bool = True,
) -> RestoreReport:
    """Restores ``folder`` into the configured database (or ``dbname`` on the same server).

    Refuses a database that holds anything, and files that would overwrite others, unless
    ``force``: then it drops every schema of that database first and overwrites the files.
    """
    started = time.monotonic()
    manifest = read_manifest(folder)
    database = Database.configured(dbname)
    members = _media_members(folder) if include_media else []
    root = local_media_root()
    if members and root is None:
        raise BackupError(
            f"This backup holds {len(members)} files but storage here is "
            f"{_storage_name()}, not the local disk: copy the files of {MEDIA} to the bucket "
            "yourself and pass --no-media."
        )
    clashes = [m.name for m in members if root is not None and (root / m.name).exists()]
    conn, created = _connect_or_create(database, create)
    with conn:
        major = _server_major(conn)
        if manifest["pg_major"] > major:
            raise BackupError(
                f"The backup comes from PostgreSQL {manifest['pg_major']}; database "
                f"{database.name!r} is on PostgreSQL {major}. Restore into PostgreSQL "
                f"{manifest['pg_major']} or newer."
            )
        pg_restore = pg_tool("pg_restore", major)
        contents = _contents(conn)
        if contents and not force:
            raise BackupError(
                f"Database {database.name!r} is not empty ({len(contents)} schemas, "
                f"{sum(contents.values())} tables and other relations); restore will not "
                "overwrite it. Restore into a new database (--dbname NAME --create), or pass "
                "--force to DROP every schema in it first."
            )
        if clashes and not force:
            raise BackupError(
                f"{len(clashes)} files of the backup already exist under {root} (e.g. "
                f"{clashes[0]}); pass --force to overwrite them, or --no-media."
            )
        if contents:
            _empty(conn, sorted(contents))
    # A commit per statement, thousands of them with many accounts: not waiting for each
    # one's WAL flush halves the time, and a restore cut short is run again anyway.
    fast = database.conninfo(settings="-c synchronous_commit=off")
    _run(
        [str(pg_restore), "--no-owner", "--no-privileges", "--exit-on-error",
         f"--dbname={fast}", str(folder / DUMP)],
        database, "pg_restore",
    )  # fmt: skip
    with database.connect(autocommit=True) as conn:
        present = {row[0] for row in conn.execute("SELECT nspname FROM pg_namespace")}
        missing = sorted(set(manifest["schemas"]) - present)
        if missing:
            raise BackupError(f"After pg_restore, schemas {', '.join(missing)} are missing.")
        conn.execute("ANALYZE")  # pg_restore brings no planner statistics
    if members and root is not None:
        _extract_media(folder, members, root)
    return RestoreReport(
        database=database.name,
        created=created,
        emptied=sorted(contents),
        schemas=manifest["schemas"],
        media_files=len(members),
        media_root=root if members else None,
        seconds=time.monotonic() - started,
    )
