"""Interop client: drives a running Waygate server with the official Python MCP SDK (mcp 2.x).

usage: python_client.py URL MODE
  MODE auto     high-level mcp.Client (default mode "auto"): server/discover, stateless 2026-07-28
  MODE session  low-level mcp.ClientSession + initialize(): session era 2025-11-25

Exercises one tool of every example plugin, the notes resource and prompt, and an invalid call.
If WAYGATE_KEY is set, every request carries `Authorization: Bearer $WAYGATE_KEY`, and a second
connection without it must be refused with HTTP 401. The key is never printed.
Prints one line per check ("ok ..." / "FAIL ...") and exits 0 only when every check passed.
"""

import asyncio
import importlib.metadata
import json
import os
import sys
import traceback
import uuid

import httpx2
import mcp
import mcp.types
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

TIMEOUT_SECONDS = 30
KEY = os.environ.get("WAYGATE_KEY") or None  # never printed
EXPECTED_TOOLS = [
    "echo__echo", "echo__test",
    "data-processor__process_data",
    "text-analyzer__analyze",
    "notes__add_note", "notes__list_notes", "notes__search_notes", "notes__delete_note",
    "regex-tools__regex_test", "regex-tools__regex_extract", "regex-tools__regex_replace",
]
failures: list[str] = []


def check(name: str, ok: bool, detail: object = "") -> bool:
    """Records and prints one check; `detail` says what was seen when it failed."""
    if ok:
        print(f"ok   {name}", flush=True)
    else:
        failures.append(name)
        print(f"FAIL {name}: got {detail!r}"[:2000], flush=True)
    return ok


def text_of(result) -> str:
    """The text of a result's first content item (tool result or prompt message)."""
    return result.content[0].text if result.content and hasattr(result.content[0], "text") else ""


def payload(result) -> object:
    """A tool's JSON answer: structuredContent, which must match the JSON text content."""
    if result.structured_content is None:
        return json.loads(text_of(result))
    check("  structuredContent matches text content",
          json.loads(text_of(result)) == result.structured_content, text_of(result))
    return result.structured_content


async def call_ok(client, tool: str, arguments: dict):
    """Calls a tool and checks that it did not fail."""
    result = await client.call_tool(tool, arguments)
    check(f"{tool} succeeded", not result.is_error, text_of(result))
    return result


async def all_resources(client) -> list:
    """Every page of resources/list (the server pages at 100; earlier runs may have added notes)."""
    resources, cursor = [], None
    while True:
        if isinstance(client, mcp.Client):
            page = await client.list_resources(cursor=cursor)
        else:
            page = await client.list_resources(params=mcp.types.PaginatedRequestParams(cursor=cursor))
        resources += page.resources
        cursor = page.next_cursor
        if not cursor:
            return resources


