#!/bin/sh
# A store the bot must not run on is refused at start with a message that
# says what to do: a file from a newer shopbot (user_version above the
# newest migration), and a file whose interior pages are damaged while its
# header and page 1 are intact. A healthy copy of the same file still opens.
. "$(dirname "$0")/lib.sh"
S=$SHOPBOT
command -v sqlite3 >/dev/null || { echo "sqlite3 CLI missing"; exit 77; }
command -v python3 >/dev/null || { echo "python3 missing"; exit 77; }
d=$(make_shop files)
db="$d/data/shop.db"
# A store of a few hundred pages: customers, and a conversation.
$S import "$d" "$RT_SOURCE_DIR/examples/autoparts/customers.csv" >/dev/null 2>&1
echo "привет" | $S chat "$d" --user k >"$TMP/o0" 2>"$TMP/e0"
check "the healthy store opens" [ $? -eq 0 ]
check "and answers" contains "$TMP/o0" "Привет"
sqlite3 "$db" 'PRAGMA wal_checkpoint(TRUNCATE)' >/dev/null
cp "$db" "$TMP/good.db"
newest=$(ls "$RT_SOURCE_DIR/schema/sql" | grep -E '^[0-9]+_.*\.sql$' | sort | tail -1 | sed 's/_.*//; s/^0*//')

# A newer schema.
sqlite3 "$db" 'PRAGMA user_version = 99'
echo "привет" | $S chat "$d" --user k >"$TMP/o1" 2>"$TMP/e1"
rc=$?
check "schema 99 refused (rc=$rc)" [ $rc -ne 0 ]
check "the message names both versions" \
  contains "$TMP/e1" "written by a newer shopbot \(schema 99, this one knows $newest\)"
check "no reply from a refused store" sh -c "! grep -q 'Привет' '$TMP/o1'"
check "the file was left as it was" \
  sh -c "[ \$(sqlite3 '$db' 'PRAGMA user_version') -eq 99 ]"

# Damaged interior pages: 40 runs of 64 random bytes, each at the start of
# a page past page 1 (page header and cell pointers), as a bad disk or a
# stray write would leave them. The header stays intact, so opening the file
# alone notices nothing.
cp "$TMP/good.db" "$db"
rm -f "$db-wal" "$db-shm"
python3 - "$db" <<'PY'
import os, random, sys
path = sys.argv[1]
random.seed(20)
size = os.path.getsize(path)
with open(path, "r+b") as f:
    psize = int.from_bytes(f.read(18)[16:18], "big") or 65536
    pages = size // psize
    for _ in range(40):
        page = random.randrange(2, pages + 1)
        f.seek((page - 1) * psize + random.randrange(0, 32))
        f.write(bytes(random.randrange(256) for _ in range(64)))
PY
check "the copy is damaged (precondition)" \
  sh -c "[ \"\$(sqlite3 '$db' 'PRAGMA quick_check' 2>&1 | head -1)\" != ok ]"
echo "привет" | $S chat "$d" --user k >"$TMP/o2" 2>"$TMP/e2"
rc=$?
check "damaged store refused (rc=$rc)" [ $rc -ne 0 ]
check "the message says it is damaged" contains "$TMP/e2" "database file is damaged"
check "the message says what to do" contains "$TMP/e2" "restore the latest backup.*\.recover"
check "no reply from a damaged store" sh -c "! grep -q 'Привет' '$TMP/o2'"
$S stats "$d" >/dev/null 2>"$TMP/e3"
check "stats refuses it too" contains "$TMP/e3" "database file is damaged"

# The healthy copy again.
cp "$TMP/good.db" "$db"
rm -f "$db-wal" "$db-shm"
echo "привет" | $S chat "$d" --user k2 >"$TMP/o4" 2>"$TMP/e4"
check "the healthy copy opens again" [ $? -eq 0 ]
check "and answers again" contains "$TMP/o4" "Привет"
done_tests
