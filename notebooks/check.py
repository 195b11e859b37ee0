#!/usr/bin/env python3
"""CI check for notebooks/analysis.ipynb (python3 notebooks/check.py, from anywhere).

1. The notebook is a valid notebook: nbformat's schema validation when nbformat is installed,
   otherwise a JSON parse plus the top-level keys every v4 notebook has.
   It is committed without outputs (an executed copy carries local paths and ~1 MB of PNGs).
2. The committed inputs it reads exist and parse: at least one results.csv or results.json in a
   folder under reports/, at any depth (reports/sweep-nbits/, reports/robust/00-seed/,
   reports/scale/synthetic-c400/, ...); a folder's results.csv wins over its results.json, as in
   the notebook. data/features/ is not committed and is not checked; the notebook skips it.
Exits 0 when all is well, 1 with a message otherwise. Needs only the standard library: it runs
before (and without) the notebook's packages. Executing the notebook is a separate step of
.ci/run (jupyter nbconvert --execute, see notebooks/README.md).
"""
import csv
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
NOTEBOOK = HERE / "analysis.ipynb"
CSV_COLUMNS = [
    "experiment", "dataset", "model", "n_bits", "weight_bits", "standardize_inputs", "mode",
    "queries", "top1", "top3", "unknown_rate", "chunk_accuracy", "latency_median_ms",
    "latency_p95_ms", "encrypt_ms", "server_ms", "decrypt_ms", "bytes_up", "bytes_down",
]


def check_notebook(errors):
    if not NOTEBOOK.is_file():
        errors.append(f"missing {NOTEBOOK.relative_to(ROOT)}")
        return
    try:
        import nbformat
    except ImportError:
        nbformat = None
    try:
        if nbformat is not None:
            nb = nbformat.read(str(NOTEBOOK), as_version=4)
            nbformat.validate(nb)
            cells = nb.cells
            how = f"nbformat {nbformat.__version__} schema"
        else:
            nb = json.loads(NOTEBOOK.read_text(encoding="utf-8"))
            missing = [k for k in ("cells", "metadata", "nbformat", "nbformat_minor") if k not in nb]
            if missing or nb["nbformat"] != 4:
                raise ValueError(f"not an nbformat-4 notebook (missing {missing})")
            cells = nb["cells"]
            how = "JSON (nbformat not installed)"
    except Exception as e:
        errors.append(f"{NOTEBOOK.relative_to(ROOT)} is not a valid notebook: {type(e).__name__}: {e}")
        return
    code = [c for c in cells if c.get("cell_type") == "code"]
    with_outputs = sum(1 for c in code if c.get("outputs"))
    print(f"ok: {NOTEBOOK.relative_to(ROOT)} valid ({how}), {len(cells)} cells, {len(code)} code")
    if with_outputs:
        errors.append(f"{with_outputs} code cells of {NOTEBOOK.relative_to(ROOT)} carry outputs; commit "
                      "it cleared (jupyter nbconvert --clear-output --inplace notebooks/analysis.ipynb)")


def check_results(errors):
    reports = ROOT / "reports"
    found = []
    dirs = sorted({p.parent for name in ("results.csv", "results.json") for p in reports.rglob(name)})
    for d in dirs:
        csv_path, json_path = d / "results.csv", d / "results.json"
        path = csv_path if csv_path.is_file() else json_path if json_path.is_file() else None
        if path is None:
            continue
        rel = path.relative_to(ROOT)
        try:
            if path.suffix == ".csv":
                with path.open(newline="", encoding="utf-8") as f:
                    reader = csv.DictReader(f)
                    missing = [c for c in CSV_COLUMNS if c not in (reader.fieldnames or [])]
                    rows = list(reader)
                if missing:
                    raise ValueError(f"missing columns {missing}")
            else:
                data = json.loads(path.read_text(encoding="utf-8"))
                # `evaluate` writes top-level rows, `reproduce` writes reproduction.rows.
                rows = data.get("rows")
                if rows is None and isinstance(data.get("reproduction"), dict):
                    rows = data["reproduction"].get("rows")
                if rows is None:
                    # A benchmark's JSON (e.g. reports/service-bench): the notebook skips it too.
                    print(f"skip: {rel} (not an evaluation report)")
                    continue
                if not isinstance(rows, list):
                    raise ValueError("'rows' is not a list")
            if not rows:
                raise ValueError("no result rows")
        except Exception as e:
            errors.append(f"{rel}: unreadable: {type(e).__name__}: {e}")
            continue
        found.append(rel)
        print(f"ok: {rel} ({len(rows)} rows)")
    if not found:
        errors.append("no results.csv or results.json under reports/: the notebook has nothing "
                      "to analyse (run experiments/*.sh and commit the reports)")


def main():
    errors = []
    check_notebook(errors)
    check_results(errors)
    for e in errors:
        print(f"error: {e}", file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
