#!/usr/bin/env bash
# Install the desktop bundle for this user (no root), from the bundle folder it sits in:
#   ./install.sh [--in-place]
# copies the bundle to ~/.local/opt/compression-workbench (--in-place: uses it where it is), links
# ~/.local/bin/compression-workbench to its executable, and installs the desktop entry, the icon, and the
# MIME type of run files (*.h5) with the app as its default, so a double click on a run file opens it.
# XDG_DATA_HOME and XDG_CONFIG_HOME are honoured. uninstall.sh removes all of it.
set -euo pipefail

SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
DATA=${XDG_DATA_HOME:-$HOME/.local/share}
CONFIG=${XDG_CONFIG_HOME:-$HOME/.config}
BIN=$HOME/.local/bin
DEST=$HOME/.local/opt/compression-workbench
MIME=application/x-compression-workbench-run
ENTRY=compression-workbench.desktop

die() { echo "install.sh: $*" >&2; exit 1; }
[ -x "$SRC/workbench" ] && [ -d "$SRC/share" ] || die "run me from the bundle folder (beside the workbench executable)"
case ${1:-} in
    --in-place) DEST=$SRC ;;
    "") ;;
    *) die "unknown option $1 (--in-place installs the bundle where it is)" ;;
esac

if [ "$DEST" != "$SRC" ]; then
    echo "copying the bundle to $DEST"
    mkdir -p "$(dirname "$DEST")"
    rm -rf "$DEST.new"
    cp -a "$SRC" "$DEST.new"        # copy first: a failed copy leaves an installed bundle as it was
    rm -rf "$DEST"
    mv "$DEST.new" "$DEST"
fi
case $DEST in *[\"\`\$\\]*) die "the bundle's path $DEST has a character a desktop entry cannot quote" ;; esac

mkdir -p "$BIN" "$DATA/applications" "$DATA/mime/packages" "$DATA/icons/hicolor/256x256/apps" \
         "$DATA/icons/hicolor/scalable/apps"
ln -sfn "$DEST/workbench" "$BIN/compression-workbench"
sed -e "s|^Exec=.*|Exec=\"$DEST/workbench\" gui %F|" "$DEST/share/$ENTRY" > "$DATA/applications/$ENTRY"
cp "$DEST/share/workbench.png" "$DATA/icons/hicolor/256x256/apps/compression-workbench.png"
cp "$DEST/share/workbench.svg" "$DATA/icons/hicolor/scalable/apps/compression-workbench.svg"
cp "$DEST/share/compression-workbench-mime.xml" "$DATA/mime/packages/compression-workbench.xml"

# the app as the default for run files: $XDG_CONFIG_HOME/mimeapps.list, [Default Applications]
mkdir -p "$CONFIG"
touch "$CONFIG/mimeapps.list"
awk -v key="$MIME" -v val="$ENTRY" '
    /^\[/ { if (here && !done) { print key "=" val; done = 1 }
            here = ($0 == "[Default Applications]"); print; next }
    here && index($0, key "=") == 1 { if (!done) { print key "=" val; done = 1 }; next }
    { print }
    END { if (!done) { if (!here) print "[Default Applications]"; print key "=" val } }
' "$CONFIG/mimeapps.list" > "$CONFIG/mimeapps.list.new"
mv "$CONFIG/mimeapps.list.new" "$CONFIG/mimeapps.list"

# the desktop's caches, where their tools are installed (without them the files are read at next login)
command -v update-mime-database >/dev/null && update-mime-database "$DATA/mime"
command -v update-desktop-database >/dev/null && update-desktop-database -q "$DATA/applications"
if [ -f "$DATA/icons/hicolor/icon-theme.cache" ] && command -v gtk-update-icon-cache >/dev/null; then
    gtk-update-icon-cache -f -t -q "$DATA/icons/hicolor"
fi
echo "installed: $DATA/applications/$ENTRY (run files *.h5 open in the app), $BIN/compression-workbench"
