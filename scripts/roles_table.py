"""Print the roles table of the app's named endpoints (who may call each), from the marks.

    python scripts/roles_table.py            # print it
    python scripts/roles_table.py --write    # refresh the table in docs/classroom.md

The table is :func:`ui.access.roles_table` of the app as ``python app.py --auth ...`` builds it
(no model is loaded); ``tests/test_docs.py`` checks that docs/classroom.md holds it.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "classroom.md"
BEGIN, END = "<!-- roles table: scripts/roles_table.py --write -->", "<!-- end of roles table -->"


def built_table() -> str:
    """The roles table of the app built with a teacher and a student login (offline, no models)."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    sys.path.insert(0, str(ROOT))
    import app
    from ui.access import roles_table

    args = app.parse_args(["--auth", "teacher:x", "--student-auth", "student:y"])
    return roles_table(app.build_demo(app.make_studio(args)))


def table_in_doc(text: str) -> str:
    """The table between the markers of docs/classroom.md (ValueError when they are missing)."""
    if BEGIN not in text or END not in text:
        raise ValueError(f"{DOC}: the markers {BEGIN!r} and {END!r} are missing.")
    return text.split(BEGIN, 1)[1].split(END, 1)[0].strip()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help=f"write the table into {DOC.relative_to(ROOT)}")
    args = parser.parse_args(argv)
    table = built_table()
    if not args.write:
        print(table)
        return 0
    text = DOC.read_text(encoding="utf-8")
    table_in_doc(text)  # the markers are there
    head, rest = text.split(BEGIN, 1)
    DOC.write_text(f"{head}{BEGIN}\n{table}\n{END}{rest.split(END, 1)[1]}", encoding="utf-8")
    print(f"wrote the roles table ({table.count(chr(10)) - 1} endpoints) into {DOC}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
