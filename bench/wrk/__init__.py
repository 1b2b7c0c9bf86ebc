"""Shared pieces of the wrk benchmarks (``wrk_overhead.py``, ``soak.py``, ``many_connections.py``).

``chat.lua`` and ``paced.lua`` are the wrk scripts; ``procs.py`` starts the processes and runs wrk;
``roles.py`` holds the one server role ``overhead_roles.py`` does not have (a slow upstream).
"""
