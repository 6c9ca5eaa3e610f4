"""Rewrite serving/openapi.json as the demo's document: `python -m devkit.openapi_template`.

serving/openapi.json is the template serving.http.openapi writes each model's document from, and
is itself the demo's document (tests/serving/test_openapi.py keeps the two equal). After changing
what the module writes per model, run this; edit the file by hand for everything else.
"""

from __future__ import annotations

import json

from serving.config import ServingConfig
from serving.http.openapi import TEMPLATE, document
from serving.inputs.schema import DIAMONDS


def main() -> None:
    """Write the demo's document over the template, keeping its key order and layout."""
    written = json.dumps(document(DIAMONDS, ServingConfig.max_batch), indent=2, ensure_ascii=False)
    TEMPLATE.write_text(written + "\n", encoding="utf-8")
    print(f"wrote {TEMPLATE}")


if __name__ == "__main__":
    main()
