"""The chat UI's server, attacked from outside: a DNS-rebinding page (another Host header), file
uploads the app has no use for, and telemetry it promised not to send.

One real gradio server (``ui.app.launch`` on a free loopback port, in this process) serves the
whole module; the requests are real HTTP requests to it.
"""

from __future__ import annotations

import socket
from types import SimpleNamespace

import httpx
import pytest

pytestmark = pytest.mark.integration


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """(base url, port, gradio's upload folder, telemetry calls made while building and launching)."""
    import gradio.analytics

    from ui.app import launch

    uploads = tmp_path_factory.mktemp("gradio-uploads")
    calls: list[str] = []
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GRADIO_TEMP_DIR", str(uploads))
        # every way gradio reaches its vendor: the version check, initiated/launched analytics
        mp.setattr(gradio.analytics, "version_check", lambda: calls.append("version_check"))
        mp.setattr(gradio.analytics, "_do_analytics_request", lambda **kw: calls.append(str(kw.get("topic"))))
        port = free_port()
        demo = launch(SimpleNamespace(catalog=None), host="127.0.0.1", port=port, prevent_thread_lock=True, quiet=True)
        try:
            yield f"http://127.0.0.1:{port}", port, uploads, calls, demo
        finally:
            demo.close()


def test_a_request_naming_another_host_is_refused(served):
    url, port, *_ = served
    assert httpx.get(url + "/", timeout=30).status_code == 200
    assert httpx.get(url + "/", headers={"Host": f"localhost:{port}"}, timeout=30).status_code == 200
    for host in (f"evil.example:{port}", "evil.example", f"127.0.0.1.evil.example:{port}"):
        refused = httpx.get(url + "/", headers={"Host": host}, timeout=30)
        assert refused.status_code == 400, host
        assert "not this local app's address" in refused.text and f"http://127.0.0.1:{port}/" in refused.text
    # the API routes too, not only the page
    config = httpx.get(url + "/config", headers={"Host": "evil.example"}, timeout=30)
    assert config.status_code == 400


def test_the_upload_route_refuses_files_and_keeps_nothing(served):
    url, _, uploads, *_ = served
    big = b"\0" * (5 * 1024 * 1024)
    for route in ("/gradio_api/upload", "/gradio_api/upload/"):
        for body in (big, b"tiny"):
            r = httpx.post(url + route, files={"files": ("a.bin", body)}, timeout=60)
            assert r.status_code == 403, (route, r.status_code, r.text[:200])
            assert "takes no file uploads" in r.text
    assert [p for p in uploads.rglob("*") if p.is_file()] == []


def test_the_ui_sends_no_telemetry(served):
    import os

    *_, calls, demo = served
    assert calls == []  # nothing at Blocks creation nor at launch
    assert demo.analytics_enabled is False and os.environ.get("GRADIO_ANALYTICS_ENABLED") == "False"
    assert demo.max_file_size == 1024  # and gradio's own limit, should a route slip past the guard


def test_the_guard_reads_host_headers_as_browsers_send_them():
    from ui.app import host_name, is_loopback

    assert host_name("127.0.0.1:7860") == "127.0.0.1" and host_name("[::1]:7860") == "::1"
    assert host_name("LocalHost") == "localhost" and host_name("evil.example:80") == "evil.example"
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.4")
