"""``python -m zqyy_assets.testing.fake_openai --port 8766 [--print-env]``."""

from zqyy_assets.testing.fake_openai.cli import main

if __name__ == "__main__":
    main()