async def exercise(client, run: str) -> None:
    """The checks shared by both modes; `client` is an mcp.Client or an mcp.ClientSession."""
    tools = {tool.name for tool in (await client.list_tools()).tools}
    missing = [name for name in EXPECTED_TOOLS if name not in tools]
    check(f"tools/list has all {len(EXPECTED_TOOLS)} example tools", not missing, f"missing {missing}")

    # echo
    message = f"hello from {run}"
    result = await call_ok(client, "echo__echo", {"message": message})
    check("echo__echo returns the message", text_of(result) == message, text_of(result))

    # data-processor: describe and convert a small CSV
    csv = "name,age\nAda,36\nAlan,41\n"
    result = await call_ok(client, "data-processor__process_data",
                           {"input": csv, "format": "csv", "output_format": "json"})
    report = payload(result)
    check("process_data parses the CSV",
          report.get("valid") is True and report.get("records") == 2
          and report.get("fields") == ["name", "age"], report)
    converted = json.loads(report.get("output") or "null")
    check("process_data converts it to JSON",
          isinstance(converted, list) and len(converted) == 2 and converted[0].get("name") == "Ada",
          report.get("output"))

    # text-analyzer
    text = "The quick brown fox jumps over the lazy dog. The dog sleeps."
    analysis = payload(await call_ok(client, "text-analyzer__analyze", {"text": text}))
    check("analyze counts 12 words in 2 sentences",
          analysis.get("words") == 12 and analysis.get("sentences") == 2, analysis)

    # regex-tools (JavaScript plugin)
    found = payload(await call_ok(client, "regex-tools__regex_test",
                                  {"pattern": r"(\d+)-(\d+)", "text": "call 555-1234 now"}))
    match = found.get("match") or {}
    check("regex_test finds the match",
          found.get("matched") is True and match.get("match") == "555-1234"
          and match.get("groups") == ["555", "1234"] and match.get("index") == 5, found)

    # notes: add a note with a tag unique to this run, then find it
    tag = f"interop-{uuid.uuid4().hex[:8]}"
    title = f"Interop note {run}"
    added = payload(await call_ok(client, "notes__add_note",
                                  {"title": title, "body": "Written by python_client.py.", "tags": [tag]}))
    note_id, uri = added.get("id"), added.get("uri")
    check("add_note returns an id and its notes:// URI",
          isinstance(note_id, int) and uri == f"notes://note/{note_id}", added)
    listed = payload(await call_ok(client, "notes__list_notes", {"tag": tag}))
    notes = listed.get("notes") or []
    check("list_notes shows the new note",
          listed.get("total") == 1 and [(n.get("id"), n.get("title")) for n in notes] == [(note_id, title)],
          listed)

    # resources: the note is listed and readable
    resources = await all_resources(client)
    check("resources/list has the note", any(str(r.uri) == uri for r in resources),
          [str(r.uri) for r in resources])
    read = await client.read_resource(uri)
    contents = read.contents[0] if read.contents else None
    check("resources/read returns the note as Markdown",
          contents is not None and str(contents.uri) == uri and contents.mime_type == "text/markdown"
          and f"# {title}" in getattr(contents, "text", ""), read.contents)

    # prompts
    prompts = {p.name: p for p in (await client.list_prompts()).prompts}
    check("prompts/list has notes__summarize_notes", "notes__summarize_notes" in prompts, list(prompts))
    prompt = await client.get_prompt("notes__summarize_notes", {"tag": tag})
    first = prompt.messages[0] if prompt.messages else None
    check("prompts/get notes__summarize_notes quotes the note",
          first is not None and first.role == "user" and title in getattr(first.content, "text", ""),
          prompt.messages)

    # invalid arguments are a tool error, not a protocol error
    result = await client.call_tool("echo__echo", {"msg": 42})
    check("echo__echo without `message` is a tool error (isError)", result.is_error is True,
          (result.is_error, text_of(result)))


def http_client(seen: list, key: str | None = KEY) -> httpx2.AsyncClient:
    """An HTTP client that notes (method, status, Mcp-Session-Id, MCP-Protocol-Version) per exchange
    and, given a key, sends `Authorization: Bearer <key>` on every request (POST, GET, DELETE)."""
    async def record(response: httpx2.Response) -> None:
        request = response.request
        seen.append((request.method, response.status_code, response.headers.get("mcp-session-id"),
                     request.headers.get("mcp-protocol-version")))
    return httpx2.AsyncClient(headers={"Authorization": f"Bearer {key}"} if key else None,
                              timeout=httpx2.Timeout(10, read=TIMEOUT_SECONDS),
                              event_hooks={"response": [record]})


