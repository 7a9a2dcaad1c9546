#!/bin/sh
# fetch-datasets.sh: fetches the public data sets `make eval` reads into
# $AIOS_DATA (default ../shared/datasets beside the checkout, as for
# `make eval`), from their upstream repositories, in the layout and form
# the evaluations read (the README's "Evaluation data" section):
#
#   workload/alibaba2018/day_N.10s.csv.gz   Alibaba cluster trace v2018, machine usage
#   workload/google2019/week1.300s.csv.gz   Google cluster trace 2019, instance usage
#       both from github.com/alejandrofdez-us/DataCenter-Traces-Datasets
#       (processed from github.com/alibaba/clusterdata and
#       research.google/tools/datasets/google-cluster-workload-traces-2019)
#   workload/azure2017/periodic_{avg,max}_78.csv.gz
#       78 VMs of the Azure Public Dataset V1 (2017), as sampled by
#       github.com/carlonlv/DataCenterSim (GPL-2; cite Cortez et al.,
#       Resource Central, SOSP 2017). Stored there as R data (.rda):
#       converted with Rscript, or python3 with pyreadr; without either the
#       .rda files are kept and the script says so.
#   cache/cloudphysics.txt.gz
#       the CloudPhysics block trace sample shipped with libCacheSim
#       (github.com/1a1a11a/libCacheSim, data/cloudPhysicsIO.txt)
#   adfa-ld/{training,validation,attack}.tar.gz, adfa-ld/syscall-list.txt
#       ADFA Linux Dataset (Creech and Hu, UNSW Canberra, 2013), from
#       github.com/verazuo/a-labelled-version-of-the-ADFA-LD-dataset
#       (ADFA-LD.zip); the four attack families Adduser, Hydra_FTP,
#       Hydra_SSH, Meterpreter and validation traces UVD-0001..2186, as the
#       evaluations use (ADFA_FULL=1 keeps every trace).
#
# usage: scripts/fetch-datasets.sh [-f] [workload|cache|adfa-ld ...]
#   -f   fetch again what is already there
# Needs curl (or wget), gzip, tar, and unzip or python3. Each file is
# fetched into a temporary directory and moved into place whole; files
# with a known content are checked against its SHA-256 (of the
# uncompressed bytes), so a moved or changed upstream is noticed.
#
# Environment:
#   AIOS_DATA        where to put them (default ../shared/datasets from the
#                    repository root)
#   AIOS_DATA_MIRROR a directory laid out as OWNER/REPO/PATH to copy from
#                    instead of GitHub (an offline mirror; the tests use one)
#   ALIBABA_DAYS     days of the Alibaba trace (default "1 2 3 4 5"; 1..8 exist)
#   ADFA_FULL        1: every ADFA-LD trace, not the evaluations' selection
set -eu

cd "$(dirname "$0")/.."
DEST=${AIOS_DATA:-../shared/datasets}
ALIBABA_DAYS=${ALIBABA_DAYS:-1 2 3 4 5}
FORCE=0
if [ "${1:-}" = "-f" ]; then
	FORCE=1
	shift
fi
SETS=${*:-workload cache adfa-ld}

# Upstream repositories and the commits these copies were taken at: a
# commit, not a branch, so the bytes do not move under the checksums.
DCT=alejandrofdez-us/DataCenter-Traces-Datasets
DCT_REF=${DCT_REF:-f5754345c0e4c49c69a466ae2cfe25c3c1f15548}
DCT_GOOGLE_REF=${DCT_GOOGLE_REF:-c149b3108a51d95221697ab325c3f973c1240842}
DCS=carlonlv/DataCenterSim
DCS_AVG_REF=${DCS_AVG_REF:-3201b8b1d8c35cea0401987b026584b689681349}
DCS_MAX_REF=${DCS_MAX_REF:-65697afeff1e2d0f0ce6b0b0aec8eff10a6608a5}
LCS=1a1a11a/libCacheSim
LCS_REF=${LCS_REF:-6c91ca8954e6b0daf9c9f7d8ca5198e07bab5b60}
ADFA=verazuo/a-labelled-version-of-the-ADFA-LD-dataset
ADFA_REF=${ADFA_REF:-58332c8d7dfbecb9f3e746c9f691623b91f51dfd}

say() { echo "fetch-datasets: $*" >&2; }
die() {
	say "$*"
	exit 1
}

TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT INT TERM

