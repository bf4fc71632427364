"""The admin console: server-rendered pages under /console (docs/CONSOLE.md). Its routers live in
api/routes/console_*.py; this package holds its sessions, templates, static files, charts and headers."""
