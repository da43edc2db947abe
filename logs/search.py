"""Case-insensitive "message contains text", written so each database can use its index.

PostgreSQL: `message ILIKE '%text%'`, which the pg_trgm GIN index
(log_message_trgm_idx) answers; Django's own icontains wraps both sides in
UPPER() and so can never use it. SQLite: `message LIKE '%text%'`, which is
already case-insensitive for ASCII.
"""

from django.db.models import Lookup


def like_pattern(text):
    """%text% with LIKE's wildcards in the text taken literally (backslash is the escape on both databases)."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


class MessageContains(Lookup):
    """Use as an expression: `LogEntry.objects.filter(MessageContains(F("message"), "timeout"))`."""

    lookup_name = "message_contains"
    prepare_rhs = False

    def get_db_prep_lookup(self, value, connection):
        return "%s", [like_pattern(value)]

    def as_sql(self, compiler, connection):
        lhs, lhs_params = self.process_lhs(compiler, connection)
        rhs, rhs_params = self.process_rhs(compiler, connection)
        return f"{lhs} LIKE {rhs} ESCAPE '\\'", [*lhs_params, *rhs_params]

    def as_postgresql(self, compiler, connection):
        lhs, lhs_params = self.process_lhs(compiler, connection)
        rhs, rhs_params = self.process_rhs(compiler, connection)
        return f"{lhs} ILIKE {rhs}", [*lhs_params, *rhs_params]
