from django.contrib.auth.decorators import login_required
from django.shortcuts import render

from accounts.access import Area, function_for, may_write, require


@login_required
def function_list(request, org_id):
    membership = require(request.user, org_id, Area.FUNCTIONS)
    return render(
        request,
        "functions/list.html",
        {"functions": [], "can_write": may_write(membership, Area.FUNCTIONS), "tab": "list"},
    )


@login_required
def function_detail(request, org_id, name):
    function, can_write = function_for(request.user, org_id, name)
    return render(request, "functions/detail.html", {"function": function, "can_write": can_write, "tab": "overview"})
