"""The declared state of endpoints and deployments, kept in the workspace database.

The control plane reads and writes this; backends report what actually runs. Everything a user
declares is validated (deploy/spec.py) before a row is written, and every change is one transaction.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import sqlalchemy as sa

from scorehost.deploy.keys import new_key
from scorehost.deploy.spec import (
    AuthMode,
    DeploymentSpec,
    EndpointSpec,
    Traffic,
    check_resource_name,
    check_text_pairs,
)
from scorehost.errors import InvalidSpec, ResourceExists, UnknownResource
from scorehost.registry import database, locking
from scorehost.registry.database import metadata
from scorehost.timestamps import iso_utc

__all__ = ["DeployState", "DeploymentRecord", "EndpointRecord", "KeySlot"]

KeySlot = Literal["primary", "secondary"]

endpoints = sa.Table(
    "endpoints",
    metadata,
    sa.Column("name", sa.String(32), primary_key=True),
    sa.Column("auth", sa.String(8), nullable=False),
    sa.Column("description", sa.Text, nullable=False),
    sa.Column("primary_key", sa.String(64), nullable=False),
    sa.Column("secondary_key", sa.String(64), nullable=False),
    sa.Column("mirror", sa.String(32), nullable=True),
    sa.Column("mirror_percent", sa.Integer, nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
    sa.Column("tags", sa.Text, nullable=False, server_default="{}"),  # JSON object; added by migration 3
)

deployments = sa.Table(
    "deployments",
    metadata,
    sa.Column("endpoint", sa.String(32), sa.ForeignKey("endpoints.name"), primary_key=True),
    sa.Column("name", sa.String(32), primary_key=True),
    sa.Column("spec", sa.Text, nullable=False),  # DeploymentSpec.to_json, with model references pinned
    sa.Column("generation", sa.Integer, nullable=False),  # +1 on every update: what a rolling update replaces
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
)

traffic = sa.Table(
    "traffic",
    metadata,
    sa.Column("endpoint", sa.String(32), primary_key=True),
    sa.Column("deployment", sa.String(32), primary_key=True),
    sa.Column("percent", sa.Integer, nullable=False),
    sa.ForeignKeyConstraint(["endpoint", "deployment"], ["deployments.endpoint", "deployments.name"]),
)

runtime = sa.Table(
    "deployment_runtime",
    metadata,
    sa.Column("endpoint", sa.String(32), primary_key=True),
    sa.Column("deployment", sa.String(32), primary_key=True),
    sa.Column("generation", sa.Integer, primary_key=True),
    sa.Column("record", sa.Text, nullable=False),  # the backend's record, to find the instances again
    sa.Column("updated_at", sa.Float, nullable=False),
)


# Declared is not serving: an update declares generation N+1 while N keeps serving until N+1 is ready, and a
# restarted control plane must bring back N (not the declared, perhaps broken, N+1) first.
serving = sa.Table(
    "deployment_serving",
    metadata,
    sa.Column("endpoint", sa.String(32), primary_key=True),
    sa.Column("deployment", sa.String(32), primary_key=True),
    sa.Column("generation", sa.Integer, nullable=True),  # the last generation that became ready
    sa.Column("spec", sa.Text, nullable=True),  # its spec, to start it again when it is gone (a reboot)
    sa.Column("failed_generation", sa.Integer, nullable=True),  # the last generation that could not start
    sa.Column("failure", sa.Text, nullable=True),  # and why
    sa.Column("updated_at", sa.Float, nullable=False),
)


def _create_v1(conn: sa.Connection) -> None:
    for table in (endpoints, deployments, traffic, runtime):
        conn.execute(sa.schema.CreateTable(table))


def _create_v2(conn: sa.Connection) -> None:
    conn.execute(sa.schema.CreateTable(serving))


def _add_v3(conn: sa.Connection) -> None:
    if "tags" in {column["name"] for column in sa.inspect(conn).get_columns("endpoints")}:
        return  # made by this version's _create_v1, which already has the column
    conn.execute(sa.text("ALTER TABLE endpoints ADD COLUMN tags TEXT NOT NULL DEFAULT '{}'"))


MIGRATIONS = (_create_v1, _create_v2, _add_v3)


@dataclass(frozen=True, slots=True)
class EndpointRecord:
    """A stored endpoint: its declaration, keys, traffic and mirror."""

    name: str
    auth: AuthMode
    description: str
    primary_key: str
    secondary_key: str
    traffic: Mapping[str, int]
    mirror: str | None
    mirror_percent: int
    created_at: float
    tags: Mapping[str, str] = field(default_factory=dict)

    def to_json(self, *, keys: bool = False) -> dict[str, Any]:
        """Keys only when asked for: listings and logs never carry them."""
        data: dict[str, Any] = {
            "name": self.name,
            "auth": str(self.auth),
            "description": self.description,
            "tags": dict(self.tags),
            "traffic": dict(self.traffic),
            "mirror": {"deployment": self.mirror, "percent": self.mirror_percent} if self.mirror else None,
            "created_at": iso_utc(self.created_at),
        }
        if keys:
            data["keys"] = {"primary": self.primary_key, "secondary": self.secondary_key}
        return data


@dataclass(frozen=True, slots=True)
class DeploymentRecord:
    """A stored deployment: its declaration and generation, and the generation that serves (not always the same)."""

    spec: DeploymentSpec
    generation: int  # declared: the latest update's
    created_at: float
    updated_at: float
    serving_generation: int | None = None  # the last one that became ready; None before any did
    serving_spec: DeploymentSpec | None = None
    failed_generation: int | None = None
    failure: str | None = None

    @property
    def declared_failure(self) -> str | None:
        """Why the declared generation could not start, if it could not (the serving one may be older)."""
        return self.failure if self.failed_generation == self.generation else None

    def to_json(self) -> dict[str, Any]:
        return {
            **self.spec.to_json(),
            "generation": self.generation,
            "serving_generation": self.serving_generation,
            "failure": self.declared_failure,
            "created_at": iso_utc(self.created_at),
            "updated_at": iso_utc(self.updated_at),
        }


class DeployState:
    """Endpoints, deployments and traffic in the workspace database (shared with the registry)."""

    def __init__(self, engine: sa.Engine) -> None:
        self._engine = engine
        database.migrate(engine)  # schema_info and the registry's tables: deployments reference models
        database.migrate(engine, key="deploy_schema_version", steps=MIGRATIONS, what="endpoints")

    # -- endpoints -------------------------------------------------------------------------------

    @locking.retried
    def create_endpoint(self, spec: EndpointSpec) -> EndpointRecord:
        """Store a new endpoint with fresh keys; ResourceExists when the name is taken."""
        now = time.time()
        row = {
            "name": spec.name,
            "auth": str(spec.auth),
            "description": spec.description,
            "tags": json.dumps(dict(spec.tags)),
            "primary_key": new_key(),
            "secondary_key": new_key(),
            "mirror": None,
            "mirror_percent": 0,
            "created_at": now,
            "updated_at": now,
        }
        with database.writing(self._engine, lock=_lock(spec.name)) as conn:
            # Inserted unless there: the loser of a race (where the dialect has no lock) gets the same answer.
            if not locking.insert_new(conn, endpoints, row):
                raise ResourceExists(f"endpoint {spec.name!r} exists already; `scorehost endpoints show {spec.name}`")
            return self._endpoint(conn, spec.name)

    @locking.retried
    def describe_endpoint(
        self, name: str, *, description: str | None = None, tags: Mapping[str, str] | None = None
    ) -> EndpointRecord:
        """Change what an endpoint says about itself (its description, its tags); nothing that routes."""
        if tags is not None:  # `false` or `[]` from a caller is refused, not taken for "no change"
            check_text_pairs("tags", tags)
        values: dict[str, Any] = {"updated_at": time.time()}
        if description is not None:
            values["description"] = description
        if tags is not None:
            values["tags"] = json.dumps(dict(tags))
        with database.writing(self._engine, lock=_lock(name)) as conn:
            self._endpoint(conn, name)
            conn.execute(endpoints.update().where(endpoints.c.name == name).values(**values))
            return self._endpoint(conn, name)

    def endpoint(self, name: str) -> EndpointRecord:
        """The endpoint `name`; UnknownResource lists the ones that exist."""
        with database.read_only(self._engine) as conn:
            return self._endpoint(conn, name)

    def endpoints(self) -> list[EndpointRecord]:
        """Every endpoint, by name."""
        with database.read_only(self._engine) as conn:
            names = conn.execute(sa.select(endpoints.c.name).order_by(endpoints.c.name)).scalars().all()
            return [self._endpoint(conn, name) for name in names]

    @locking.retried
    def delete_endpoint(self, name: str) -> list[DeploymentRecord]:
        """Remove the endpoint and its deployments' rows; returns the deployments (for the backend to stop)."""
        with database.writing(self._engine, lock=_lock(name)) as conn:
            self._endpoint(conn, name)
            removed = self._deployments(conn, name)
            for table in (traffic, runtime, serving):
                conn.execute(table.delete().where(table.c.endpoint == name))
            conn.execute(deployments.delete().where(deployments.c.endpoint == name))
            conn.execute(endpoints.delete().where(endpoints.c.name == name))
        return removed

    @locking.retried
    def regenerate_key(self, name: str, slot: KeySlot) -> EndpointRecord:
        """A new key in one slot; the other keeps working, so clients can move without downtime."""
        if slot not in ("primary", "secondary"):
            raise InvalidSpec(f"the key to regenerate is 'primary' or 'secondary', not {slot!r}")
        with database.writing(self._engine, lock=_lock(name)) as conn:
            self._endpoint(conn, name)
            conn.execute(
                endpoints.update()
                .where(endpoints.c.name == name)
                .values({f"{slot}_key": new_key(), "updated_at": time.time()})
            )
            return self._endpoint(conn, name)

    @locking.retried
    def set_traffic(self, name: str, split: Traffic) -> EndpointRecord:
        """Replace the endpoint's traffic split and mirror (every deployment named must exist)."""
        with database.writing(self._engine, lock=_lock(name)) as conn:
            self._endpoint(conn, name)
            split.check_against([record.spec.name for record in self._deployments(conn, name)])
            conn.execute(traffic.delete().where(traffic.c.endpoint == name))
            rows = [{"endpoint": name, "deployment": d, "percent": p} for d, p in split.split.items()]
            if rows:
                conn.execute(traffic.insert(), rows)
            conn.execute(
                endpoints.update()
                .where(endpoints.c.name == name)
                .values(mirror=split.mirror, mirror_percent=split.mirror_percent, updated_at=time.time())
            )
            return self._endpoint(conn, name)

    # -- deployments -----------------------------------------------------------------------------

    @locking.retried
    def put_deployment(self, spec: DeploymentSpec, *, create: bool) -> DeploymentRecord:
        """Create (generation 1) or update (generation + 1) a deployment; the first one gets 100% traffic."""
        now = time.time()
        body = json.dumps(spec.to_json())
        with database.writing(self._engine, lock=_lock(spec.endpoint)) as conn:
            self._endpoint(conn, spec.endpoint)
            found = self._deployment_row(conn, spec.endpoint, spec.name)
            exists = ResourceExists(
                f"deployment {spec.name!r} exists already behind {spec.endpoint!r}; "
                f"`scorehost deployments update {spec.endpoint} {spec.name} ...` changes it"
            )
            if create and found is not None:
                raise exists
            if not create and found is None:
                self._deployment(conn, spec.endpoint, spec.name)  # raises UnknownResource with the list
            if found is None:
                first = not self._deployments(conn, spec.endpoint)
                row = {"endpoint": spec.endpoint, "name": spec.name, "spec": body, "generation": 1}
                if not locking.insert_new(conn, deployments, {**row, "created_at": now, "updated_at": now}):
                    raise exists
                if first:
                    conn.execute(traffic.insert().values(endpoint=spec.endpoint, deployment=spec.name, percent=100))
            else:
                conn.execute(
                    deployments.update()
                    .where(deployments.c.endpoint == spec.endpoint, deployments.c.name == spec.name)
                    .values(spec=body, generation=deployments.c.generation + 1, updated_at=now)
                )
            return self._deployment(conn, spec.endpoint, spec.name)

    def deployment(self, endpoint: str, name: str) -> DeploymentRecord:
        """One deployment; UnknownResource lists the endpoint's deployments."""
        with database.read_only(self._engine) as conn:
            return self._deployment(conn, endpoint, name)

    def deployments(self, endpoint: str) -> list[DeploymentRecord]:
        """The endpoint's deployments, by name."""
        with database.read_only(self._engine) as conn:
            self._endpoint(conn, endpoint)
            return self._deployments(conn, endpoint)

    @locking.retried
    def delete_deployment(self, endpoint: str, name: str) -> DeploymentRecord:
        """Remove a deployment that takes no traffic (move its traffic first, or it is refused)."""
        with database.writing(self._engine, lock=_lock(endpoint)) as conn:
            record = self._deployment(conn, endpoint, name)
            share = conn.execute(
                sa.select(traffic.c.percent).where(traffic.c.endpoint == endpoint, traffic.c.deployment == name)
            ).scalar()
            others = [r.spec.name for r in self._deployments(conn, endpoint) if r.spec.name != name]
            if share and others:
                raise InvalidSpec(
                    f"{endpoint}/{name} takes {share}% of the traffic; move it first "
                    f"(`scorehost endpoints traffic {endpoint} {others[0]}=100`)"
                )
            for table in (traffic, runtime, serving):
                conn.execute(table.delete().where(table.c.endpoint == endpoint, table.c.deployment == name))
            conn.execute(deployments.delete().where(deployments.c.endpoint == endpoint, deployments.c.name == name))
            conn.execute(
                endpoints.update()
                .where(endpoints.c.name == endpoint, endpoints.c.mirror == name)
                .values(mirror=None, mirror_percent=0)
            )
            return record

    # -- what serves ------------------------------------------------------------------------------------

    @locking.retried
    def mark_serving(self, spec: DeploymentSpec, generation: int) -> None:
        """`generation` became ready and takes the deployment's traffic; an older one never replaces a newer."""
        with database.writing(self._engine, lock=_lock(spec.endpoint)) as conn:
            found = self._serving_row(conn, spec.endpoint, spec.name)
            if found is not None and found.generation is not None and found.generation > generation:
                return
            values: dict[str, Any] = {"generation": generation, "spec": json.dumps(spec.to_json())}
            if found is not None and (found.failed_generation or 0) <= generation:
                values.update(failed_generation=None, failure=None)
            self._upsert(conn, spec.endpoint, spec.name, values)

    @locking.retried
    def mark_failed(self, endpoint: str, name: str, generation: int, reason: str) -> None:
        """`generation` could not start, for `reason` (shown until a newer generation becomes ready)."""
        with database.writing(self._engine, lock=_lock(endpoint)) as conn:
            if self._deployment_row(conn, endpoint, name) is None:
                return  # deleted meanwhile
            found = self._serving_row(conn, endpoint, name)
            if found is not None and (found.generation or 0) >= generation:
                return
            self._upsert(conn, endpoint, name, {"failed_generation": generation, "failure": reason})

    def _serving_row(self, conn: sa.Connection, endpoint: str, name: str) -> sa.Row[Any] | None:
        return conn.execute(
            sa.select(serving).where(serving.c.endpoint == endpoint, serving.c.deployment == name)
        ).first()

    def _upsert(self, conn: sa.Connection, endpoint: str, name: str, values: dict[str, Any]) -> None:
        row = {"endpoint": endpoint, "deployment": name, **values, "updated_at": time.time()}
        locking.upsert(conn, serving, row, keys=("endpoint", "deployment"))

    # -- backend records ---------------------------------------------------------------------------

    @locking.retried
    def save_runtime(self, endpoint: str, name: str, generation: int, record: Mapping[str, Any]) -> None:
        """Remember how to find a running generation again (after a control-plane restart)."""
        with database.writing(self._engine, lock=_lock(endpoint)) as conn:
            row = {"endpoint": endpoint, "deployment": name, "generation": generation}
            row |= {"record": json.dumps(record), "updated_at": time.time()}
            locking.upsert(conn, runtime, row, keys=("endpoint", "deployment", "generation"))

    def runtimes(self) -> list[tuple[str, str, int, dict[str, Any]]]:
        """Every remembered (endpoint, deployment, generation, record)."""
        with database.read_only(self._engine) as conn:
            rows = conn.execute(
                sa.select(runtime.c.endpoint, runtime.c.deployment, runtime.c.generation, runtime.c.record)
            )
            return [(endpoint, name, generation, json.loads(record)) for endpoint, name, generation, record in rows]

    @locking.retried
    def forget_runtime(self, endpoint: str, name: str, generation: int) -> None:
        """The generation was stopped: nothing to find again."""
        with database.writing(self._engine, lock=_lock(endpoint)) as conn:
            conn.execute(
                runtime.delete().where(
                    runtime.c.endpoint == endpoint, runtime.c.deployment == name, runtime.c.generation == generation
                )
            )

    # -- queries -----------------------------------------------------------------------------------

    def _endpoint_row(self, conn: sa.Connection, name: str) -> sa.Row[Any] | None:
        return conn.execute(sa.select(endpoints).where(endpoints.c.name == name)).first()

    def _endpoint(self, conn: sa.Connection, name: str) -> EndpointRecord:
        row = self._endpoint_row(conn, name)
        if row is None:
            check_resource_name("endpoint", name)
            known = conn.execute(sa.select(endpoints.c.name).order_by(endpoints.c.name)).scalars().all()
            listed = f"endpoints: {', '.join(known)}" if known else "there are no endpoints yet"
            raise UnknownResource(f"no endpoint named {name!r} ({listed}); `scorehost endpoints create {name}`")
        split = {
            deployment: percent
            for deployment, percent in conn.execute(
                sa.select(traffic.c.deployment, traffic.c.percent)
                .where(traffic.c.endpoint == name)
                .order_by(traffic.c.deployment)
            )
        }
        return EndpointRecord(
            name=row.name,
            auth=AuthMode(row.auth),
            description=row.description,
            primary_key=row.primary_key,
            secondary_key=row.secondary_key,
            traffic=split,
            mirror=row.mirror,
            mirror_percent=row.mirror_percent,
            created_at=row.created_at,
            tags=json.loads(row.tags or "{}"),
        )

    def _deployment_row(self, conn: sa.Connection, endpoint: str, name: str) -> sa.Row[Any] | None:
        return conn.execute(_DEPLOYMENTS.where(deployments.c.endpoint == endpoint, deployments.c.name == name)).first()

    def _deployment(self, conn: sa.Connection, endpoint: str, name: str) -> DeploymentRecord:
        self._endpoint(conn, endpoint)
        row = self._deployment_row(conn, endpoint, name)
        if row is None:
            check_resource_name("deployment", name)
            known = [record.spec.name for record in self._deployments(conn, endpoint)]
            listed = f"deployments: {', '.join(known)}" if known else "it has no deployments yet"
            raise UnknownResource(f"endpoint {endpoint!r} has no deployment {name!r} ({listed})")
        return _record(row)

    def _deployments(self, conn: sa.Connection, endpoint: str) -> list[DeploymentRecord]:
        rows = conn.execute(_DEPLOYMENTS.where(deployments.c.endpoint == endpoint).order_by(deployments.c.name))
        return [_record(row) for row in rows]


def _lock(endpoint: str) -> str:
    """What a write transaction locks: an endpoint with its deployments, traffic and records are written together."""
    return f"endpoint:{endpoint}"


# A deployment's row with what serves it (none before any generation became ready).
_DEPLOYMENTS = sa.select(
    deployments,
    serving.c.generation.label("serving_generation"),
    serving.c.spec.label("serving_spec"),
    serving.c.failed_generation,
    serving.c.failure,
).select_from(
    deployments.outerjoin(
        serving, sa.and_(serving.c.endpoint == deployments.c.endpoint, serving.c.deployment == deployments.c.name)
    )
)


def _record(row: sa.Row[Any]) -> DeploymentRecord:
    return DeploymentRecord(
        DeploymentSpec.from_json(json.loads(row.spec)),
        row.generation,
        row.created_at,
        row.updated_at,
        serving_generation=row.serving_generation,
        serving_spec=DeploymentSpec.from_json(json.loads(row.serving_spec)) if row.serving_spec else None,
        failed_generation=row.failed_generation,
        failure=row.failure,
    )
