"""``_references``: what an answer was built from, recorded by the prompt builders.

A builder given a ``References`` notes, while it reads, the target (site, member, assistant),
the dates (as-of date, period and comparison period), the area, each table it read with the
number of rows the prompt used, and the earlier answers it took as input (App8 from App3 and
App6, App7 from App8 or App3, App5 from App4: cache id and ``generated_at``). ``answering``
stores it under ``_references`` in the cached answer once the model's answer validated; a
``_references`` in the model's own answer is dropped. So it is the code's account of the
prompt's inputs, never the model's.

Not part of the prompt nor of its input hash: the hash already changes with every input the
references describe, except a source answer's cache id when a re-asked source answered the
same within the same minute; a memo hit then keeps the references of the answer it reuses,
which is what that answer was built from.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from zqyy_assets.core.cache import CachedAnswer

REFERENCES_KEY = "_references"


@dataclass
class References:
    facts: dict[str, Any] = field(default_factory=dict)
    tables: dict[str, int] = field(default_factory=dict)
    sources: list[dict[str, Any]] = field(default_factory=list)

    def note(self, **facts: Any) -> None:
        """Target ids, dates and area, e.g. ``note(site_id=1, member_id=100)``."""
        self.facts.update(facts)

    def table(self, name: str, rows: int) -> None:
        """A table the prompt was read from (``schema.table``) and the rows it used."""
        self.tables[name] = self.tables.get(name, 0) + rows

    def source(self, answer: CachedAnswer) -> None:
        """An earlier cached answer the prompt carries (App3's clues in App8's prompt...)."""
        self.sources.append(
            {
                "app": answer.cache_type,
                "target_id": answer.target_id,
                "cache_id": answer.id,
                "generated_at": answer.created_at.isoformat(),
            }
        )

    def as_json(self) -> dict[str, Any]:
        """The ``_references`` object: the facts, then ``tables`` and ``sources``."""
        return {
            **self.facts,
            "tables": [{"table": name, "rows": rows} for name, rows in self.tables.items()],
            "sources": list(self.sources),
        }
