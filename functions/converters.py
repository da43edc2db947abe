class FunctionNameConverter:
    """A Function's name as it may appear in an address (CONTRACT.md: 1-35 of [A-Za-z0-9_-])."""

    regex = r"[A-Za-z0-9_-]{1,35}"

    def to_python(self, value):
        return value

    def to_url(self, value):
        return value
