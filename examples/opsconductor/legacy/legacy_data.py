"""The legacy OpsConductor data, deterministic per id: one definition for
both legacy stand-ins, the FastAPI services (legacy_common.py) and the
one-process test fixture (tests/legacy/legacy_server.py), so that their
objects cannot drift apart.  Standard library only (the fixture runs on
/usr/bin/python3 with nothing else).
"""

import datetime

N_JOBS, N_CREDENTIALS, N_TARGETS, N_USERS, N_TEMPLATES = 100, 20, 5, 50, 10
EPOCH = datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc)

JOB_STATUSES = ("completed", "running", "failed", "pending", "cancelled")
JOB_TYPES = ("command", "script", "file_transfer", "inventory")
CRED_TYPES = ("ssh_key", "password", "api_token", "winrm")
ROLES = ("admin", "operator", "viewer")


def iso(hours):
    t = EPOCH + datetime.timedelta(hours=hours)
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def now_iso():
    return datetime.datetime.now(datetime.timezone.utc).strftime(
        "%Y-%m-%dT%H:%M:%S.%fZ")


def job_obj(jid):
    return {
        "id": jid,
        "name": "job-%d" % jid,
        "description": "Nightly maintenance job #%d \u2014 \"quoted\" \\ path" % jid
                       if jid == 1 else "Maintenance job #%d" % jid,
        "job_type": JOB_TYPES[jid % len(JOB_TYPES)],
        "status": JOB_STATUSES[jid % len(JOB_STATUSES)],
        "enabled": jid % 7 != 0,
        "schedule": "0 %d * * *" % (jid % 24) if jid % 3 else None,
        "target_ids": [t for t in range(1, N_TARGETS + 1) if (jid + t) % 3 == 0],
        "parameters": {"retries": jid % 4, "timeout_s": 30.5,
                       "tags": ["nightly", "group-%d" % (jid % 5)]},
        "created_by": (jid % N_USERS) + 1,
        "created_at": iso(jid),
        "updated_at": iso(jid * 2 + 1),
    }


def job_status_obj(jid):
    return {"job_id": jid, "status": JOB_STATUSES[jid % len(JOB_STATUSES)],
            "updated_at": iso(jid * 2 + 1)}


def credential_obj(cid):
    ctype = CRED_TYPES[cid % len(CRED_TYPES)]
    obj = {
        "id": cid,
        "name": "credential-%d" % cid,
        "credential_type": ctype,
        "username": "svc-%d" % cid,
        "target_id": (cid - 1) % N_TARGETS + 1,
        "created_at": iso(100 + cid),
    }
    if ctype == "ssh_key":
        obj["private_key"] = ("-----BEGIN OPENSSH PRIVATE KEY-----\nFAKE%d\n"
                              "-----END OPENSSH PRIVATE KEY-----\n" % cid)
    elif ctype == "api_token":
        obj["token"] = "tok-%d-not-a-real-secret" % cid
    else:
        obj["password"] = "s3cret-%d" % cid
    return obj


def user_obj(uid):
    return {
        "id": uid,
        "username": "user%d" % uid,
        "email": "user%d@example.com" % uid,
        "full_name": "Zo\u00eb Example-%d" % uid if uid == 1 else "User %d" % uid,
        "role": ROLES[uid % len(ROLES)],
        "is_active": uid % 10 != 0,
        "created_at": iso(200 + uid),
        "last_login": iso(300 + uid) if uid % 2 else None,
    }


def preferences_obj(uid):
    return {
        "user_id": uid,
        "email_enabled": True,
        "email_address": "user%d@example.com" % uid,
        "slack_enabled": uid % 2 == 0,
        "slack_channel": "#ops-%d" % uid if uid % 2 == 0 else None,
        "notify_on": ["job_failed", "job_completed"] if uid % 3 else ["job_failed"],
        "quiet_hours": {"start": "22:00", "end": "07:00", "timezone": "UTC"}
                       if uid % 4 == 0 else None,
        "digest_frequency_hours": 24,
    }
