"""Re-apply the tool-result outcome rules to stored results, after the rules changed.

A result whose rule verdict changed is inserted again with the same id, the new ``error_rule`` and a newer
``classified_at``; readers take the latest verdict per result (``argMax(error_rule, classified_at)``) and
the table's merges drop the older row. The session rows holding changed results are rewritten too
(``store/sessions.py``); the recorder that keeps them must forget its cached copies.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from clickhouse_connect.driver.client import Client

from toolwatch.recorder.outcomes import Classifier
from toolwatch.store.sessions import rewrite_results

_PAGE = 50_000


@dataclass(frozen=True)
class Reclassified:
    examined: int
    changed: int
    sessions: tuple[str, ...] = ()  # the session rows rewritten with the new verdicts


def reclassify(client: Client, classifier: Classifier, since: dt.datetime) -> Reclassified:
    columns = client.query("SELECT * FROM tool_results LIMIT 0").column_names
    examined = changed = 0
    verdicts: dict[str, bool] = {}
    after = ""
    now = dt.datetime.now(dt.UTC)
    while True:
        page = client.query(
            "SELECT * FROM tool_results WHERE ts >= {since:DateTime64(3)} AND toString(result_uid) > {after:String}"
            " ORDER BY toString(result_uid), classified_at DESC LIMIT 1 BY result_uid LIMIT {page:UInt32}",
            parameters={"since": since, "after": after, "page": _PAGE},
        ).result_rows
        if not page:
            break
        idx = {c: i for i, c in enumerate(columns)}
        updates = []
        for row in page:
            verdict = classifier.classify(row[idx["content"]], row[idx["is_error"]])
            if verdict != row[idx["error_rule"]]:
                new = list(row)
                new[idx["error_rule"]] = verdict
                new[idx["classified_at"]] = now
                updates.append(new)
        if updates:
            client.insert("tool_results", updates, column_names=list(columns))
            verdicts.update({u[idx["tool_call_id"]]: bool(u[idx["error_rule"]]) for u in updates})
        examined += len(page)
        changed += len(updates)
        after = str(page[-1][idx["result_uid"]])
    return Reclassified(examined, changed, tuple(rewrite_results(client, verdicts)))
