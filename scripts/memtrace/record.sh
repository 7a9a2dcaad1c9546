#!/bin/sh
# Records page-reference traces of real programs for `make eval` (see
# scripts/eval/mem): one page number (file offset / 4096) per line, in the
# order the program read them, from strace's record of its read system
# calls. Writes testdata/mem/*.trace. Needs sqlite3, strace, python3.
#
#   sqlite-oltp   sqlite3 point lookups through an index, Zipf-skewed keys,
#                 with sqlite's own page cache cut to 8 pages so each page
#                 it needs is a read (the stream below its cache, as a
#                 block device or our fabric would see it)
#   sqlite-scan   sqlite3 range scans, a full scan and a join on the same
#                 database, same small cache
#   sqlite-mixed  sqlite3 point lookups (heavier-tailed keys than
#                 sqlite-oltp: Pareto 0.8) with a 3,000-row range scan
#                 every 1,000 lookups, same small cache: a hot set under
#                 periodic scan pollution, which separates the policies
#                 (it replaced a tac trace on which every policy equalled
#                 Belady at every size)
#
# Run from the repository root: sh scripts/memtrace/record.sh
set -eu
out=testdata/mem
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$out"

# pages FILE-FD-REGEX: strace lines -> page numbers. pread64 carries its
# offset; read and lseek are followed to know the file position.
pages() {
	python3 - "$1" <<'PY'
import re, sys
fd = None
pos = 0
out = []
for line in open(sys.argv[1]):
    m = re.match(r'openat\(.*"(.*)".*= (\d+)$', line)
    if m and m.group(1).endswith('.db'):
        fd, pos = m.group(2), 0
        continue
    if fd is None:
        continue
    m = re.match(r'pread64\((\d+), .*, (\d+), (\d+)\) = (\d+)', line)
    if m and m.group(1) == fd:
        off, n = int(m.group(3)), int(m.group(4))
        for p in range(off // 4096, (off + max(n, 1) - 1) // 4096 + 1):
            out.append(p)
        continue
    m = re.match(r'lseek\((\d+), (-?\d+), SEEK_(SET|CUR|END)\) = (\d+)', line)
    if m and m.group(1) == fd:
        pos = int(m.group(4))
        continue
    m = re.match(r'read\((\d+), .*, (\d+)\) = (\d+)', line)
    if m and m.group(1) == fd:
        n = int(m.group(3))
        if n > 0:
            for p in range(pos // 4096, (pos + n - 1) // 4096 + 1):
                out.append(p)
        pos += n
print("\n".join(map(str, out)))
PY
}

db="$tmp/t.db"
python3 - "$db" <<'PY'
import random, sqlite3, sys
random.seed(1)
c = sqlite3.connect(sys.argv[1])
c.execute("pragma page_size=4096")
c.execute("create table item(id integer primary key, k integer, v text)")
c.execute("create table tag(item integer, t text)")
c.executemany("insert into item(k, v) values(?, ?)", ((random.randrange(10**9), "x" * random.randrange(20, 200)) for _ in range(60000)))
c.executemany("insert into tag values(?, ?)", ((random.randrange(1, 60001), "t%d" % random.randrange(50)) for _ in range(30000)))
c.execute("create index item_k on item(k)")
c.commit()
PY

python3 - "$tmp/oltp.sql" <<'PY'
import random, sys
random.seed(2)
with open(sys.argv[1], "w") as f:
    f.write("pragma cache_size=8;\n")
    ks = []
    for i in range(20000):
        # Zipf-ish skew over row ids: a few hot rows, a long tail.
        r = int(random.paretovariate(1.2)) % 60000 + 1
        f.write("select v from item where k = (select k from item where id = %d);\n" % r)
PY
strace -o "$tmp/oltp.st" -e trace=openat,pread64,read,lseek sqlite3 "$db" < "$tmp/oltp.sql" > /dev/null
pages "$tmp/oltp.st" > "$out/sqlite-oltp.trace"

cat > "$tmp/scan.sql" <<'SQL'
pragma cache_size=8;
select count(*) from item where k between 100000000 and 200000000;
select count(*), sum(length(v)) from item;
select t, count(*) from tag join item on item.id = tag.item group by t;
select count(*) from item where k between 500000000 and 520000000;
select count(*), sum(length(v)) from item;
SQL
strace -o "$tmp/scan.st" -e trace=openat,pread64,read,lseek sqlite3 "$db" < "$tmp/scan.sql" > /dev/null
pages "$tmp/scan.st" > "$out/sqlite-scan.trace"

python3 - "$tmp/mixed.sql" <<'PY'
import random, sys
random.seed(4)
with open(sys.argv[1], "w") as f:
    f.write("pragma cache_size=8;\n")
    for i in range(20000):
        r = int(random.paretovariate(0.8)) % 60000 + 1
        f.write("select v from item where k = (select k from item where id = %d);\n" % r)
        if i % 1000 == 500:
            lo = random.randrange(0, 95*10**7) // 16667
            f.write("select count(*), sum(length(v)) from item where id between %d and %d;\n" % (lo, lo + 3000))
PY
strace -o "$tmp/mixed.st" -e trace=openat,pread64,read,lseek sqlite3 "$db" < "$tmp/mixed.sql" > /dev/null
pages "$tmp/mixed.st" > "$out/sqlite-mixed.trace"
wc -l "$out"/*.trace
