"""The desktop app: tray icon, single instance, start at login, logs. Importing this package
(or any module in it) never needs a display; the tray imports pystray only when it starts."""
