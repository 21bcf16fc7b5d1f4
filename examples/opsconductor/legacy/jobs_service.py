"""The legacy jobs service: POST /jobs/{job_id}/run,
GET /jobs/{job_id}, GET /jobs/{job_id}/status, GET /health.

Jobs 1..100 exist (deterministic objects, legacy_common.job_obj).  By
default a run is queued and kept in memory, and the job objects and
statuses do not change, exactly as in the fixture.

With JOBS_DB=PATH the service shares the jobs database of the orpc jobs
service that replaces it (examples/opsconductor/services/jobs.c, which
creates it and documents the schema), the way a migrating service shares
its database with its successor: a run is an `executions` row, queued,
due after JOBS_RUN_DELAY_MS (default 300, the orpc service's
--run-delay-ms); the orpc service's runner moves it on, and GET
/jobs/{id} and its status read the `jobs` table.  Both generations then
answer the same thing for the same job at the same moment, so a shadow
comparison between them finds nothing, and execution ids never collide.

JOBS_UTC_OFFSET=1 (for the demo) renders GET /jobs/{id}'s updated_at with
"+00:00" where the orpc service writes "Z": the same instant, written
differently, the kind of difference a rewrite brings and a shadow
comparison must catch.

Tokens are checked with the auth service's GET /verify (AUTH_SERVICE_URL).

Run: /usr/bin/python3 -m uvicorn --app-dir examples/opsconductor/legacy \
         jobs_service:app --port 3006     (or run.py jobs --port=N)
"""

import collections
import json
import os
import sqlite3
import threading
import time
from typing import Optional

from fastapi import Body, Depends, HTTPException
from fastapi.responses import JSONResponse

import legacy_common as lc

MAX_KEPT = 10000        # executions kept in memory (oldest dropped)


JOB_COLUMNS = ("id", "name", "description", "job_type", "status", "enabled",
               "schedule", "target_ids", "parameters", "created_by",
               "created_at", "updated_at")


class SharedStore:
    """The orpc jobs service's SQLite database (JOBS_DB), shared.  One
    connection under a lock; WAL and a 5 s busy timeout as the orpc service
    uses, so either side may write while the other reads."""

    def __init__(self, path, run_delay_ms):
        if not os.path.exists(path):
            raise SystemExit("JOBS_DB=%s does not exist: start the orpc jobs "
                             "service (--db=%s) first, it creates it"
                             % (path, path))
        self.db = sqlite3.connect(path, timeout=5.0, isolation_level=None,
                                  check_same_thread=False)
        self.db.execute("PRAGMA journal_mode = WAL")
        version = self.db.execute("PRAGMA user_version").fetchone()[0]
        if version != 1:
            raise SystemExit("JOBS_DB=%s: schema version %d, expected 1"
                             % (path, version))
        self.delay_ms = run_delay_ms
        self.lock = threading.Lock()

    def run(self, job_id, payload, user):
        at = lc.now_iso()
        text = None if payload is None else json.dumps(
            payload, ensure_ascii=False, separators=(",", ":"))
        with self.lock:
            cur = self.db.cursor()
            cur.execute("BEGIN IMMEDIATE")
            try:
                if cur.execute("SELECT 1 FROM jobs WHERE id = ?",
                               (job_id,)).fetchone() is None:
                    cur.execute("ROLLBACK")
                    return None
                cur.execute(
                    "INSERT INTO executions (job_id, status, payload,"
                    " triggered_by, queued_at, next_at_ms)"
                    " VALUES (?, 'queued', ?, ?, ?, ?)",
                    (job_id, text, user, at,
                     int(time.time() * 1000) + self.delay_ms))
                eid = cur.lastrowid
                cur.execute("UPDATE jobs SET status = 'queued',"
                            " updated_at = ? WHERE id = ?", (at, job_id))
                cur.execute("COMMIT")
            except BaseException:
                cur.execute("ROLLBACK")
                raise
        return {"execution_id": eid, "job_id": job_id, "status": "queued",
                "payload": payload, "triggered_by": user, "queued_at": at}

    def job(self, job_id):
        with self.lock:
            row = self.db.execute(
                "SELECT %s FROM jobs WHERE id = ?" % ", ".join(JOB_COLUMNS),
                (job_id,)).fetchone()
        if row is None:
            return None
        obj = dict(zip(JOB_COLUMNS, row))
        obj["enabled"] = bool(obj["enabled"])
        obj["target_ids"] = json.loads(obj["target_ids"])
        obj["parameters"] = json.loads(obj["parameters"])
        return obj

    def status(self, job_id):
        with self.lock:
            row = self.db.execute(
                "SELECT status, updated_at FROM jobs WHERE id = ?",
                (job_id,)).fetchone()
        if row is None:
            return None
        return {"job_id": job_id, "status": row[0], "updated_at": row[1]}

    def recent(self):
        with self.lock:
            count = self.db.execute(
                "SELECT COALESCE(MAX(id), 0) FROM executions").fetchone()[0]
            by_job = self.db.execute(
                "SELECT job_id, COUNT(*) FROM executions GROUP BY job_id"
                " ORDER BY job_id").fetchall()
            rows = self.db.execute(
                "SELECT id, job_id, status, payload, triggered_by, queued_at"
                " FROM executions ORDER BY id DESC LIMIT 100").fetchall()
        recent = [{"execution_id": r[0], "job_id": r[1], "status": r[2],
                   "payload": None if r[3] is None else json.loads(r[3]),
                   "triggered_by": r[4], "queued_at": r[5]}
                  for r in reversed(rows)]
        return {"count": count, "by_job": {str(k): v for k, v in by_job},
                "recent": recent}


