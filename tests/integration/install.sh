#!/usr/bin/env bash
# install: `make install PREFIX=/usr/local DESTDIR=<tmp>` puts every program
# of server/ and client/ in bin/, a man page for each (help2man, from the
# program's own --help and --version) in share/man/man1/, and the LICENSE;
# the installed programs run, the pages carry the version and every option
# of --help, and `make uninstall` removes it all again.
cd "$(dirname "$0")/../.." || exit 1
source tests/lib.sh
SEFL_PASSED=0 SEFL_FAILED=0
D=$(mktemp -d /tmp/sefl-install.XXXXXX)
trap 'rm -rf "$D"' EXIT
if ! command -v help2man >/dev/null; then
    echo "skipped: help2man is not installed (make deps installs it)"
    echo "0 passed, 0 failed"
    exit 0
fi

make -s --no-print-directory install BUILD="$BUILD" PREFIX=/usr/local DESTDIR="$D" >"$D.log" 2>&1
sefl_check "make install exits 0" [ $? = 0 ]
version=$(sed -n 's/^#define SEFL_VERSION "\(.*\)"$/\1/p' common/version.h)
progs=$(cd server && ls sefl-*.c; cd ../client && ls sefl-*.c)
for p in $progs; do
    p=${p%.c}
    sefl_check "$p installed and runs: --version says $version" \
        [ "$("$D/usr/local/bin/$p" --version)" = "$p $version" ]
    page=$D/usr/local/share/man/man1/$p.1
    sefl_check "  its man page names it and the version" \
        grep -q "^\.TH ${p^^} \"1\" .*\"$p $version\"" "$page"
    # Every long option --help lists is in the page (help2man escapes '-').
    missing=0
    for o in $("$BIN/$p" --help | grep -oE '^ +(-h, )?--[a-z-]+' | sed 's/.*--//'); do
        grep -qF -- "\\-\\-${o//-/\\-}" "$page" || { echo "  $p.1 lacks --$o"; missing=1; }
    done
    sefl_check "  every option of --help is in the page" [ $missing = 0 ]
done
sefl_check "LICENSE installed" cmp -s LICENSE "$D/usr/local/share/doc/sefl/LICENSE"
if command -v groff >/dev/null; then
    sefl_check "the pages render without warnings" \
        sh -c "groff -man -Tutf8 -ww '$D'/usr/local/share/man/man1/*.1 2>&1 >/dev/null | grep -c . | grep -qx 0"
fi
make -s --no-print-directory uninstall BUILD="$BUILD" PREFIX=/usr/local DESTDIR="$D" >>"$D.log" 2>&1
sefl_check "make uninstall leaves no file" [ -z "$(find "$D" -type f)" ]
rm -f "$D.log"
sefl_summary
