"""Triggerfish's refresh against Splink's deterministic linking, on the same
generated data. Driven by compare.sh; three steps, each its own process:

  compare.py prepare DIR            loyalty CSV -> JSON array (the third format)
  compare.py splink DIR OUT RUN     Splink on DuckDB: load, normalise, link, cluster
  compare.py durable-load DIR OUT RUN
                                    Splink's load into a DuckDB file, keyed (for scale)
  compare.py report DIR OUT ROWS    parse both runs, compare the clusters, print and
                                    write the table (exit 1 when clusters differ)

The Splink side applies Triggerfish's own normalisers (host/data/src/insights/
normalize.rs) in DuckDB SQL and links on the generated triggerfish.toml's rules,
so the two must find the same partition of the source records.
"""

import csv
import json
import os
import re
import sys
import time
from pathlib import Path

T0 = time.perf_counter()
HERE = Path(__file__).resolve().parent

# The sources as `demo generate` writes them: the source name, its file, its key
# column and the source column of each profile field the match rules use
# (the [insights.sources.map] of the generated triggerfish.toml, checked below).
SOURCES = [
    ("crm-contacts", "crm-contacts.csv", "ContactId",
     {"Email": "Email", "Phone": "Phone", "FirstName": "FirstName",
      "LastName": "LastName", "PostalCode": "PostalCode"}),
    ("web-shop-orders", "web-shop-orders.ndjson", "OrderId",
     {"Email": "CustomerEmail", "Phone": "Phone", "FirstName": "BillingFirstName",
      "LastName": "BillingLastName", "PostalCode": "Zip"}),
    ("loyalty-members", "loyalty-members.json", "MemberId",
     {"Email": "EmailAddress", "Phone": "Mobile", "FirstName": "GivenName",
      "LastName": "FamilyName", "PostalCode": "PostCode"}),
]
RULES = [["Email"], ["Phone"], ["FirstName", "LastName", "PostalCode"]]
FIELD_COL = {"Email": "email", "Phone": "phone", "FirstName": "first_name",
             "LastName": "last_name", "PostalCode": "postal_code"}


# ---------------------------------------------------------------- prepare

def prepare(d: Path) -> None:
    """Rewrite loyalty-members.csv as one JSON array (CSV, NDJSON and a JSON
    array: three formats, as in issue #12), empty cells as null and Points as
    a number, and point triggerfish.toml at it."""
    src, dst = d / "loyalty-members.csv", d / "loyalty-members.json"
    with open(src, newline="", encoding="utf-8") as f, open(dst, "w", encoding="utf-8") as out:
        out.write("[")
        for i, row in enumerate(csv.DictReader(f)):
            obj = {k: (None if v == "" else v) for k, v in row.items()}
            if obj.get("Points") is not None:
                obj["Points"] = int(obj["Points"])
            out.write(("," if i else "") + "\n" + json.dumps(obj, ensure_ascii=False))
        out.write("\n]\n")
    src.unlink()
    toml = d / "triggerfish.toml"
    text = toml.read_text(encoding="utf-8")
    assert 'path = "loyalty-members.csv"' in text, "unexpected triggerfish.toml"
    toml.write_text(text.replace('path = "loyalty-members.csv"',
                                 'path = "loyalty-members.json"'), encoding="utf-8")
    check_config(toml)


def check_config(toml: Path) -> None:
    """The generated config must hold the sources, maps and rules the Splink
    port assumes; fail loudly if the generator changed."""
    import tomllib
    cfg = tomllib.loads(toml.read_text(encoding="utf-8"))["insights"]
    for name, path, key, fmap in SOURCES:
        s = next(s for s in cfg["sources"] if s["name"] == name)
        assert s["path"] == path and s["key"] == key, (name, s["path"], s["key"])
        for field, col in fmap.items():
            assert s["map"][field] == col, (name, field, s["map"][field], col)
    rules = [r["fields"] for r in cfg["unification"]["rules"]]
    assert rules == RULES, rules
    for r in cfg["unification"]["rules"]:
        # Exact rules only: no precision (fuzzy fields) nor guards.
        assert set(r) <= {"name", "fields"}, f"rule {r}: only exact rules are ported"
    assert "normalizers" not in cfg["unification"], "custom normalisers: port them too"


