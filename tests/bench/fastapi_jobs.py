"""GET /jobs/{job_id} as today's FastAPI services serve it: the peer of
orpc's legacy route in tests/bench/legacy.sh.  Same JSON as
orpc-legacy-bench-server's GetJob, same bearer-token check (only
"bench-token" passes), one uvicorn worker:

  /usr/bin/python3 -m uvicorn fastapi_jobs:app --port N   (from this folder)
"""

from typing import Optional

from fastapi import FastAPI, Header, HTTPException

app = FastAPI()


@app.get("/jobs/{job_id}")
async def get_job(job_id: int, authorization: Optional[str] = Header(None)):
    if authorization != "Bearer bench-token":
        raise HTTPException(status_code=401, detail="Invalid or expired token")
    return {"id": job_id, "name": "nightly-backup", "status": "succeeded",
            "owner": "ops", "schedule": "0 2 * * *"}
