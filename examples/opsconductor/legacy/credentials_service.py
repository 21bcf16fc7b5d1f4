"""The legacy credentials service:
GET /credentials/{credential_id}, GET /targets/{target_id}/credentials,
GET /health.  Credentials 1..20 belong to targets 1..5 (four each).

Run: /usr/bin/python3 -m uvicorn --app-dir examples/opsconductor/legacy \
         credentials_service:app --port 3004  (or run.py credentials --port=N)
"""

from fastapi import Depends
from fastapi.responses import JSONResponse

import legacy_common as lc


def create_app():
    app = lc.make_app("credentials", "OpsConductor credentials service (legacy)")
    current_user = lc.user_dependency(app)

    @app.get("/credentials/{credential_id}")
    async def credential(credential_id: lc.PathId,
                         user: str = Depends(current_user)):
        lc.need(credential_id, lc.N_CREDENTIALS, "Credential")
        return JSONResponse(lc.credential_obj(credential_id))

    @app.get("/targets/{target_id}/credentials")
    async def target_credentials(target_id: lc.PathId,
                                 user: str = Depends(current_user)):
        lc.need(target_id, lc.N_TARGETS, "Target")
        return JSONResponse({"credentials": [
            lc.credential_obj(c) for c in range(1, lc.N_CREDENTIALS + 1)
            if (c - 1) % lc.N_TARGETS + 1 == target_id]})
    return app


app = create_app()
