"""The legacy notification service: POST /notifications,
GET /health.

`{"type": "email" | "slack", "destination": str, "payload": {...},
"template_id": int?}`; an email payload needs "subject" and "body", a Slack
payload "message".  Templates 1..10 exist.  Nothing is delivered: each
notification is recorded in memory as "sent" (GET /_debug/sent with
LEGACY_DEBUG_ROUTES=1; not part of the legacy API).

Run: /usr/bin/python3 -m uvicorn --app-dir examples/opsconductor/legacy \
         notification_service:app --port 3009  (or run.py notification --port=N)
"""

import collections
import threading
from typing import Literal, Optional

from fastapi import Depends
from fastapi.responses import JSONResponse
from pydantic import BaseModel, StrictStr, validator

import legacy_common as lc

MAX_KEPT = 10000


class EmailPayload(BaseModel):
    subject: StrictStr
    body: StrictStr


class SlackPayload(BaseModel):
    message: StrictStr


class Notification(BaseModel):
    type: Literal["email", "slack"]
    destination: StrictStr
    payload: lc.StrictDict
    template_id: Optional[lc.LaxInt] = None

    @validator("payload")
    def payload_fits_type(cls, v, values):
        # A ValidationError raised here is reported at body.payload.<field>.
        kind = {"email": EmailPayload, "slack": SlackPayload}.get(values.get("type"))
        if kind is not None:
            kind.parse_obj(v)
        return v


def create_app():
    app = lc.make_app("notification", "OpsConductor notification service (legacy)")
    current_user = lc.user_dependency(app)
    lock = threading.Lock()
    sent = {"next": 0, "kept": collections.deque(maxlen=MAX_KEPT),
            "by_type": collections.Counter()}

    @app.post("/notifications")
    async def notify(body: Notification, user: str = Depends(current_user)):
        template_id = body.template_id
        if template_id is not None:
            lc.need(template_id, lc.N_TEMPLATES, "Template")
        with lock:
            sent["next"] += 1
            nid = sent["next"]
            reply = {"notification_id": nid, "status": "sent",
                     "type": body.type, "destination": body.destination,
                     "template_id": template_id, "sent_at": lc.now_iso()}
            sent["kept"].append(dict(reply, payload=body.payload,
                                     requested_by=user))
            sent["by_type"][body.type] += 1
        return JSONResponse(reply)

    if lc.debug_routes_enabled():
        @app.get("/_debug/sent")
        async def debug_sent():
            with lock:
                return JSONResponse({"count": sent["next"],
                                     "by_type": dict(sent["by_type"]),
                                     "recent": list(sent["kept"])[-100:]})
    return app


app = create_app()