# fetch REPO REF PATH OUT: one file of a GitHub repository at a commit.
fetch() {
	if [ -n "${AIOS_DATA_MIRROR:-}" ]; then
		cp "$AIOS_DATA_MIRROR/$1/$3" "$4" || die "not in the mirror: $AIOS_DATA_MIRROR/$1/$3"
		return
	fi
	url="https://raw.githubusercontent.com/$1/$2/$3"
	say "GET $url"
	if command -v curl >/dev/null 2>&1; then
		curl -fsSL --retry 3 -o "$4" "$url" || die "could not fetch $url"
	else
		wget -q -O "$4" "$url" || die "could not fetch $url"
	fi
	# A file kept in Git LFS comes back as a pointer from raw.githubusercontent.com.
	if head -c 40 "$4" | grep -q '^version https://git-lfs'; then
		url="https://media.githubusercontent.com/media/$1/$2/$3"
		say "GET $url (Git LFS)"
		if command -v curl >/dev/null 2>&1; then
			curl -fsSL --retry 3 -o "$4" "$url" || die "could not fetch $url"
		else
			wget -q -O "$4" "$url" || die "could not fetch $url"
		fi
	fi
}

sha() { sha256sum | cut -c1-64; }

# check FILE.gz SHA256: the uncompressed bytes are the expected ones.
check() {
	got=$(gzip -dc "$1" | sha)
	[ "$got" = "$2" ] || die "$1: SHA-256 $got, want $2 (upstream changed? set the *_REF variables)"
}

# want FILE: true when FILE must be (re)made.
want() { [ "$FORCE" = 1 ] || [ ! -s "$DEST/$1" ]; }

# place TMPFILE DESTFILE: moves a finished file into $DEST.
place() {
	mkdir -p "$(dirname "$DEST/$2")"
	mv "$1" "$DEST/$2"
	say "wrote $DEST/$2"
}

# gzipped SRC OUT: gzip -n (no name or time: the same bytes every time).
gzipped() { gzip -9nc "$1" >"$2"; }

workload() {
	for day in $ALIBABA_DAYS; do
		out=workload/alibaba2018/day_$day.10s.csv.gz
		want "$out" || continue
		fetch $DCT "$DCT_REF" "alibaba2018/day_$day/machine_usage_day_${day}_grouped_10_seconds.csv" "$TMP/a.csv"
		gzipped "$TMP/a.csv" "$TMP/a.csv.gz"
		case $day in
		1) check "$TMP/a.csv.gz" b74bb3816643c7244baf457142ad5be1abb9062337be68b9e3320fea5fabc4a6 ;;
		2) check "$TMP/a.csv.gz" 98592388c787ee5968098d0474f015b62a6a9ba8c7cb09e3a973e9ad4ea827de ;;
		3) check "$TMP/a.csv.gz" 1cda9b858679089d48477a574836adc710667f2de28f8ef6e4f6ba49388fc95b ;;
		4) check "$TMP/a.csv.gz" 1f809b614c1009e4532cecb7f3a3c7e27995e599c308666b88a6af7cad27bb47 ;;
		5) check "$TMP/a.csv.gz" 202e5a85efccaf85ce1cec8a03efae7c80e988917317f4f15035dc4f1b61741c ;;
		esac
		place "$TMP/a.csv.gz" "$out"
	done

	out=workload/google2019/week1.300s.csv.gz
	if want $out; then
		fetch $DCT "$DCT_GOOGLE_REF" google2019/week1/instance_usage_grouped_300_seconds_week1.csv "$TMP/g.csv"
		gzipped "$TMP/g.csv" "$TMP/g.csv.gz"
		check "$TMP/g.csv.gz" a4de0933f0bf493b59ae27d8499272f4eeb00d95f9794b35aa5efe77c6f4b2e7
		place "$TMP/g.csv.gz" $out
	fi

	for kind in avg max; do
		out=workload/azure2017/periodic_${kind}_78.csv.gz
		want "$out" || continue
		if [ $kind = avg ]; then ref=$DCS_AVG_REF; else ref=$DCS_MAX_REF; fi
		fetch $DCS "$ref" "data/periodic_${kind}_78.rda" "$TMP/p.rda"
		if rda2csv "$TMP/p.rda" "$TMP/p.csv"; then
			gzipped "$TMP/p.csv" "$TMP/p.csv.gz"
			place "$TMP/p.csv.gz" "$out"
		else
			mkdir -p "$DEST/workload/azure2017"
			mv "$TMP/p.rda" "$DEST/workload/azure2017/periodic_${kind}_78.rda"
			say "kept $DEST/workload/azure2017/periodic_${kind}_78.rda: install R (Rscript) or python3's pyreadr and run again to convert it to CSV"
		fi
	done
}

