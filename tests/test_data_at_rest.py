"""Data at rest: every file toolwatch writes is its user's alone, API keys are kept only as salted
fingerprints, and a user's or a session's calls can be deleted from every table.

Regression: 567 of 571 paths under the store and the spool were 0755 or 0644.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import openai

from tests.fakes.upstreams import FakeUpstream
from tests.harness import TOOLS, ServeProcess, run_cli


async def traffic(url: str, user: str, session: str, key: str = "sk-x") -> None:
    async with openai.AsyncOpenAI(base_url=f"{url}/openai/v1", api_key=key, max_retries=0) as client:
        for i in range(2):
            await client.chat.completions.create(
                model="gpt-test",
                messages=[{"role": "user", "content": f"{session} {i}"}],
                tools=TOOLS,  # type: ignore[arg-type]
                extra_headers={"Toolwatch-User-Id": user, "Toolwatch-Session-Id": session},
            )


async def test_every_directory_is_0700_and_every_file_0600(tmp_path: Path, tool_fake: FakeUpstream) -> None:
    os.umask(0o022)  # whatever the umask toolwatch was started with
    serve = await ServeProcess(tmp_path, tool_fake.url).start()
    try:
        await traffic(serve.url, "u1", "s1")
        await serve.wait_for(lambda s: s.get("calls_written", 0) == 2)
    finally:
        assert await serve.stop() == 0
    rc, _, err = await run_cli("calls", "--store", serve.store, cwd=tmp_path)  # a reader touches the store too
    assert rc == 0, err
    checked, wrong = 0, []
    for root in (tmp_path / "store", tmp_path / "spool"):
        for path in [root, *root.rglob("*")]:
            mode = stat.S_IMODE(path.lstat().st_mode)
            if path.is_symlink():
                continue
            want = 0o700 if path.is_dir() else 0o600
            checked += 1
            if mode != want:
                wrong.append(f"{oct(mode)} {path.relative_to(tmp_path)}")
    assert checked > 50
    assert wrong == []


async def test_keys_are_fingerprinted_and_users_and_sessions_can_be_deleted(
    tmp_path: Path, tool_fake: FakeUpstream
) -> None:
    serve = await ServeProcess(tmp_path, tool_fake.url).start()
    try:
        await traffic(serve.url, "alice", "s-alice", key="sk-alice-key")
        await traffic(serve.url, "bob", "s-bob", key="sk-bob-key")
        await traffic(serve.url, "bob", "s-bob-2", key="sk-bob-key")
        await serve.wait_for(lambda s: s.get("calls_written", 0) == 6)
        rc, out, err = await run_cli("delete", "--user", "alice", "--json", "--store", serve.store)
        assert rc == 0, err  # through the running server
        assert json.loads(out)["calls"] == 2
    finally:
        assert await serve.stop() == 0
    rc, out, err = await run_cli("delete", "--session", "h:s-bob-2", "--store", serve.store)  # in the store itself
    assert rc == 0 and "deleted 2 call(s)" in out, err
    rc, out, err = await run_cli("calls", "--json", "--store", serve.store)
    rows = json.loads(out)
    assert {r["session_id"] for r in rows} == {"s-bob"}
    probe = (
        "import sys, clickhouse_connect;"
        "c = clickhouse_connect.get_client(dsn=sys.argv[1], database='toolwatch');"
        "print([tuple(r) for r in c.query('SELECT key_fingerprint, count() FROM llm_calls GROUP BY 1').result_rows]);"
        "print([c.command(f'SELECT count() FROM {t}') for t in ('tool_calls', 'tool_results', 'bodies')])"
    )
    import asyncio
    import sys

    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", probe, serve.store, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out_b, err_b = await proc.communicate()
    lines = out_b.decode().splitlines()
    assert lines, err_b.decode()
    [(fingerprint, n)] = eval(lines[0])  # noqa: S307 - our own probe's output
    assert n == 2 and len(fingerprint) == 16 and "bob" not in fingerprint
    assert eval(lines[1]) == [2, 0, 2]  # noqa: S307 - tool calls and bodies of bob's one session; no results sent
    salt = (tmp_path / "store" / "toolwatch.salt").read_bytes()
    assert len(salt) == 64 and stat.S_IMODE((tmp_path / "store" / "toolwatch.salt").stat().st_mode) == 0o600
