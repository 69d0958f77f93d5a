"""How long each stored text may be, and the one way text is made storable.

The lengths are the ``varchar`` lengths of the inventory schema: ``db/schema.py`` builds its
columns from these constants, and the sync bounds every value it writes to them before the
write. PostgreSQL refuses a longer value (``StringDataRightTruncation``) and SQLite keeps it,
so bounding first is what makes both databases store the same thing and one hostile item
never fail a run.

- an id longer than its column is refused (the item is skipped as ``item_invalid``):
  truncating it would merge distinct objects;
- a name, platform or category longer than its column is truncated to the column's length,
  on a code point (PostgreSQL counts characters the same way), deterministically.

Alembic migrations keep their own literal lengths (they are history); a migration test
checks that the model built from these constants matches them.
"""

from __future__ import annotations

import re
from typing import Final

# inventory_items (and the copies in inventory_missing_items)
EXTERNAL_ID_CHARS: Final = 255
DISPLAY_NAME_CHARS: Final = 1024
CATEGORY_CHARS: Final = 32
PLATFORM_CHARS: Final = 64
POLICY_TYPE_CHARS: Final = 64
# inventory_sync_runs and inventory_missing_items
SELECTION_KEY_CHARS: Final = 128
SELECTION_HASH_CHARS: Final = 64
RUN_STATUS_CHARS: Final = 16
DAGSTER_RUN_ID_CHARS: Final = 64
CONFIDENCE_CHARS: Final = 8
# tenants (from the registry, not from Graph)
TENANT_KEY_CHARS: Final = 63
TENANT_ID_CHARS: Final = 64
TENANT_DISPLAY_NAME_CHARS: Final = 256
CLOUD_CHARS: Final = 16
# short free-text fields of an error record (Graph's code, request ids, date) inside the
# ``error_context`` JSON: no column length, bounded so a hostile error body stays small
ERROR_FIELD_CHARS: Final = 256

# text no database stores: NUL (PostgreSQL refuses it in text and JSONB) and unpaired
# surrogates (not UTF-8 at all); JSON may carry both as \u escapes
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def storable(text: str) -> str:
    """``text`` without NUL characters, unpaired surrogates replaced by U+FFFD (``text`` itself if clean)."""
    if text.isascii() and "\x00" not in text:  # the common case: isascii() is O(1) in CPython
        return text
    if _UNSTORABLE.search(text) is None:
        return text
    return _UNSTORABLE.sub(lambda m: "" if m.group() == "\x00" else "\ufffd", text)


def bounded(text: str, limit: int) -> str:
    """``text`` storable and at most ``limit`` characters (``text`` itself when it already is)."""
    return storable(text[:limit])