# rda2csv RDA CSV: the data frame in an R data file as CSV, one column per
# VM named "<vm id> <period>", no row names.
rda2csv() {
	if command -v Rscript >/dev/null 2>&1; then
		Rscript -e 'a <- commandArgs(TRUE); e <- new.env(); n <- load(a[1], envir = e); x <- as.data.frame(get(n[1], envir = e), check.names = FALSE); write.csv(x, a[2], row.names = FALSE)' "$1" "$2" && return 0
	fi
	if command -v python3 >/dev/null 2>&1 && python3 -c 'import pyreadr' 2>/dev/null; then
		python3 -c 'import sys, pyreadr; df = next(iter(pyreadr.read_r(sys.argv[1]).values())); df.to_csv(sys.argv[2], index=False)' "$1" "$2" && return 0
	fi
	return 1
}

cache() {
	out=cache/cloudphysics.txt.gz
	want $out || return 0
	fetch $LCS "$LCS_REF" data/cloudPhysicsIO.txt "$TMP/c.txt"
	gzipped "$TMP/c.txt" "$TMP/c.txt.gz"
	check "$TMP/c.txt.gz" 1b48334535801ae862d53e9d7623467186eeb93054462b38021fef273cab0439
	place "$TMP/c.txt.gz" $out
}

adfa() {
	want adfa-ld/attack.tar.gz || want adfa-ld/training.tar.gz || want adfa-ld/validation.tar.gz || want adfa-ld/syscall-list.txt || return 0
	fetch $ADFA "$ADFA_REF" ADFA-LD.zip "$TMP/adfa.zip"
	mkdir "$TMP/adfa"
	if command -v unzip >/dev/null 2>&1; then
		unzip -q "$TMP/adfa.zip" -d "$TMP/adfa"
	else
		python3 -m zipfile -e "$TMP/adfa.zip" "$TMP/adfa"
	fi
	top() { find "$TMP/adfa" -type d -name "$1" | head -n 1; }
	tr=$(top Training_Data_Master)
	va=$(top Validation_Data_Master)
	at=$(top Attack_Data_Master)
	sl=$(find "$TMP/adfa" -type f -iname '*syscall*list*.txt' | head -n 1)
	[ -n "$tr" ] && [ -n "$va" ] && [ -n "$at" ] && [ -n "$sl" ] || die "ADFA-LD.zip: Training_Data_Master, Validation_Data_Master, Attack_Data_Master or the syscall list not found"
	if [ "${ADFA_FULL:-0}" != 1 ]; then
		# The evaluations' selection: four attack families, the first
		# 2186 validation traces.
		for d in "$at"/*; do
			case $(basename "$d") in
			Adduser_[0-9]* | Hydra_FTP_[0-9]* | Hydra_SSH_[0-9]* | Meterpreter_[0-9]*) ;;
			*) rm -rf "$d" ;;
			esac
		done
		for f in "$va"/UVD-*.txt; do
			n=$(basename "$f" .txt)
			n=${n#UVD-}
			n=${n#"${n%%[!0]*}"} # no leading zeros: not octal
			[ "${n:-0}" -le 2186 ] || rm -f "$f"
		done
	fi
	mk() { tar -C "$(dirname "$2")" --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 -cf - "$(basename "$2")" | gzip -9n >"$TMP/$1"; }
	mk training.tar.gz "$tr"
	mk validation.tar.gz "$va"
	mk attack.tar.gz "$at"
	n=$(tar -tzf "$TMP/training.tar.gz" | grep -vc '/$')
	[ "$n" = 833 ] || die "ADFA-LD: $n training traces, want 833"
	if [ "${ADFA_FULL:-0}" != 1 ]; then
		n=$(tar -tzf "$TMP/validation.tar.gz" | grep -vc '/$')
		[ "$n" = 2186 ] || die "ADFA-LD: $n validation traces, want 2186"
		n=$(tar -tzf "$TMP/attack.tar.gz" | grep -vc '/$')
		[ "$n" = 504 ] || die "ADFA-LD: $n attack traces in the four families, want 504"
	fi
	cp "$sl" "$TMP/syscall-list.txt"
	for f in training.tar.gz validation.tar.gz attack.tar.gz syscall-list.txt; do
		place "$TMP/$f" adfa-ld/$f
	done
}

for set in $SETS; do
	case $set in
	workload) workload ;;
	cache) cache ;;
	adfa-ld | adfa) adfa ;;
	*) die "unknown data set $set (want workload, cache or adfa-ld)" ;;
	esac
done
say "done: $DEST"
