"""Many rows in one statement: the rows go in as one JSON array, read back by json_each.

`executemany` binds each row with the GIL held and runs it without: one GIL hand-over per
row. While the event loop is busy, each hand-over waits for the loop's thread, and a batch of
history rows crawls (measured: 1,400 rows/s against 320,000 when idle, with one busy thread).
One statement over a JSON array takes the GIL once for the whole batch: 400,000 rows/s busy
or not. Every value must survive a JSON round trip (text, numbers, NULL), which holds for
every table that uses this.

One bad row (a string that cannot be encoded, a value a constraint refuses) must not take the
others with it: the parameter is a `BulkRows`, which keeps the rows so the writer can retry
them one statement each when the whole array fails (hub.storage.database).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from typing import Any

from hub.fastjson import dumps


class BulkInsert:
    """`INSERT INTO table(columns) SELECT ... FROM json_each(?)`, with an optional tail
    (an upsert clause); `ops(rows)` is what a flush hook returns for those rows."""

    def __init__(self, table: str, columns: Sequence[str], *, verb: str = "INSERT",
                 tail: str = "") -> None:
        picks = ", ".join(f"json_extract(value, '$[{i}]')" for i in range(len(columns)))
        # `WHERE true`: an upsert after INSERT ... SELECT needs a WHERE (SQLite's parser)
        self.sql = (f"{verb} INTO {table}({', '.join(columns)}) SELECT {picks} "
                    f"FROM json_each(?) WHERE true {tail}").rstrip()

    def ops(self, rows: Sequence[Sequence[object]]) -> list[tuple[str, list[Any]]]:
        return [(self.sql, BulkRows(rows))] if rows else []


class BulkRows(list[tuple[str]]):
    """The single parameter row of a bulk statement (the JSON array), plus the rows it came
    from. Empty when the array cannot be encoded at all: the writer then goes one by one."""

    def __init__(self, rows: Sequence[Sequence[object]]) -> None:
        self.rows = rows
        try:
            super().__init__([(dumps(rows),)])
        except ValueError:  # UnicodeEncodeError (a lone surrogate) is a ValueError
            super().__init__()

    def __bool__(self) -> bool:
        return bool(self.rows)

    def one_by_one(self) -> Iterator[tuple[str]]:
        """Each row as its own one-row array, encoded lazily. A row that cannot be encoded
        still comes out (as text SQLite cannot bind), so it fails alone where it is bound."""
        for row in self.rows:
            try:
                yield (dumps([row]),)
            except ValueError:
                yield (json.dumps([row], ensure_ascii=False, default=str),)
