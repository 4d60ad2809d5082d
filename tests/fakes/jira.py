"""A fake Jira Data Center REST API v2 on 127.0.0.1: what ``mcp-atlassian`` calls when its
``JIRA_URL`` is a local address (the user's Bearer token forwarded as it is).

Only tokens registered with ``grant()`` are accepted (anything else gets Jira's 401), and
every request is recorded with the token it carried, so a test can prove whose token
reached Jira. State lives in memory; ``reset()`` empties it between tests."""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from tests.fakes.server import JSONHandler, LocalHTTPServer, load

SHAPES = load("jira_dc_rest_v2_shapes.json")
API = "/rest/api/2"


@dataclass(frozen=True)
class Seen:
    method: str
    path: str
    token: str  # the Bearer token the request carried ("" without one)
    body: Any = None


def _fill(value: Any, **names: str) -> Any:
    """The shape with its ``{origin}``-style placeholders filled in."""
    text = json.dumps(value)
    for name, replacement in names.items():
        text = text.replace("{" + name + "}", replacement)
    return json.loads(text)


class FakeJira(LocalHTTPServer):
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.reset()
        super().__init__()

    def reset(self) -> None:
        with self._lock:
            self.users: dict[str, str] = {}  # token -> user name
            self.issues: dict[str, dict[str, Any]] = {}
            self.seen: list[Seen] = []
            self._next_id = 10000

    def grant(self, token: str, name: str) -> None:
        """Accept ``token`` as the Jira user ``name``."""
        with self._lock:
            self.users[token] = name

    def add_issue(self, project: str, summary: str, *, reporter: str = "alice") -> str:
        with self._lock:
            return self._create(project, summary, "Task", reporter)

    def tokens_for(self, predicate: Any) -> set[str]:
        """The tokens of the recorded requests ``predicate(seen)`` picks."""
        return {seen.token for seen in self.seen if predicate(seen)}

    def _create(self, project: str, summary: str, issue_type: str, reporter: str) -> str:
        self._next_id += 1
        key = f"{project}-{sum(1 for k in self.issues if k.startswith(project + '-')) + 1}"
        self.issues[key] = {
            "id": str(self._next_id),
            "key": key,
            "project": project,
            "summary": summary,
            "issuetype": issue_type,
            "reporter": reporter,
            "status": "To Do",
        }
        return key

    def _issue_body(self, issue: dict[str, Any]) -> dict[str, Any]:
        origin = self.origin
        status = _fill(SHAPES["status"], origin=origin)
        status["name"] = issue["status"]
        issuetype = _fill(SHAPES["issuetype"], origin=origin)
        issuetype["name"] = issue["issuetype"]
        project = _fill(SHAPES["project"], origin=origin)
        project["key"] = issue["project"]
        reporter = {"name": issue["reporter"], "key": issue["reporter"], "active": True}
        return {
            "expand": "renderedFields,names,schema,operations,editmeta,changelog",
            "id": issue["id"],
            "self": f"{origin}{API}/issue/{issue['id']}",
            "key": issue["key"],
            "fields": {
                "summary": issue["summary"],
                "description": None,
                "status": status,
                "issuetype": issuetype,
                "project": project,
                "priority": _fill(SHAPES["priority"], origin=origin),
                "assignee": None,
                "reporter": {**reporter, "displayName": issue["reporter"].title()},
                "labels": [],
                "created": "2026-11-30T10:00:00.000+0000",
                "updated": "2026-11-30T10:00:00.000+0000",
            },
        }

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(JSONHandler):
            def _answer(self, method: str) -> None:
                url = urlsplit(self.path)
                auth = self.headers.get("Authorization", "")
                token = auth.removeprefix("Bearer ") if auth.startswith("Bearer ") else ""
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"null") if length else None
                with fake._lock:
                    fake.seen.append(Seen(method, url.path, token, body))
                    user = fake.users.get(token)
                    if user is None:
                        self.send_json(
                            401, {"errorMessages": ["You are not authenticated."], "errors": {}}
                        )
                        return
                    status, answer = fake._route(method, url.path, parse_qs(url.query), body, user)
                self.send_json(status, answer) if answer is not None else self._empty(status)

            def _empty(self, status: int) -> None:
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def do_GET(self) -> None:
                self._answer("GET")

            def do_POST(self) -> None:
                self._answer("POST")

            def do_PUT(self) -> None:
                self._answer("PUT")

        return Handler

    def _route(
        self, method: str, path: str, query: dict[str, list[str]], body: Any, user: str
    ) -> tuple[int, Any]:
        origin = self.origin
        path = unquote(path)
        if method == "GET" and path == f"{API}/myself":
            return 200, _fill(
                SHAPES["myself"],
                origin=origin,
                name=user,
                key=f"JIRAUSER-{user}",
                email=f"{user}@example.com",
                display_name=user.title(),
            )
        if method == "GET" and path == f"{API}/field":
            return 200, SHAPES["fields"]
        if method == "GET" and path == f"{API}/search":
            jql = (query.get("jql") or [""])[0]
            wanted = re.search(r"project\s*=\s*\"?(\w+)", jql, re.IGNORECASE)
            issues = [
                self._issue_body(issue)
                for issue in self.issues.values()
                if not wanted or issue["project"] == wanted.group(1).upper()
            ]
            return 200, {
                "expand": "schema,names",
                "startAt": 0,
                "maxResults": 50,
                "total": len(issues),
                "issues": issues,
            }
        if method == "POST" and path == f"{API}/issue":
            fields = (body or {}).get("fields", {})
            project = (fields.get("project") or {}).get("key", "")
            if not project or not fields.get("summary"):
                return 400, {"errorMessages": [], "errors": {"project": "project is required"}}
            key = self._create(
                project, fields["summary"], (fields.get("issuetype") or {}).get("name", ""), user
            )
            created = self.issues[key]
            return 201, {"id": created["id"], "key": key, "self": f"{origin}{API}/issue/{key}"}
        match = re.fullmatch(rf"{API}/issue/([A-Z][A-Z0-9]*-\d+)(/comment|/transitions)?", path)
        if match is None:
            return 404, {"errorMessages": ["Not found."], "errors": {}}
        issue = self.issues.get(match.group(1))
        if issue is None:
            return 404, {"errorMessages": ["Issue Does Not Exist"], "errors": {}}
        if match.group(2) == "/comment":
            return 200, {"startAt": 0, "maxResults": 0, "total": 0, "comments": []}
        if match.group(2) == "/transitions":
            transitions = _fill(SHAPES["transitions"], origin=origin)
            if method == "GET":
                return 200, {"expand": "transitions", "transitions": transitions}
            wanted_id = ((body or {}).get("transition") or {}).get("id")
            target = next((t for t in transitions if t["id"] == str(wanted_id)), None)
            if target is None:
                return 400, {"errorMessages": ["Invalid transition."], "errors": {}}
            issue["status"] = target["to"]["name"]
            return 204, None
        return 200, self._issue_body(issue)
