#!/usr/bin/env bash
# The incremental PostgreSQL read against full reads (BENCHMARKS.md,
# "Incremental read by updated_at"). Needs a data folder from
# `triggerfish demo generate --rows 1000000`, its crm-contacts.csv loaded into
# the table crm_contacts of the server at $CRM_DATABASE_URL (loopback only),
# and a configuration whose crm-contacts source reads that table with
# updated_at = "ModifiedOn".
#
#   DATA=/tmp/data CONFIG=triggerfish-pg.toml STATE=.triggerfish-pg \
#   CRM_DATABASE_URL=postgresql://postgres@127.0.0.1:55432/postgres \
#   RUNS=3 tests/benches/postgres/incremental.sh old-binary new-binary
#
# Per round and binary: a full refresh from an empty state folder; 4,000 rows'
# ModifiedOn set to now(), refresh; 1,000 rows copied under new keys, refresh;
# those deleted, refresh; then the same with FEW rows (default 10): added,
# refresh, deleted, refresh. Prints the crm stage, unification, wall and peak
# RSS.
#
# GUID keys: TABLE=crm_guid NEW_KEY='gen_random_uuid()' with a configuration
# reading that table, made from crm_contacts with every key a random uuid:
#   CREATE TABLE crm_guid AS SELECT gen_random_uuid() AS "ContactId", "FirstName",
#     "LastName", "Email", "Phone", "PostalCode", "City", "Country", "ModifiedOn"
#   FROM crm_contacts; ALTER TABLE crm_guid ADD PRIMARY KEY ("ContactId");
#
# Rows marked deleted: MARK=IsDeleted with a configuration whose crm source
# has deleted = "IsDeleted", a bool column of the table
# (ALTER TABLE … ADD COLUMN "IsDeleted" bool NOT NULL DEFAULT false). Two more
# refreshes per round: after 1,000 rows are marked, and after they are
# unmarked.
set -euo pipefail
: "${DATA:?the data folder}" "${CRM_DATABASE_URL:?the server}"
CONFIG=${CONFIG:-triggerfish-pg.toml}
STATE=${STATE:-.triggerfish-pg}
RUNS=${RUNS:-3}
TABLE=${TABLE:-crm_contacts}
# New keys: after every stored one by default; random uuids land anywhere.
NEW_KEY=${NEW_KEY:-"'D' || substr(\"ContactId\", 2)"}
MARK=${MARK:-}
FEW=${FEW:-10}
# Rows the bench added carry this Country, to be deleted by it.
ADDED="'(bench-added)'"
[ $# -ge 1 ] || { echo "usage: $0 BINARY..." >&2; exit 2; }
cd "$DATA"
sql() { psql "$CRM_DATABASE_URL" -q -v ON_ERROR_STOP=1 -c "$1"; }
run() {
  local out
  out=$( { /usr/bin/time -f "WALL %e RSS %M" "$1" refresh --config "$CONFIG"; } 2>&1 ) || true
  printf '%s %s %s: crm %s ms, unification %s ms, %s | %s\n' "$2" "$(basename "$1")" "$3" \
    "$(grep -m1 'source:crm-contacts' <<<"$out" | awk '{print $5}')" \
    "$(grep -m1 '^  unification' <<<"$out" | awk '{print $5}')" \
    "$(grep WALL <<<"$out")" \
    "$(grep -m1 -o 'read by[^;]*\|read in full[^;]*' <<<"$out" || true)"
}
for round in $(seq "$RUNS"); do
  for bin in "$@"; do
    sql "DELETE FROM $TABLE WHERE \"Country\" = $ADDED"
    rm -rf "$STATE"
    run "$bin" "$round" full
    sql "UPDATE $TABLE SET \"ModifiedOn\" = now() WHERE \"ContactId\" IN
         (SELECT \"ContactId\" FROM $TABLE ORDER BY \"ContactId\" LIMIT 4000)"
    run "$bin" "$round" 4000-updated
    sql "INSERT INTO $TABLE SELECT $NEW_KEY, \"FirstName\", \"LastName\",
         \"Email\", \"Phone\", \"PostalCode\", \"City\", $ADDED, now()
         FROM $TABLE ORDER BY \"ContactId\" LIMIT 1000"
    run "$bin" "$round" 1000-added
    sql "DELETE FROM $TABLE WHERE \"Country\" = $ADDED"
    run "$bin" "$round" 1000-deleted
    sql "INSERT INTO $TABLE SELECT $NEW_KEY, \"FirstName\", \"LastName\",
         \"Email\", \"Phone\", \"PostalCode\", \"City\", $ADDED, now()
         FROM $TABLE ORDER BY \"ContactId\" LIMIT $FEW"
    run "$bin" "$round" "$FEW-added"
    sql "DELETE FROM $TABLE WHERE \"Country\" = $ADDED"
    run "$bin" "$round" "$FEW-deleted"
    if [ -n "$MARK" ]; then
      sql "UPDATE $TABLE SET \"$MARK\" = true, \"ModifiedOn\" = now() WHERE \"ContactId\" IN
           (SELECT \"ContactId\" FROM $TABLE ORDER BY \"ContactId\" DESC LIMIT 1000)"
      run "$bin" "$round" 1000-marked
      sql "UPDATE $TABLE SET \"$MARK\" = false, \"ModifiedOn\" = now() WHERE \"$MARK\""
      run "$bin" "$round" 1000-unmarked
    fi
  done
done
