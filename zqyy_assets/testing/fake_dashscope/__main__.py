"""``python -m zqyy_assets.testing.fake_dashscope --port 8765 [--print-env]``."""

from zqyy_assets.testing.fake_dashscope.cli import main

if __name__ == "__main__":
    main()
