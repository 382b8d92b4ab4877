#!/usr/bin/env bash
# Remove what install.sh installed for this user: the desktop entry, icon, MIME type and its default, the
# ~/.local/bin link, and the copy in ~/.local/opt/compression-workbench (a bundle installed with
# --in-place is left where it is). XDG_DATA_HOME and XDG_CONFIG_HOME are honoured.
set -euo pipefail

DATA=${XDG_DATA_HOME:-$HOME/.local/share}
CONFIG=${XDG_CONFIG_HOME:-$HOME/.config}
LINK=$HOME/.local/bin/compression-workbench
DEST=$HOME/.local/opt/compression-workbench
MIME=application/x-compression-workbench-run
ENTRY=compression-workbench.desktop

[ -L "$LINK" ] && rm -f "$LINK"
rm -f "$DATA/applications/$ENTRY" "$DATA/mime/packages/compression-workbench.xml" \
      "$DATA/icons/hicolor/256x256/apps/compression-workbench.png" \
      "$DATA/icons/hicolor/scalable/apps/compression-workbench.svg"
if [ -f "$CONFIG/mimeapps.list" ]; then      # only our own default line
    grep -vxF "$MIME=$ENTRY" "$CONFIG/mimeapps.list" > "$CONFIG/mimeapps.list.new" || true
    mv "$CONFIG/mimeapps.list.new" "$CONFIG/mimeapps.list"
fi
if [ -d "$DEST" ]; then
    # this script may be the copy inside $DEST: bash keeps it open, so removing the file is safe
    rm -rf "$DEST"
fi
command -v update-mime-database >/dev/null && [ -d "$DATA/mime/packages" ] && update-mime-database "$DATA/mime"
command -v update-desktop-database >/dev/null && [ -d "$DATA/applications" ] && update-desktop-database -q "$DATA/applications"
echo "uninstalled Compression Workbench (run files and the app's settings are left as they are)"
