"""When the ``dashscope`` SDK is imported: not with the code location (every sensor tick and run
launch would pay ~0.8 s), but in the background as soon as a run sets up a dashscope resource."""

import subprocess
import sys
import textwrap


def _run(code: str) -> str:
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_loading_the_definitions_does_not_import_the_sdk() -> None:
    assert _run("""
        import sys
        import zqyy_assets.definitions
        print("dashscope" in sys.modules)
    """) == "False"


def test_a_dashscope_resource_starts_the_import_in_the_background_at_setup() -> None:
    assert _run("""
        import sys, time
        import dagster as dg
        from zqyy_assets.defs.llm.resources import LLMResource

        offline = LLMResource(database_url="postgresql://unused", provider="offline")
        with dg.build_resources({"llm": offline}):
            pass
        quiet = "dashscope" not in sys.modules

        online = LLMResource(database_url="postgresql://unused", provider="dashscope", api_key="sk-test")
        with dg.build_resources({"llm": online}):
            deadline = time.monotonic() + 60
            while "dashscope.app" not in sys.modules and time.monotonic() < deadline:
                time.sleep(0.05)
        print(quiet, "dashscope.app" in sys.modules)
    """) == "True True"
