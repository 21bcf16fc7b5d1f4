"""The legacy user service: GET /users/{user_id},
GET /users/{user_id}/preferences (notification preferences), GET /health.
Users 1..50 exist.

Run: /usr/bin/python3 -m uvicorn --app-dir examples/opsconductor/legacy \
         user_service:app --port 3002      (or run.py user --port=N)
"""

from fastapi import Depends
from fastapi.responses import JSONResponse

import legacy_common as lc


def create_app():
    app = lc.make_app("user", "OpsConductor user service (legacy)")
    current_user = lc.user_dependency(app)

    @app.get("/users/{user_id}")
    async def get_user(user_id: lc.PathId, user: str = Depends(current_user)):
        lc.need(user_id, lc.N_USERS, "User")
        return JSONResponse(lc.user_obj(user_id))

    @app.get("/users/{user_id}/preferences")
    async def preferences(user_id: lc.PathId, user: str = Depends(current_user)):
        lc.need(user_id, lc.N_USERS, "User")
        return JSONResponse(lc.preferences_obj(user_id))
    return app


app = create_app()