def create_app():
    app = lc.make_app("jobs", "OpsConductor jobs service (legacy)")
    current_user = lc.user_dependency(app)
    path = os.environ.get("JOBS_DB")
    utc_offset = lc.env_flag("JOBS_UTC_OFFSET")
    store = SharedStore(path, int(lc.env_float("JOBS_RUN_DELAY_MS", 300))) \
        if path else None
    lock = threading.Lock()
    runs = {"next": 0, "kept": collections.OrderedDict(),
            "by_job": collections.Counter()}

    @app.post("/jobs/{job_id}/run")
    async def run_job(job_id: lc.PathId, user: str = Depends(current_user),
                      payload: Optional[lc.StrictDict] = Body(None)):
        lc.need(job_id, lc.N_JOBS, "Job")
        if store is not None:
            rec = store.run(job_id, payload, user)
            if rec is None:
                raise HTTPException(404, "Job %d not found" % job_id)
            return JSONResponse(rec)
        with lock:
            runs["next"] += 1
            rec = {"execution_id": runs["next"], "job_id": job_id,
                   "status": "queued", "payload": payload,
                   "triggered_by": user, "queued_at": lc.now_iso()}
            runs["kept"][rec["execution_id"]] = rec
            runs["by_job"][job_id] += 1
            if len(runs["kept"]) > MAX_KEPT:
                runs["kept"].popitem(last=False)
        return JSONResponse(rec)

    @app.get("/jobs/{job_id}")
    async def get_job(job_id: lc.PathId, user: str = Depends(current_user)):
        lc.need(job_id, lc.N_JOBS, "Job")
        if store is not None:
            obj = store.job(job_id)
            if obj is None:
                raise HTTPException(404, "Job %d not found" % job_id)
        else:
            obj = lc.job_obj(job_id)
        if utc_offset and obj["updated_at"].endswith("Z"):
            obj["updated_at"] = obj["updated_at"][:-1] + "+00:00"
        return JSONResponse(obj)

    @app.get("/jobs/{job_id}/status")
    async def job_status(job_id: lc.PathId, user: str = Depends(current_user)):
        lc.need(job_id, lc.N_JOBS, "Job")
        if store is not None:
            obj = store.status(job_id)
            if obj is None:
                raise HTTPException(404, "Job %d not found" % job_id)
            return JSONResponse(obj)
        return JSONResponse(lc.job_status_obj(job_id))

    if lc.debug_routes_enabled():
        # Not part of the legacy API: for tests and the demo.
        @app.get("/_debug/executions")
        async def debug_executions():
            if store is not None:
                return JSONResponse(store.recent())
            with lock:
                recent = list(runs["kept"].values())[-100:]
                return JSONResponse({
                    "count": runs["next"],
                    "by_job": {str(k): v for k, v in sorted(runs["by_job"].items())},
                    "recent": recent})
    return app


app = create_app()
