"""`alexnet serve`: every service setting is an option, and an ALEXNET_* variable.

Options win over the environment. The API key is the exception: it is read from
ALEXNET_API_KEY only, since a command line is visible to every user of the machine.
"""

from __future__ import annotations

from service.settings import Settings


class Serve(Settings):
    """Serve the exported model over HTTP (REST /v1, KServe v2, /metrics, the web page)."""

    def cli_cmd(self) -> None:
        from service.main import serve

        status = serve(self)
        if status:
            raise SystemExit(status)
