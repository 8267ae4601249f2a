"""A live `instructrec serve` app for tests: uvicorn on a free port of 127.0.0.1, in a thread
of the test process."""

import threading
import time


class LiveServer:
    """``with LiveServer(app) as live``: ``live.url``, ``live.client`` (httpx), ``live.app``."""

    def __init__(self, app):
        import uvicorn

        self.app = app
        config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self):
        import httpx

        self.thread.start()
        wait_for(lambda: self.server.started or not self.thread.is_alive(), "uvicorn to start", 120)
        if not self.server.started:
            raise RuntimeError("uvicorn did not start (see the log above)")
        port = self.server.servers[0].sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        self.client = httpx.Client(base_url=self.url, timeout=120)
        return self

    def __exit__(self, *exc):
        self.client.close()
        self.server.should_exit = True
        self.thread.join(30)


def wait_for(condition, what, seconds=60):
    """Poll ``condition`` until it holds; fail naming ``what`` after ``seconds`` (a guard
    against hanging, not a timing check)."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.01)
