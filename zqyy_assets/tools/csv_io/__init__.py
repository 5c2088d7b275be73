"""Import (and export) of the ODS tables as CSV: one file per table, all-or-nothing.

Format
------
- A directory holds ``<table>.csv`` per ODS table (``sites.csv``, ``areas.csv``, ``tables.csv``,
  ``members.csv``, ``assistants.csv``, ``settlements.csv``, ``assistant_services.csv``,
  ``recharges.csv``, ``notes.csv``, ``tasks.csv``); any subset may be present. UTF-8 (a BOM is
  fine), comma separated, a header row naming the columns in any order.
- Columns that are nullable or have a database default may be left out of the header or left
  empty; every other column is required and may not be empty. Blank lines are skipped. An unknown column is an error
  (it is usually a typo of a column that would otherwise silently take its default).
- Money: a plain decimal with at most two decimals (``12``, ``12.5``, ``12.50``), never
  negative. Integers: plain digits. Booleans: true/false, t/f, 1/0, yes/no. Dates: YYYY-MM-DD.
- Timestamps: ISO 8601 (``2025-03-01T20:15:00+08:00``, ``2025-03-01 20:15:00+08``, ``...Z``).
  A timestamp without an offset is local time in Asia/Shanghai, the venues' time zone.

Errors
------
Every file is validated before anything is written: types, required values, allowed codes,
duplicate keys (within the file and against rows already in the database), references
(site, area, table, member, assistant, settlement: to rows in the database or in the same
import), negative money and settlement totals. Problems raise :class:`CsvImportError` naming
the file, the **data row** (1-based, the first row after the header is row 1; the header
itself is row 0) and the column. The load runs in one transaction, so a bad file leaves the
database exactly as it was, including the tables whose files were fine.
"""

from zqyy_assets.tools.csv_io.exporting import export_csv
from zqyy_assets.tools.csv_io.importing import import_csv
from zqyy_assets.tools.csv_io.problems import CsvImportError, CsvProblem

__all__ = ["CsvImportError", "CsvProblem", "export_csv", "import_csv"]
