from django.contrib.auth.decorators import login_required
from django.shortcuts import render

from accounts.access import Area, may_write, require


@login_required
def function_list(request, org_id):
    membership = require(request.user, org_id, Area.FUNCTIONS)
    return render(
        request,
        "functions/list.html",
        {"functions": [], "can_write": may_write(membership, Area.FUNCTIONS), "tab": "list"},
    )
