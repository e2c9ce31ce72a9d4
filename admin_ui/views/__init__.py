"""The admin UI's pages: sign-in (login), a person's own keys (keys), admin pages (admin)."""
