"""The alerts stage: regression alerts after model switches, drift, and threshold rules.

``method.py`` is the decision function (pure; the alert object is ``schemas/alerts.py``), ``evaluate.py`` the
evaluator the recorder process runs every ``alert_interval`` (it keeps per-session indicators, switch
events, alert versions and spent budgets in ClickHouse), with its facts and constants in ``facts.py`` and the
switch-regression tests and drift in ``baselines.py``, ``notify.py`` delivers state changes to webhooks
through the outbox, ``simulate.py`` drives the decision function as the recorder does (tests, bench).
"""
