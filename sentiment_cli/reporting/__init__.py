"""What people read: report.md, its plots, and the console."""