# ---------------------------------------------------------------- normalisers in SQL

# Rust's char::is_whitespace (Unicode White_Space), used by str::trim and
# str::split_whitespace.
WS_CHARS = "".join(map(chr, [*range(0x09, 0x0E), 0x20, 0x85, 0xA0, 0x1680, *range(0x2000, 0x200B),
                             0x2028, 0x2029, 0x202F, 0x205F, 0x3000]))
WS_CLASS = "[" + "".join(f"\\x{{{ord(c):04X}}}" for c in WS_CHARS) + "]"


def sql_str(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"


def sql_ident(s: str) -> str:
    return '"' + s.replace('"', '""') + '"'


def trim_sql(x: str) -> str:
    """str::trim; `x` must be a column (the regex runs only when an end is
    white space)."""
    ws = sql_str(WS_CHARS)
    return (f"CASE WHEN contains({ws}, left({x}, 1)) OR contains({ws}, right({x}, 1)) "
            f"THEN regexp_replace({x}, '^{WS_CLASS}+|{WS_CLASS}+$', '', 'g') ELSE {x} END")


def fold_sql(con, x: str) -> str:
    """`ascii`: Latin letters folded as deunicode does (latin_fold.tsv), other
    chars kept. `x` must be a column (it is read several times).

    Fast path: DuckDB's strip_accents, for strings whose every non-ASCII char
    is a Latin one that strip_accents folds exactly as the table does (or
    keeps, as the table does); asked of DuckDB itself, char by char. Other
    strings take the table: multi-letter foldings by replace() (only when one
    occurs), the others by one regexp_replace() a target letter."""
    table = {}
    for line in (HERE / "latin_fold.tsv").read_text(encoding="utf-8").splitlines():
        if line and not line.startswith("#"):
            _, ch, folded = line.split("\t")
            table[ch] = folded
    latin = [chr(c) for r in (range(0xC0, 0x250), range(0x1E00, 0x1F00)) for c in r]
    stripped = con.execute("SELECT list_transform(?, lambda c: strip_accents(c))",
                           [latin]).fetchall()[0][0]
    safe = "".join(ch for ch, st in zip(latin, stripped) if st == table.get(ch, ch))
    multi = [(ch, f) for ch, f in table.items() if len(f) > 1]
    by_letter = {}
    for ch, f in table.items():
        if len(f) == 1:
            by_letter.setdefault(f, []).append(ch)
    slow = x
    for ch, f in multi:
        slow = f"replace({slow}, {sql_str(ch)}, {sql_str(f)})"
    slow = (f"CASE WHEN regexp_matches({x}, {sql_str('[' + ''.join(ch for ch, _ in multi) + ']')}) "
            f"THEN {slow} ELSE {x} END")
    for f, chars in by_letter.items():
        slow = f"regexp_replace({slow}, {sql_str('[' + ''.join(chars) + ']')}, {sql_str(f)}, 'g')"
    return (f"CASE WHEN strlen({x}) = length({x}) THEN {x} "
            f"WHEN regexp_full_match({x}, {sql_str('[' + chr(92) + 'x00-' + chr(92) + 'x7F' + safe + ']*')}) "
            f"THEN strip_accents({x}) ELSE {slow} END")


# Each normaliser chain in three steps, each step reading the previous one's
# column (step 1 reads the source column). normalize() then gives None when
# only white space is left; every chain here ends trimmed (names are trimmed
# and collapsed before folding and lower-casing, which add no white space; an
# e-mail is trimmed, and the +tag removal keeps its '@'; phone and postal keep
# digits and letters only), so that test is `<> ''`.
def norm_steps(con, field: str, col: str) -> list:
    if field == "Email":
        # Email: trim, lower-case, drop a +tag from the part before the first '@'
        # (when a '+' comes before the first '@', and there is one).
        return [trim_sql(col), "lower(@v)", "regexp_replace(@v, '^([^@+]*)\\+[^@]*@', '\\1@')"]
    if field == "Phone":
        # Phone: ASCII digits only, then the last nine.
        return [f"right(regexp_replace({col}, '[^0-9]', '', 'g'), 9)", "@v", "@v"]
    if field == "PostalCode":
        # Postal: ASCII letters and digits, upper-cased.
        return [f"upper(regexp_replace({col}, '[^A-Za-z0-9]', '', 'g'))", "@v", "@v"]
    # Trim, Whitespace, Ascii, Casefold (Normalizer::defaults_for any other field).
    return [f"regexp_replace({trim_sql(col)}, '{WS_CLASS}+', ' ', 'g')", fold_sql(con, "@v"), "lower(@v)"]


def normalise_sql(con, raw: str, key: str, fmap: dict) -> str:
    """SELECT unique_id and the rules' match keys from table `raw`: the steps
    as nested SELECTs, `@v` standing for the column the previous step made."""
    steps = {f: norm_steps(con, f, q(c)) for f, c in fmap.items()}
    sql = (f"SELECT {q(key)} AS unique_id, "
           + ", ".join(f"{s[0]} AS {FIELD_COL[f]}" for f, s in steps.items()) + f" FROM {raw}")
    for i in (1, 2):
        cols = ", ".join(f"{s[i].replace('@v', FIELD_COL[f])} AS {FIELD_COL[f]}"
                         for f, s in steps.items())
        sql = f"SELECT unique_id, {cols} FROM ({sql})"
    cols = ", ".join(f"nullif({FIELD_COL[f]}, '') AS {FIELD_COL[f]}" for f in steps)
    return f"SELECT unique_id, {cols} FROM ({sql})"


def table_name(source: str) -> str:
    return source.replace("-", "_")


def selftest() -> int:
    """The port against normalize.rs's own test table, a few more cases, and
    every Latin char through the `ascii` folding."""
    import duckdb
    cases = [
        ("FirstName", "  Jean   Éric ", "jean eric"),
        ("FirstName", "Straße Łódź Œuvre Škoda Čech", "strasse lodz oeuvre skoda cech"),
        ("FirstName", "Søren Ærø", "soren aero"),
        ("FirstName", "Αθήνα 東京", "αθήνα 東京"),
        ("FirstName", "Élodie Αθήνα", "elodie αθήνα"),
        ("FirstName", "e\u0301lodie", "e\u0301lodie"),
        ("FirstName", "\u00a0Ann\u2003 Lee\t", "ann lee"),
        ("FirstName", "ŊAME", "ngame"),
        ("FirstName", "   ", None),
        ("FirstName", None, None),
        ("LastName", "VAN DEN BROEK", "van den broek"),
        ("Email", " Ann.Smith+news@Example.COM ", "ann.smith@example.com"),
        ("Email", "not-an-email", "not-an-email"),
        ("Email", "é+x@b@c", "é@b@c"),
        ("Email", "+tag@x", "@x"),
        ("Email", "A+b+c@D+e", "a@d+e"),
        ("Email", "a@b+c@d", "a@b+c@d"),
        ("Email", "A+B", "a+b"),
        ("Email", "\u3000X+y@Z\u2029", "x@z"),
        ("Email", "  ", None),
        ("Phone", "+33 6 12 34 56 78", "612345678"),
        ("Phone", "06.12.34.56.78", "612345678"),
        ("Phone", "(555) 010-2000", "550102000"),
        ("Phone", "n/a", None),
        ("Phone", "١٢٣", None),
        ("PostalCode", "sw1a 1aa", "SW1A1AA"),
        ("PostalCode", "69 003", "69003"),
        ("PostalCode", " - ", None),
    ]
    # Every Latin char, alone (strip_accents where it agrees with the table)
    # and next to 'Ł' (which strip_accents keeps, so always the table),
    # against the table with Python's lower-casing (full Unicode, as Rust's).
    table = {}
    for line in (HERE / "latin_fold.tsv").read_text(encoding="utf-8").splitlines():
        if line and not line.startswith("#"):
            _, ch, folded = line.split("\t")
            table[ch] = folded
    for ch in map(chr, [*range(0xC0, 0x250), *range(0x1E00, 0x1F00)]):
        cases.append(("FirstName", f"A{ch}b", f"A{table.get(ch, ch)}b".lower()))
        cases.append(("FirstName", f"Ł{ch}", f"L{table.get(ch, ch)}".lower()))
    con = duckdb.connect()
    fails = 0
    for field in {f for f, _, _ in cases}:
        mine = [(str(i), v, w) for i, (f, v, w) in enumerate(cases) if f == field]
        con.execute("CREATE OR REPLACE TABLE t (k VARCHAR, x VARCHAR)")
        con.executemany("INSERT INTO t VALUES (?, ?)", [(k, v) for k, v, _ in mine])
        got = dict(con.execute(normalise_sql(con, "t", "k", {field: "x"})).fetchall())
        for k, value, want in mine:
            if got[k] != want:
                fails += 1
                print(f"FAIL {field} {value!r}: {got[k]!r}, want {want!r}")
    print(f"selftest: {len(cases) - fails} passed, {fails} failed")
    return 1 if fails else 0


# ---------------------------------------------------------------- Splink

def source_sql(d: Path, path: str, key: str, fmap: dict) -> tuple[str, list[str]]:
    """DuckDB's reader of one source file, every column as text, and the
    columns it gives (a JSON source: its key and the mapped fields)."""
    p = str(d / path)
    if path.endswith(".csv"):
        with open(p, newline="", encoding="utf-8") as f:
            header = [h.strip().lstrip("\ufeff") for h in next(csv.reader(f))]
        cols = "{" + ", ".join(f"{sql_str(h)}: 'VARCHAR'" for h in header) + "}"
        return (f"read_csv({sql_str(p)}, header = true, auto_detect = false, delim = ',', "
                f"quote = '\"', escape = '\"', columns = {cols})"), header
    names = [key, *fmap.values()]
    cols = "{" + ", ".join(f"{sql_str(c)}: 'VARCHAR'" for c in names) + "}"
    fmt = "newline_delimited" if path.endswith(".ndjson") else "array"
    return f"read_json({sql_str(p)}, format = '{fmt}', columns = {cols})", names


def durable_load(d: Path, out: Path, run: str) -> None:
    """Splink's load made like Triggerfish's: the same readers into a DuckDB
    file, each source's key its table's primary key, checkpointed to disk.
    Not part of Splink's run: it shows what durability and a key cost."""
    import duckdb
    db = out / f"durable-load-{run}.duckdb"
    for f in (db, db.with_name(db.name + ".wal")):
        f.unlink(missing_ok=True)
    con = duckdb.connect(str(db))
    if os.environ.get("SPLINK_THREADS"):
        con.execute(f"SET threads = {int(os.environ['SPLINK_THREADS'])}")
    t = time.perf_counter()
    for name, path, key, fmap in SOURCES:
        src, cols = source_sql(d, path, key, fmap)
        defs = ", ".join(f"{sql_ident(c)} VARCHAR" for c in cols)
        con.execute(f"CREATE TABLE raw_{table_name(name)} ({defs}, PRIMARY KEY ({sql_ident(key)}))")
        con.execute(f"INSERT INTO raw_{table_name(name)} SELECT * FROM {src}")
    con.execute("CHECKPOINT")
    seconds = time.perf_counter() - t
    con.close()
    for f in (db, db.with_name(db.name + ".wal")):
        f.unlink(missing_ok=True)
    (out / f"durable-load-{run}.json").write_text(json.dumps({"load": seconds}))


def run_splink(d: Path, out: Path, run: str) -> None:
    stages = {}
    import duckdb
    import splink
    from splink import DuckDBAPI, Linker, SettingsCreator, block_on
    stages["import"] = time.perf_counter() - T0

    con = duckdb.connect(":memory:")
    if os.environ.get("SPLINK_THREADS"):
        con.execute(f"SET threads = {int(os.environ['SPLINK_THREADS'])}")
    threads = con.execute("SELECT current_setting('threads')").fetchall()[0][0]

    # Load: the three files as they are, every column as text.
    t = time.perf_counter()
    for name, path, key, fmap in SOURCES:
        src, _ = source_sql(d, path, key, fmap)
        con.execute(f"CREATE TABLE raw_{table_name(name)} AS SELECT * FROM {src}")
    stages["load"] = time.perf_counter() - t

    # Normalise and map: one table a source with the rule fields' match keys.
    t = time.perf_counter()
    for name, path, key, fmap in SOURCES:
        con.execute(f"CREATE TABLE {table_name(name)} AS "
                    + normalise_sql(con, f"raw_{table_name(name)}", key, fmap))
        con.execute(f"DROP TABLE raw_{table_name(name)}")
    stages["normalise"] = time.perf_counter() - t

    # Link: the rules as Splink blocking rules, deterministic_link.
    t = time.perf_counter()
    db_api = DuckDBAPI(connection=con)
    inputs = [db_api.register(table_name(name), dataset_display_name=name)
              for name, *_ in SOURCES]
    settings = SettingsCreator(
        link_type="link_and_dedupe",
        blocking_rules_to_generate_predictions=[
            block_on(*[FIELD_COL[f] for f in rule]) for rule in RULES],
        retain_matching_columns=False,
    )
    linker = Linker(inputs, settings)
    pairs = linker.inference.deterministic_link()
    stages["link"] = time.perf_counter() - t
    n_pairs = con.execute(f"SELECT count(*) FROM {pairs.physical_name}").fetchall()[0][0]

    # Cluster: connected components of the pairs.
    t = time.perf_counter()
    clusters = linker.clustering.cluster_pairwise_predictions_at_threshold(pairs)
    stages["cluster"] = time.perf_counter() - t

    t = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    con.execute(f"COPY (SELECT source_dataset AS source, unique_id AS key, cluster_id "
                f"FROM {clusters.physical_name}) TO {sql_str(str(out / 'splink_clusters.parquet'))}")
    keys = " UNION ALL ".join(
        f"SELECT {sql_str(name)} AS source, * FROM {table_name(name)}" for name, *_ in SOURCES)
    con.execute(f"COPY ({keys}) TO {sql_str(str(out / 'splink_keys.parquet'))}")
    stages["export"] = time.perf_counter() - t
    (out / f"splink-{run}.json").write_text(json.dumps({
        "stages": stages, "pairs": n_pairs, "splink": splink.__version__,
        "duckdb": duckdb.__version__, "threads": threads,
    }, indent=1))


def q(ident: str) -> str:
    return '"' + ident.replace('"', '""') + '"'


# ---------------------------------------------------------------- report

def time_v(path: Path) -> dict:
    """Wall, CPU and peak RSS from `/usr/bin/time -v`'s report."""
    text = path.read_text(errors="replace")

    def field(label):
        m = re.search(re.escape(label) + r":\s*(\S+)", text)
        if not m:
            raise SystemExit(f"no '{label}' in {path}")
        return m.group(1)

    wall = 0.0
    for part in field("Elapsed (wall clock) time (h:mm:ss or m:ss)").split(":"):
        wall = wall * 60 + float(part)
    return {"wall": wall,
            "cpu": float(field("User time (seconds)")) + float(field("System time (seconds)")),
            "rss_mib": int(field("Maximum resident set size (kbytes)")) / 1024,
            "status": int(field("Exit status"))}


def triggerfish_stages(path: Path) -> dict:
    """Stage times (s) from the summary `triggerfish refresh` prints last."""
    text = path.read_text(errors="replace")
    tail = text[text.rfind("full refresh "):]
    stages, sources = {}, []
    for m in re.finditer(r"^\s+(\S+)\s+(ok|FAILED|skipped)\s+(\d+) rows\s+(\d+) ms", tail, re.M):
        name, status, ms = m.group(1), m.group(2), int(m.group(4))
        if status != "ok":
            raise SystemExit(f"triggerfish stage {name}: {status}")
        if name.startswith("source:"):
            sources.append(ms / 1000)
        else:
            stages[name] = ms / 1000
    stages["sources"] = sum(sources)
    stages["source_parts"] = sources
    m = re.search(r"\(map (\d+), match (\d+), merge (\d+)\)", text)
    if m:
        stages["map"], stages["match"], stages["merge"] = (int(x) / 1000 for x in m.groups())
    return stages


def compare_clusters(d: Path, out: Path) -> dict:
    import sqlite3

    import duckdb
    import pyarrow as pa
    con = duckdb.connect(":memory:")
    from urllib.parse import quote
    db = d / '.triggerfish' / 'store.sqlite'
    store = sqlite3.connect(f"file:{quote(str(db))}?mode=ro", uri=True)
    # Entities kept in files of their own (README, "Entities"), attached as
    # Triggerfish attaches them.
    for name, file in store.execute(
            "SELECT name, file FROM _tf_entities WHERE file IS NOT NULL").fetchall():
        path = Path(str(db) + ".files") / file
        store.execute(f'ATTACH DATABASE ? AS "tf_file_{name}"',
                      (f"file:{quote(str(path))}?mode=ro&immutable=1",))
    links = store.execute("SELECT Source, SourceKey, CustomerId FROM ent_CustomerSourceLink").fetchall()
    tf_arrow = pa.table({"source": [r[0] for r in links], "key": [r[1] for r in links],
                         "cid": [r[2] for r in links]},
                        schema=pa.schema([("source", pa.string()), ("key", pa.string()),
                                          ("cid", pa.string())]))
    con.register("tf_arrow", tf_arrow)
    con.execute("CREATE TABLE tf AS SELECT * FROM tf_arrow")
    del links
    con.execute(f"CREATE TABLE sp AS SELECT source, key, CAST(cluster_id AS VARCHAR) AS cid "
                f"FROM read_parquet({sql_str(str(out / 'splink_clusters.parquet'))})")
    # Canonical cluster label: the smallest "source/key" of its members.
    for t in ("tf", "sp"):
        con.execute(f"CREATE TABLE {t}_c AS SELECT source, key, "
                    f"min(source || '/' || key) OVER (PARTITION BY cid) AS canon FROM {t}")
    r = {}
    r["tf_records"], r["tf_clusters"] = con.execute(
        "SELECT count(*), count(DISTINCT canon) FROM tf_c").fetchall()[0]
    r["sp_records"], r["sp_clusters"] = con.execute(
        "SELECT count(*), count(DISTINCT canon) FROM sp_c").fetchall()[0]
    r["tf_multi"] = con.execute(
        "SELECT count(*) FROM (SELECT canon FROM tf_c GROUP BY 1 HAVING count(*) > 1)").fetchall()[0][0]
    r["sp_multi"] = con.execute(
        "SELECT count(*) FROM (SELECT canon FROM sp_c GROUP BY 1 HAVING count(*) > 1)").fetchall()[0][0]
    # A record is clustered alike when its Triggerfish cluster and its Splink
    # cluster have the same members: both as large as their overlap.
    con.execute("CREATE TABLE j AS SELECT coalesce(t.source, s.source) AS source, "
                "coalesce(t.key, s.key) AS key, t.canon AS tf_canon, s.canon AS sp_canon "
                "FROM tf_c t FULL OUTER JOIN sp_c s ON t.source = s.source AND t.key = s.key")
    con.execute("CREATE TABLE diff AS SELECT source, key, tf_canon, sp_canon FROM ("
                "SELECT *, count(*) OVER (PARTITION BY tf_canon) AS a, "
                "count(*) OVER (PARTITION BY sp_canon) AS b, "
                "count(*) OVER (PARTITION BY tf_canon, sp_canon) AS c FROM j) "
                "WHERE tf_canon IS NULL OR sp_canon IS NULL OR a <> c OR b <> c")
    r["differing"] = con.execute("SELECT count(*) FROM diff").fetchall()[0][0]
    r["examples"] = []
    if r["differing"]:
        con.execute(f"CREATE TABLE keys AS SELECT * FROM "
                    f"read_parquet({sql_str(str(out / 'splink_keys.parquet'))})")
        for source, key, tc, sc in con.execute(
                "SELECT * FROM (SELECT DISTINCT ON (tf_canon, sp_canon) * FROM diff "
                "ORDER BY tf_canon, sp_canon, source, key) ORDER BY source, key LIMIT 5").fetchall():
            ex = {"record": f"{source}/{key}"}
            for side, canon, tbl in (("triggerfish", tc, "tf_c"), ("splink", sc, "sp_c")):
                ex[side] = [
                    {"record": f"{row[0]}/{row[1]}", "email": row[2], "phone": row[3],
                     "name": f"{row[4]} {row[5]}", "postal_code": row[6]}
                    for row in con.execute(
                        f"SELECT c.source, c.unique_id, c.email, c.phone, c.first_name, c.last_name, "
                        f"c.postal_code FROM {tbl} m JOIN keys c ON c.source = m.source "
                        f"AND c.unique_id = m.key WHERE m.canon = ? ORDER BY 1, 2 LIMIT 8",
                        [canon]).fetchall()]
            r["examples"].append(ex)
    return r


def fmt_s(x) -> str:
    return "–" if x is None else f"{x:.2f} s"


def report(d: Path, out: Path, rows: int) -> int:
    runs = sorted(int(p.stem.split("-")[1]) for p in out.glob("triggerfish-*.time"))
    tf_run = min(runs, key=lambda r: time_v(out / f"triggerfish-{r}.time")["wall"])
    sp_run = min(runs, key=lambda r: time_v(out / f"splink-{r}.time")["wall"])
    tf_t = time_v(out / f"triggerfish-{tf_run}.time")
    tf = triggerfish_stages(out / f"triggerfish-{tf_run}.out")
    sp_t = time_v(out / f"splink-{sp_run}.time")
    sp_info = json.loads((out / f"splink-{sp_run}.json").read_text())
    walls = {side: [time_v(out / f"{side}-{r}.time")["wall"] for r in runs]
             for side in ("triggerfish", "splink")}
    sp = sp_info["stages"]
    durable = [json.loads(p.read_text())["load"] for p in out.glob("durable-load-*.json")]
    for who, t in (("triggerfish", tf_t), ("splink", sp_t)):
        if t["status"] != 0:
            raise SystemExit(f"{who} exited with {t['status']}")
    c = compare_clusters(d, out)
    sp_unify = sp["normalise"] + sp["link"] + sp["cluster"]
    tf_unify = tf.get("unification")
    rows_md = [
        ("load the three files", f"sources {fmt_s(tf['sources'])} ("
         + " + ".join(f"{x:.2f}" for x in tf["source_parts"]) + ")", fmt_s(sp["load"])),
        ("· the same load into a DuckDB file, keyed (not in Splink's run)", "–",
         fmt_s(min(durable)) if durable else "–"),
        ("unification", fmt_s(tf_unify), f"{fmt_s(sp_unify)} (normalise + link + cluster)"),
        ("· map (normalise)", fmt_s(tf.get("map")), fmt_s(sp["normalise"])),
        ("· match / link", fmt_s(tf.get("match")), fmt_s(sp["link"])),
        ("· merge / cluster", fmt_s(tf.get("merge")), fmt_s(sp["cluster"])),
        ("segments + measures", f"{fmt_s(tf.get('segments'))} + {fmt_s(tf.get('measures'))}", "–"),
        ("Python start and imports", "–", fmt_s(sp["import"])),
        ("export clusters to Parquet", "– (in merge)", fmt_s(sp["export"])),
        ("**process wall time**", f"**{fmt_s(tf_t['wall'])}**", f"**{fmt_s(sp_t['wall'])}**"),
        ("CPU time (user + sys)", fmt_s(tf_t["cpu"]), fmt_s(sp_t["cpu"])),
        ("**peak RSS**", f"**{tf_t['rss_mib']:.0f} MiB**", f"**{sp_t['rss_mib']:.0f} MiB**"),
    ]
    same = c["differing"] == 0
    lines = [
        f"{rows:,} source rows; Splink {sp_info['splink']} on DuckDB {sp_info['duckdb']} "
        f"({sp_info['threads']} thread{'s' if int(sp_info['threads']) > 1 else ''}), {sp_info['pairs']:,} pairs linked."
        + ("" if len(runs) == 1 else
           f" Each side's fastest of {len(runs)} runs (wall: Triggerfish "
           + ", ".join(f"{w:.2f}" for w in walls["triggerfish"]) + " s; Splink "
           + ", ".join(f"{w:.2f}" for w in walls["splink"]) + " s)."),
        "",
        "| stage | Triggerfish | Splink |",
        "|---|---|---|",
        *[f"| {a} | {b} | {s} |" for a, b, s in rows_md],
        "",
        f"Clusters: Triggerfish {c['tf_clusters']:,} ({c['tf_multi']:,} of two or more records, "
        f"{c['tf_records']:,} records), Splink {c['sp_clusters']:,} ({c['sp_multi']:,}, "
        f"{c['sp_records']:,} records): "
        + ("**identical partitions**." if same else
           f"**{c['differing']:,} records in different clusters**."),
    ]
    md = "\n".join(lines) + "\n"
    (out / f"splink-vs-triggerfish-{rows}.md").write_text(md)
    print()
    print(md)
    if not same:
        print("Examples of records clustered differently (Splink's normalised keys):")
        for ex in c["examples"]:
            print(f"  {ex['record']}")
            for side in ("triggerfish", "splink"):
                print(f"    {side}'s cluster:")
                for m in ex[side]:
                    print(f"      {m['record']:<28} {m['email']!s:<40} {m['phone']!s:<10} "
                          f"{m['name']:<30} {m['postal_code']}")
        return 1
    return 0


def main() -> int:
    cmd = sys.argv[1] if len(sys.argv) > 1 else ""
    if cmd == "selftest":
        return selftest()
    if cmd == "prepare" and len(sys.argv) == 3:
        prepare(Path(sys.argv[2]))
    elif cmd == "splink" and len(sys.argv) == 5:
        run_splink(Path(sys.argv[2]), Path(sys.argv[3]), sys.argv[4])
    elif cmd == "durable-load" and len(sys.argv) == 5:
        durable_load(Path(sys.argv[2]), Path(sys.argv[3]), sys.argv[4])
    elif cmd == "report" and len(sys.argv) == 5:
        return report(Path(sys.argv[2]), Path(sys.argv[3]), int(sys.argv[4]))
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
