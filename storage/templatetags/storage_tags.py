from django import template

from storage.sizes import format_bytes

register = template.Library()


@register.filter
def storage_size(value):
    """Bytes as people read them: 1 byte, 512 bytes, 3.4 KB, 1.2 GB."""
    return format_bytes(int(value or 0))
