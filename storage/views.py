from django.contrib.auth.decorators import login_required
from django.shortcuts import render

from accounts.access import Area, may_write, require


@login_required
def browse(request, org_id):
    membership = require(request.user, org_id, Area.STORAGE)
    return render(
        request,
        "storage/browse.html",
        {"can_write": may_write(membership, Area.STORAGE), "tab": "storage"},
    )
