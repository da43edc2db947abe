"""Byte counts as people read them: the one formatter for every limit and size a message quotes.

Pure Python (no Django), so the bundle checks and the sandbox use it too.
"""


def format_bytes(count: int) -> str:
    """1 byte, 512 bytes, 3.4 KB, 50 MB, 1.2 GB, 5 GB: binary multiples, the way quotas and limits are read."""
    if count == 1:
        return "1 byte"
    if count < 1024:
        return f"{count:,} bytes"
    value = float(count)
    for unit in ("KB", "MB", "GB", "TB", "PB"):
        value /= 1024
        if value < 1024 or unit == "PB":
            text = f"{value:.1f}".removesuffix(".0")
            return f"{text} {unit}"
    raise AssertionError("unreachable")