async def run_auto(url: str) -> None:
    seen: list = []
    async with http_client(seen) as http:
        async with mcp.Client(streamable_http_client(url, http_client=http)) as client:  # mode="auto"
            session = client.session
            check("auto mode used server/discover (stateless era)",
                  session.discover_result is not None and session.initialize_result is None,
                  (session.discover_result, session.initialize_result))
            check("negotiated protocol version is 2026-07-28",
                  client.protocol_version == "2026-07-28", client.protocol_version)
            await exercise(client, "python-auto")
    check("no Mcp-Session-Id and MCP-Protocol-Version 2026-07-28 on every request",
          all(sid is None and version == "2026-07-28" for _, _, sid, version in seen), seen)


async def run_session(url: str) -> None:
    seen: list = []
    async with http_client(seen) as http:
        async with streamable_http_client(url, http_client=http) as (read, write):
            async with mcp.ClientSession(read, write) as session:
                init = await session.initialize()
                check("session mode used initialize (session era)",
                      session.initialize_result is not None and session.discover_result is None,
                      (session.initialize_result, session.discover_result))
                check("negotiated protocol version is 2025-11-25",
                      init.protocol_version == "2025-11-25", init.protocol_version)
                check("initialize answered with an Mcp-Session-Id", bool(seen and seen[0][2]), seen[:1])
                await exercise(session, "python-session")
    deletes = [status for method, status, _, _ in seen if method == "DELETE"]
    check("closing sent DELETE, answered 2xx", len(deletes) == 1 and 200 <= deletes[0] < 300, seen[-3:])


async def run_without_key(url: str, mode: str) -> None:
    """With WAYGATE_KEY set: the same connection without the key must be refused with 401."""
    seen: list = []
    try:
        async with http_client(seen, key=None) as http:
            if mode == "auto":
                async with mcp.Client(streamable_http_client(url, http_client=http)) as client:
                    await client.list_tools()
            else:
                async with streamable_http_client(url, http_client=http) as (read, write):
                    async with mcp.ClientSession(read, write) as session:
                        await session.initialize()
    except Exception as error:  # noqa: BLE001 - anyio wraps the SDK's error in an ExceptionGroup
        errors = leaves(error)
        statuses = [status for _, status, _, _ in seen]
        refused = (any(isinstance(e, httpx2.HTTPStatusError) and e.response.status_code == 401 for e in errors)
                   or (any(isinstance(e, MCPError) for e in errors) and bool(statuses)
                       and all(status == 401 for status in statuses)))
        check("without the key the server refuses the connection with 401", refused,
              (describe(error), statuses))
    else:
        check("without the key the server refuses the connection with 401", False, ("connected", seen))


def leaves(error: BaseException) -> list[BaseException]:
    """The exceptions inside (nested) exception groups."""
    if isinstance(error, BaseExceptionGroup):
        return [leaf for e in error.exceptions for leaf in leaves(e)]
    return [error]


def describe(error: BaseException) -> str:
    """Flattens exception groups (anyio task groups wrap the SDK's errors) into one line."""
    if isinstance(error, BaseExceptionGroup):
        return "; ".join(describe(e) for e in error.exceptions)
    return f"{type(error).__name__}: {error}"


async def main() -> int:
    if len(sys.argv) != 3 or sys.argv[2] not in ("auto", "session"):
        print(__doc__, file=sys.stderr)
        return 2
    url, mode = sys.argv[1], sys.argv[2]
    print(f"python mcp {importlib.metadata.version('mcp')} mode={mode} url={url} key={'set' if KEY else 'unset'}",
          flush=True)
    try:
        async with asyncio.timeout(TIMEOUT_SECONDS):
            await (run_auto(url) if mode == "auto" else run_session(url))
            if KEY:
                await run_without_key(url, mode)
    except TimeoutError:
        check(f"finished within {TIMEOUT_SECONDS} s", False, "timed out")
    except BaseException as error:  # noqa: BLE001 - any SDK error is a failed check
        traceback.print_exc(file=sys.stderr)
        check("no exception", False, describe(error))
    passed = not failures
    print(f"{'PASS' if passed else 'FAIL'}: python {mode}" + ("" if passed else f" ({len(failures)} failed)"))
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
