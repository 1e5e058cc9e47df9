"""A Content-Security-Policy header on every response (Django 5.2 has none built in).

The default policy (settings.CONTENT_SECURITY_POLICY) allows scripts from this site's static
files only: no inline script, no event-handler attribute, no eval. The chart pages carry each
figure as a JSON data block that static/js/charts.js draws (testing_app/views/charts.py), and every
other script of the templates is a static file.

Styles may be inline ('unsafe-inline' in style-src): plotly.js adds its rules through <style>
elements it creates at run time, and the admin, the browsable API and django-rq's dashboard
write style attributes and <style> blocks in their templates. With scripts locked down, injected
CSS cannot run code, and every template escapes what it prints.

django-rq's dashboard (staff only) selects its rows with inline scripts in its own templates;
its pages alone also allow inline scripts.
"""

from django.conf import settings

# Pages rendered by templates of other projects that need inline scripts (see above).
INLINE_SCRIPT_PATH_PREFIXES = ("/django-rq/",)


def with_inline_scripts(policy: str) -> str:
    """The same policy with 'unsafe-inline' added to its script-src (or default-src)."""
    directives = [d.strip() for d in policy.split(";") if d.strip()]
    names = [d.split()[0] for d in directives]
    target = "script-src" if "script-src" in names else "default-src"
    if target not in names:
        return policy
    directives = [
        f"{d} 'unsafe-inline'" if d.split()[0] == target and "'unsafe-inline'" not in d else d
        for d in directives
    ]
    return "; ".join(directives)


class ContentSecurityPolicyMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        policy = settings.CONTENT_SECURITY_POLICY
        if policy and "Content-Security-Policy" not in response.headers:
            if request.path.startswith(INLINE_SCRIPT_PATH_PREFIXES):
                policy = with_inline_scripts(policy)
            response.headers["Content-Security-Policy"] = policy
        return response
