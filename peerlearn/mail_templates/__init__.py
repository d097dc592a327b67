"""Mail templates, one Markdown file per language (package data; see peerlearn/mail.py)."""
