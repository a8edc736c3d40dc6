#!/usr/bin/env sh
# Install the PyInstaller build for the current user (no root): the app folder, a `localembed`
# command, a desktop launcher with its icon. `install.sh --uninstall` removes all of it again.
# Usage: installer/linux/install.sh [path/to/dist/localembed]   (default: dist/localembed)
set -eu

DATA="${XDG_DATA_HOME:-$HOME/.local/share}"
APP_DIR="$DATA/localembed/app"
BIN="$HOME/.local/bin/localembed"
DESKTOP="$DATA/applications/localembed.desktop"
ICON="$DATA/icons/hicolor/256x256/apps/localembed.png"
HERE="$(cd "$(dirname "$0")" && pwd)"

if [ "${1:-}" = "--uninstall" ]; then
  rm -rf "$APP_DIR"
  rm -f "$BIN" "$DESKTOP" "$ICON"
  echo "localembed removed (your models and settings in $DATA/localembed are kept)."
  exit 0
fi

SRC="${1:-dist/localembed}"
if [ ! -x "$SRC/localembed" ]; then
  echo "No build at $SRC: run 'pyinstaller installer/localembed.spec' first." >&2
  exit 1
fi

mkdir -p "$APP_DIR" "$(dirname "$BIN")" "$(dirname "$DESKTOP")" "$(dirname "$ICON")"
rm -rf "$APP_DIR"
cp -R "$SRC" "$APP_DIR"
ln -sf "$APP_DIR/localembed" "$BIN"
cp "$HERE/../icons/localembed.png" "$ICON"
cat > "$DESKTOP" <<DESKTOP
[Desktop Entry]
Type=Application
Name=localembed
Comment=Local embeddings server and playground
Exec="$APP_DIR/localembed" app
Icon=localembed
Terminal=false
Categories=Development;Utility;
StartupNotify=false
DESKTOP
command -v update-desktop-database >/dev/null 2>&1 && update-desktop-database "$(dirname "$DESKTOP")" || true
echo "localembed installed: launch it from your applications menu, or run '$BIN'."
