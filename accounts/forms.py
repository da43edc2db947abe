"""Form helpers every app's views share."""


def apply_service_errors(form, error):
    """Put a service's ValidationError on the form: on the fields it names, the rest above the form."""
    if not hasattr(error, "error_dict"):
        form.add_error(None, error)
        return
    for field, errors in error.error_dict.items():
        form.add_error(field if field in form.fields else None, errors)
