"""The web console's use cases (docs/console.md): operators and their passwords,
the cross-tenant reads its pages show, and the audited actions it offers. The
HTTP side is ``lmtpd.console``."""
