"""What the fake LLM servers share: scripted steps and their parsing (``scripts``), the scripting,
recording and lifecycle of a fake (``base.ScriptedFake``), and the HTTP plumbing with the
``/_fake/*`` admin routes (``http_base``). ``fake_dashscope`` and ``fake_openai`` add their wire formats."""

from zqyy_assets.testing.fake_common.admin import FAKE_API_KEY, FakeAdmin
from zqyy_assets.testing.fake_common.base import ScriptedFake
from zqyy_assets.testing.fake_common.http_base import FakeHandler, FakeHttpServer
from zqyy_assets.testing.fake_common.scripts import DEFAULT_MODEL, AppScript, Step, parse_step

__all__ = [
    "DEFAULT_MODEL",
    "FAKE_API_KEY",
    "AppScript",
    "FakeAdmin",
    "FakeHandler",
    "FakeHttpServer",
    "ScriptedFake",
    "Step",
    "parse_step",
]
