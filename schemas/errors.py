"""toolwatch's own exceptions. Nothing here is ever raised into a proxied request.

ToolwatchError
├── ConfigError          a setting is missing or invalid (startup stops with its message)
├── SpoolError           the spool directory cannot be used
│   └── FrameError       a spool frame is truncated or does not decode
└── StoreError           ClickHouse cannot be reached or refused a statement
    └── StoreLockedError the embedded store is held by another process (a running toolwatch)
"""


class ToolwatchError(Exception):
    pass


class ConfigError(ToolwatchError):
    pass


class SpoolError(ToolwatchError):
    pass


class FrameError(SpoolError):
    pass


class StoreError(ToolwatchError):
    pass


class StoreLockedError(StoreError):
    pass
