"""The legacy jobs service: POST /jobs/{job_id}/run,
GET /jobs/{job_id}, GET /jobs/{job_id}/status, GET /health.

Jobs 1..100 exist (deterministic objects, legacy_common.job_obj).  A run is
queued and kept in memory (the run state; the orpc jobs service that
replaces this one keeps it in SQLite); the job objects and statuses do not
change, exactly as in the fixture.  Tokens are checked with the auth
service's GET /verify (AUTH_SERVICE_URL).

Run: /usr/bin/python3 -m uvicorn --app-dir examples/opsconductor/legacy \
         jobs_service:app --port 3006     (or run.py jobs --port=N)
"""

import collections
import threading
from typing import Optional

from fastapi import Body, Depends
from fastapi.responses import JSONResponse

import legacy_common as lc

MAX_KEPT = 10000        # executions kept in memory (oldest dropped)


def create_app():
    app = lc.make_app("jobs", "OpsConductor jobs service (legacy)")
    current_user = lc.user_dependency(app)
    lock = threading.Lock()
    runs = {"next": 0, "kept": collections.OrderedDict(),
            "by_job": collections.Counter()}

    @app.post("/jobs/{job_id}/run")
    async def run_job(job_id: lc.PathId, user: str = Depends(current_user),
                      payload: Optional[lc.StrictDict] = Body(None)):
        lc.need(job_id, lc.N_JOBS, "Job")
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
        return JSONResponse(lc.job_obj(job_id))

    @app.get("/jobs/{job_id}/status")
    async def job_status(job_id: lc.PathId, user: str = Depends(current_user)):
        lc.need(job_id, lc.N_JOBS, "Job")
        return JSONResponse(lc.job_status_obj(job_id))

    if lc.debug_routes_enabled():
        # Not part of the legacy API: for tests and the demo.
        @app.get("/_debug/executions")
        async def debug_executions():
            with lock:
                recent = list(runs["kept"].values())[-100:]
                return JSONResponse({
                    "count": runs["next"],
                    "by_job": {str(k): v for k, v in sorted(runs["by_job"].items())},
                    "recent": recent})
    return app


app = create_app()
